"""Why the identification scan has a concentration test: per label, how a SmoothInv perturbation's transfer changes when
it is kept on its largest pixels only, on the package's CIFAR-10 models and the outside ResNet (clean and BadNets).

For each model: one start image and 500 held-out test images (seeded), `identify_target` at one budget (`--eps`, the
paper's schedule: every label, all steps, no ladder); then, per label j and its perturbation d_j, the transfer ASR of
d_j, of a random direction of the same norm, of d_j's values shuffled over the pixels, and of d_j kept on its largest
10 % of pixels (`smoothinv.concentrate`), plus the base rate (held-out images the model already sends to j) and the
spread of d_j's transfer over the source classes (minimum, 25 % quantile, median).

    python benchmarks/concentration.py cifar10 outside:badnets outside:clean outside:badnets-aug outside:clean-aug zoo:badnets zoo:clean
"""
import argparse, json, os, time
from pathlib import Path
import torch
from backdoor_nb.attacks import model_zoo
from backdoor_nb.core import Trigger, batched_logits
from backdoor_nb.data import load_data
from backdoor_nb.scan import _zoo_source, load_scan_model
from backdoor_nb.smoothinv import identify_target, concentrate

HERE = Path(__file__).resolve().parent
EPOCHS = {'mnist': 12, 'cifar10': 14, 'gtsrb': 10}  # the outside ResNet's epochs in benchmarks/scan.py

def load(ds, spec, cache):
    "(model, its backdoor's target or None)."
    kind, rec = spec.split(':')
    if kind == 'zoo':
        zm = model_zoo(ds, [rec], progress=False)[rec]
        return zm.model, zm.backdoor.target if zm.backdoor else None
    aug = rec.endswith('-aug')  # the outside ResNet trained with the zoo's augmentation (`benchmarks/scan.py --augment`)
    path = cache / f"outside-{ds}-{rec.removesuffix('-aug')}-s0-e{EPOCHS[ds]}{'-aug' if aug else ''}.pt"
    gt = json.loads(path.with_suffix('.meta.json').read_text())
    return (load_scan_model(path, arch=str(HERE / 'outside_arch.py') + ':make',
                            arch_kwargs={'channels': 1 if ds == 'mnist' else 3, 'n_classes': 43 if ds == 'gtsrb' else 10})[0],
            gt['target'] if gt['backdoored'] else None)

def rows(m, te, eps, frac):
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(te.x), generator=g)
    x0, y0, xh, yh = te.x[idx[0]], int(te.y[idx[0]]), te.x[idx[1:501]], te.y[idx[1:501]]
    s = identify_target(m, x0, y0, x_heldout=xh, y_heldout=yh, config=dict(eps=eps, shrink=0, schedule='paper', concentrate=0), progress=False)
    pred0, out = batched_logits(m, xh).argmax(1), []
    hit = lambda d, keep, j: (batched_logits(m, xh[keep], Trigger(delta=d)).argmax(1) == j)
    for j in range(len(s.labels)):
        d, keep = s.perturbations[j], yh != j
        h = hit(d, keep, j)
        pc = torch.tensor([h[yh[keep] == c].float().mean().item() for c in range(len(s.labels)) if c != j and (yh[keep] == c).any()])
        rnd = torch.randn(d.shape, generator=g); rnd = rnd / rnd.norm() * d.norm()
        sh = d.flatten()[torch.randperm(d.numel(), generator=g)].view_as(d)
        out.append(dict(label=j, asr=s.asr[j].item(), base_rate=(pred0[keep] == j).float().mean().item(),
                        random=hit(rnd, keep, j).float().mean().item(), shuffled=hit(sh, keep, j).float().mean().item(),
                        concentrated=hit(concentrate(d, frac), keep, j).float().mean().item(), norm=d.norm().item(),
                        class_min=pc.min().item(), class_q25=pc.quantile(.25).item(), class_median=pc.median().item()))
    return y0, out

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('dataset', choices=['mnist', 'cifar10', 'gtsrb']); ap.add_argument('models', nargs='+', help='zoo:RECIPE, outside:RECIPE or outside:RECIPE-aug')
    ap.add_argument('--eps', type=float, default=2.5); ap.add_argument('--frac', type=float, default=0.1)
    ap.add_argument('--cache', default=os.path.expanduser('~/.cache/backdoor_nb/outside'))
    ap.add_argument('--out', default=str(HERE / 'results' / 'concentration_{ds}.json'))
    a = ap.parse_args()
    torch.set_num_threads(2)
    te = load_data(_zoo_source(a.dataset)).test
    res = {'dataset': a.dataset, 'eps': a.eps, 'frac': a.frac, 'torch': torch.__version__, 'load': os.getloadavg(), 'models': {}}
    for spec in a.models:
        t0 = time.time()
        model, truth = load(a.dataset, spec, Path(a.cache))
        src, rs = rows(model, te, a.eps, a.frac)
        res['models'][spec] = {'target': truth, 'source': src, 'seconds': round(time.time() - t0, 1), 'labels': rs}
        print(f"{a.dataset} {spec}: eps {a.eps}, start image of class {src}, {time.time() - t0:.0f} s")
        print(f"{'label':>5} {'ASR':>5} {'base':>5} {'rand':>5} {'shuf':>5} {'conc':>5} {'min':>5} {'q25':>5} {'med':>5}")
        for r in rs: print(f"{r['label']:>5} {r['asr']:5.2f} {r['base_rate']:5.2f} {r['random']:5.2f} {r['shuffled']:5.2f} {r['concentrated']:5.2f} "
                           f"{r['class_min']:5.2f} {r['class_q25']:5.2f} {r['class_median']:5.2f}", flush=True)
    out = Path(a.out.replace('{ds}', a.dataset)); out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1))

if __name__ == '__main__': main()
