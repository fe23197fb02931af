"The benchmark-table tool: notebook tables are rendered from the benchmarks' JSON, and a stale or unknown table fails `--check`."
import importlib.util, json, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('bench_tables', ROOT / 'tools' / 'bench_tables.py')
bt = importlib.util.module_from_spec(spec); spec.loader.exec_module(bt)

def _tree(tmp_path, body):
    (tmp_path / 'nbs').mkdir(); res = tmp_path / 'benchmarks' / 'results'; res.mkdir(parents=True)
    shutil.copy(ROOT / 'benchmarks' / 'results' / 'mine_mnist.json', res)
    nb = {'cells': [{'cell_type': 'markdown', 'id': 'x', 'metadata': {}, 'source': [f"intro\n\n{body}\n\nafter"]}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    (tmp_path / 'nbs' / 'a.ipynb').write_text(json.dumps(nb))
    return tmp_path

def _use(monkeypatch, root):
    monkeypatch.setattr(bt, 'ROOT', root); monkeypatch.setattr(bt, 'RESULTS', root / 'benchmarks' / 'results')

def test_render_then_check(tmp_path, monkeypatch):
    root = _tree(tmp_path, '<!-- bench:mine -->\nstale\n<!-- /bench:mine -->'); _use(monkeypatch, root)
    assert bt.sync(check=True) == ["a.ipynb: table 'mine' differs from its JSON"]
    assert 'stale' in (root / 'nbs' / 'a.ipynb').read_text()          # --check never writes
    bt.sync(check=False)
    src = ''.join(json.loads((root / 'nbs' / 'a.ipynb').read_text())['cells'][0]['source'])
    assert 'stale' not in src and '9/9' in src and src.startswith('intro') and src.endswith('after')
    assert bt.sync(check=True) == []
    js = json.loads((root / 'benchmarks' / 'results' / 'mine_mnist.json').read_text())
    js[0]['valid'] = 3; (root / 'benchmarks' / 'results' / 'mine_mnist.json').write_text(json.dumps(js))
    assert bt.sync(check=True) == ["a.ipynb: table 'mine' differs from its JSON"]  # a new run makes the table stale

def test_unknown_table(tmp_path, monkeypatch):
    root = _tree(tmp_path, '<!-- bench:nope -->\n<!-- /bench:nope -->'); _use(monkeypatch, root)
    assert bt.sync(check=True) == ["a.ipynb: unknown table 'nope'"]

def test_every_table_renders():
    for name in bt.TABLES:
        out = bt.render(name)
        assert out.startswith('|') or out.startswith('(no results yet)'), name
