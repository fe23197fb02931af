"Mitigation: bad input, pruning mechanics, save/load of repaired models, and repairs on a toy backdoored model."
import copy
import pytest, torch
from torch import nn
from backdoor_nb.attacks import Backdoor, AllToOne, PoisonedData, place, solid_patch, evaluate_backdoor
from backdoor_nb.core import batched_logits
from backdoor_nb.data import ImageData
from backdoor_nb.layers import resolve_layer, unit_activations, prune_units, unit_masks, frozen_zeros
from backdoor_nb.mitigation import (nc_filter, nc_prune, nc_unlearn, fine_pruning, repair_demo_step, PruningExplorer,
                                    FilterConfig, PruneConfig, UnlearnConfig, FinePruningConfig)
from backdoor_nb.models import build_model, save_model, load_model, train

def _toy_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.25 * torch.rand(n, 1, 8, 8, generator=g)
    for k in range(4): x[y == k, :, 2*k:2*k+2, :6] += 0.6
    return ImageData(x.clamp(0, 1), y, list('abcd'))

@pytest.fixture(scope='module')
def toy():
    "A small BatchNorm conv net with a 2x2 corner-square backdoor to class 0, trained in a few seconds."
    tr, te = _toy_data(800, 0), _toy_data(300, 1)
    bd = Backdoor(place(solid_patch(2), (1, 8, 8), 'bottom-right'), AllToOne(0))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                        nn.Linear(512, 32), nn.ReLU(), nn.Linear(32, 4))
    train(net, PoisonedData(tr, bd, 0.1), epochs=3, lr=0.05, batch_size=64, progress=False, device='cpu')
    clean = tr.take(100, seed=1)
    ev = lambda m: evaluate_backdoor(m, te.x, te.y, bd, device='cpu')
    assert ev(net)['asr'] > 0.9 and ev(net)['clean_acc'] > 0.9
    return net, clean, te, bd, ev

def _same(a, b): return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

@pytest.mark.parametrize('call, msg', [
    (lambda n, c, t: nc_unlearn(n, c.x[:0], c.y[:0], triggers=t), 'x is empty'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, config={'layer': 'nope'}), "layer='nope' is not a module"),
    (lambda n, c, t: fine_pruning(n, c.x, c.y, config={'layer': '2'}), "layer='2' is a ReLU"),
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, config={'asr_budget': -0.1}), 'asr_budget must be a number in [0, 1]'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, config={'acc_budget': 1.1}), 'acc_budget must be a number in [0, 1]'),
    (lambda n, c, t: fine_pruning(n, c.x, c.y, config={'acc_budget': 5}), 'acc_budget must be a number in [0, 1]'),
    (lambda n, c, t: nc_filter(n, c.x, triggers=t, config={'fpr': 2}), 'fpr must be a number in [0, 1]'),
    (lambda n, c, t: nc_filter(n, c.x, triggers=t, config={'min_units': 0}), 'min_units must be an int >= 1'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y, triggers=t, config={'frac': 1.5}), 'frac must be a number in [0, 1]'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y[:10], triggers=t), 'y has 10 labels for 100 images'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, target=4), 'target=4 is out of range'),
])
def test_bad_input(toy, call, msg):
    net, clean, te, bd, ev = toy
    with pytest.raises((ValueError, TypeError)) as e: call(net, clean, bd.trigger)
    assert msg in str(e.value)

def test_layers_and_pruning_are_exact_and_saveable(tmp_path):
    net = build_model('compact_cnn', seed=0, width=2, size=16)
    x = torch.rand(8, 3, 16, 16)
    L = resolve_layer(net, x, default='last-conv-output')
    assert (L.name, L.tap, L.n_units) == ('features.11', 'features.14', 8)
    assert [z[0] for z in L.zero] == ['features.11', 'features.12']  # the conv and its BatchNorm
    pruned = prune_units(copy.deepcopy(net), L, [1, 2])
    assert unit_activations(pruned, L, x)[:, [1, 2]].abs().max() == 0
    data = type('D', (), {'__len__': lambda s: 8, 'get_batch': lambda s, i: (x[i], torch.arange(8)[i])})()
    with frozen_zeros(unit_masks(pruned, L, [1, 2])):
        train(pruned, data, epochs=1, lr=0.1, batch_size=4, progress=False, device='cpu')
    assert unit_activations(pruned, L, x)[:, [1, 2]].abs().max() == 0
    back, _ = load_model(save_model(pruned, tmp_path / 'p'), device='cpu')  # a plain checkpoint: same keys, same arch
    torch.testing.assert_close(batched_logits(back, x), batched_logits(pruned, x))
    assert resolve_layer(net, x).name == 'head'

def test_repairs_on_toy(toy):
    net, clean, te, bd, ev = toy
    before = copy.deepcopy(net)
    m, r = nc_unlearn(net, clean.x, clean.y, triggers=bd.trigger, target=0, config={'epochs': 4, 'lr': 0.01}, eval_fn=ev, device='cpu')
    assert r.before['asr'] > 0.9 and r.after['asr'] < 0.1 and r.after['clean_acc'] > 0.9
    m, r = nc_prune(net, clean.x, clean.y, triggers=[bd.trigger], target=0, config={'step': 1/32, 'full_curve': False}, eval_fn=ev, device='cpu')
    assert r.info['reached_asr_budget'] and r.after['asr'] < 0.3
    ex = PruningExplorer(r, net); ex.slider.value = 0.
    assert ex.current['n_pruned'] == 0 and abs(ex.current['asr'] - r.before['asr']) < 1e-9
    m, r = fine_pruning(net, clean.x, clean.y, config={'epochs': 2}, device='cpu')
    gone = r.info['order'][:round(r.chosen * 8)]
    assert len(gone) and unit_activations(m, r.info['layer'], te.x)[:, gone].abs().max() == 0
    f = nc_filter(net, clean.x, triggers=bd.trigger, config={'top': 0.25}, device='cpu')
    assert f.evaluate(te.x, bd.stamp(te.x[te.y != 0]))['fnr'] < 0.1
    d = nc_filter(net, clean.x, triggers=bd.trigger, device='cpu')  # 1 % of 32 units, but at least 8
    assert len(d.units) == 8 and d.evaluate(te.x, bd.stamp(te.x[te.y != 0]))['fnr'] < 0.1
    assert _same(net, before)  # no repair touches the input model

def test_repair_demo_step(toy):
    net, clean, te, bd, ev = toy
    res = repair_demo_step(net, clean.x, clean.y, triggers=bd.trigger, x_heldout=te.x, y_heldout=te.y, backdoor=bd, device='cpu')
    assert res['asr_before'] > 0.9 and res['asr_after'] < 0.2 and res['seconds'] > 0
    assert abs(ev(res['model'])['asr'] - res['asr_after']) < 1e-6
    assert not res['interrupted'] and res['epochs'] == 10

@pytest.mark.parametrize('call, msg', [
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, config={'budget': 0.1}), "unknown PruneConfig field(s) ['budget']"),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y, triggers=t, config={'epochs': 0}), 'epochs must be an int >= 1'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y, triggers=t, config=PruneConfig()), 'config must be a UnlearnConfig or a dict'),
    (lambda n, c, t: fine_pruning(n, c.x, c.y, config={'optimizer': 'lbfgs'}), "optimizer='lbfgs' is not one of"),
    (lambda n, c, t: fine_pruning(n, c.x, c.y, config={'max_fraction': float('inf')}), 'max_fraction must be a number in [0, 1]'),
    (lambda n, c, t: nc_filter(n, c.x, triggers=t, config={'side': 'middle'}), "side='middle' is not one of"),
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, config={'full_curve': 'yes'}), 'full_curve must be True or False'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, triggers=t, progress=1), 'progress must be True or False'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y, triggers=t, augment='flip'), 'augment must be a function'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y, t), 'positional argument'),  # everything after the clean set is keyword-only
])
def test_bad_config(toy, call, msg):
    net, clean, te, bd, ev = toy
    with pytest.raises((ValueError, TypeError)) as e: call(net, clean, bd.trigger)
    assert msg in str(e.value)

def test_configs_record_and_accept_dicts(toy):
    net, clean, te, bd, ev = toy
    _, r = nc_prune(net, clean.x, clean.y, triggers=bd.trigger, target=0, config=PruneConfig(step=0.25), device='cpu')
    assert r.config == PruneConfig(step=0.25) and r.curve['n_pruned'] == [0, 8, 16, 24] and not r.interrupted
    assert nc_filter(net, clean.x, triggers=bd.trigger, config={'min_units': 2}, device='cpu').config == FilterConfig(min_units=2)
    assert UnlearnConfig(frac=torch.tensor(0.5)).frac == 0.5 and isinstance(UnlearnConfig(frac=torch.tensor(0.5)).frac, float)

class _Stop:
    "`eval_fn` that raises KeyboardInterrupt on its `n`-th call, as a user's Ctrl-C would (then evaluates normally)."
    def __init__(self, ev, n): self.ev, self.n, self.calls = ev, n, 0
    def __call__(self, m):
        self.calls += 1
        if self.calls == self.n: raise KeyboardInterrupt
        return self.ev(m)

def test_interrupted_pruning_keeps_the_points_measured(toy):
    net, clean, te, bd, ev = toy
    before = copy.deepcopy(net)
    with pytest.warns(UserWarning, match='interrupted after 3 of 29 points'):
        m, r = nc_prune(net, clean.x, clean.y, triggers=bd.trigger, target=0, config={'step': 1/32}, eval_fn=_Stop(ev, 4), device='cpu')
    assert r.interrupted and r.curve['n_pruned'] == [0, 1, 2] and 'interrupted' in repr(r)
    assert r.chosen in r.curve['fraction'] and abs(ev(m)['asr'] - r.after['asr']) < 1e-6  # a real pruned model at a measured point
    with pytest.raises(KeyboardInterrupt):  # nothing measured yet: the interrupt goes through
        nc_prune(net, clean.x, clean.y, triggers=bd.trigger, target=0, eval_fn=_Stop(ev, 1), device='cpu')
    with pytest.warns(UserWarning, match='interrupted after 2 of'):  # Fine-Pruning: the sweep stops, no fine-tuning
        m, r = fine_pruning(net, clean.x, clean.y, triggers=bd.trigger, target=0, config={'step': 1/8}, eval_fn=_Stop(ev, 3), device='cpu')
    assert r.interrupted and r.curve['n_pruned'] == [0, 1] and r.info['history'] is None and r.after == r.stages['pruned']
    assert _same(net, before)

def test_interrupted_fine_tuning_is_flagged(toy):
    net, clean, te, bd, ev = toy
    before = copy.deepcopy(net)
    with pytest.warns(UserWarning, match='interrupted after 2 finished epoch'):  # call 1: before; 2, 3: epochs 1, 2; 4: Ctrl-C in epoch 3
        m, r = nc_unlearn(net, clean.x, clean.y, triggers=bd.trigger, target=0, config={'epochs': 5}, eval_fn=_Stop(ev, 4), device='cpu')
    assert r.interrupted and r.curve['epoch'] == [0, 1, 2] and r.info['history'].interrupted and 'interrupted' in repr(r)
    assert abs(ev(m)['asr'] - r.after['asr']) < 1e-6  # the model of the last finished epoch
    # Fine-Pruning's fine-tuning has no eval_fn: interrupt it through the augmentation of its 2nd batch
    def aug(x, calls=[0]):
        calls[0] += 1
        if calls[0] == 2: raise KeyboardInterrupt
        return x
    with pytest.warns(UserWarning, match='interrupted after 0 finished epoch'):
        m, r = fine_pruning(net, clean.x, clean.y, config={'epochs': 2}, augment=aug, device='cpu')
    assert r.interrupted and r.info['history'].interrupted and 'after' in repr(r)
    assert _same(net, before)
