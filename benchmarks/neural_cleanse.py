"""Neural Cleanse benchmark: detection over the model zoo (flagged labels, anomaly index, AUROC) and speed
(full scans; batched versus the per-label sequential reference with the same steps and hyper-parameters).

    python benchmarks/neural_cleanse.py                    # MNIST zoo, every recipe
    python benchmarks/neural_cleanse.py mnist cifar10 gtsrb --names clean badnets blend
    python benchmarks/neural_cleanse.py --speed-only

Side by side with TrojanZoo's Neural Cleanse (same models, same support set, same thread count; its defaults):
    python3.11 -m venv /work/tzvenv && /work/tzvenv/bin/pip install trojanzoo torch torchvision safetensors fastcore "matplotlib<3.9"
    python benchmarks/neural_cleanse.py mnist --names clean badnets blend --peer trojanzoo --peer-python /work/tzvenv/bin/python
TrojanZoo is never a dependency of backdoor_nb: this script installs nothing and runs benchmarks/peers/trojanzoo_nc.py in
that interpreter (trojanzoo 2.0.3 imports matplotlib.cm.get_cmap, gone in matplotlib 3.9; fastcore lets the peer
build backdoor_nb's architectures from this checkout).
"""
import argparse, importlib.util, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from backdoor_nb.attacks import RECIPES, model_zoo
from backdoor_nb.core import auroc
from backdoor_nb.data import load_data, shared_data
from backdoor_nb.neural_cleanse import neural_cleanse
from backdoor_nb.invert import Perf

PEER_SCRIPT = Path(__file__).parent/'peers'/'trojanzoo_nc.py'
PEER_VENV = ('python3.11 -m venv /work/tzvenv && /work/tzvenv/bin/pip install trojanzoo torch torchvision safetensors fastcore "matplotlib<3.9"'
             ', then pass --peer-python /work/tzvenv/bin/python')

def peer_python(path=None)->str:
    "The interpreter that runs the TrojanZoo peer: `path`, else this one; exits with the venv command when it cannot import trojanzoo."
    if path is None and importlib.util.find_spec('trojanzoo') is not None: return sys.executable
    py = path or sys.executable
    try: ok = subprocess.run([py, '-c', 'import trojanvision.defenses'], capture_output=True, timeout=300).returncode == 0
    except OSError: ok = False
    if not ok: sys.exit(f"--peer trojanzoo: {py} cannot import trojanzoo/trojanvision; make a separate venv: {PEER_VENV}")
    return py

def run_peer(py, ds, zoo, support, seed, epochs=None, batch_size=None)->dict:
    "TrojanZoo's NC on every model of `zoo` with the `support` images, in the interpreter `py`: `{name: result}`."
    from safetensors.torch import save_file
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); save_file({'x': support.x.contiguous(), 'y': support.y.long().contiguous()}, d/'support.safetensors')
        models = []
        for n, zm in zoo.items():
            cfg = getattr(zm.model, 'config', None)
            if not cfg: raise ValueError(f"--peer: model {n!r} has no `config` naming its architecture")
            save_file({k: v.detach().cpu().contiguous() for k, v in zm.model.state_dict().items()}, d/f'{n}.safetensors')
            models.append(dict(name=n, weights=str(d/f'{n}.safetensors'), arch='backdoor_nb.models:build_model',
                               arch_kwargs={'arch': cfg['arch'], **cfg['kwargs']}))
        job = dict(threads=torch.get_num_threads(), seed=seed, dataset=ds, epochs=epochs, batch_size=batch_size,
                   repo=str(Path(__file__).resolve().parents[1]), support=str(d/'support.safetensors'), models=models)
        (d/'job.json').write_text(json.dumps(job))
        subprocess.run([py, str(PEER_SCRIPT), str(d/'job.json'), str(d/'out.json')], check=True, stdout=subprocess.DEVNULL)
        return json.loads((d/'out.json').read_text())['models']

def peer_summary(rows)->dict:
    "CPU-time ratio (peer / ours, summed over the models with both) and whether ours flags every target the peer flags."
    both = [r for r in rows if r.get('peer')]
    if not both: raise ValueError("no row has a peer result")
    ours, theirs = sum(r['cpu_seconds'] for r in both), sum(r['peer']['cpu_seconds'] for r in both)
    hit = lambda flagged, r: r['target'] is not None and r['target'] in flagged
    return {'models': len(both), 'cpu_s': ours, 'peer_cpu_s': theirs, 'cpu_ratio': theirs / ours,
            'peer_targets': sum(hit(r['peer']['flagged'], r) for r in both), 'our_targets': sum(hit(r['flagged'], r) for r in both),
            'covers': all(hit(r['flagged'], r) for r in both if hit(r['peer']['flagged'], r))}

def detection(ds, names, n_support, seed, amp, clean_seeds, channels_last=False, max_steps=1000, peer=None):
    data = load_data(shared_data(ds))
    zoo = model_zoo(ds, names, seed=seed, data=data, progress=False)
    for s in range(seed + 1, seed + 1 + clean_seeds):  # more clean models, so the AUROC has more than one negative
        zoo[f'clean-s{s}'] = model_zoo(ds, ['clean'], seed=s, data=data, progress=False)['clean']
    support = data.test.take(n_support, seed=seed + 1)
    rows = []
    for n, zm in zoo.items():
        c0 = time.process_time()
        r = neural_cleanse(zm.model, support.x, progress=False, seed=seed, perf=Perf(amp=amp, fast=channels_last), config=dict(max_steps=max_steps))
        cpu = time.process_time() - c0
        tgt = zm.backdoor.target if zm.backdoor else None
        ok = (r.flagged == [] if zm.backdoor is None else (tgt in r.flagged if tgt is not None else None))
        rows.append(dict(ds=ds, name=n, backdoored=zm.backdoored, target=tgt, flagged=r.flagged, score=r.max_anomaly,
                         target_index=(r.anomaly[tgt].item() if tgt is not None else float('nan')), ok=ok, seconds=r.seconds, cpu_seconds=cpu,
                         steps=r.steps.float().mean().item(), unreached=int((~r.reached).sum()),
                         asr=zm.metrics.get('asr', float('nan'))))
        x = rows[-1]
        print(f"{ds:8} {n:16} {str(x['target']):>6} {str(x['flagged']):>10} {x['score']:>9.2f} {x['target_index']:>9.2f} "
              f"{str(x['ok']):>6} {x['seconds']:>7.1f} {x['steps']:>6.0f} {x['unreached']:>4}", flush=True)
    if peer is not None:
        res = run_peer(peer['python'], ds, zoo, support, seed, peer['epochs'], peer['batch_size'])
        for x in rows: x['peer'] = res[x['name']]
    return rows

def print_peer(rows):
    "Both rows per model (backdoor_nb, trojanzoo) and the closing CPU-ratio line; returns `peer_summary(rows)`."
    print(f"\n{'dataset':8} {'model':16} {'scanner':11} {'target':>6} {'flagged':>10} {'max index':>9} {'s':>7} {'CPU s':>7}")
    for r in rows:
        for who, x in (('backdoor_nb', dict(r, max_anomaly=r['score'])), ('trojanzoo', r.get('peer'))):
            if x: print(f"{r['ds']:8} {r['name']:16} {who:11} {str(r['target']):>6} {str(x['flagged']):>10} {x['max_anomaly']:>9.2f} "
                        f"{x['seconds']:>7.1f} {x['cpu_seconds']:>7.1f}")
    s = peer_summary(rows)
    print(f"CPU time: trojanzoo {s['peer_cpu_s']:.1f} s / backdoor_nb {s['cpu_s']:.1f} s = {s['cpu_ratio']:.1f}x over {s['models']} models; "
          f"targets flagged: trojanzoo {s['peer_targets']}, backdoor_nb {s['our_targets']}; "
          f"backdoor_nb flags every target trojanzoo flags: {s['covers']}")
    return s

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
    p.add_argument('--peer', choices=['trojanzoo'], default=None, help="also run TrojanZoo's Neural Cleanse on the same models and support set")
    p.add_argument('--peer-python', default=None, help='interpreter that can import trojanzoo (default: this one; see the venv command above)')
    p.add_argument('--peer-epochs', type=int, default=None, help="TrojanZoo's epochs per label (default: its defense_remask_epoch, 10)")
    p.add_argument('--peer-batch-size', type=int, default=None, help="TrojanZoo's batch size (default: its dataset.yml value: MNIST 512, CIFAR-10/GTSRB 96)")
    p.add_argument('--json', default=None, help='write the rows, AUROC and speed to this JSON file (default: benchmarks/results/neural_cleanse_<datasets>.json)')
    a = p.parse_args(argv)
    peer = dict(python=peer_python(a.peer_python), epochs=a.peer_epochs, batch_size=a.peer_batch_size) if a.peer else None
    out = {'argv': sys.argv[1:] if argv is None else list(argv), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
           'load_before': os.getloadavg()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu; {a.n_support} clean support images per scan"
          f"{', bfloat16 autocast' if a.amp else ''}{', channels-last' if a.channels_last else ''}, at most {a.max_steps} steps")
    if not a.speed_only:
        print(f"{'dataset':8} {'model':16} {'target':>6} {'flagged':>10} {'max index':>9} {'tgt index':>9} {'right':>6} {'NC s':>7} {'steps':>6} {'unr.':>4}")
        rows = [r for ds in a.datasets for r in detection(ds, a.names, a.n_support, a.seed, a.amp, a.clean_seeds, a.channels_last, a.max_steps, peer)]
        pos = [r['backdoored'] for r in rows]
        if any(pos) and not all(pos):
            out['auroc'] = auroc([r['score'] for r in rows], pos)
            print(f"\nAUROC of the max anomaly index over {len(rows)} models: {out['auroc']:.3f}")
        out['rows'] = rows
        missed = [f"{r['ds']}/{r['name']}" for r in rows if r['ok'] is False]
        print("missed or wrong:", ', '.join(missed) or 'none')
        if peer: out['peer'] = {'python': peer['python'], **print_peer(rows)}
        for ds in a.datasets:
            t = [r['seconds'] for r in rows if r['ds'] == ds]
            print(f"{ds}: full scan {min(t):.1f}-{max(t):.1f} s (median {sorted(t)[len(t) // 2]:.1f} s)")
    if a.speed_steps > 0: out['speed'] = speed(a.speed_steps, a.seed)
    out['load_after'] = os.getloadavg()
    path = Path(a.json or Path(__file__).parent/'results'/f"neural_cleanse_{'_'.join(a.datasets) if not a.speed_only else 'speed'}.json")
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(out, indent=1, default=float))
    print('saved', path)

if __name__ == '__main__': main()
