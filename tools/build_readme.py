"""Build README.md from nbs/index.ipynb without Quarto (where Quarto exists, `nbdev_readme` does the same job).

Markdown cells are copied; code cells are shown unless marked `#| hide`, with `#|` directive lines removed;
their saved outputs (from a real run) follow: text as a plain block, figures as PNG files in readme_files/.
`--check` fails when README.md or its figures are out of date with the notebook.
"""
import base64, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def render(nb_path=ROOT / 'nbs' / 'index.ipynb', fig_dir='readme_files'):
    nb = json.loads(Path(nb_path).read_text())
    parts, figs = [], {}
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown': parts.append(src); continue
        if cell['cell_type'] != 'code': continue
        lines = src.splitlines()
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.split()[1:2] in (['hide'], ['export'], ['exporti'], ['default_exp']) for d in directives): continue
        code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if code and not any('echo: false' in d for d in directives): parts.append(f"```python\n{code}\n```")
        for o in cell.get('outputs', []):
            text = o.get('text') or o.get('data', {}).get('text/plain') if 'image/png' not in o.get('data', {}) else None
            if 'image/png' in o.get('data', {}):
                name = f"{fig_dir}/figure-{len(figs) + 1}.png"
                figs[name] = base64.b64decode(o['data']['image/png'])
                parts.append(f"![]({name})")
            elif text and o.get('output_type') != 'error':
                parts.append("```\n" + ''.join(text).rstrip() + "\n```")
    return '\n\n'.join(parts).rstrip() + '\n', figs

def main(check=False):
    md, figs = render()
    readme, fdir = ROOT / 'README.md', ROOT / 'readme_files'
    if check:
        stale = readme.read_text() != md if readme.exists() else True
        stale |= any(not (ROOT / n).exists() or (ROOT / n).read_bytes() != b for n, b in figs.items())
        if stale: sys.exit("README.md is out of date with nbs/index.ipynb: run `python tools/build_readme.py`")
        print("README.md is up to date with nbs/index.ipynb"); return
    fdir.mkdir(exist_ok=True)
    for old in fdir.glob('figure-*.png'): old.unlink()
    for n, b in figs.items(): (ROOT / n).write_bytes(b)
    readme.write_text(md)
    print(f"wrote README.md ({len(md)} characters, {len(figs)} figures)")

if __name__ == '__main__': main('--check' in sys.argv)
