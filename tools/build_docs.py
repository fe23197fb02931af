"""Build the HTML docs from nbs/ without Quarto: `python tools/build_docs.py [--site-dir DIR]`.

1. nbdev processes the notebooks exactly as for `nbdev_docs` (`nbdev.serve.proc_nbs` -> _proc/): show_doc
   rendered as markdown, exported/hidden cells dropped, frontmatter gathered into a leading raw cell.
   It re-runs every cell that imports, so a cell mixing imports with other work (say a `#| slow` training run)
   is refused up front, listed with the notebook and cell number.
2. `to_mkdocs` turns a processed notebook into a plain one: the frontmatter becomes the `# Title` and
   description, `#|` lines are removed and acted on (echo/output/include), show_doc output becomes markdown,
   Pandoc-only link attributes become HTML, links into the nbdev site become relative, TeX becomes MathML.
3. mkdocs-material + mkdocs-jupyter build a static site (figures embedded as data URIs, no CDN fonts).
"""
import argparse, ast, json, logging, os, re, shutil, sys
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
    try: html = convert(tex, display=display)
    except Exception: return f'${tex}$' if display == 'inline' else f'$${tex}$$'  # unsupported TeX stays as written
    return re.sub(r'>([^<]+)<', lambda m: f'>{_entities(m[1])}<', html)

def _math(md:str)->str:
    "Convert `$$...$$` and `$...$` outside code to MathML."
    parts = re.split(r'(```.*?```|`[^`\n]*`)', md, flags=re.S)  # odd parts are code: left alone
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r'\$\$(.+?)\$\$', lambda m: _mathml(m[1], 'block'), parts[i], flags=re.S)
        parts[i] = re.sub(r'(?<![\\$])\$([^$\n]+?)\$', lambda m: _mathml(m[1], 'inline'), parts[i])
    return ''.join(parts)

def _fix_md(md:str, site_url:str, depth:int)->str:
    "Markdown fixes for mistune: math to MathML, Pandoc `[t](u){attrs}` links to HTML, site links made relative, nbdev anchors."
    md = _math(md)
    md = re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)\{([^}]*)\}', r'<a href="\2" \3>\1</a>', md)
    md = md.replace(site_url, '../' * depth)
    def _heading(m):  # show_doc titles: `__dunder__` is not bold; nbdev links to `#name.lower()`, mkdocs' ids drop dots
        anchor = f'<a id="{m[2].lower()}"></a>\n\n' if '.' in m[2] else ''
        return anchor + m[1] + ' ' + m[2].replace('_', r'\_')
    return re.sub(r'^(#{2,4}) ([\w.]+)$', _heading, md, flags=re.M)

def _md(src): return {'cell_type': 'markdown', 'metadata': {}, 'source': src}

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
            if dirs.get('output') == 'asis':  # show_doc: its markdown output *is* the cell
                cells += [_md(_fix_md(''.join(o['data']['text/markdown']), site_url, depth))
                          for o in outs if 'text/markdown' in o.get('data', {})]
                continue
            if not outs and (not src or dirs.get('echo') == 'false'): continue
            tags = ['hide_input'] if dirs.get('echo') == 'false' else []
            cells.append({**c, 'source': src, 'outputs': outs, 'metadata': {'tags': tags} if tags else {}})
    cells = [{**c, 'id': c.get('id') or f'cell{i}'} for i, c in enumerate(cells)]
    return {**nb, 'cells': cells}, fm

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
    (docs/'extra.css').write_text('.md-grid { max-width: 80rem; }  /* room for show_doc signatures */\n')
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
