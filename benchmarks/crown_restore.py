"""CROWN-restore benchmark: restored-trigger ASR, fidelity and cost, CROWN coefficients against the exact gradient.

For every zoo model (BadNets -> patch restoration, additive -> additive restoration), every seed and 0 or 10 clean
images, it runs `restore` with the CROWN-tail gradient and with the exact gradient (same loop, steps, learning rate,
budget, start images) and reports the mean held-out ASR (images of the test split's second half, target class
excluded), the IoU of the restored trigger with the true one (top-k pixels, `core.mask_overlap`) and the seconds
per restoration (optimization only). Then the cost of one auto_LiRPA call per image for each gradient source.

    python benchmarks/crown_restore.py                       # MNIST, 3 seeds
    python benchmarks/crown_restore.py cifar10 gtsrb --seeds 0
    python benchmarks/crown_restore.py --cost-only mnist
"""
import argparse, json, os, time
import torch
from backdoor_nb.attacks import model_zoo
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.crown_restore import restore, RestoreConfig, GRADIENTS

KINDS = {'badnets': lambda C: dict(kind='patch', cost=0.1), 'additive': lambda C: dict(kind='additive', eps=0.1 if C == 1 else 16 / 255)}
CONTROL = {'clean': 'badnets', 'clean-additive': 'additive'}  # a clean model restored like this backdoored kind (no ground truth)

def splits(y, target, seed, n_clean, n_heldout=None):
    "Clean images (not of the target) from the first half of the test split; the first `n_heldout` non-target images of the second half."
    n = len(y); half = n // 2
    g = torch.Generator().manual_seed(seed)
    pool = torch.randperm(half, generator=g)
    clean = [int(i) for i in pool if int(y[i]) != target][:n_clean]
    ho = torch.arange(half, n)
    return torch.tensor(clean, dtype=torch.long), ho[y[ho] != target][:n_heldout]

def run(ds, name, zm, data, a):
    x, y = data.test.x, data.test.y
    tgt, tt = (zm.backdoor.target, zm.backdoor.trigger) if zm.backdoor is not None else (0, None)
    cfg = RestoreConfig(rho=a.rho, steps=a.steps, lr=a.lr, eval_every=a.eval_every, **KINDS[CONTROL.get(name, name)](x.shape[1]))
    rows = []
    for n_clean in a.n_clean:
        for seed in a.seeds:
            ci, ho = splits(y, tgt, seed, n_clean, a.n_heldout)
            for grad in a.grads:
                r = restore(zm.model, x[ci] if n_clean else None, target=tgt, config=cfg, grad=grad, x_heldout=x[ho], y_heldout=y[ho],
                            seed=seed, progress=False)
                rows.append({'ds': ds, 'model': name, 'n_clean': n_clean, 'seed': seed, 'grad': grad, 'asr': r.asr,
                             'iou': r.fidelity(tt)['iou'] if tt is not None else float('nan'), 'cos': cosine(r.trigger, tt) if tt is not None else float('nan'), 'seconds': r.seconds, 'true_asr': zm.metrics.get('asr', float('nan')),
                             'curve': [round(v, 3) for v in r.history['asr']], 'steps_at': r.history['step']})
                print(f"  {ds}/{name} clean={n_clean} seed={seed} {grad:10}: ASR {r.asr:.3f} IoU {rows[-1]['iou']:.2f} cos {rows[-1]['cos']:.2f} {r.seconds:5.1f} s", flush=True)
    return rows

def mean(v): return sum(v) / len(v)

def cosine(restored, true):
    "Cosine similarity of the additive parts (`delta`), NaN when either trigger has none (IoU is meaningless there: an additive trigger covers the image)."
    if restored.delta is None or true.delta is None: return float('nan')
    a, b = restored.delta.flatten().float(), true.delta.flatten().float()
    return (a @ b / (a.norm() * b.norm()).clamp_min(1e-12)).item()

def table(rows, grads):
    keys = sorted({(r['ds'], r['model'], r['n_clean']) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    head = '| data | model | clean images | true ASR | ' + ' | '.join(f'{g} ASR | {g} IoU / cos | {g} s' for g in grads) + ' | CROWN > exact? |'
    print(head); print('|' + '---|' * (head.count('|') - 1))
    for k in keys:
        sel = {g: [r for r in rows if (r['ds'], r['model'], r['n_clean']) == k and r['grad'] == g] for g in grads}
        cells = []
        for g in grads:
            s = sel[g]
            fid = f"cos {mean([r['cos'] for r in s]):.2f}" if s[0]['cos'] == s[0]['cos'] else f"{mean([r['iou'] for r in s]):.2f}"
            cells += [f"{100 * mean([r['asr'] for r in s]):.1f}", fid, f"{mean([r['seconds'] for r in s]):.1f}"]
        true = sel[grads[0]][0]['true_asr']
        c, e = (mean([r['asr'] for r in sel[g]]) for g in (grads[0], 'exact')) if 'exact' in grads else (None, None)
        verdict = '-' if c is None else ('yes' if c > e else 'tie' if c == e else 'no')
        print(f"| {k[0]} | {k[1]} | {k[2]} | {100 * true:.1f} | " + ' | '.join(cells) + f" | {verdict} (n={len(sel[grads[0]])}) |")

def cost(ds, a):
    "Seconds of one gradient call per image (batch of `--cost-batch`), for every gradient source."
    data = load_data(shared_data(ds))
    zm = model_zoo(ds, ['badnets'], data=data, progress=False)['badnets']
    x = data.test.x[:a.cost_batch]
    w = torch.zeros(len(x), len(data.test.classes) - 1); w[:, 0] = 1
    t = torch.zeros(len(x), dtype=torch.long)
    for name in a.cost_grads:
        if name == 'crown' and ds != 'mnist' and not a.full_crown_colour: print(f"  {ds} crown: skipped (51 s and 8 GB per image measured on CIFAR-10; --full-crown-colour to run)"); continue
        fn = GRADIENTS[name].make(zm.model, x, torch.device('cpu'))
        fn(x[:1], t[:1], 0.05, w[:1])  # warm-up
        t0 = time.time(); fn(x, t, 0.05, w); dt = time.time() - t0
        print(f"  {ds} {name:10}: {dt / len(x):.4f} s per image (batch {len(x)}; load {os.getloadavg()[0]:.1f})", flush=True)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('datasets', nargs='*', default=['mnist'])
    p.add_argument('--names', nargs='*', default=['badnets', 'additive'])
    p.add_argument('--controls', nargs='*', default=[], choices=list(CONTROL), help='clean-model controls: clean (patch), clean-additive')
    p.add_argument('--seeds', nargs='*', type=int, default=[0, 1, 2])
    p.add_argument('--n-clean', nargs='*', type=int, default=[0, 10])
    p.add_argument('--grads', nargs='*', default=['crown-tail', 'exact'])
    p.add_argument('--rho', type=float, default=0.2)
    p.add_argument('--steps', type=int, default=200)
    p.add_argument('--lr', type=float, default=0.1)
    p.add_argument('--eval-every', type=int, default=20)
    p.add_argument('--n-heldout', type=int, default=None, help='cap on the held-out images (default: all non-target images of the second half)')
    p.add_argument('--cost-only', action='store_true')
    p.add_argument('--no-cost', action='store_true')
    p.add_argument('--cost-batch', type=int, default=4)
    p.add_argument('--cost-grads', nargs='*', default=['exact', 'crown-tail', 'crown-ibp', 'crown'])
    p.add_argument('--full-crown-colour', action='store_true')
    p.add_argument('--json', default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; rho {a.rho}, {a.steps} steps, lr {a.lr}; "
          f"seeds {a.seeds}; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    if not a.cost_only:
        for ds in a.datasets:
            data = load_data(shared_data(ds))
            zoo = model_zoo(ds, a.names, data=data, progress=False)
            for n in a.names: rows += run(ds, n, zoo[n], data, a)
            for n in a.controls:  # a clean model, restored like a backdoored kind: the ASR a trigger-free model gives
                rows += run(ds, n, model_zoo(ds, ['clean'], data=data, progress=False)['clean'], data, a)
        print(); table(rows, a.grads)
        if a.json:
            with open(a.json, 'w') as f: json.dump(rows, f, indent=1)
    if not a.no_cost:
        print("\ncost of one gradient call:")
        for ds in a.datasets: cost(ds, a)

if __name__ == '__main__': main()
