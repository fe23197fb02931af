"""Every detector over the package's model zoos in one table, the calibrated verdict on held-out models, and the engines' throughput.

    python benchmarks/evaluate.py                                   # MNIST zoo: all recipes (seed 0) + clean seeds 0-7, every detector
    python benchmarks/evaluate.py --datasets mnist cifar10 gtsrb    # + the CIFAR-10 / GTSRB zoo models already trained (cached)
    python benchmarks/evaluate.py --names clean badnets blend --clean-seeds 0 1 --detectors smoothinv nc   # a quick subset
    python benchmarks/evaluate.py --throughput 4                    # + local engine vs by hand vs Ray on 4 MNIST models
    python benchmarks/evaluate.py --save-default                    # + write backdoor_nb/assets/calibrator_mnist.json

Models: `attacks.model_zoo` checkpoints (MNIST ones are trained on first use from the shared real-data file, seconds each;
CIFAR-10 / GTSRB ones are only used when already in the zoo cache, unless `--train`). The script writes a manifest CSV
listing them (ground truth from the sidecars) and runs `evaluate` on it with a result cache (`--cache`, default
~/.cache/backdoor_nb/evaluate), so a rerun only computes what changed (e.g. a faster Neural Cleanse: its config hash
changes only if its config does; clear the cache or pass a new --cache to recompute).

Calibrated verdict, held out: the MNIST zoo is split in two halves by trigger type and clean seed (A: every other
recipe in `RECIPES` order starting with badnets, clean seeds 0, 2, 4, 6; B: the others). A calibrator fitted on A
scores B and one fitted on B scores A, so every model gets a probability from a calibrator that never saw it
(cross-fitting); AUROC and cross-entropy are computed on those. The same is reported "in scope": without the recipes outside
the detectors' threat model (`--out-of-scope`: all-to-all and source-specific mappings, which have no single
all-source target to find, and the two adaptive attacks trained against SmoothInv's smoothing), whose backdoored
models score like clean ones for every detector. The shipped default calibrator (`--save-default`) is fitted on
the whole MNIST zoo with the default detectors (smoothinv, nc), and its provenance records both held-out checks.

Results: a table on stdout, `--out` (default benchmarks/results/evaluate.json), and beside it evaluate_<dataset>.json /
.html (the `EvalReport`s) and evaluate_throughput.json (`--throughput`).
"""
import argparse, json, os, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

def zoo_entries(ds, names, clean_seeds, train):
    "`(name, path, asr)` of the zoo models of `ds` (trained when `train`, else only those in the cache)."
    from backdoor_nb.attacks import DATASETS, RECIPES, _key, default_cache, model_zoo
    from backdoor_nb.data import load_data
    from backdoor_nb.scan import _zoo_source
    cfg = {k: v for k, v in DATASETS[ds].items() if k != 'source'}
    want = [(n, 0) for n in names] + [('clean', s) for s in clean_seeds if not (s == 0 and 'clean' in names)]
    out, data = [], None
    for n, s in want:
        path = default_cache() / _key(ds, n, s, cfg, RECIPES[n])
        if not path.with_name(path.name + '.json').exists():
            if not train: continue
            data = data or load_data(_zoo_source(ds))
            model_zoo(ds, [n], seed=s, data=data, progress=False)
        meta = json.loads(path.with_name(path.name + '.json').read_text())['meta']
        out.append((f"{ds}/{n}" + (f"-s{s}" if n == 'clean' else ''), path.with_name(path.name + '.safetensors'), meta['metrics'].get('asr')))
    return out

def write_manifest(entries, path):
    lines = ['name,weights,arch,data,backdoored,target'] + [f"{n},{p},,,," for n, p, _ in entries]
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text('\n'.join(lines) + '\n')
    return path

def halves(rows):
    "Split MNIST rows by trigger type / clean seed: A = every other recipe from badnets + even clean seeds, B = the rest."
    from backdoor_nb.attacks import RECIPES
    bd = [n for n in RECIPES if n != 'clean']
    def half(name):
        n = name.split('/', 1)[1]
        if n.startswith('clean'): return 'A' if int(n.rsplit('-s', 1)[1] if '-s' in n else 0) % 2 == 0 else 'B'
        return 'A' if bd.index(n) % 2 == 0 else 'B'
    return [r for r in rows if half(r['name']) == 'A'], [r for r in rows if half(r['name']) == 'B']

def heldout(rows, detectors, l2):
    "Cross-fitted calibrated probabilities: fit on one half, predict the other; metrics of the pooled held-out predictions."
    from backdoor_nb.evaluate import fit_verdict, add_verdict, eval_metrics
    A, B = halves([r for r in rows if r['error'] is None])
    out, per = [], {}
    for fit, test, tag in ((A, B, 'A->B'), (B, A, 'B->A')):
        cal = fit_verdict(fit, detectors, l2=l2)
        pred = [add_verdict(json.loads(json.dumps(r)), cal) for r in test]
        assert all(p['verdict']['calibrated'] for p in pred)
        per[tag] = {k: eval_metrics(pred, detectors)['combined'][k] for k in ('n', 'n_backdoored', 'auroc', 'cross_entropy', 'flag_fpr', 'flag_tpr')}
        out += pred
    m = eval_metrics(out, detectors)['combined']
    clean_flagged = [r['name'] for r in out if r['backdoored'] is False and r['verdict']['backdoored']]
    return out, {'pooled': {k: m[k] for k in ('n', 'n_backdoored', 'auroc', 'cross_entropy', 'tpr_at_5fpr', 'flag_tpr', 'flag_fpr', 'target_acc')},
                 'clean_flagged': clean_flagged, 'per_split': per}

def throughput(entries, detectors, workers):
    "The same models by hand (one after another, in this process), on the local engine, and on Ray (both with `workers`)."
    import torch
    from backdoor_nb.evaluate import read_manifest, evaluate_model, evaluate, same_rows, cores, add_verdict
    ms = read_manifest(entries)
    t0 = time.time()
    hand = [evaluate_model(e, detectors) for e in ms]
    t_hand = time.time() - t0
    loc = evaluate(ms, detectors, 'local', workers=workers, progress=False)
    ray = evaluate(ms, detectors, 'ray', workers=workers, progress=False)
    return {'models': len(ms), 'detectors': detectors, 'cores': cores(), 'hand_threads': torch.get_num_threads(),
            'hand_seconds': round(t_hand, 1), 'local_seconds': round(loc.seconds, 1), 'ray_seconds': round(ray.seconds, 1),
            'local_workers': loc.config['workers'], 'local_threads': loc.config['threads'],
            'local_over_hand': round(loc.seconds / t_hand, 3), 'ray_over_hand': round(ray.seconds / t_hand, 3),
            'ray_rows_identical_to_local': same_rows(loc.rows, ray.rows),
            'hand_rows_identical_to_local': same_rows([add_verdict(r) for r in hand], loc.rows),  # 2 threads by hand, 1 per worker
            'errors': [r['error'] for r in loc.rows + ray.rows if r['error']]}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from backdoor_nb.attacks import RECIPES
    from backdoor_nb.scan import DETECTORS
    ap.add_argument('--datasets', nargs='+', default=['mnist'], choices=['digits', 'mnist', 'cifar10', 'gtsrb'])
    ap.add_argument('--names', nargs='*', default=list(RECIPES), help='zoo recipes (seed 0)')
    ap.add_argument('--clean-seeds', nargs='*', type=int, default=list(range(8)), help='seeds of the clean models')
    ap.add_argument('--detectors', nargs='+', default=sorted(DETECTORS, key=lambda n: DETECTORS[n].cost))
    ap.add_argument('--train', action='store_true', help='train missing CIFAR-10 / GTSRB zoo models (minutes each); MNIST always trains')
    ap.add_argument('--engine', default='local'); ap.add_argument('--workers', type=int, default=None)
    ap.add_argument('--cache', default=os.path.expanduser('~/.cache/backdoor_nb/evaluate'))
    ap.add_argument('--l2', type=float, default=1.0, help="the calibrator's L2 penalty")
    ap.add_argument('--out-of-scope', nargs='*', default=['all-to-all', 'source-specific', 'adaptive-p', 'adaptive-p-mgda'],
                    help='recipes outside the detectors\' threat model (reported apart as well: "in scope" leaves them out)')
    ap.add_argument('--throughput', type=int, default=0, help='also time N MNIST models: by hand, local engine, Ray')
    ap.add_argument('--throughput-detectors', nargs='+', default=['smoothinv', 'nc'])
    ap.add_argument('--save-default', action='store_true', help='write the default calibrator (MNIST, smoothinv + nc) to backdoor_nb/assets/')
    ap.add_argument('--out', default=str(HERE / 'results' / 'evaluate.json'))
    a = ap.parse_args()
    from backdoor_nb.evaluate import evaluate, fit_verdict, _fmt
    out_dir = Path(a.out).parent
    res = {'argv': sys.argv, 'load_before': os.getloadavg(), 'datasets': {}}
    for ds in a.datasets:
        ents = zoo_entries(ds, a.names, a.clean_seeds, train=a.train or ds in ('mnist', 'digits'))
        if not ents: print(f"{ds}: no zoo model in the cache (train them with --train)"); continue
        asr = {n: s for n, _, s in ents}
        man = write_manifest(ents, Path(a.cache) / f"manifest_{ds}.csv")
        rep = evaluate(man, a.detectors, a.engine, workers=a.workers, cache_dir=a.cache)
        rep.to_json(out_dir / f"evaluate_{ds}.json"); rep.to_html(out_dir / f"evaluate_{ds}.html")
        d = {'rows': rep.rows, 'metrics': rep.metrics, 'seconds': rep.seconds, 'config': rep.config, 'asr': asr}
        if ds == 'mnist' and len(rep.rows) >= 8:
            d['heldout'] = {}
            scope = [r for r in rep.rows if r['name'].split('/', 1)[1] not in a.out_of_scope]
            for key, dets, rows in (('default', ['smoothinv', 'nc'], rep.rows), ('all', list(rep.detectors), rep.rows),
                                    ('default, in scope', ['smoothinv', 'nc'], scope), ('all, in scope', list(rep.detectors), scope)):
                if not set(dets) <= set(rep.detectors): continue
                preds, m = heldout(rows, dets, a.l2)
                d['heldout'][key] = {'detectors': dets, 'models': len(rows), **m, 'p': {r['name']: r['verdict']['score'] for r in preds}}
            if a.save_default and 'default' in d['heldout']:
                cal = fit_verdict(rep, ['smoothinv', 'nc'], l2=a.l2, name='backdoor_nb MNIST zoo (smoothinv + nc)',
                                  provenance={'command': ' '.join(['python', 'benchmarks/evaluate.py', *sys.argv[1:]]),
                                              'zoo': f"attacks.model_zoo('mnist'): recipes {' '.join(a.names)} at seed 0, clean seeds "
                                                     f"{' '.join(map(str, a.clean_seeds))}; data: shared mnist_test10k.npz",
                                              'out_of_scope': a.out_of_scope,
                                              'heldout_check': {k: v for k, v in d['heldout']['default'].items() if k != 'p'},
                                              'heldout_check_in_scope': {k: v for k, v in d['heldout'].get('default, in scope', {}).items() if k != 'p'}})
                path = cal.save(ROOT / 'backdoor_nb' / 'assets' / 'calibrator_mnist.json')
                print(f"default calibrator: {path}")
        res['datasets'][ds] = d
        # the one table
        print(f"\n{ds}: {len(rep.rows)} models, {rep.seconds:.0f} s ({rep.config['workers']} workers x {rep.config['threads']} threads)")
        hp = d.get('heldout', {}).get('default', {}).get('p', {})
        head = f"{'model':26} {'truth':>5} {'ASR':>5} " + ' '.join(f"{n:>17}" for n in rep.detectors) + f" {'vote':>5} {'p(held-out)':>11}"
        print(head)
        for r in rep.rows:
            t = '-' if not r['backdoored'] else str(r['target'] if r['target'] is not None else 'all')
            if r['error']: print(f"{r['name']:26} {t:>5} ERROR {r['error']}"); continue
            cells = ' '.join(f"{','.join(map(str, s['flagged'])) or '-':>5} {s['score']:6.2f} {s['seconds']:3.0f}s" for s in r['detectors'].values())
            v = r['verdict']
            print(f"{r['name']:26} {t:>5} {_fmt(asr.get(r['name']), '.2f'):>5} {cells} {(str(v['target']) if v['backdoored'] else '-'):>5} "
                  f"{_fmt(hp.get(r['name']), '.3f'):>11}")
        print(); print(rep.metrics_table())
        for key, h in d.get('heldout', {}).items():
            p = h['pooled']
            print(f"calibrated verdict ({' + '.join(h['detectors'])}{', in scope' if 'scope' in key else ''}), cross-fitted held-out on {p['n']} models: AUROC {p['auroc']:.3f}, "
                  f"CE {p['cross_entropy']:.3f}, TPR {p['flag_tpr']:.3f}, FPR {p['flag_fpr']:.3f}, clean flagged: {h['clean_flagged'] or 'none'}; "
                  + '; '.join(f"{k}: AUROC {_fmt(v['auroc'])} CE {_fmt(v['cross_entropy'])}" for k, v in h['per_split'].items()))
    if a.throughput:
        ents = zoo_entries('mnist', a.names, a.clean_seeds, train=True)[:a.throughput]
        t = throughput(write_manifest(ents, Path(a.cache) / "manifest_throughput.csv"), a.throughput_detectors, a.workers or 2)
        res['throughput'] = t
        Path(a.out).with_name('evaluate_throughput.json').write_text(json.dumps({**t, 'load': os.getloadavg(), 'argv': sys.argv}, indent=1))
        print(f"\nthroughput, {t['models']} MNIST models ({', '.join(t['detectors'])}): by hand {t['hand_seconds']} s ({t['hand_threads']} threads), "
              f"local engine {t['local_seconds']} s ({t['local_workers']} x {t['local_threads']}: {t['local_over_hand']:.2f} of by hand), "
              f"Ray {t['ray_seconds']} s ({t['ray_over_hand']:.2f}); Ray rows identical to local: {t['ray_rows_identical_to_local']}, "
              f"by-hand rows identical to local: {t['hand_rows_identical_to_local']}")
    res['load_after'] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))
    print(f"\nload average before {res['load_before']}, after {res['load_after']}; results in {a.out}")

if __name__ == '__main__': main()
