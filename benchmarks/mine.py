"""MINE trigger-distribution benchmark: model the valid triggers of the zoo's 3x3 random-colour backdoor with the staircase
of max-entropy generators, then retrain the model with triggers sampled from it versus with one reversed trigger.

Per dataset and seed: the moving-window heat map (on 500 clean images), the staircase in its hot region, the single-trigger
baseline (pixel-space SGD in the same region), validity (mean hard ASR of `--n-samples` (32) samples per level against its beta, on
`--n-heldout` (300) held-out test images) and diversity (mean pairwise L2 distance of the samples' (alpha, alpha*pattern)), then NC
unlearning (`mitigation.nc_unlearn`, same clean set, epochs and seed) with the distribution's sampler and with the single
trigger, and with a single SGD trigger searched in the whole image (no heat map: classic NC-style). Clean accuracy and
the ASR of the true trigger are measured on `--n-test` test images; `residual` is the mean ASR of `--n-samples` fresh samples of
the distribution's top level after the repair. The clean set is a seeded `--clean-frac` (20 %) of the training split (a
different subset per seed); the backdoored model is the zoo's seed-0 model unless `--model-seeds`.

    python benchmarks/mine.py                              # MNIST, seeds 0 1 2
    python benchmarks/mine.py cifar10 --epochs 5 --once-too ...   # fresh triggers every epoch against one draw (issue 21)
    python benchmarks/mine.py gtsrb cifar10 --n-levels 4 --steps 150 --k 2 --window-steps 100 --window-batch 4 --stride 6 --amp \
        --n-heldout 200 --n-samples 16
    (CIFAR-10: the random-colour zoo model is trained first when it is not cached, ~250 s on two idle cores)
"""
import argparse, time
import torch
from backdoor_nb.attacks import model_zoo, evaluate_backdoor
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.core import attack_success_rate
from backdoor_nb.invert import Perf
from backdoor_nb.mine import window_search, mine_staircase, sgd_trigger, evaluate_levels, compare_defenses, MineConfig, SearchConfig

def run(ds, seed, a, data):
    zm = model_zoo(ds, ['random-colour'], seed=seed if a.model_seeds else 0, data=data, progress=False)['random-colour']
    tgt = zm.backdoor.target
    clean = data.train.take(round(a.clean_frac * len(data.train)), seed=seed)
    test = data.test.take(min(a.n_test, len(data.test)), seed=1)
    x_ho, y_ho = test.x[:a.n_heldout], test.y[:a.n_heldout]
    t0 = time.time()
    perf = Perf(amp=a.amp)
    hm = window_search(zm.model, clean.x[:500], target=tgt, config=SearchConfig(steps=a.window_steps, batch_size=a.window_batch, stride=a.stride),
                       perf=perf, seed=seed, progress=False)
    t_win = time.time() - t0
    dist = mine_staircase(zm.model, clean.x, target=tgt, region=hm.region, n_levels=a.n_levels, config=MineConfig(steps=a.steps, k=a.k),
                          heatmap=hm, perf=perf, seed=seed, progress=False)
    t_mine = time.time() - t0 - t_win
    base = sgd_trigger(zm.model, clean.x, target=tgt, region=hm.region, x_heldout=x_ho, y_heldout=y_ho, perf=perf, seed=seed, progress=False)
    full = sgd_trigger(zm.model, clean.x, target=tgt, x_heldout=x_ho, y_heldout=y_ho, perf=perf, seed=seed, progress=False)
    rows = evaluate_levels(dist, zm.model, x_ho, y_ho, n=a.n_samples, seed=seed)
    fresh = dist.sample(a.n_samples, len(dist.levels) - 1, torch.Generator().manual_seed(10_000 + seed))
    def ev(m):
        r = evaluate_backdoor(m, test.x, test.y, zm.backdoor)
        r['residual_asr'] = attack_success_rate(m, x_ho, y_ho, trigger=[fresh[i:i + 1] for i in range(len(fresh))], target=tgt).mean().item()
        return r
    sources = {'dist': dist.sampler(), 'single': base.trigger, 'full': full.trigger}
    cmp = compare_defenses(zm.model, clean.x, clean.y, triggers=sources, target=tgt, epochs=a.epochs, resample=a.resample, eval_fn=ev, seed=seed)
    if a.once_too:  # the distribution with one draw for all epochs (the unlearning data before fresh triggers)
        cmp.reports['dist-once'] = compare_defenses(zm.model, clean.x, clean.y, triggers={'d': dist.sampler()}, target=tgt, epochs=a.epochs,
                                                    resample='once', eval_fn=ev, seed=seed).reports['d']
    total = time.time() - t0
    d, s, f = cmp.reports['dist'], cmp.reports['single'], cmp.reports['full']
    out = dict(ds=ds, seed=seed, region=hm.region, acc0=d.before['clean_acc'], asr0=d.before['asr'],
               acc_dist=d.after['clean_acc'], asr_dist=d.after['asr'], res_dist=d.after['residual_asr'],
               acc_single=s.after['clean_acc'], asr_single=s.after['asr'], res_single=s.after['residual_asr'],
               acc_full=f.after['clean_acc'], asr_full=f.after['asr'], res_full=f.after['residual_asr'],
               curves={k: {m: r.curve[m] for m in ('epoch', 'clean_acc', 'asr', 'residual_asr')} for k, r in cmp.reports.items()},
               base_asr=base.asr, valid=sum(r['valid'] for r in rows), n_levels=len(rows),
               asr_minus_beta=min(r['asr_mean'] - r['beta'] for r in rows), dist_mean=sum(r['distance'] for r in rows) / len(rows),
               t_win=t_win, t_mine=t_mine, t_total=total)
    print(f"| {ds} | {seed} | {hm.region} | {out['acc0']:.4f} / {out['asr0']:.4f} | {out['base_asr']:.3f} | "
          f"{out['valid']}/{out['n_levels']} (min ASR-beta {out['asr_minus_beta']:+.2f}) | {out['dist_mean']:.2f} | "
          f"{out['acc_dist']:.4f} / {out['asr_dist']:.4f} / {out['res_dist']:.4f} | "
          f"{out['acc_single']:.4f} / {out['asr_single']:.4f} / {out['res_single']:.4f} | "
          f"{out['acc_full']:.4f} / {out['asr_full']:.4f} / {out['res_full']:.4f} | "
          f"{t_win:.0f} + {t_mine:.0f} / {total:.0f} |", flush=True)
    if 'dist-once' in cmp.reports:
        o = cmp.reports['dist-once'].after
        out.update(acc_once=o['clean_acc'], asr_once=o['asr'], res_once=o['residual_asr'])
        print(f"|   | {seed} | distribution, triggers drawn once: acc / ASR / residual | {o['clean_acc']:.4f} / {o['asr']:.4f} / {o['residual_asr']:.4f} |", flush=True)
    return out

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('datasets', nargs='*', default=['mnist'])
    p.add_argument('--seeds', nargs='*', type=int, default=[0, 1, 2])
    p.add_argument('--model-seeds', action='store_true', help='use (train) the zoo model of each seed instead of seed 0')
    p.add_argument('--n-levels', type=int, default=10, help='N: levels i/N, i = 1..N-1')
    p.add_argument('--steps', type=int, default=300, help='optimizer steps per level')
    p.add_argument('--k', type=int, default=4, help='clean images per generated trigger per step')
    p.add_argument('--window-steps', type=int, default=150)
    p.add_argument('--window-batch', type=int, default=16)
    p.add_argument('--stride', type=int, default=None)
    p.add_argument('--epochs', type=int, default=1, help='unlearning epochs (the same for both trigger sources)')
    p.add_argument('--resample', default='epoch', choices=['epoch', 'once'], help="the distribution's triggers: drawn every epoch or once")
    p.add_argument('--once-too', action='store_true', help='also unlearn with the distribution drawn once (the comparison of the two)')
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    p.add_argument('--json', default=None, help='write the per-seed rows (with the unlearning curves) here')
    p.add_argument('--n-test', type=int, default=2000)
    p.add_argument('--n-heldout', type=int, default=300, help='test images the ASR of generated triggers is measured on')
    p.add_argument('--n-samples', type=int, default=32, help='generated triggers per level for validity, diversity and the residual ASR')
    p.add_argument('--clean-frac', type=float, default=0.2, help="the defender's clean set: this share of the training split")
    p.add_argument('--amp', action='store_true', help='bfloat16 autocast in the trigger optimizations')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import json, os
    print(f"load average {os.getloadavg()[0]:.1f}; clean set {a.clean_frac:.0%} of the training split; torch {torch.__version__}, {torch.get_num_threads()} thread(s), cpu; N = {a.n_levels}, {a.steps} steps per level, "
          f"unlearning {a.epochs} epoch(s), distribution's triggers drawn {'every epoch' if a.resample == 'epoch' else 'once'}")
    print("| data | seed | region | before: acc / ASR | SGD trigger ASR | valid levels | mean pairwise dist | "
          "distribution: acc / ASR / residual | single (region): acc / ASR / residual | single (whole image): acc / ASR / residual | "
          "seconds: window + staircase / total |")
    print("|---" * 11 + "|")
    for ds in a.datasets:
        data = load_data(shared_data(ds))
        res = [run(ds, s, a, data) for s in a.seeds]
        if a.json:
            with open(a.json.replace('{ds}', ds), 'w') as f: json.dump(res, f, indent=1)
        m = lambda k: sum(r[k] for r in res) / len(res)
        print(f"| **{ds} mean** | {len(res)} seeds | | {m('acc0'):.4f} / {m('asr0'):.4f} | {m('base_asr'):.3f} | "
              f"{sum(r['valid'] for r in res)}/{sum(r['n_levels'] for r in res)} | {m('dist_mean'):.2f} | "
              f"{m('acc_dist'):.4f} / {m('asr_dist'):.4f} / {m('res_dist'):.4f} | {m('acc_single'):.4f} / {m('asr_single'):.4f} / "
              f"{m('res_single'):.4f} | {m('acc_full'):.4f} / {m('asr_full'):.4f} / {m('res_full'):.4f} | {m('t_win'):.0f} + {m('t_mine'):.0f} / {m('t_total'):.0f} |", flush=True)
        print(f"targets ({ds}): post-defense ASR distribution < single: {'met' if m('asr_dist') < m('asr_single') else 'MISSED'} "
              f"({m('asr_dist'):.4f} vs {m('asr_single'):.4f}); clean-acc drop <= 3 points: "
              f"{'met' if m('acc0') - m('acc_dist') <= 0.03 else 'MISSED'} ({100 * (m('acc0') - m('acc_dist')):.2f}); "
              f"all levels valid: {'met' if all(r['valid'] == r['n_levels'] for r in res) else 'MISSED'}; "
              f"end to end {m('t_total'):.0f} s per model", flush=True)
        if a.once_too: print(f"distribution drawn once ({ds}): acc / ASR / residual {m('acc_once'):.4f} / {m('asr_once'):.4f} / {m('res_once'):.4f}", flush=True)

if __name__ == '__main__': main()
