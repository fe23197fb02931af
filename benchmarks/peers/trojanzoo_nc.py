"""TrojanZoo's Neural Cleanse on given models and a given support set; meant to run inside a TrojanZoo venv.

    python benchmarks/peers/trojanzoo_nc.py JOB.json OUT.json

JOB.json: {"threads": 2, "seed": 0, "dataset": "mnist", "epochs": null, "batch_size": null, "repo": "/path/to/checkout",
           "support": "support.safetensors",                       # x: (N, C, H, W) float in [0, 1]; y: (N,) int64
           "models": [{"name": "badnets", "weights": "badnets.safetensors",  # a plain state_dict
                       "arch": "backdoor_nb.models:build_model" or "path/to/file.py:callable", "arch_kwargs": {...}}]}
`repo` goes on sys.path so `backdoor_nb.models` builds the architectures (it needs only torch, numpy and fastcore).

TrojanZoo is driven through its own classes: the module becomes the `_model` of a `trojanvision.models.ImageModel`
(our models take [0, 1] images and normalize inside, so no `norm_par`), the attack is a `BadNet` holding a
`Watermark` only for the mark state NC optimizes, and `NeuralCleanse` is built with its defaults (epochs, lr, cost,
patience, thresholds), `original=True` (nothing loaded). Per label we call its `optimize_mark(label, loader=...)` as its
`get_mark_loss_list` does, with the support set as the loader (shuffled, TrojanZoo's dataset batch size unless the
job gives one; `epochs` null: its `defense_remask_epoch`), then score the mask L1 norms with its `normalize_mad`.
TrojanZoo prints that statistic but has no flagging rule; we flag a label whose index exceeds 2 with its norm below
the median (Neural Cleanse's rule); the model's score is the largest index below the median, as ours. The validation
of each trigger's ASR on a dataset and the .npz it writes are left out (not part of the timing); the support-set ASR
of each final mark is measured after the timed scan.
"""
import importlib, importlib.util, json, sys, time, warnings
from pathlib import Path

def build(spec, kwargs):
    "The module `spec` names ('pkg.module:callable' or 'path/to/file.py:callable') called with `kwargs`."
    mod, _, fn = spec.rpartition(':')
    if mod.endswith('.py') or '/' in mod:
        sp = importlib.util.spec_from_file_location(f'_peer_arch_{abs(hash(mod))}', mod)
        module = importlib.util.module_from_spec(sp); sp.loader.exec_module(module)
    else: module = importlib.import_module(mod)
    return getattr(module, fn)(**(kwargs or {}))

def default_batch_size(dataset):
    "TrojanZoo's training batch size for `dataset` (its dataset.yml; a negative size means per GPU)."
    from trojanvision.configs import config
    from trojanvision.environ import env
    bs = config.get_config(dataset_name=dataset or 'default')['dataset']['batch_size']
    return bs if bs >= 0 else -bs * max(1, env['num_gpus'])

def scan(module, x, y, epochs=None, batch_size=128, seed=0):
    "TrojanZoo's NC over every label of `module` on the support set `(x, y)`; a JSON-ready dict."
    import torch
    from trojanvision.models import ImageModel
    from trojanvision.marks import Watermark
    from trojanvision.attacks import BadNet
    from trojanvision.defenses import NeuralCleanse
    from trojanzoo.utils.metric import normalize_mad

    class Counting(NeuralCleanse):  # counts the epochs each label runs (its early stop ends some sooner)
        def check_early_stop(self, *a, **kw):
            self.epochs_run += 1
            return super().check_early_stop(*a, **kw)

    C, H, W = x.shape[1:]
    with torch.no_grad(): K = module.eval()(x[:1]).shape[1]
    model = ImageModel(name='peer', model=module, data_shape=[C, H, W], num_classes=K, modify_first_layer_channel=False)
    attack = BadNet(mark=Watermark(data_shape=[C, H, W]), model=model, dataset=None, train_mode='none')
    nc = Counting(attack=attack, original=True, model=model, dataset=None)
    if epochs is not None: nc.defense_remask_epoch = epochs
    hp = {k: getattr(nc, k) for k in ('defense_remask_epoch', 'defense_remask_lr', 'init_cost', 'cost_multiplier_up', 'cost_multiplier_down',
                                      'nc_patience', 'nc_asr_threshold', 'nc_early_stop_threshold', 'early_stop_patience')}
    hp['batch_size'] = batch_size
    # the mark state ModelInspection.detect sets before its scan: a full-image mark at offset 0
    mark = attack.mark
    for k, v in {'mark': torch.zeros(C + 1, H, W), 'mark_height': H, 'mark_width': W, 'mark_height_offset': 0,
                 'mark_width_offset': 0, 'mark_random_pos': False}.items(): setattr(mark, k, v)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=g)
    torch.manual_seed(seed)  # its randn_like mark initialization (this is a separate process)
    marks, epochs_run = [], []
    t0, c0 = time.time(), time.process_time()
    for label in range(K):
        nc.epochs_run = 0
        m, _ = nc.optimize_mark(label, loader=loader, verbose=False)
        marks.append(m.detach().clone()); epochs_run.append(nc.epochs_run)
    seconds, cpu = time.time() - t0, time.process_time() - c0
    l1 = torch.stack([m[-1].abs().sum() for m in marks]).float()
    idx = normalize_mad(l1)
    low = l1 < l1.median()  # torch's median: the lower middle value for an even count (np.median in the original averages)
    flagged = [l for l in range(K) if idx[l] > 2 and low[l]]
    with torch.no_grad():
        asr = [float((model(mark.add_mark(x, mark=m)).argmax(1) == l)[y != l].float().mean()) for l, m in enumerate(marks)]
    return {'l1': l1.tolist(), 'anomaly': idx.tolist(), 'flagged': flagged, 'max_anomaly': float(idx[low].max()) if low.any() else 0.,
            'rule': 'normalize_mad(l1) > 2 and l1 < median (TrojanZoo prints the index; it has no flagging rule)',
            'asr_support': asr, 'epochs_run': epochs_run, 'seconds': seconds, 'cpu_seconds': cpu,
            'threads': torch.get_num_threads(), 'hyper': hp}

def main(job_path, out_path):
    job = json.loads(Path(job_path).read_text())
    warnings.filterwarnings('ignore', message='Converting a tensor with requires_grad=True to a scalar')  # its float(mask.norm()) each epoch
    if job.get('repo'): sys.path.insert(0, str(job['repo']))
    import torch, trojanzoo
    from safetensors.torch import load_file
    torch.set_num_threads(int(job.get('threads') or torch.get_num_threads()))
    sup = load_file(job['support'])
    bs = job.get('batch_size') or default_batch_size(job.get('dataset'))
    out = {'trojanzoo': getattr(trojanzoo, '__version__', '?'), 'torch': torch.__version__, 'models': {}}
    for m in job['models']:
        module = build(m['arch'], m.get('arch_kwargs'))
        module.load_state_dict(load_file(m['weights']))
        out['models'][m['name']] = r = scan(module, sup['x'], sup['y'], job.get('epochs'), bs, int(job.get('seed', 0)))
        print(f"trojanzoo {m['name']}: flagged {r['flagged']}, max index {r['max_anomaly']:.2f}, {r['seconds']:.1f} s "
              f"({r['cpu_seconds']:.1f} CPU s)", file=sys.stderr, flush=True)
        Path(out_path).write_text(json.dumps(out, indent=1))

if __name__ == '__main__':
    if len(sys.argv) != 3: sys.exit(__doc__)
    main(*sys.argv[1:])
