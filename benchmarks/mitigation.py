"""Mitigation benchmark: repair zoo models with Neural Cleanse's reversed trigger (input filter, neuron pruning,
unlearning) and with Fine-Pruning; print clean accuracy and ASR before and after, against the issue's targets.

    python benchmarks/mitigation.py                                  # MNIST: badnets blind-p random-colour blend
    python benchmarks/mitigation.py mnist cifar10 gtsrb --names badnets blend
    python benchmarks/mitigation.py cifar10 --scan target            # reverse only the true target (faster)
    python benchmarks/mitigation.py --scan-only                      # only fill the reversed-trigger cache

The clean set is a seeded 5 % of the training split; clean accuracy and ASR (of the true trigger) are measured
on a seeded subset of the test split (`--n-test`, 2000 by default: all of the MNIST test split). The pruning
sweeps decide on the clean set only; the ground truth is evaluated on the models they return.
The Neural Cleanse scan (`--scan full`, the default) uses the first `--n-support` (100) images of the clean set,
reverses every label and repairs with the trigger of the
flagged label with the largest anomaly index (or the smallest norm when nothing is flagged); scans are cached
as safetensors in `--cache` because they dominate the run time on a CPU.
"""
import argparse, copy, json, os, sys, time
from pathlib import Path
import torch
from backdoor_nb.attacks import DATASETS, model_zoo, evaluate_backdoor, default_cache
from backdoor_nb.core import Trigger
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.neural_cleanse import neural_cleanse

# targets of the mitigation issue
UNLEARN_ASR, ACC_DROP, FILTER_FNR, FP_ANCHOR = 0.05, 0.02, 0.05, {'cifar10': (0.9131, 0.5713)}
NC_VERSION = 2  # part of the scan cache key: bump when Neural Cleanse's defaults change

def reversed_trigger(ds, name, zm, clean_x, scan, seed, cache, max_steps=None, fast=False):
    "NC's reversed trigger for the flagged label (cached); returns (trigger, label, info)."
    from safetensors.torch import save_file, load_file
    tgt = zm.backdoor.target
    steps = f"-steps{max_steps}" if max_steps else ''
    path = Path(cache) / f"{ds}-{name}-s{seed}-n{len(clean_x)}-{scan}{steps}{'-fast' if fast else ''}-nc{NC_VERSION}.safetensors"
    if path.exists():
        d = load_file(str(path))
    else:
        labels = None if scan == 'full' else [tgt]
        t0 = time.time()
        from backdoor_nb.invert import Perf
        r = neural_cleanse(zm.model, clean_x, labels=labels, progress=False, seed=seed, config={'max_steps': max_steps} if max_steps else None,
                           perf=Perf(amp=True, fast=True) if fast else None)
        d = {'masks': r.masks, 'patterns': r.patterns, 'l1': r.l1, 'anomaly': r.anomaly,
             'labels': torch.tensor(r.labels), 'flagged': torch.tensor([l in r.flagged for l in r.labels]),
             'seconds': torch.tensor([time.time() - t0])}
        path.parent.mkdir(parents=True, exist_ok=True); save_file({k: v.contiguous() for k, v in d.items()}, str(path))
    labels, fl = d['labels'].tolist(), d['flagged'].bool()
    if fl.any(): i = int(torch.where(fl, d['anomaly'], torch.tensor(-1.)).argmax())
    else: i = int(d['l1'].argmin())
    info = {'flagged': [l for l, f in zip(labels, fl.tolist()) if f], 'label': labels[i], 'right': labels[i] == tgt,
            'nc_seconds': float(d['seconds'][0])}
    return Trigger(d['masks'][i], d['patterns'][i], name=f"NC {labels[i]}"), labels[i], info

def run(ds, names, a):
    data = load_data(shared_data(ds))
    zoo = model_zoo(ds, names, seed=a.seed, data=data, progress=False)
    n_clean = a.n_clean or round(0.05 * len(data.train))
    clean = data.train.take(n_clean, seed=a.seed)
    test = data.test.take(min(a.n_test, len(data.test)), seed=a.seed + 1)
    xt, yt = test.x, test.y
    aug = DATASETS[ds].get('augment')  # the zoo's training augmentation, reused for fine-tuning
    print(f"\n{ds}: clean set {n_clean} training images, {len(yt)} test images", flush=True)
    rows = []
    for n, zm in zoo.items():
        if zm.backdoor is None: continue
        trig, label, info = reversed_trigger(ds, n, zm, clean.x[:a.n_support], a.scan, a.seed, a.cache, a.nc_steps, a.nc_fast)
        how = (f"NC flagged {info['flagged']}, repairing with the trigger of label {label} "
               f"({'the true target' if info['right'] else 'NOT the true target'})" if a.scan == 'full' else
               f"NC reversed only the true target, label {label}" + (f" (at most {a.nc_steps} steps)" if a.nc_steps else ''))
        print(f"{ds}/{n}: {how}; scan {info['nc_seconds']:.0f} s", flush=True)
        if a.scan_only: continue
        from backdoor_nb.mitigation import nc_filter, nc_prune, nc_unlearn, fine_pruning, prune_units
        ev = lambda m: evaluate_backdoor(m, xt, yt, zm.backdoor)
        b = ev(zm.model)
        def row(method, after, sec, extra='', ok=None):
            r = dict(ds=ds, name=n, method=method, acc0=b['clean_acc'], asr0=b['asr'], acc=after['clean_acc'], asr=after['asr'],
                     sec=sec, extra=extra, ok=ok)
            rows.append(r)
            print(f"{ds:8} {n:14} {method:20} {r['acc0']:6.4f} -> {r['acc']:6.4f}  {r['asr0']:6.4f} -> {r['asr']:6.4f} "
                  f"{sec:7.1f}  {'' if ok is None else ('met' if ok else 'MISSED'):6} {extra}", flush=True)
        keep = yt != zm.backdoor.target
        for k, what in ((1, 'top 1% (paper)'), (8, 'top 1%, >= 8 units')) if 'filter' in a.methods else ():
            f = nc_filter(zm.model, clean.x, triggers=trig, config={'fpr': 0.05, 'min_units': k})
            e = f.evaluate(xt, zm.backdoor.stamp(xt[keep]))
            row(f'NC filter {what}', b, f.seconds, f"@5% FPR: test FPR {e['fpr']:.3f}, FNR {e['fnr']:.3f}",
                e['fnr'] <= FILTER_FNR if n == 'badnets' and k == 8 else None)
        for ep in (sorted({1, a.epochs}) if 'unlearn' in a.methods else []):
            m, rep = nc_unlearn(zm.model, clean.x, clean.y, triggers=trig, target=label, config={'epochs': ep}, augment=aug)
            t = time.time(); after = ev(m)
            row(f"NC unlearning {ep} ep", after, rep.seconds, '',
                after['asr'] <= UNLEARN_ASR and b['clean_acc'] - after['clean_acc'] <= ACC_DROP)
        if 'prune' in a.methods:
            m, rep = nc_prune(zm.model, clean.x, clean.y, triggers=trig, target=label, config={'full_curve': False})
            row('NC pruning', ev(m), rep.seconds, f"{rep.chosen:.0%} of {rep.info['layer'].n_units} units"
                + ('' if rep.info['reached_asr_budget'] else ' (ASR budget not reached)'))
        if 'fp' not in a.methods: continue
        m, rep = fine_pruning(zm.model, clean.x, clean.y, triggers=trig, target=label, augment=aug)
        k = round(rep.chosen * rep.info['layer'].n_units)
        p = ev(prune_units(copy.deepcopy(zm.model), rep.info['layer'], rep.info['order'][:k]))
        after = ev(m)
        anchor = FP_ANCHOR.get(ds) if n == 'badnets' else None
        ok = (after['asr'] < anchor[1] and b['clean_acc'] - after['clean_acc'] <= ACC_DROP) if anchor else None
        row('Fine-Pruning', after, rep.seconds, f"{k} of {rep.info['layer'].n_units} channels; pruned only: "
            f"acc {p['clean_acc']:.4f}, ASR {p['asr']:.4f}", ok)
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('datasets', nargs='*', default=['mnist'])
    p.add_argument('--names', nargs='*', default=['badnets', 'blind-p', 'random-colour', 'blend'])
    p.add_argument('--n-clean', type=int, default=None, help='clean images (default 5 %% of the training split)')
    p.add_argument('--n-support', type=int, default=100, help='clean images (the first of the clean set) Neural Cleanse scans with')
    p.add_argument('--n-test', type=int, default=2000, help='test images for the ground truth (a seeded subset)')
    p.add_argument('--scan', choices=['full', 'target'], default='full',
                   help="'full': every label, repair with the flagged one; 'target': only the true target (as if flagged)")
    p.add_argument('--nc-steps', type=int, default=None, help='cap on Neural Cleanse steps (default: its max_steps)')
    p.add_argument('--nc-fast', action='store_true', help='Neural Cleanse with bfloat16 autocast and channels-last')
    p.add_argument('--methods', nargs='*', default=['filter', 'unlearn', 'prune', 'fp'], choices=['filter', 'unlearn', 'prune', 'fp'],
                   help='which repairs to run (default: all)')
    p.add_argument('--epochs', type=int, default=10, help='the longer unlearning run reported beside 1 epoch')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cache', default=str(default_cache().parent / 'nc_triggers'))
    p.add_argument('--scan-only', action='store_true')
    p.add_argument('--json', default=None, help='write the rows here (default: benchmarks/results/mitigation_<datasets>.json)')
    a = p.parse_args(argv)
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu")
    print(f"{'dataset':8} {'model':14} {'method':20} {'clean acc':>16}  {'ASR':>16} {'seconds':>7}  {'target':6} notes")
    rows = [r for ds in a.datasets for r in run(ds, a.names, a)]
    if rows:
        missed = [f"{r['ds']}/{r['name']} {r['method']}" for r in rows if r['ok'] is False]
        print("\ntargets missed:", ', '.join(missed) or 'none')
        path = Path(a.json or Path(__file__).parent/'results'/f"mitigation_{'_'.join(a.datasets)}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({'argv': sys.argv[1:] if argv is None else list(argv), 'torch': torch.__version__,
                                    'threads': torch.get_num_threads(), 'load_before': load_before, 'load_after': os.getloadavg(),
                                    'rows': rows}, indent=1, default=str))
        print('saved', path)

if __name__ == '__main__': main()
