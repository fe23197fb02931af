"""Build the HTML docs from nbs/ without Quarto: `python tools/build_docs.py [--site-dir DIR]`.

1. nbdev processes the notebooks exactly as for `nbdev_docs` (`nbdev.serve.proc_nbs` -> _proc/): show_doc
   rendered as markdown, exported/hidden cells dropped, frontmatter gathered into a leading raw cell.
   It re-runs every cell that imports, so a cell mixing imports with other work (say a `#| slow` training run)
   is refused up front, listed with the notebook and cell number.
2. `to_mkdocs` turns a processed notebook into a plain one: the frontmatter becomes the `# Title` and
   description, `#|` lines are removed and acted on (echo/output/include), show_doc output becomes markdown,
   Pandoc-only link attributes become HTML, links into the nbdev site become relative, TeX becomes MathML (TeX it
   cannot convert stops the build), show_doc signatures are wrapped to the text column and kept in source order.
   Saved widget state goes into the page with the vendored @jupyter-widgets/html-manager (tools/vendor/html-manager),
   which renders each widget's saved view offline.
3. mkdocs-material + mkdocs-jupyter build a static site (figures embedded as data URIs, no CDN fonts or scripts);
   tools/docs_hooks.py reads each page's table of contents from its rendered headings.
"""
import argparse, ast, json, logging, os, re, shutil, sys, textwrap
from pathlib import Path

import yaml
from latex2mathml.converter import convert
from mkdocs.commands.build import build
from mkdocs.config import load_config
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.serve import proc_nbs

ROOT = Path(__file__).resolve().parents[1]
class DocsError(Exception): pass

def notebooks(nbs_path:Path)->list:
    "Documented notebooks under `nbs_path` (nbdev skips names starting with `_` or `.`): index first, then numbered order."
    nbs = sorted(Path(p).relative_to(nbs_path) for p in nbglob(nbs_path, func=Path))
    return sorted(nbs, key=lambda p: p != Path('index.ipynb'))

def _directives(src:str):
    "Split `#| key: value` lines off a code cell: (dict of directives, remaining source)."
    dirs, keep = {}, []
    for line in src.splitlines():
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*)$', line)
        if m: dirs[m[1]] = m[2].strip().lower()
        else: keep.append(line)
    return dirs, '\n'.join(keep).strip()

def rerun_cells(nb_path:Path)->list:
    "Cells nbdev re-runs on its own to render docs because they import something, though they also do other work."
    bad = []
    for i, c in enumerate(json.loads(Path(nb_path).read_text())['cells']):
        if c['cell_type'] != 'code': continue
        dirs, src = _directives(''.join(c['source']))
        if dirs.keys() & {'export', 'exporti', 'exports'} or dirs.get('eval') == 'false': continue
        try: tree = ast.parse(re.sub(r'(?m)^\s*[%!].*$', '', src))
        except SyntaxError: continue
        imports = lambda n: isinstance(n, (ast.Import, ast.ImportFrom))
        if any(map(imports, ast.walk(tree))) and not all(map(imports, tree.body)): bad.append(f'cell {i}: {src.splitlines()[0]}')
    return bad

def _entities(text:str)->str: return ''.join(f'&#{ord(ch)};' if ch in '[]()*_`\\$' else ch for ch in text)

def _mathml(tex:str, display:str)->str:
    "TeX to MathML, which browsers render natively (no MathJax download); markdown-active characters as entities."
    tex = ' '.join(tex.split())  # an inline formula may be wrapped over source lines
    try: html = convert(tex, display=display)
    except Exception as e: raise DocsError(f'latex2mathml cannot convert ${tex}$: {e}') from e
    html = html.replace('<mi>\\arg</mi>', '<mi>arg</mi>')  # the one operator name latex2mathml leaves as TeX
    left = re.findall(r'\\[A-Za-z]+', ''.join(re.findall(r'>([^<]*)<', html)))  # commands it does not know come out as text
    if left: raise DocsError(f'latex2mathml leaves the TeX commands {left} as text in ${tex}$')
    return re.sub(r'>([^<]+)<', lambda m: f'>{_entities(m[1])}<', html)

def _math(md:str)->str:
    "Convert `$$...$$` and `$...$` (which may span lines, not paragraphs) outside code to MathML."
    parts = re.split(r'(```.*?```|`[^`\n]*`)', md, flags=re.S)  # odd parts are code: left alone
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r'\$\$(.+?)\$\$', lambda m: _mathml(m[1], 'block'), parts[i], flags=re.S)
        parts[i] = re.sub(r'(?<![\\$])\$((?:[^$\n]|\n(?![ \t]*\n))+?)\$', lambda m: _mathml(m[1], 'inline'), parts[i])
    return ''.join(parts)

SIG_WIDTH = 80  # characters of a signature line: fits the text column at 1400 px (longer ones still wrap, see EXTRA_CSS)

def _top_level(s:str, sep:str)->list:
    "Positions of `sep` in `s` outside brackets and string literals."
    hits, depth, quote, i = [], 0, None, 0
    while i < len(s):
        ch = s[i]
        if quote:
            if ch == '\\': i += 1
            elif ch == quote: quote = None
        elif ch in '\'"': quote = ch
        elif ch in '([{': depth += 1
        elif ch in ')]}': depth -= 1
        elif depth == 0 and s.startswith(sep, i): hits.append(i)
        i += 1
    return hits

def _wrap_signature_line(line:str, width:int=SIG_WIDTH)->list:
    "Break a long signature line between its parameters; a trailing `# docment` goes on lines of its own below them."
    if len(line) <= width: return [line]
    indent, body = line[:len(line) - len(line.lstrip())], line.strip()
    hash_at = _top_level(body, '#')
    code, comment = (body[:hash_at[0]].rstrip(), body[hash_at[0]:]) if hash_at else (body, '')
    cuts = [-2] + _top_level(code, ', ') + [len(code)]
    params = [code[a + 2:b] for a, b in zip(cuts, cuts[1:])]
    lines, cur = [], ''
    for p in params:
        if cur and len(indent) + len(cur) + len(p) + 3 > width: lines.append(f'{indent}{cur},'); cur = p
        else: cur = f'{cur}, {p}' if cur else p
    lines.append(indent + cur)
    if comment and len(lines[-1]) + 1 + len(comment) <= width: lines[-1] += ' ' + comment
    elif comment: lines += textwrap.wrap(comment, width, initial_indent=indent + '    ', subsequent_indent=indent + '    # ')
    return lines

def _signatures(md:str)->str:
    "show_doc's signature block: names nbdev linked inside it back to plain `name`, long lines wrapped."
    def fix(m):
        code = re.sub(r'\[(`[^`\]]+`)\]\([^)\s]+\)', r'\1', m[2])
        return m[1] + '\n'.join(l for line in code.split('\n') for l in _wrap_signature_line(line)) + m[3]
    return re.sub(r'(```python\n)(.*?)(```)', fix, md, flags=re.S)

def _source_line(md:str):
    m = re.search(r'<a href="[^"]*/([^/"]+\.py)#L(\d+)"', md)
    return (m[1], int(m[2])) if m else None

def _source_order(cells:list)->list:
    "Runs of consecutive show_doc entries of one module in source order (nbdev inserts those of one cell reversed)."
    out, run = [], []
    def flush():
        keys = [_source_line(c['source']) for c in run]
        same = all(keys) and len({k[0] for k in keys}) == 1
        out.extend(sorted(run, key=lambda c: _source_line(c['source'])[1]) if same else run); run.clear()
    for c in cells:
        if 'show_doc' in c.get('metadata', {}).get('tags', []): run.append(c); continue
        flush(); out.append(c)
    flush()
    return out

def _fix_md(md:str, site_url:str, depth:int)->str:
    "Markdown fixes for mistune: math to MathML, Pandoc `[t](u){attrs}` links to HTML, site links made relative, nbdev anchors."
    md = _math(md)
    md = re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)\{([^}]*)\}', r'<a href="\2" \3>\1</a>', md)
    md = md.replace(site_url, '../' * depth)
    def _heading(m):  # show_doc titles: `__dunder__` is not bold; nbdev links to `#name.lower()`, mkdocs' ids drop dots
        anchor = f'<a id="{m[2].lower()}"></a>\n\n' if '.' in m[2] else ''
        return anchor + m[1] + ' ' + m[2].replace('_', r'\_')
    return re.sub(r'^(#{2,4}) ([\w.]+)$', _heading, md, flags=re.M)

EXTRA_CSS = '''.md-grid { max-width: 80rem; }  /* room for show_doc signatures */
/* a show_doc signature wraps inside the text column instead of scrolling sideways */
.celltag_show_doc pre { white-space: pre-wrap; overflow-wrap: anywhere; }
'''

def _md(src): return {'cell_type': 'markdown', 'metadata': {}, 'source': src}

WIDGET_STATE, WIDGET_VIEW = 'application/vnd.jupyter.widget-state+json', 'application/vnd.jupyter.widget-view+json'
HTML_MANAGER = ROOT/'tools'/'vendor'/'html-manager'  # @jupyter-widgets/html-manager's standalone embed.js (see its README)

def _widget_views(cells)->list: return [o['data'][WIDGET_VIEW]['model_id'] for c in cells for o in c.get('outputs', [])
                                        if WIDGET_VIEW in o.get('data', {})]

def _script(mime:str, obj)->str: return f'<script type="{mime}">' + json.dumps(obj, separators=(',', ':')).replace('</', '<\\/') + '</script>'

def _widget_view_html(out:dict)->dict:
    "A widget-view output as the HTML tag the HTML manager replaces with the rendered widget (nbconvert shows it only with `widgets` metadata, which also makes it load the manager from a CDN)."
    return {**out, 'data': {'text/html': _script(WIDGET_VIEW, out['data'][WIDGET_VIEW])}}

def _widgets_cell(state:dict, depth:int)->dict:
    "A raw HTML cell with the saved widget state and the bundled HTML manager, which renders each widget view from it on load."
    src = (_script(WIDGET_STATE, state) + '\n'
           f'<script src="{"../" * depth}assets/html-manager/embed.js"></script>')
    return {'cell_type': 'raw', 'metadata': {'raw_mimetype': 'text/html'}, 'source': src}

def to_mkdocs(nb:dict, site_url:str, depth:int=0)->tuple:
    "Turn an nbdev-processed notebook into one mkdocs-jupyter renders like Quarto would: (notebook, frontmatter)."
    fm, cells = {}, []
    for c in nb['cells']:
        src = ''.join(c.get('source', ''))
        if c['cell_type'] == 'raw' and src.startswith('---'):
            fm = yaml.safe_load(src.strip().strip('-')) or {}
            head = [f"# {fm['title']}" if fm.get('title') else '', f"> {fm['description']}" if fm.get('description') else '']
            cells.append(_md('\n\n'.join(filter(None, head))))
        elif c['cell_type'] == 'markdown' and re.fullmatch(r'\s*<!--.*-->\s*', src, re.S): continue  # nbdev's warning
        elif c['cell_type'] == 'markdown': cells.append({**c, 'source': _fix_md(src, site_url, depth)})
        elif c['cell_type'] != 'code': cells.append(c)
        else:
            dirs, src = _directives(src)
            outs = c.get('outputs', [])
            if dirs.get('include') == 'false': continue
            if dirs.get('output') == 'false': outs = []
            if dirs.get('output') == 'asis':  # show_doc: its markdown output *is* the cell (tagged: styled in extra.css)
                cells += [{**_md(_fix_md(_signatures(''.join(o['data']['text/markdown'])), site_url, depth)),
                           'metadata': {'tags': ['show_doc']}} for o in outs if 'text/markdown' in o.get('data', {})]
                continue
            if not outs and (not src or dirs.get('echo') == 'false'): continue
            tags = ['hide_input'] if dirs.get('echo') == 'false' else []
            cells.append({**c, 'source': src, 'outputs': outs, 'metadata': {'tags': tags} if tags else {}})
    cells = _source_order(cells)
    # Saved widget state: rendered offline by the bundled HTML manager (nbconvert's own loader fetches it from a CDN).
    meta = {k: v for k, v in nb.get('metadata', {}).items() if k != 'widgets'}
    state = nb.get('metadata', {}).get('widgets', {}).get(WIDGET_STATE, {})
    views = _widget_views(cells)
    if views:
        lost = [v for v in views if v not in state.get('state', {})]
        if lost: raise DocsError(f'widget views {lost} have no saved state: re-run the cell and save the notebook with its widget state')
        cells = [{**c, 'outputs': [_widget_view_html(o) if WIDGET_VIEW in o.get('data', {}) else o for o in c['outputs']]}
                 if c.get('outputs') else c for c in cells]
        cells.append(_widgets_cell(state, depth))
    cells = [{**c, 'id': c.get('id') or f'cell{i}'} for i, c in enumerate(cells)]
    return {**nb, 'metadata': meta, 'cells': cells}, fm

def build_docs(site_dir=None, docs_dir=None, n_workers:int=2)->dict:
    "Build the site into `site_dir` (default: mkdocs.yml's `site/`); return {notebook path in nbs/: built page}."
    cfg = get_config()
    site_url = '/'.join(filter(None, [cfg.doc_host.rstrip('/'), cfg.doc_baseurl.strip('/')])) + '/'
    bad = [f'{rel} {b}' for rel in notebooks(cfg.nbs_path) for b in rerun_cells(cfg.nbs_path/rel)]
    if bad: raise DocsError('nbdev re-runs every cell that imports, without the rest of its notebook, to render the docs; '
                            'move the imports of these cells into a cell of their own:\n  ' + '\n  '.join(bad))
    try: proc = proc_nbs(n_workers=n_workers)
    except Exception as e:  # the message names the notebook and the cell
        raise DocsError(f'nbdev could not process the notebooks: {e}\n(it re-runs import, export and show_doc cells '
                        'alone: they must work without the notebook\'s other cells)') from e
    yml = yaml.safe_load((ROOT/'mkdocs.yml').read_text())
    docs, site = Path(docs_dir or ROOT/yml['docs_dir']).resolve(), Path(site_dir or ROOT/yml['site_dir']).resolve()
    shutil.rmtree(docs, ignore_errors=True)
    docs.mkdir(parents=True)
    shutil.copytree(HTML_MANAGER, docs/'assets'/'html-manager', ignore=shutil.ignore_patterns('*.md', '*.sh'))
    (docs/'extra.css').write_text(EXTRA_CSS)
    nav, pages = [], {}
    for rel in notebooks(cfg.nbs_path):
        nb, fm = to_mkdocs(json.loads((proc/rel).read_text()), site_url, depth=len(rel.parts) - 1)
        out = rel.parent/Path(fm.get('output-file', rel.stem + '.html')).with_suffix('.ipynb')
        (docs/out).parent.mkdir(parents=True, exist_ok=True)
        (docs/out).write_text(json.dumps(nb, indent=1))
        nav.append({fm.get('title', rel.stem): out.as_posix()})
        pages[cfg.nbs_path/rel] = site/out.with_suffix('.html')
    mk = load_config(str(ROOT/'mkdocs.yml'), docs_dir=str(docs), site_dir=str(site), nav=nav)
    mk.plugins.on_startup(command='build', dirty=False)
    try: build(mk)
    finally: mk.plugins.on_shutdown()
    return pages

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--site-dir', help='where to write the site (default: site/)')
    p.add_argument('--n-workers', type=int, default=2, help='processes for nbdev notebook processing')
    a = p.parse_args()
    site_dir = a.site_dir and Path(a.site_dir).resolve()
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    try: pages = build_docs(site_dir, n_workers=a.n_workers)
    except DocsError as e: sys.exit(f'build_docs: {e}')
    for nb, page in pages.items(): print(f'{nb.relative_to(ROOT)} -> {page}')
