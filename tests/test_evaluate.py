"`evaluate` on a toy zoo: both engines (same rows), the cache (a rerun does no work), a failing model, the calibrator, and the CLI's bad input."
import json, socket, subprocess, sys
from pathlib import Path
import pytest
from backdoor_nb.evaluate import (evaluate, write_toy_manifest, read_manifest, same_rows, fit_verdict, as_calibrator, Calibrator,
                                  EvalReport, add_verdict)

EXE = Path(sys.executable).parent / 'backdoor_nb'
FAST = {'nc': dict(max_steps=80), 'smoothinv': dict(eps=1.5, n_noise=8, steps=60)}
DETS = ['smoothinv', 'nc']

def run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=600)

@pytest.fixture(scope='module')
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp('evaluate')
    return write_toy_manifest(d)

@pytest.fixture(scope='module')
def local(zoo):
    return evaluate(zoo, DETS, 'local', workers=2, config=FAST, progress=False)

def check_toy(rep):
    by = {r['name']: r for r in rep.rows}
    assert [r['name'] for r in rep.rows] == ['bd.safetensors', 'clean.safetensors'] and not rep.errors
    bd, cl = by['bd.safetensors'], by['clean.safetensors']
    assert bd['verdict']['backdoored'] and bd['verdict']['target'] == 3 and bd['detectors']['smoothinv']['flagged'] == [3]
    assert not cl['verdict']['backdoored'] and cl['detectors']['smoothinv']['flagged'] == []
    assert (bd['backdoored'], bd['target'], cl['backdoored'], cl['target']) == (True, 3, False, None)
    assert rep.metrics['smoothinv']['auroc'] == 1.0 and rep.metrics['combined']['target_acc'] == 1.0

def test_local_engine(local):
    check_toy(local)
    assert local.config['workers'] == 2 and local.config['threads'] >= 1 and local.config['engine'] == 'local'
    assert all(r['ran'] == DETS for r in local.rows)

def test_ray_engine_same_rows(zoo, local):
    rep = evaluate(zoo, DETS, 'ray', workers=2, config=FAST, progress=False)
    check_toy(rep)
    assert rep.config['threads'] == local.config['threads']
    assert same_rows(rep.rows, local.rows), (rep.rows, local.rows)
    import ray
    assert not ray.is_initialized()  # the local cluster it started is stopped

def test_cache_resume(zoo, local, tmp_path):
    cache = tmp_path / 'cache'
    first = evaluate(zoo, DETS, workers=2, config=FAST, cache_dir=cache, progress=False)
    assert [r['ran'] for r in first.rows] == [DETS, DETS] and same_rows(first.rows, local.rows)
    files = sorted(cache.rglob('*.json'))
    assert len(files) == 4 and all(json.loads(f.read_text())['format'] == 'backdoor_nb.evalcache/1' for f in files)
    again = evaluate(zoo, DETS, workers=2, config=FAST, cache_dir=cache, progress=False)
    assert [r['ran'] for r in again.rows] == [[], []] and same_rows(again.rows, first.rows)
    # an interrupted run: one entry missing, another truncated mid-write -> only those two are recomputed
    nc_bd = next(f for f in files if '-nc-' in f.name and json.loads(f.read_text())['summary']['flagged'])
    nc_bd.unlink()
    si_clean = next(f for f in files if '-smoothinv-' in f.name and not json.loads(f.read_text())['summary']['flagged'])
    si_clean.write_text(si_clean.read_text()[:40])
    resumed = evaluate(zoo, DETS, workers=2, config=FAST, cache_dir=cache, progress=False)
    assert [r['ran'] for r in resumed.rows] == [['nc'], ['smoothinv']] and same_rows(resumed.rows, first.rows)
    # another config is another key
    other = evaluate(zoo, ['smoothinv'], workers=1, config={'smoothinv': dict(FAST['smoothinv'], steps=61)}, cache_dir=cache, progress=False)
    assert [r['ran'] for r in other.rows] == [['smoothinv'], ['smoothinv']]

def test_failing_model(zoo, tmp_path):
    d = zoo.parent
    (d / 'partial.pt').write_bytes(b'not a state dict')
    man = tmp_path / 'm.csv'
    man.write_text(f"weights,arch,data,backdoored,target\n{d}/bd.safetensors,{d}/arch.py:backdoored,{d}/toy.npz,1,3\n"
                   f"{d}/partial.pt,{d}/arch.py:clean,{d}/toy.npz,0,\n{d}/clean.safetensors,{d}/arch.py:clean,{d}/toy.npz,0,\n")
    rep = evaluate(man, ['smoothinv'], workers=2, config={'smoothinv': FAST['smoothinv']}, progress=False)
    assert list(rep.errors) == [f"{d}/partial.pt"] and 'torch.load(weights_only=True)' in rep.errors[f"{d}/partial.pt"]
    ok = [r for r in rep.rows if not r['error']]
    assert [r['verdict']['backdoored'] for r in ok] == [True, False]
    assert 'verdict' not in rep.rows[1] and rep.metrics['smoothinv']['n'] == 2
    assert 'ERROR' in rep.table() and 'partial.pt' in rep.to_html()

def test_report_json_html(local, tmp_path):
    back = EvalReport.load(Path(local.to_json(tmp_path / 'r.json') and tmp_path / 'r.json'))
    assert same_rows(back.rows, local.rows) and back.detectors == DETS
    page = local.to_html(tmp_path / 'r.html')
    assert page.count('data:image/png;base64,') == 2 and '<script' not in page and 'src="http' not in page and "src='http" not in page
    (tmp_path / 'bad.json').write_text('{"format": "backdoor_nb.evaluate/1", "rows": [{"name": 1}], "detectors": [], "metrics": {}}')
    with pytest.raises(ValueError, match='row 0 lacks'): EvalReport.load(tmp_path / 'bad.json')

def test_folder_manifest(tmp_path):
    from backdoor_nb.attacks import ZooModel, save_zoo_model
    from backdoor_nb.models import build_model
    for i, bd in enumerate([None, None]):
        m = build_model('mnist_cnn', seed=i)
        save_zoo_model(ZooModel(f"clean{i}", 'digits', m, bd, {'clean_acc': 0.1}, {}), tmp_path / f"clean{i}", [str(k) for k in range(10)], (1, 28, 28))
    es = read_manifest(tmp_path)
    assert [(e.name, e.backdoored, e.target, e.data, e.arch) for e in es] == [('clean0', False, None, 'digits', None), ('clean1', False, None, 'digits', None)]
    (tmp_path / 'stray.safetensors').write_bytes(b'x')
    with pytest.raises(ValueError, match='stray.safetensors have no backdoor_nb sidecar'): read_manifest(tmp_path)

def test_calibrator_default_and_validation(local, tmp_path):
    cal = as_calibrator('default')
    assert cal.detectors == ['smoothinv', 'nc'] and cal.config == {'smoothinv': {}, 'nc': {}}
    pv = cal.provenance
    assert pv['n_models'] >= 20 and len(pv['models']) == pv['n_models'] and all(len(m['weights_sha256']) == 64 for m in pv['models'])
    assert 'benchmarks/evaluate.py' in pv['command'] and {'auroc', 'cross_entropy'} <= set(pv['heldout_check']['pooled'])
    assert cal.probability({'smoothinv': 0.9, 'nc': 6.}) > 0.9 and cal.probability({'smoothinv': 0.0, 'nc': 1.}) < 0.5  # clean-looking scores
    # the toy rows ran with the fast configs: the default calibrator does not apply and the vote decides
    row = add_verdict(json.loads(json.dumps(local.rows[0])), cal, FAST)
    assert row['verdict']['calibrated'] is False and 'another config' in row['verdict']['rule'] and row['verdict']['backdoored']
    d = cal.to_dict(); d['mean'] = [0.]
    (tmp_path / 'c.json').write_text(json.dumps(d))
    with pytest.raises(ValueError, match='mean must be a list of 2'): Calibrator.load(tmp_path / 'c.json')
    with pytest.raises(ValueError, match='needs clean and backdoored'): fit_verdict(local.rows[:1] * 4)

# ---- the command line
def test_cli_evaluate(tmp_path):
    zoo = write_toy_manifest(tmp_path / 'zoo', ('bd', 'bd2', 'clean', 'clean2'))
    r = run('evaluate', zoo, '--detectors', 'smoothinv', '--workers', '2', '--json', tmp_path / 'e.json', '--report', tmp_path / 'e.html',
            '--cache', tmp_path / 'c', '--fit-verdict', tmp_path / 'cal.json', '--quiet')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'bd.safetensors' in r.stdout and 'AUROC' in r.stdout
    js = json.loads((tmp_path / 'e.json').read_text())
    assert [x['verdict']['backdoored'] for x in js['rows']] == [True, True, False, False] and js['metrics']['smoothinv']['auroc'] == 1.0
    assert (tmp_path / 'e.html').read_text().count('data:image/png;base64,') == 2
    # the same zoo with the calibrator just fitted on it: calibrated, and the report says the zoo is not held out
    r = run('evaluate', zoo, '--detectors', 'smoothinv', '--cache', tmp_path / 'c', '--calibrator', tmp_path / 'cal.json', '--json', tmp_path / 'f.json', '--quiet')
    assert r.returncode == 0, r.stderr[-3000:]
    js = json.loads((tmp_path / 'f.json').read_text())
    assert all(x['verdict']['calibrated'] for x in js['rows']) and len(js['config']['calibrator_overlap']) == 4
    assert [x['verdict']['backdoored'] for x in js['rows']] == [True, True, False, False]
    assert 'cross_entropy' in js['metrics']['combined']

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p

@pytest.mark.parametrize('csv, args, msg', [
    ("weights,arch,data\nbd.safetensors,arch.py:backdoored,toy.npz\n", [], 'missing column(s) backdoored, target'),
    ("weights,arch,data,backdoored,target\nnope.safetensors,arch.py:backdoored,toy.npz,1,3\n", [], "weights file 'nope.safetensors' not found"),
    ("weights,arch,data,backdoored,target\nbd.safetensors,nope.py:make,toy.npz,1,3\n", [], "arch file 'nope.py' not found"),
    ("weights,arch,data,backdoored,target\nbd.safetensors,arch.py:backdoored,nope.npz,1,3\n", [], "data 'nope.npz' not found"),
    ("weights,arch,data,backdoored,target\nbd.safetensors,arch.py:backdoored,toy.npz,1,3\nbd.safetensors,arch.py:clean,toy.npz,0,\n", [],
     'duplicate rows: line 2 and line 3'),
    ("weights,arch,data,backdoored,target\nbd.safetensors,arch.py:backdoored,toy.npz,1,3\n", ['--detectors', 'smoothinv,bogus'], "unknown detector 'bogus'"),
    ("weights,arch,data,backdoored,target\nbd.safetensors,arch.py:backdoored,toy.npz,1,3\n", ['--engine', 'slurm'], "engine='slurm' is not an engine"),
    ("weights,arch,data,backdoored,target\nbd.safetensors,arch.py:backdoored,toy.npz,1,3\n", ['--engine', 'ray', '--address', '127.0.0.1:{port}'],
     'no Ray cluster answers there'),
    ("weights,arch,data,backdoored,target\nbd.safetensors,arch.py:backdoored,toy.npz,perhaps,3\n", [], 'backdoored must be 1 or 0'),
])
def test_cli_bad_input(zoo, csv, args, msg):
    man = zoo.parent / 'bad.csv'; man.write_text(csv)
    r = run('evaluate', man, *[a.format(port=free_port()) for a in args], '--quiet')
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert msg in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]

def test_cli_missing_manifest(tmp_path):
    r = run('evaluate', tmp_path / 'none.csv')
    assert r.returncode == 2 and 'no such file or folder' in r.stderr

def test_interrupted_result_is_not_cached(zoo, tmp_path):
    "Ctrl-C inside a detector stops the model's task; the partial answer is not written to the cache, so a rerun redoes it."
    from backdoor_nb.evaluate import evaluate_model
    from backdoor_nb.scan import DETECTORS, register_detector
    from backdoor_nb.neural_cleanse import neural_cleanse
    from helpers import Interrupting
    @register_detector('nc-ctrl-c', needs='20 images', missing=lambda d, k: None, cost=0.1, default=False)
    def ctrl_c(model, data, *, seed=0, device=None, progress=True, budget_s=None, **cfg):
        return neural_cleanse(Interrupting(model, 5), data.x[:20], config=dict(max_steps=40), progress=False, device=device, seed=seed)
    try:
        entry = read_manifest(zoo)[0]
        with pytest.raises(KeyboardInterrupt): evaluate_model(entry, ['nc-ctrl-c'], cache_dir=tmp_path)
        assert not list(tmp_path.rglob('*.json'))
    finally: DETECTORS.pop('nc-ctrl-c')
