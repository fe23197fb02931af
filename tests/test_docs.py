"The offline HTML docs: every notebook in nbs/ gets a page with its title, its show_doc entries and its figures."
import ast, html, importlib.util, json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = {'hide', 'export', 'exporti', 'default_exp'}  # directives that drop a cell from the docs

def source_notebooks():
    "Every documented notebook: nbs/**/*.ipynb except names starting with `_` or `.` (checked independently of nbdev)."
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(part[0] in '_.' for part in p.relative_to(ROOT/'nbs').parts))

def _cells(nb_path, hidden=HIDDEN):
    "Code/markdown cells of a notebook that show in the docs (all of them with `hidden=set()`), with their `#|` directives."
    for c in json.loads(nb_path.read_text())['cells']:
        src = ''.join(c['source'])
        dirs = dict(re.findall(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', src, re.M))
        if c['cell_type'] == 'code' and (hidden & dirs.keys() or dirs.get('include') == 'false'): continue
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
def site(docs_site): return docs_site[1]

def test_helpers_see_what_they_should(tmp_path):
    "The checks below can fail: they find titles, show_doc names and figures in a notebook."
    nb = {'cells': [{'cell_type': 'markdown', 'metadata': {}, 'source': ['# My title\n', '> desc']},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'source': 'show_doc(f)\nshow_doc(A.g, name="A.g2")'},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [{'output_type': 'display_data', 'data': {'image/png': ''}}],
                     'source': 'plot()'},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [{'output_type': 'display_data', 'data': {'image/png': ''}}],
                     'source': '#| hide\nplot()'},
                    {'cell_type': 'code', 'metadata': {}, 'outputs': [],
                     'source': '#| export\n@patch\ndef g(self:A|B): pass\n@patch\ndef _h(self:A): pass\ndef k(x:A): pass'}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    p = tmp_path/'01_x.ipynb'; p.write_text(json.dumps(nb))
    assert (title(p), shown_names(p), n_images(p)) == ('My title', ['f', 'A.g2'], 1)
    assert patched_methods(p) == {'A.g', 'B.g'}  # nbdev leaves `_private` names alone
    assert FLOAT32_NOISE.findall("{'acc': 0.9869999885559082, 'fpr': 0.057500001043081284, 'x': 0.3333333333333333, 'y': 0.080078125, 'z': 1.0}") == \
        ['0.9869999885559082', '0.057500001043081284']
    assert headings('<h3 id="f">f<a class="anchor-link" href="#f">¶</a></h3>') == ['f']
    page = ('<div class="jp-RenderedMarkdown celltag_show_doc" data-mime-type="text/markdown"><hr><h3 id="f">f</h3><p>doc</p></div>'
            '<div class="jp-RenderedMarkdown"><h2 id="g">g</h2></div>'
            '<div class="jp-RenderedMarkdown celltag_show_doc" data-mime-type="text/markdown"><a id="a.g"></a><h3 id="ag">A.g</h3></div>')
    assert show_doc_titles(page) == ['f', 'A.g']

def test_converter(tmp_path, docs_builder):
    "Processed notebook -> mkdocs notebook: frontmatter to title, `#|` lines acted on and removed, math, links."
    bd = docs_builder
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

def test_converter_math(docs_builder):
    "TeX to MathML: an inline formula may wrap over source lines (not paragraphs); `\\arg` is an operator; unknown TeX stops the build."
    bd = docs_builder
    md = bd._math('weights $w_i \\propto e^{\\widehat\nI_i}$ and $r = \\arg\\min_r f$; costs $5 and\n\n$6.')
    assert md.count('<math') == 2 and 'propto' not in md and '\\' not in md and '<mi>arg</mi>' in md
    assert md.endswith('costs $5 and\n\n$6.')  # no formula across a blank line
    with pytest.raises(bd.DocsError, match='notacommand'): bd._math('$\\notacommand x$')

def test_converter_signatures(docs_builder):
    "show_doc entries: tagged for the CSS, names nbdev linked inside the signature unlinked, long lines wrapped, source order."
    bd = docs_builder
    sig = lambda name, line, body: (f'---\n\n<a href="https://github.com/o/r/blob/main/pkg/m.py#L{line}" target="_blank">source</a>\n\n'
                                    f'### {name}\n\n```python\ndef {name}(\n{body}\n)->None:\n```\n')
    long = '    ' + ', '.join(f'p{i}:Optional[int]=None' for i in range(6)) + ', # see [`Foo`](https://h.io/b/m.html#foo), (a, b)'
    outs = [{'output_type': 'execute_result', 'data': {'text/markdown': sig(n, l, long if n == 'g' else '    x:int=1')}}
            for n, l in (('g', 20), ('f', 10))]  # nbdev inserts the show_docs of one cell in reverse order
    nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'outputs': [o], 'source': '#| output: asis\nshow_doc(x)'} for o in outs],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    cells = bd.to_mkdocs(nb, 'https://h.io/b/')[0]['cells']
    assert [c['metadata']['tags'] for c in cells] == [['show_doc']] * 2
    assert [re.search(r'### (\w+)', c['source'])[1] for c in cells] == ['f', 'g']
    code = re.search(r'```python\n(.*?)```', cells[1]['source'], re.S)[1]
    assert '[`Foo`]' not in code and '`Foo`' in code
    assert max(map(len, code.splitlines())) <= bd.SIG_WIDTH and code.count('p5:Optional[int]=None,') == 1
    assert re.sub(r'\s+', ' ', code).count('# see `Foo`, (a, b)') == 1  # the docment moved below, whole

def test_toc_from_rendered_headings():
    "The docs hook: repeated heading ids get a suffix, the table of contents is read from the headings (code and links included)."
    spec = importlib.util.spec_from_file_location('docs_hooks', ROOT/'tools'/'docs_hooks.py')
    hooks = importlib.util.module_from_spec(spec); spec.loader.exec_module(hooks)
    page = ('<h1 id="data">Data<a class="anchor-link" href="#data">¶</a></h1>'
            '<h2 id="imagedata"><a href="data.html#imagedata"><code>ImageData</code></a><a class="anchor-link" href="#imagedata">¶</a></h2>'
            '<h3 id="imagedata">ImageData<a class="anchor-link" href="#imagedata">¶</a></h3>'
            '<h2 id="x_1">x_1</h2><h2 id="x">x</h2><h3 id="x">x</h3>'
            '<h2 id="splits-a-train-set"><code>Splits</code>: a train set</h2>')
    html_, heads = hooks.unique_headings(page)
    assert [h[1] for h in heads] == ['data', 'imagedata', 'imagedata_1', 'x_1', 'x', 'x_2', 'splits-a-train-set']
    assert [h[2] for h in heads] == ['Data', 'ImageData', 'ImageData', 'x_1', 'x', 'x', 'Splits: a train set']
    assert '<h3 id="imagedata_1">ImageData<a class="anchor-link" href="#imagedata_1">' in html_
    assert len(set(re.findall(r'id="([^"]+)"', html_))) == len(heads)
    toc = hooks.toc_tokens(heads)
    assert [t['id'] for t in toc] == ['data'] and [t['id'] for t in toc[0]['children']] == ['imagedata', 'x_1', 'x', 'splits-a-train-set']
    assert toc[0]['children'][0]['children'][0]['id'] == 'imagedata_1'

def test_converter_widgets(docs_builder):
    "Saved widget state goes into the page with the bundled HTML manager; nbconvert's CDN loader is never triggered."
    bd = docs_builder
    view = {'output_type': 'display_data', 'data': {bd.WIDGET_VIEW: {'model_id': 'm1', 'version_major': 2, 'version_minor': 0},
                                                     'text/plain': 'VBox(...)'}, 'metadata': {}}
    state = {'state': {'m1': {'model_name': 'VBoxModel', 'state': {'x': '</script>'}}}, 'version_major': 2, 'version_minor': 0}
    nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'outputs': [view], 'source': 'w'}],
          'metadata': {'widgets': {bd.WIDGET_STATE: state}}, 'nbformat': 4, 'nbformat_minor': 5}
    out, _ = bd.to_mkdocs(nb, 'https://h.io/b/', depth=1)
    assert 'widgets' not in out['metadata']
    assert out['cells'][0]['outputs'][0]['data'] == {'text/html': f'<script type="{bd.WIDGET_VIEW}">'
                                                     '{"model_id":"m1","version_major":2,"version_minor":0}</script>'}
    raw = out['cells'][-1]
    assert raw['cell_type'] == 'raw' and raw['metadata']['raw_mimetype'] == 'text/html'
    assert '"m1"' in raw['source'] and '<\\/script>' in raw['source'] and raw['source'].count('</script>') == 2
    assert '<script src="../assets/html-manager/embed.js"></script>' in raw['source']
    nb['metadata']['widgets'][bd.WIDGET_STATE]['state'] = {}  # a view whose state was not saved: a clear error
    with pytest.raises(bd.DocsError, match='m1'): bd.to_mkdocs(nb, 'https://h.io/b/')
    nb['cells'][0]['outputs'] = []  # no view: no state, no manager
    out, _ = bd.to_mkdocs(nb, 'https://h.io/b/')
    assert len(out['cells']) == 1 and 'widgets' not in out['metadata']

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
    titles = show_doc_titles(page)
    assert len(titles) >= len(shown_names(nb)), (nb.name, titles)
    assert len(titles) == len(set(titles)), f'{nb.name}: show_doc entries twice: {sorted({t for t in titles if titles.count(t) > 1})}'
    imgs = len(re.findall(r'<img[^>]+src="data:image/', page)) + len(re.findall(r'class="[^"]*jp-RenderedSVG', page))
    assert imgs == n_images(nb), f'{nb.name}: {n_images(nb)} image outputs but {imgs} embedded images in {site[nb].name}'

def patched_methods(nb_path):
    "`Cls.name` of every method an export cell adds with fastcore's `@patch` (nbdev documents those by itself)."
    names = set()
    for c, src, dirs in _cells(nb_path, hidden=set()):
        if c['cell_type'] != 'code' or not {'export', 'exports'} & dirs.keys(): continue
        for f in ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))).body:
            if (isinstance(f, ast.FunctionDef) and f.args.args and f.args.args[0].annotation is not None
                    and (not f.name.startswith('_') or f.name.startswith('__'))
                    and any(ast.unparse(d).startswith('patch') for d in f.decorator_list)):
                names |= {f'{cls.strip()}.{f.name}' for cls in ast.unparse(f.args.args[0].annotation).strip('()').split('|')}
    return names

@pytest.mark.parametrize('nb', source_notebooks(), ids=lambda p: p.name)
def test_no_show_doc_of_patched_methods(nb):
    dup = sorted(set(shown_names(nb)) & patched_methods(nb))
    assert not dup, f'{nb.name}: nbdev already documents the @patch methods {dup} after their export cell; remove their show_doc cells'

FLOAT32_NOISE = re.compile(r'\b\d+\.\d*?(?:0{4,}|9{4,})[1-9]\d+')  # a float32 printed as a double: 0.9869999885559082

def float_noise(nb_path):
    "Numbers in a notebook's saved text outputs that are float32 values printed with a double's digits."
    return [m for c, _, dirs in _cells(nb_path) if c['cell_type'] == 'code' for o in c.get('outputs', [])
            for m in FLOAT32_NOISE.findall(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')))]

@pytest.mark.parametrize('nb', source_notebooks(), ids=lambda p: p.name)
def test_no_float32_noise_in_outputs(nb):
    assert not float_noise(nb), f'{nb.name} prints {float_noise(nb)[:3]}: round where the cell prints (e.g. `round(v, 3)`)'

def show_doc_titles(page_html):
    "Titles of a page's show_doc entries (the first heading of each cell tagged `show_doc`)."
    return [headings(m)[0] for m in re.findall(r'celltag_show_doc"[^>]*>(.*?<h[2-4][^>]*>.*?</h[2-4]>)', page_html, re.S)]

def test_nav_in_numbered_order_with_titles(site):
    nbs = sorted(source_notebooks(), key=lambda p: (p.name != 'index.ipynb', p))  # home page first, then numbered order
    page = next(iter(site.values())).read_text()
    nav = page[page.index('md-nav--primary'):]
    links = re.findall(r'<a href="([^"#]+\.html)" class="md-nav__link[^"]*">\s*(.*?)</a>', nav, re.S)
    assert [h for h, _ in links] == [site[nb].relative_to(site[nbs[0]].parent).as_posix() for nb in nbs]
    for (_, text), nb in zip(links, nbs): assert title(nb) in html.unescape(re.sub(r'<[^>]+>', '', text))
    assert 'fonts.googleapis' not in page, 'pages must not need a CDN'
