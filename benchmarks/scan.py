"""Benchmark of `backdoor_nb scan`: per model, each detector's verdict, the combined verdict and seconds.

    python benchmarks/scan.py mnist                 # package zoo (clean, badnets, blend) + the outside ResNet (clean, badnets)
    python benchmarks/scan.py mnist cifar10 --zoo clean badnets --outside clean badnets
    python benchmarks/scan.py mnist --browser       # also open every HTML report in headless Chromium
    python benchmarks/scan.py gtsrb --zoo clean badnets --detectors smoothinv   # 43 labels: NC alone is ~15 min a model here

Models outside the package: `benchmarks/outside_arch.py` (a small residual network with BatchNorm and a
global-average-pool head), trained here with plain SGD on the data set's training split (BadNets: the package's
attack recipe poisons 10 % of it), saved as a plain state_dict `.pt`, and scanned through the CLI with
`--arch benchmarks/outside_arch.py:make`. Every scan is one `backdoor_nb scan` subprocess with its defaults.
Results: a table on stdout, and `--out` (default benchmarks/results/scan.json).
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
EXE = Path(sys.executable).parent / 'backdoor_nb'

def train_outside(dataset, recipe, cache, epochs, seed=0, augment=False):
    "Train the outside ResNet on `dataset` with `recipe`'s poisoning (and the zoo's augmentation); returns (weights path, ground truth)."
    from backdoor_nb.attacks import RECIPES, DATASETS, PoisonedData, evaluate_backdoor
    from backdoor_nb.data import load_data
    from backdoor_nb.models import train
    from backdoor_nb.scan import _zoo_source
    import outside_arch
    path = cache / f"outside-{dataset}-{recipe}-s{seed}-e{epochs}{'-aug' if augment else ''}.pt"
    meta = path.with_suffix('.meta.json')
    if path.exists() and meta.exists(): return path, json.loads(meta.read_text())
    data = load_data(_zoo_source(dataset))
    shape, K = data.train.shape, data.n_classes
    bd = RECIPES[recipe].build(shape, K)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = outside_arch.make(shape[0], K)
    ds = PoisonedData(data.train, bd, RECIPES[recipe].rate, seed) if bd is not None else data.train
    t0 = time.time()
    train(model, ds, epochs=epochs, lr=0.05, seed=seed, amp=True, progress=False,
          augment=DATASETS[dataset].get('augment') if augment else None)
    m = evaluate_backdoor(model, data.test.x, data.test.y, bd)
    gt = {'backdoored': bd is not None, 'target': bd.target if bd is not None else None, 'clean_acc': m['clean_acc'],
          'asr': m.get('asr'), 'train_seconds': round(time.time() - t0, 1)}
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path); meta.write_text(json.dumps(gt))
    return path, gt

def zoo_model(dataset, recipe):
    from backdoor_nb.attacks import model_zoo
    from backdoor_nb.data import load_data
    from backdoor_nb.scan import _zoo_source
    zm = model_zoo(dataset, [recipe], data=load_data(_zoo_source(dataset)), progress=False)[recipe]
    return zm.path, {'backdoored': zm.backdoored, 'target': zm.backdoor.target if zm.backdoor else None,
                     'clean_acc': zm.metrics['clean_acc'], 'asr': zm.metrics.get('asr')}

def run_scan(weights, out_dir, arch=None, data=None, extra=()):
    js, html = out_dir / f"{Path(weights).stem}.json", out_dir / f"{Path(weights).stem}.html"
    cmd = [str(EXE), 'scan', str(weights), '--json', str(js), '--report', str(html), '--quiet', *extra]
    if arch: cmd += ['--arch', arch]
    if data: cmd += ['--data', data]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0: raise RuntimeError(f"scan failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(js.read_text()), html, time.time() - t0

def check_html(paths):
    "Open each report in headless Chromium: every image loaded, no failed request, no console error."
    from playwright.sync_api import sync_playwright
    bad = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path='/usr/bin/chromium', args=['--headless=new', '--no-sandbox'])
        for path in paths:
            pg = b.new_page(); errs = []
            pg.on('console', lambda m: errs.append(m.text) if m.type == 'error' else None)
            pg.on('requestfailed', lambda r: errs.append(f"failed {r.url}"))
            pg.goto(Path(path).resolve().as_uri()); pg.wait_for_load_state('load')
            n_img, ok = pg.evaluate("[document.images.length, [...document.images].every(i => i.complete && i.naturalWidth > 0)]")
            if errs or not ok or n_img == 0: bad[str(path)] = {'errors': errs, 'images': n_img, 'all_loaded': ok}
            pg.close()
        b.close()
    return bad

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('datasets', nargs='+', choices=['digits', 'mnist', 'cifar10', 'gtsrb'])
    ap.add_argument('--zoo', nargs='*', default=['clean', 'badnets', 'blend'], help='package zoo recipes to scan')
    ap.add_argument('--outside', nargs='*', default=['clean', 'badnets'], help='recipes to train the outside ResNet with')
    ap.add_argument('--epochs', type=int, default=None, help='outside ResNet epochs (default: the zoo setting of the data set)')
    ap.add_argument('--augment', action='store_true', help="train the outside ResNet with the zoo's augmentation of the data set (crop/flip)")
    ap.add_argument('--cache', default=os.path.expanduser('~/.cache/backdoor_nb/outside'))
    ap.add_argument('--out', default=str(HERE / 'results' / 'scan.json'))
    ap.add_argument('--browser', action='store_true', help='open every HTML report in headless Chromium')
    ap.add_argument('--detectors', default=None, help="passed to `backdoor_nb scan --detectors` (default: the scan's default set)")
    ap.add_argument('--budget-s', type=float, default=None, help='passed to `backdoor_nb scan --budget-s`')
    a = ap.parse_args()
    from backdoor_nb.attacks import DATASETS
    from backdoor_nb.scan import _zoo_source
    out_dir = Path(a.out).parent / 'scan_reports'; out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for ds in a.datasets:
        jobs = [('zoo', r, *zoo_model(ds, r), None, None) for r in a.zoo]
        ep = a.epochs or DATASETS[ds]['epochs']
        jobs += [('outside-aug' if a.augment else 'outside', r, *train_outside(ds, r, Path(a.cache), ep, augment=a.augment),
                  str(HERE / 'outside_arch.py') + ':make', _zoo_source(ds))
                 for r in a.outside]
        for kind, recipe, path, gt, arch, data in jobs:
            extra = ['--arch-kwargs', json.dumps({'channels': 3 if ds in ('cifar10', 'gtsrb') else 1,
                                                  'n_classes': 43 if ds == 'gtsrb' else 10})] if arch else []
            extra += (['--detectors', a.detectors] if a.detectors else []) + (['--budget-s', str(a.budget_s)] if a.budget_s else [])
            js, html, wall = run_scan(path, out_dir, arch, data, extra)
            v = js['verdict']
            right = v['backdoored'] == gt['backdoored'] and (not gt['backdoored'] or v['target'] == gt['target'])
            rows.append({'dataset': ds, 'model': f"{kind}:{recipe}", 'truth': gt['target'] if gt['backdoored'] else '-',
                         'clean_acc': gt['clean_acc'], 'asr': gt['asr'],
                         'detectors': {n: {'flag': d['backdoored'], 'flagged': d['flagged'], 'score': d['score'], 'seconds': d['seconds']}
                                       for n, d in js['detectors'].items()},
                         'verdict': v['target'] if v['backdoored'] else '-', 'score': v['score'], 'trigger_asr': v['trigger_asr'],
                         'right': right, 'scan_seconds': js['seconds'], 'wall_seconds': round(wall, 1), 'report': str(html)})
            r = rows[-1]
            print(f"{ds:8} {r['model']:18} truth {str(r['truth']):>2}  " + '  '.join(
                f"{n} {','.join(map(str, d['flagged'])) or '-':>3} ({d['seconds']:.0f} s)" for n, d in r['detectors'].items())
                + f"  verdict {str(r['verdict']):>2} score {r['score']:.2f}  {'right' if right else 'WRONG'}  scan {r['scan_seconds']:.0f} s, "
                  f"wall {r['wall_seconds']:.0f} s", flush=True)
    bad = check_html([r['report'] for r in rows]) if a.browser else None
    Path(a.out).write_text(json.dumps({'rows': rows, 'browser_failures': bad, 'argv': sys.argv[1:], 'load': os.getloadavg(), 'torch': torch.__version__,
                                       'threads': torch.get_num_threads()}, indent=1))
    print(f"\n{sum(r['right'] for r in rows)}/{len(rows)} verdicts right; mean scan {sum(r['scan_seconds'] for r in rows) / len(rows):.1f} s"
          + (f"; reports in Chromium: {'all figures loaded' if not bad else bad}" if a.browser else ''))

if __name__ == '__main__': main()
