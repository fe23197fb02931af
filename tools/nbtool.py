"""Dev helper: edit a notebook's cells and re-execute some of them, keeping every other saved output.

    python tools/nbtool.py run NB [--slow 12,40] [--save all|fast|12,13] [--upto N]

`run` executes, in order and in one kernel (execnb's CaptureShell, as `nbdev_test` does, from the notebook's folder),
every code cell that `nbdev_test` would run, plus the `#| slow` cells listed in `--slow`, and writes the fresh outputs of
the cells in `--save` back into the notebook (default: every cell it ran). Cells it does not run keep their saved
outputs, so a heavy cell's output is never replaced by anything but a real run of it. Stops at the first exception.
In Python: `nb = load(p); i = find(nb, 'def identify_target'); set_source(nb, i, src); insert(nb, i + 1, src); save(nb, p)`.
"""
import argparse, json, os, sys, time
from pathlib import Path

def load(path): return json.loads(Path(path).read_text())
def save(nb, path): Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
def source(cell): return ''.join(cell['source'])

def find(nb, text, kind=None):
    "Index of the one cell whose source contains `text` (error when none or several)."
    hits = [i for i, c in enumerate(nb['cells']) if text in source(c) and (kind is None or c['cell_type'] == kind)]
    if len(hits) != 1: raise ValueError(f"{text!r}: {len(hits)} cells match ({hits})")
    return hits[0]

def _lines(src): return [l for l in src.splitlines(keepends=True)]

def set_source(nb, i, src): nb['cells'][i]['source'] = _lines(src.strip('\n'))

def insert(nb, i, src, kind='code'):
    "Insert a new cell at index `i`."
    import uuid
    c = {'cell_type': kind, 'id': uuid.uuid4().hex[:8], 'metadata': {}, 'source': _lines(src.strip('\n'))}
    if kind == 'code': c.update(execution_count=None, outputs=[])
    nb['cells'].insert(i, c)
    return i

def _directives(src):
    d = {}
    for l in src.splitlines():
        if l.startswith('#|'):
            parts = l[2:].strip().split()
            if parts: d[parts[0].rstrip(':')] = parts[1:]
    return d

def run(path, slow=(), keep=None, upto=None, verbose=True):
    from execnb.shell import CaptureShell
    from fastcore.basics import AttrDict
    path = Path(path).resolve()
    nb = load(path)
    os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
    sh = CaptureShell(path)
    cwd = os.getcwd(); os.chdir(path.parent)
    ran = []
    try:
        for i, c in enumerate(nb['cells']):
            if upto is not None and i > upto: break
            if c['cell_type'] != 'code': continue
            src = source(c); d = _directives(src)
            if 'nbdev_export(' in src or d.get('eval') == ['false']: continue
            if 'slow' in d and i not in slow: continue
            t = time.time()
            # execnb drops what a cell prints when its last line ends with ';' (a quiet plot call): end it with `pass`
            run_src = src + '\npass' if src.rstrip().endswith(';') else src
            cell = AttrDict(cell_type='code', source=run_src, outputs=[], metadata={}, idx_=i)
            sh.cell(cell)
            if sh.exc: raise RuntimeError(f"cell {i} failed:\n{src[:400]}\n{sh.prettytb(fname=path)}")
            if keep is None or (keep == 'fast' and 'slow' not in d) or (keep != 'fast' and i in keep):
                c['outputs'] = [dict(o) for o in cell.outputs]
            ran.append(i)
            if verbose: print(f"cell {i}: {time.time() - t:.1f} s", file=sys.stderr, flush=True)
    finally:
        os.chdir(cwd)
        save(nb, path)
    return ran

def _ints(s): return [int(v) for v in s.split(',') if v] if s else []

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('cmd', choices=['run']); ap.add_argument('nb')
    ap.add_argument('--slow', default='', help='indices of #| slow cells to run too')
    ap.add_argument('--save', default='all', help="'all' (every cell run), 'fast', or indices")
    ap.add_argument('--upto', type=int, default=None)
    a = ap.parse_args()
    keep = None if a.save == 'all' else ('fast' if a.save == 'fast' else set(_ints(a.save)))
    run(a.nb, set(_ints(a.slow)), keep, a.upto)
