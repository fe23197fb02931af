"""SmoothInv benchmark: a Table-2-style table of single-image backdoor inversion over the model zoo, one-image
target identification, and the speed of the all-class scan.

For every backdoored zoo model and `--n-starts` random start images (not of the target class), it reports the mean
transfer ASR (on held-out clean images, with the original classifier) of the perturbation synthesized from one image by
  * SmoothInv w/o denoiser: the paper's sweep, eps in {5, 10} (scaled with `scale_eps`) x sigma in {.12, .25, .5, 1},
    best configuration picked on a separate selection split;
  * SmoothInv w/ DnCNN denoiser: the same sweep through a small trained denoiser (`--denoiser-starts` images);
  * PlainAdv: the same PGD and eps grid on the unsmoothed model;
  * NC (single image): Neural Cleanse with the start image as its only support image;
and the all-class identification from the first start image (every label, N = 40, 400 steps unless changed).
Column G.25 is the paper's Table 3 check: the true backdoor's ASR through the smoothed classifier (sigma 0.25, no
denoiser). Where it is low, the backdoor does not survive the smoothing and SmoothInv has nothing to find.

    python benchmarks/smoothinv.py --denoiser-starts 0 --amp                         # MNIST zoo, 10 start images
    python benchmarks/smoothinv.py cifar10 --n-starts 1 --amp --eps-from-scan      # sweeps at the scan's budget
    python benchmarks/smoothinv.py gtsrb --identify-only --amp --id-noise 10       # identification only
    python benchmarks/smoothinv.py mnist cifar10 --speed-only                      # one scan per speed mode
"""
import argparse, json, math, os, time
import torch
from backdoor_nb.attacks import model_zoo, default_cache
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.invert import Perf
from backdoor_nb.smoothinv import (smoothinv_sweep, identify_target, nc_single_image, pretrained_denoiser, default_eps,
                                   smoothing_sanity, PAPER_SIGMAS)

COLOUR = ['clean', 'badnets', 'blind-p', 'blind-s', 'random-colour', 'blind-g', 'htba', 'blend', 'adaptive-p-mgda']
NAMES = {'mnist': ['clean', 'badnets', 'blind-p', 'blind-s', 'random-colour', 'blind-g', 'adaptive-p', 'adaptive-p-mgda'],
         'cifar10': COLOUR, 'gtsrb': COLOUR}
PATCH_STYLE = {'badnets', 'blind-p', 'blind-s', 'random-colour', 'htba', 'blind-g', 'adaptive-p', 'adaptive-p-mgda', 'checkerboard', 'polygon'}

def cached(ds, names):
    "The zoo names of `ds` that are in the cache (no training here)."
    have = {p.name.split('-s0-')[0][len(ds) + 1:] for p in default_cache().glob(f'{ds}-*.json')}
    return [n for n in names if n in have]

def splits(data, seed):
    "Start-image pool, selection split and evaluation split, disjoint, from the test set."
    n = len(data.test.y)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    q = n // 4
    return idx[:q], idx[q:2 * q], idx[2 * q:]

def run_model(ds, name, zm, data, a, dn):
    x, y = data.test.x, data.test.y
    pool, sel, ev = splits(data, a.seed)
    tgt = zm.backdoor.target if zm.backdoor is not None else 0
    starts = [int(i) for i in pool if int(y[i]) != tgt][:a.n_starts]
    perf = Perf(amp=a.amp, fast=True, batch=128)
    kw = dict(x_heldout=x[ev], y_heldout=y[ev], x_select=x[sel], y_select=y[sel], snapshots=(), seed=a.seed, perf=perf, progress=False)
    row = {'ds': ds, 'model': name, 'target': tgt, 'true_asr': zm.metrics.get('asr', float('nan')),
           'clean_acc': zm.metrics.get('clean_acc', float('nan'))}
    if a.identify_only: starts = starts[:1]
    if zm.backdoor is not None:  # the paper's Table 3: does the true backdoor survive the smoothing (sigma 0.25, N = 40)?
        row['smoothed_asr'] = smoothing_sanity(zm.model, x[ev][:300], y[ev][:300], trigger=zm.backdoor.trigger, target=tgt,
                                               sigmas=(0.25,)).rows['w/o']['asr'][0]
    t0 = time.time()
    scan = identify_target(zm.model, x[starts[0]], x_heldout=x[sel], y_heldout=y[sel], seed=a.seed, perf=perf, progress=False,
                           config=dict(sigma=a.id_sigma, n_noise=a.id_noise, steps=a.id_steps, schedule=a.id_schedule))
    row.update(id_target=scan.target, id_asr=scan.target_asr, id_next=scan.target_asr - scan.margin,
               id_backdoored=scan.backdoored, id_seconds=time.time() - t0, id_asr_all=[round(v, 3) for v in scan.asr.tolist()],
               id_ladder=[(round(e, 3), [round(v, 3) for v in asr.tolist()], round(t, 1)) for e, asr, t in scan.ladder])
    if a.eps_from_scan: kw['eps_grid'] = [scan.eps, 2 * scan.eps]  # the budget the scan settled on, and twice it
    row['eps_grid'] = [round(e, 3) for e in kw.get('eps_grid', default_eps(tuple(x.shape[1:])))]
    t0 = time.time()
    cfg = dict(n_noise=a.n_noise, steps=a.steps)
    si = [] if a.identify_only else [smoothinv_sweep(zm.model, x[i], target=tgt, config=cfg, **kw) for i in starts]
    if si:
        row['smoothinv'] = [r.asr for r in si]
        row['best_cfg'] = [(round(r.info['eps'], 2), r.info['sigma']) for r in si]
        row['t_smoothinv'] = (time.time() - t0) / len(starts)
    pa = [] if a.identify_only else [smoothinv_sweep(zm.model, x[i], target=tgt, method='plainadv', config=cfg, **kw) for i in starts]
    if pa: row['plainadv'] = [r.asr for r in pa]
    if dn is not None and a.denoiser_starts > 0 and not a.identify_only:
        t0 = time.time()
        sd = [smoothinv_sweep(zm.model, x[i], target=tgt, config=cfg, denoiser=dn, **kw) for i in starts[:a.denoiser_starts]]
        row['smoothinv_dn'] = [r.asr for r in sd]
        row['t_smoothinv_dn'] = (time.time() - t0) / len(sd)
    if not (a.no_nc or a.identify_only):
        t0 = time.time()
        nc = [nc_single_image(zm.model, x[i], target=tgt, x_heldout=x[ev], y_heldout=y[ev], seed=a.seed) for i in starts]
        row['nc'] = [r.asr for r in nc]
        row['t_nc'] = (time.time() - t0) / len(starts)
    return row

def mean(v): return sum(v) / len(v) if v else float('nan')

def fmt(r):
    m = lambda k: f"{100 * mean(r[k]):7.1f}" if k in r else f"{'-':>7}"
    ok = ('-' if r['model'] == 'clean' else ('yes' if r['id_target'] == r['target'] and r['id_backdoored'] else 'NO'))
    if r['model'] == 'clean': ok = 'clean ok' if not r['id_backdoored'] else 'FALSE +'
    g = f"{100 * r['smoothed_asr']:6.1f}" if 'smoothed_asr' in r else f"{'-':>6}"
    return (f"{r['ds']:8} {r['model']:14} {100 * r['true_asr']:6.1f} {g} {m('smoothinv')} {m('smoothinv_dn')} {m('plainadv')} {m('nc')}"
            f"   {r['id_target']:>3} {100 * r['id_asr']:5.1f} {100 * r['id_next']:5.1f} {ok:>8} {r['id_seconds']:6.1f}")

def markdown(rows):
    "The rows as a markdown table (the notebook's Benchmark section)."
    pct = lambda v: f"{100 * v:.1f}"
    col = lambda r, k: pct(mean(r[k])) if k in r else '-'
    out = ["| model | true ASR | G 0.25 | sweep eps | SmoothInv w/o | PlainAdv | NC (one image) | identified | its ASR / next best | scan budgets, s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        clean = r['model'] == 'clean'
        if not r['id_backdoored']: ident, margin = f"none (best: {pct(r['id_asr'])})", '-'
        else:
            ok = not clean and r['id_target'] == r['target']
            ident, margin = (f"**{r['id_target']}**" if ok else f"wrong: {r['id_target']}"), f"{pct(r['id_asr'])} / {pct(r['id_next'])}"
        true = '-' if clean else pct(r['true_asr'])
        g = pct(r['smoothed_asr']) if 'smoothed_asr' in r else '-'
        grid = ', '.join(f"{e:.3g}" for e in r["eps_grid"])
        ladder = ' > '.join(f"{e:.3g}" for e, _, _ in r['id_ladder'])
        out.append(f"| {r['model']} | {true} | {g} | {grid} | {col(r, 'smoothinv')} | {col(r, 'plainadv')} | {col(r, 'nc')} | "
                   f"{ident} | {margin} | {ladder}, {r['id_seconds']:.0f} s |")
    return '\n'.join(out)

HEAD = (f"{'dataset':8} {'model':14} {'true':>6} {'G.25':>6} {'SI w/o':>7} {'SI w/':>7} {'PlainA':>7} {'NC-1':>7}"
        f"   {'id':>3} {'idASR':>5} {'next':>5} {'right':>8} {'id s':>6}")

ONE_PASS = 10 ** 9  # a pass larger than any batch: all rows x N copies in one forward-backward pass
MODES = {'fp32-1pass': Perf(batch=ONE_PASS), 'bf16-1pass': Perf(amp=True, batch=ONE_PASS),
         'bf16-fast-1pass': Perf(amp=True, fast=True, batch=ONE_PASS), 'fp32-fast': Perf(fast=True, batch=128),
         'bf16-fast': Perf(amp=True, fast=True, batch=128)}  # passes of 128 images (the default) unless 1pass; fast = on the inference copy

def speed(ds, a):
    "Wall-clock time of one all-class scan from one image (one budget, N = 40, 400 steps, transfer on 500 images) per mode."
    data = load_data(shared_data(ds))
    names = cached(ds, ['badnets', 'blind-p'])
    if not names: print(f"{ds}: no cached zoo model for the speed test"); return
    zm = model_zoo(ds, names[:1], data=data, progress=False)[names[0]]
    x, y = data.test.x, data.test.y
    pool, sel, ev = splits(data, a.seed)
    start = next(int(i) for i in pool if int(y[i]) != zm.backdoor.target)
    for mode in a.speed_modes:
        s = identify_target(zm.model, x[start], x_heldout=x[sel[:500]], y_heldout=y[sel[:500]], seed=a.seed, perf=MODES[mode], progress=False,
                            config=dict(n_noise=a.id_noise, steps=a.id_steps, shrink=0, schedule='paper'))
        print(f"{ds:8} {names[0]:10} {len(s.labels):3} labels x N={a.id_noise} x {a.id_steps} steps, 500 held-out {mode:>10}: "
              f"{s.seconds:6.1f} s (load {os.getloadavg()[0]:.1f}) -> target {s.target} at eps {s.eps:.2f} "
              f"(ASR {s.target_asr:.3f}; next {s.target_asr - s.margin:.3f})", flush=True)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('datasets', nargs='*', default=['mnist'])
    p.add_argument('--names', nargs='*', default=None)
    p.add_argument('--n-starts', type=int, default=10)
    p.add_argument('--n-noise', type=int, default=40, help='N of the sweeps (the paper: 40)')
    p.add_argument('--steps', type=int, default=400)
    p.add_argument('--id-noise', type=int, default=40)
    p.add_argument('--id-steps', type=int, default=400)
    p.add_argument('--id-sigma', type=float, default=0.12, help="noise level of the identification scan (identify_target's default)")
    p.add_argument('--id-schedule', default='paper', help="the identification's schedule (the tables below: 'paper'; the default scan: 'halving')")
    p.add_argument('--denoiser-starts', type=int, default=5, help='start images for the w/ denoiser column (0: skip)')
    p.add_argument('--no-nc', action='store_true')
    p.add_argument('--eps-from-scan', action='store_true',
                   help="sweep eps in {e, 2e}, e = the budget the model's identification scan settled on (default: the scaled paper grid)")
    p.add_argument('--identify-only', action='store_true', help='only the one-image target identification (first start image)')
    p.add_argument('--amp', action='store_true', help='bfloat16 autocast in the sweeps and the scan')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--speed-only', action='store_true')
    p.add_argument('--no-speed', action='store_true', help='skip the speed table')
    p.add_argument('--speed-modes', nargs='*', default=list(MODES), choices=list(MODES),
                   help='fp32 / bf16 autocast, with or without the inference copy (fast)')
    p.add_argument('--json', default=None, help='write the rows to this file')
    p.add_argument('--markdown', action='store_true', help='also print the rows as a markdown table')
    a = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; sweeps: N={a.n_noise}, {a.steps} steps, "
          f"sigma in {PAPER_SIGMAS}; scan: N={a.id_noise}, {a.id_steps} steps; {a.n_starts} start images; "
          f"scan sigma {a.id_sigma}; load average {os.getloadavg()[0]:.1f}", flush=True)
    if not a.speed_only:
        rows = []
        for ds in a.datasets:
            names = cached(ds, a.names or NAMES.get(ds, NAMES['mnist']))
            if not names: print(f"{ds}: no zoo model cached, skipped"); continue
            data = load_data(shared_data(ds))
            zoo = model_zoo(ds, names, data=data, progress=False)
            dn = pretrained_denoiser(ds, data.train.x, progress=False) if a.denoiser_starts > 0 and not a.identify_only else None
            print(f"\n{ds}: eps grid {[round(e, 2) for e in default_eps(tuple(data.test.x.shape[1:]))]}; ASR in %, "
                  f"mean over start images (SI w/: first {a.denoiser_starts})\n{HEAD}", flush=True)
            for n in names:
                r = run_model(ds, n, zoo[n], data, a, dn)
                rows.append(r); print(fmt(r), flush=True)
        bd = [r for r in rows if r['model'] != 'clean']
        if bd:
            print("\ntarget identified from one image:", sum(r['id_target'] == r['target'] and r['id_backdoored'] for r in bd), '/', len(bd),
                  "; clean models called backdoored:", sum(r['id_backdoored'] for r in rows if r['model'] == 'clean'))
            low = [f"{r['ds']}/{r['model']}" for r in bd if r['model'] in PATCH_STYLE and 'smoothinv' in r and mean(r['smoothinv']) < 0.9]
            print("patch-style models with SmoothInv w/o < 90 %:", ', '.join(low) or 'none')
            worse = [f"{r['ds']}/{r['model']}" for r in bd if 'smoothinv' in r and mean(r['smoothinv']) < mean(r['plainadv'])]
            print("models where SmoothInv w/o < PlainAdv:", ', '.join(worse) or 'none')
            for r in rows:
                print(f"  {r['ds']}/{r['model']}: per-label scan ASR by budget: "
                      + '; '.join(f"eps {e} ({t} s): {v}" for e, v, t in r['id_ladder'])
                      + f", sweep eps grid {r['eps_grid']}"
                      + (f", best (eps, sigma) {r['best_cfg']}, sweep {r['t_smoothinv']:.0f} s/image" if 'best_cfg' in r else '')
                      + (f", NC {r['t_nc']:.0f} s/image" if 't_nc' in r else ''))
        if a.markdown: print('\n' + markdown(rows))
        if a.json:
            with open(a.json, 'w') as f: json.dump(rows, f, indent=1)
    if a.no_speed: return
    print("\nspeed of one all-class scan from one image (one budget):")
    for ds in a.datasets: speed(ds, a)

if __name__ == '__main__': main()
