"""One-image target identification (SmoothInv's `identify_target`) under its schedules: seconds, work and verdicts.

For every model it runs the default scan (`schedule='halving'`, bfloat16) and, with `--reference`, the paper's full
setting (`schedule='paper'`: every label, N = 40, 400 steps; float32 unless `--reference-amp`) from the same start
image and held-out images the scan command uses (the smoothinv detector's `data.order(seed)`), and says whether the
verdicts agree with each other and with the ground truth.

    python benchmarks/identify.py mnist --reference                     # MNIST zoo + the outside ResNet, both settings
    python benchmarks/identify.py cifar10 gtsrb --names clean badnets --outside
    python benchmarks/identify.py mnist --names badnets --outside clean --threads 2

Models: the package's zoo (`--names`, trained on first use and cached) and the residual BatchNorm network of
`benchmarks/outside_arch.py` (`--outside RECIPES`, trained by `benchmarks/scan.py`'s recipe and cached).
Results: a table on stdout and `--out` (default benchmarks/results/identify.json).
"""
import argparse, json, os, sys, time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

def models(ds, names, outside, cache):
    import scan as S
    from backdoor_nb.attacks import DATASETS
    from backdoor_nb.scan import load_scan_model
    for n in names:
        path, gt = S.zoo_model(ds, n)
        yield f"zoo:{n}", load_scan_model(path)[0], gt
    for n in outside:
        path, gt = S.train_outside(ds, n, cache, DATASETS[ds]['epochs'])
        yield f"outside:{n}", load_scan_model(path, arch=str(HERE / 'outside_arch.py') + ':make',
                                              arch_kwargs={'channels': 3 if ds in ('cifar10', 'gtsrb') else 1,
                                                           'n_classes': 43 if ds == 'gtsrb' else 10})[0], gt

def verdict(s): return s.target if s.backdoored else None

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('datasets', nargs='+', choices=['digits', 'mnist', 'cifar10', 'gtsrb'])
    ap.add_argument('--names', nargs='*', default=['clean', 'badnets', 'blend', 'blind-p', 'blind-g', 'random-colour'])
    ap.add_argument('--outside', nargs='*', default=None, help="outside-ResNet recipes (default: clean badnets on MNIST, none elsewhere)")
    ap.add_argument('--reference', action='store_true', help="also run the paper's full setting")
    ap.add_argument('--reference-amp', action='store_true', help='the reference in bfloat16 (default float32)')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--cache', default=os.path.expanduser('~/.cache/backdoor_nb/outside'))
    ap.add_argument('--out', default=str(HERE / 'results' / 'identify.json'))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    from backdoor_nb.data import load_data
    from backdoor_nb.invert import Perf
    from backdoor_nb.scan import _zoo_source, as_scan_data, DETECTORS
    rows = []
    for ds in a.datasets:
        data = as_scan_data(load_data(_zoo_source(ds)).test)
        outside = a.outside if a.outside is not None else (['clean', 'badnets'] if ds == 'mnist' else [])
        for name, model, gt in models(ds, a.names, outside, Path(a.cache)):
            truth = gt['target'] if gt['backdoored'] else None
            row = {'dataset': ds, 'model': name, 'truth': truth, 'labels': len(data.classes)}
            runs = [('halving', {})] + ([('paper', {'schedule': 'paper', 'perf': Perf(amp=a.reference_amp, fast=True, batch=128)})]
                                        if a.reference else [])
            for key, kw in runs:
                t0 = time.time()
                s = DETECTORS['smoothinv'].fn(model, data, seed=a.seed, progress=False, **kw)
                row[key] = {'verdict': verdict(s), 'top': s.target, 'asr': round(s.target_asr, 3), 'next': round(s.target_asr - s.margin, 3),
                            'eps': round(s.eps, 3), 'budgets': len(s.ladder), 'work': s.work, 'seconds': round(time.time() - t0, 1),
                            'right': verdict(s) == truth, 'decided_by': s.decided_by,
                            'concentrated': {str(l): round(c, 3) for l, c in zip(s.candidates, s.concentrated_asr)},
                            'rounds': [{**r, 'asr': [round(v, 3) for v in r['asr']]} for r in s.rounds]}  # the schedule's trace
            if a.reference: row['same'] = row['halving']['verdict'] == row['paper']['verdict']
            rows.append(row)
            fmt = lambda r: (f"{'-' if r['verdict'] is None else r['verdict']:>2} ({r['asr']:.2f}/{r['next']:.2f}, eps {r['eps']:.2f}, "
                             f"{r['work'] / 1e3:4.0f}k, {r['seconds']:5.1f} s)" + (f" concentrated {r['concentrated']}" + (' DECIDED' if r['decided_by'] == 'concentration' else '')
                                                                                       if r['concentrated'] else ''))
            print(f"{ds:7} {name:20} truth {'-' if truth is None else truth:>2}  halving {fmt(row['halving'])}"
                  + (f"  paper {fmt(row['paper'])}  {'same' if row['same'] else 'DIFFERENT'}" if a.reference else ''), flush=True)
    out = {'rows': rows, 'torch': torch.__version__, 'threads': torch.get_num_threads(), 'load': os.getloadavg()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(out, indent=1))
    right = sum(r['halving']['right'] for r in rows)
    print(f"\nhalving: {right}/{len(rows)} verdicts right, mean {sum(r['halving']['seconds'] for r in rows) / len(rows):.1f} s"
          + (f"; paper: {sum(r['paper']['right'] for r in rows)}/{len(rows)} right, mean "
             f"{sum(r['paper']['seconds'] for r in rows) / len(rows):.1f} s; same verdict on {sum(r['same'] for r in rows)}/{len(rows)}"
             if a.reference else ''))

if __name__ == '__main__': main()
