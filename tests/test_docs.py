"The offline HTML docs: every notebook in nbs/ gets a page with its title, its show_doc entries and its figures."
import ast, html, importlib.util, json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = {'hide', 'export', 'exporti', 'default_exp'}  # directives that drop a cell from the docs

def _load_builder():
    spec = importlib.util.spec_from_file_location('build_docs', ROOT/'tools'/'build_docs.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def source_notebooks():
    "Every documented notebook: nbs/**/*.ipynb except names starting with `_` or `.` (checked independently of nbdev)."
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(part[0] in '_.' for part in p.relative_to(ROOT/'nbs').parts))

def _cells(nb_path):
    "Code/markdown cells of a notebook that show in the docs, with their `#|` directives."
    for c in json.loads(nb_path.read_text())['cells']:
        src = ''.join(c['source'])
        dirs = dict(re.findall(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', src, re.M))
        if c['cell_type'] == 'code' and (HIDDEN & dirs.keys() or dirs.get('include') == 'false'): continue
        yield c, src, dirs

def title(nb_path):
    "The notebook's title: its first markdown `# Title` line."
    hits = (re.search(r'^#\s+(.+?)\s*$', s, re.M) for c, s, _ in _cells(nb_path) if c['cell_type'] == 'markdown')
    return next(m[1] for m in hits if m)

def shown_names(nb_path):
    "Names documented with `show_doc(X)` (or `show_doc(X, name=...)`): `X` as written, e.g. `Trigger.apply`."
    names = []
    for c, src, _ in _cells(nb_path):
        if c['cell_type'] != 'code' or 'show_doc' not in src: continue
        for node in ast.walk(ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'show_doc' and node.args:
                kw = {k.arg: k.value for k in node.keywords}
                names.append(kw['name'].value if isinstance(kw.get('name'), ast.Constant) else ast.unparse(node.args[0]))
    return names

def n_images(nb_path):
    "Image outputs (figures) of the cells that show in the docs."
    return sum(any(k.startswith('image/') for k in o.get('data', {}))
               for c, _, dirs in _cells(nb_path) if c['cell_type'] == 'code' and dirs.get('output') != 'false'
               for o in c.get('outputs', []))

def headings(page_html):
    return [html.unescape(re.sub(r'<[^>]+>|¶', '', h)).strip() for h in re.findall(r'<h[1-6][^>]*>(.*?)</h[1-6]>', page_html, re.S)]

@pytest.fixture(scope='module')
def site(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    tmp = tmp_path_factory.mktemp('docs')
    return _load_builder().build_docs(site_dir=tmp/'site', docs_dir=tmp/'src')

@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp: yield mp

def test_helpers_see_what_they_should(tmp_path):
    "The checks below can fail: they find titles, show_doc names and figures in a notebook."
    nb = {'cells': [{'cell_type': 'markdown', 'metadata': {}, 'source': ['# My title\n', '> desc']},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'source': 'show_doc(f)\nshow_doc(A.g, name="A.g2")'},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [{'output_type': 'display_data', 'data': {'image/png': ''}}],
                     'source': 'plot()'},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [{'output_type': 'display_data', 'data': {'image/png': ''}}],
                     'source': '#| hide\nplot()'}], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    p = tmp_path/'01_x.ipynb'; p.write_text(json.dumps(nb))
    assert (title(p), shown_names(p), n_images(p)) == ('My title', ['f', 'A.g2'], 1)
    assert headings('<h3 id="f">f<a class="anchor-link" href="#f">¶</a></h3>') == ['f']

def test_converter(tmp_path):
    "Processed notebook -> mkdocs notebook: frontmatter to title, `#|` lines acted on and removed, math, links."
    bd = _load_builder()
    code = lambda src, outs=(): {'cell_type': 'code', 'metadata': {}, 'outputs': list(outs), 'source': src}
    md_out = {'output_type': 'execute_result', 'data': {'text/markdown': '### Foo.bar\n\n```python\ndef bar(x)\n```'}}
    nb = {'cells': [{'cell_type': 'raw', 'metadata': {}, 'source': '---\ntitle: T\ndescription: D\noutput-file: t.html\n---\n'},
                    {'cell_type': 'markdown', 'metadata': {}, 'source': 'See [x](https://h.io/b/core.html#x), $a_1$ and `$b$`.'},
                    code('#| echo: false\n#| output: asis\nshow_doc(Foo.bar)', [md_out]), code('#| slow\n1+1'),
                    code('#| echo: false\nplot()', [{'output_type': 'display_data', 'data': {'image/png': 'AA=='}}]),
                    code('#| include: false\nsecret()')], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    out, fm = bd.to_mkdocs(nb, 'https://h.io/b/')
    src = [c['source'] for c in out['cells']]
    assert fm['output-file'] == 't.html' and src[0] == '# T\n\n> D'
    assert 'core.html#x' in src[1] and 'h.io' not in src[1] and '<math' in src[1] and '`$b$`' in src[1]
    assert '<a id="foo.bar"></a>' in src[2] and '### Foo.bar' in src[2] and 'def bar(x)' in src[2]
    assert src[3:] == ['1+1', 'plot()'] and out['cells'][4]['metadata']['tags'] == ['hide_input']
    p = tmp_path/'x.ipynb'
    p.write_text(json.dumps({**nb, 'cells': [code('import os'), code('#| export\nimport os\nx = 1'), code('#| slow\nimport os\ntrain()')]}))
    assert bd.rerun_cells(p) == ['cell 2: import os']

def test_every_notebook_has_a_page(site):
    nbs = source_notebooks()
    assert nbs, 'no notebooks in nbs/'
    assert sorted(site) == nbs
    for nb in nbs: assert site[nb].is_file(), f'{nb.name}: no page {site[nb]}'

@pytest.mark.parametrize('nb', source_notebooks(), ids=lambda p: p.name)
def test_page_content(site, nb):
    page = site[nb].read_text()
    heads = headings(page)
    assert title(nb) in heads, f'{nb.name}: title {title(nb)!r} is not a heading of {site[nb].name}'
    missing = [n for n in shown_names(nb) if n not in heads and n.split('.')[-1] not in heads]  # nbdev heads `Class.method`
    assert not missing, (f'{nb.name}: show_doc of {missing} has no heading in {site[nb].name} '
                         '(a cell shows only its last result: one show_doc per cell; a method attached as '
                         '`Cls.m = _f` is titled `_f`: define it with fastcore\'s `@patch`)')
    imgs = len(re.findall(r'<img[^>]+src="data:image/', page)) + len(re.findall(r'class="[^"]*jp-RenderedSVG', page))
    assert imgs == n_images(nb), f'{nb.name}: {n_images(nb)} image outputs but {imgs} embedded images in {site[nb].name}'

def test_nav_in_numbered_order_with_titles(site):
    nbs = sorted(source_notebooks(), key=lambda p: (p.name != 'index.ipynb', p))  # home page first, then numbered order
    page = next(iter(site.values())).read_text()
    nav = page[page.index('md-nav--primary'):]
    links = re.findall(r'<a href="([^"#]+\.html)" class="md-nav__link[^"]*">\s*(.*?)</a>', nav, re.S)
    assert [h for h, _ in links] == [site[nb].relative_to(site[nbs[0]].parent).as_posix() for nb in nbs]
    for (_, text), nb in zip(links, nbs): assert title(nb) in html.unescape(re.sub(r'<[^>]+>', '', text))
    assert 'fonts.googleapis' not in page, 'pages must not need a CDN'
