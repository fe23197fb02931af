"""TND benchmark: DL-TND (one test image per class), DF-TND (no data) and Neural Cleanse (100 test images) side by side
on the cached zoo models: flagged labels, model score (max anomaly index), right target?, seconds; AUROC per detector.

Only models already in the zoo cache are used (`<dataset>-<name>-s<seed>-*.json` in `attacks.default_cache()`);
nothing is trained.

    python benchmarks/tnd.py                                   # every cached MNIST model
    python benchmarks/tnd.py mnist --names clean badnets blind-p
    python benchmarks/tnd.py mnist cifar10 gtsrb --clean-seeds 4
"""
import argparse, json, os, sys, time
from pathlib import Path
import torch
from backdoor_nb.attacks import default_cache, load_zoo_model
from backdoor_nb.core import auroc
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.neural_cleanse import neural_cleanse, anomaly_index
from backdoor_nb.tnd import dl_tnd, df_tnd, _log_distance

def cached(ds, seed, names=None):
    "`{name: path}` of the cached zoo models of `ds` with `seed` (the newest file when a name has several)."
    out = {}
    for p in sorted(default_cache().glob(f"{ds}-*-s{seed}-*.json"), key=lambda p: p.stat().st_mtime):
        name = p.name[len(ds) + 1:].rsplit(f"-s{seed}-", 1)[0]
        if names is None or name in names: out[name] = p.with_suffix('')
    return out

def logit_space_score(r):
    "DL-TND's model score had the same scan been compared in logit space (the reference code's choice)."
    cfg = r.info['config']
    s = torch.stack([r.info['similarity']['logits'][j][r.info['others'][j]].quantile(cfg.quantile) for j in range(len(r.labels))])
    ld = _log_distance(s); ai = anomaly_index(ld)
    low = ld < ld.quantile(0.5)
    return ai[low].max().item() if low.any() else 0.

def right(r, zm):
    "True/False when the ground truth says what the flags should be; None for a backdoor without a single target."
    if zm.backdoor is None: return r.flagged == []
    t = zm.backdoor.target
    return None if t is None else t in r.flagged

DETECTORS = ('DL-TND', 'DF-TND', 'NC')

def scan(ds, models, seed, n_support, detectors=DETECTORS):
    data = load_data(shared_data(ds))
    one = data.test.per_class(1, seed=seed)
    support = data.test.take(n_support, seed=seed + 1).x
    shape = tuple(data.test.x.shape[1:])
    rows = []
    for name, path in models.items():
        zm = load_zoo_model(path)
        run = {'DL-TND': lambda: dl_tnd(zm.model, one.x, one.y, progress=False, seed=seed),
               'DF-TND': lambda: df_tnd(zm.model, shape, progress=False, seed=seed),
               'NC': lambda: neural_cleanse(zm.model, support, progress=False, seed=seed)}
        res = {k: run[k]() if k in detectors else None for k in DETECTORS}
        row = dict(ds=ds, name=name, backdoored=zm.backdoored, target=zm.backdoor.target if zm.backdoor else None,
                   dl_logits=logit_space_score(res['DL-TND']) if res['DL-TND'] is not None else None)
        for k, r in res.items():
            row[k] = None if r is None else dict(flagged=r.flagged, score=r.max_anomaly, ok=right(r, zm), seconds=r.seconds)
        rows.append(row)
        cells = ' '.join(f"{'-':>9} {'-':>6} {'-':>5} {'-':>6}" if row[k] is None else
                         f"{str(row[k]['flagged']):>9} {row[k]['score']:6.2f} {str(row[k]['ok']):>5} {row[k]['seconds']:6.1f}" for k in res)
        print(f"{ds:8} {name:16} {str(row['target']):>6} {cells}", flush=True)
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('datasets', nargs='*', default=['mnist'])
    p.add_argument('--names', nargs='*', default=None, help='zoo recipes to scan (default: every cached one)')
    p.add_argument('--seed', type=int, default=0, help='zoo seed of the models; also seeds the images and the detectors')
    p.add_argument('--clean-seeds', type=int, default=0, help='also scan cached clean models of seeds seed+1, ... (more negatives)')
    p.add_argument('--n-support', type=int, default=100, help="Neural Cleanse's clean images")
    p.add_argument('--detectors', nargs='*', default=list(DETECTORS), choices=DETECTORS, help='which detectors to run (default: all)')
    p.add_argument('--json', default=None, help='write the rows and AUROCs here (default: benchmarks/results/tnd_<datasets>.json)')
    a = p.parse_args(argv)
    out = {'argv': sys.argv[1:] if argv is None else list(argv), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
           'load_before': os.getloadavg(), 'auroc': {}}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; DL-TND: 1 test image per class, DF-TND: "
          f"10 noise images, NC: {a.n_support} test images")
    head = ' '.join(f"{k + ' flagged':>9} {'score':>6} {'right':>5} {'s':>6}" for k in ('DL', 'DF', 'NC'))
    print(f"{'dataset':8} {'model':16} {'target':>6} {head}")
    rows = []
    for ds in a.datasets:
        models = cached(ds, a.seed, a.names)
        for s in range(a.seed + 1, a.seed + 1 + a.clean_seeds):
            models.update({f"clean-s{s}": p for p in cached(ds, s, ['clean']).values()})
        missing = sorted(set(a.names or []) - set(models))
        if missing: print(f"{ds}: not in the cache, skipped (this benchmark never trains): {', '.join(missing)}")
        if not models: print(f"{ds}: no cached models in {default_cache()}"); continue
        rows += scan(ds, models, a.seed, a.n_support, a.detectors)
    if not rows: return
    pos = [r['backdoored'] for r in rows]
    print()
    for k in a.detectors:
        sc = [r[k]['score'] for r in rows]
        au = f"{auroc(sc, pos):.3f}" if any(pos) and not all(pos) else 'n/a (needs clean and backdoored models)'
        hits = [r for r in rows if r['target'] is not None]
        tgt = sum(r[k]['ok'] is True for r in hits)
        fp = sum(r[k]['ok'] is False for r in rows if not r['backdoored'])
        t = sorted(r[k]['seconds'] for r in rows)
        out['auroc'][k] = au
        print(f"{k:7} AUROC {au}; target flagged on {tgt}/{len(hits)} single-target models; "
              f"false flags on {fp}/{len(rows) - sum(pos)} clean models; {t[len(t) // 2]:.1f} s per model (median)")
    if any(pos) and not all(pos) and 'DL-TND' in a.detectors:
        out['auroc']['DL-TND logits'] = f"{auroc([r['dl_logits'] for r in rows], pos):.3f}"
        print(f"DL-TND scored in logit space (reference code): AUROC {out['auroc']['DL-TND logits']}")
    out.update(rows=rows, load_after=os.getloadavg())
    path = Path(a.json or Path(__file__).parent/'results'/f"tnd_{'_'.join(a.datasets)}.json")
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(out, indent=1, default=float))
    print('saved', path)

if __name__ == '__main__': main()
