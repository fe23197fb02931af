"""Neural Cleanse benchmark: detection over the model zoo (flagged labels, anomaly index, AUROC) and speed
(full scans; batched versus the per-label sequential reference with the same steps and hyper-parameters).

    python benchmarks/neural_cleanse.py                    # MNIST zoo, every recipe
    python benchmarks/neural_cleanse.py mnist cifar10 gtsrb --names clean badnets blend
    python benchmarks/neural_cleanse.py --speed-only
"""
import argparse, json, os, sys, time
from pathlib import Path
import torch
from backdoor_nb.attacks import RECIPES, model_zoo
from backdoor_nb.core import auroc
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.neural_cleanse import neural_cleanse
from backdoor_nb.invert import Perf

def detection(ds, names, n_support, seed, amp, clean_seeds, channels_last=False, max_steps=1000):
    data = load_data(shared_data(ds))
    zoo = model_zoo(ds, names, seed=seed, data=data, progress=False)
    for s in range(seed + 1, seed + 1 + clean_seeds):  # more clean models, so the AUROC has more than one negative
        zoo[f'clean-s{s}'] = model_zoo(ds, ['clean'], seed=s, data=data, progress=False)['clean']
    support = data.test.take(n_support, seed=seed + 1).x
    rows = []
    for n, zm in zoo.items():
        r = neural_cleanse(zm.model, support, progress=False, seed=seed, perf=Perf(amp=amp, fast=channels_last), config=dict(max_steps=max_steps))
        tgt = zm.backdoor.target if zm.backdoor else None
        ok = (r.flagged == [] if zm.backdoor is None else (tgt in r.flagged if tgt is not None else None))
        rows.append(dict(ds=ds, name=n, backdoored=zm.backdoored, target=tgt, flagged=r.flagged, score=r.max_anomaly,
                         target_index=(r.anomaly[tgt].item() if tgt is not None else float('nan')), ok=ok, seconds=r.seconds,
                         steps=r.steps.float().mean().item(), unreached=int((~r.reached).sum()),
                         asr=zm.metrics.get('asr', float('nan'))))
        x = rows[-1]
        print(f"{ds:8} {n:16} {str(x['target']):>6} {str(x['flagged']):>10} {x['score']:>9.2f} {x['target_index']:>9.2f} "
              f"{str(x['ok']):>6} {x['seconds']:>7.1f} {x['steps']:>6.0f} {x['unreached']:>4}", flush=True)
    return rows

def speed(steps, seed):
    data = load_data(shared_data('mnist'))
    zm = model_zoo('mnist', ['badnets'], seed=seed, data=data, progress=False)['badnets']
    support = data.test.take(100, seed=seed + 1).x
    res = {}
    cfg = dict(max_steps=steps, early_stop=False)
    neural_cleanse(zm.model, support, progress=False, seed=seed, config=dict(max_steps=2, early_stop=False))  # warm-up
    t0 = time.time(); res['batched'] = neural_cleanse(zm.model, support, progress=False, seed=seed, config=cfg)
    t1 = time.time(); one = [neural_cleanse(zm.model, support, labels=[l], progress=False, seed=seed, config=cfg) for l in range(10)]
    t2 = time.time()
    res['batched'].seconds = t1 - t0
    res['sequential'] = type('R', (), {'seconds': t2 - t1, 'l1': torch.cat([r.l1 for r in one])})()
    b, s = res['batched'].seconds, res['sequential'].seconds
    print(f"\nMNIST CNN, 10 labels, {steps} steps x {len(support) // 32} mini-batches of 32 ({torch.get_num_threads()} threads), early stop off:")
    d = (res['batched'].l1 - res['sequential'].l1).abs().max().item()
    print(f"  batched {b:.1f} s, sequential {s:.1f} s, speed-up {s / b:.1f}x; max |L1 difference| {d:.3f}")
    return {'steps': steps, 'batched_s': b, 'sequential_s': s, 'speedup': s / b, 'max_l1_diff': d}

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('datasets', nargs='*', default=['mnist'])
    p.add_argument('--names', nargs='*', default=None)
    p.add_argument('--n-support', type=int, default=100)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--amp', action='store_true', help='bfloat16 autocast for the model forward pass')
    p.add_argument('--max-steps', type=int, default=1000, help="NC's step cap (the original: 1000)")
    p.add_argument('--channels-last', '--fast', action='store_true', help='run on a fast inference copy (BN folded, channels-last)')
    p.add_argument('--clean-seeds', type=int, default=0, help='extra clean models (seeds seed+1, ...) per dataset')
    p.add_argument('--speed-steps', type=int, default=20)
    p.add_argument('--speed-only', action='store_true')
    p.add_argument('--json', default=None, help='write the rows, AUROC and speed to this JSON file (default: benchmarks/results/neural_cleanse_<datasets>.json)')
    a = p.parse_args(argv)
    out = {'argv': sys.argv[1:] if argv is None else list(argv), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
           'load_before': os.getloadavg()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu; {a.n_support} clean support images per scan"
          f"{', bfloat16 autocast' if a.amp else ''}{', channels-last' if a.channels_last else ''}, at most {a.max_steps} steps")
    if not a.speed_only:
        print(f"{'dataset':8} {'model':16} {'target':>6} {'flagged':>10} {'max index':>9} {'tgt index':>9} {'right':>6} {'NC s':>7} {'steps':>6} {'unr.':>4}")
        rows = [r for ds in a.datasets for r in detection(ds, a.names, a.n_support, a.seed, a.amp, a.clean_seeds, a.channels_last, a.max_steps)]
        pos = [r['backdoored'] for r in rows]
        if any(pos) and not all(pos):
            out['auroc'] = auroc([r['score'] for r in rows], pos)
            print(f"\nAUROC of the max anomaly index over {len(rows)} models: {out['auroc']:.3f}")
        out['rows'] = rows
        missed = [f"{r['ds']}/{r['name']}" for r in rows if r['ok'] is False]
        print("missed or wrong:", ', '.join(missed) or 'none')
        for ds in a.datasets:
            t = [r['seconds'] for r in rows if r['ds'] == ds]
            print(f"{ds}: full scan {min(t):.1f}-{max(t):.1f} s (median {sorted(t)[len(t) // 2]:.1f} s)")
    if a.speed_steps > 0: out['speed'] = speed(a.speed_steps, a.seed)
    out['load_after'] = os.getloadavg()
    path = Path(a.json or Path(__file__).parent/'results'/f"neural_cleanse_{'_'.join(a.datasets) if not a.speed_only else 'speed'}.json")
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(out, indent=1, default=float))
    print('saved', path)

if __name__ == '__main__': main()
