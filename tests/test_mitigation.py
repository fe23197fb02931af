"Mitigation: bad input, pruning mechanics, save/load of repaired models, and repairs on a toy backdoored model."
import copy
import pytest, torch
from torch import nn
from backdoor_nb.attacks import Backdoor, AllToOne, PoisonedData, place, solid_patch, evaluate_backdoor
from backdoor_nb.core import batched_logits
from backdoor_nb.data import ImageData
from backdoor_nb.layers import resolve_layer, unit_activations, prune_units, unit_masks, frozen_zeros
from backdoor_nb.mitigation import (nc_filter,
                                    nc_prune, nc_unlearn, fine_pruning, repair_demo_step, PruningExplorer)
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
    (lambda n, c, t: nc_unlearn(n, c.x[:0], c.y[:0], t), 'clean_x is empty'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, t, layer='nope'), "layer='nope' is not a module"),
    (lambda n, c, t: fine_pruning(n, c.x, c.y, layer='2'), "layer='2' is a ReLU"),
    (lambda n, c, t: nc_prune(n, c.x, c.y, t, asr_budget=-0.1), 'asr_budget must be a number in [0, 1]'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, t, acc_budget=1.1), 'acc_budget must be a number in [0, 1]'),
    (lambda n, c, t: fine_pruning(n, c.x, c.y, acc_budget=5), 'acc_budget must be a number in [0, 1]'),
    (lambda n, c, t: nc_filter(n, c.x, t, fpr=2), 'fpr must be a number in [0, 1]'),
    (lambda n, c, t: nc_filter(n, c.x, t, min_units=0), 'min_units must be an int >= 1'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y, t, frac=1.5), 'frac must be a number in [0, 1]'),
    (lambda n, c, t: nc_unlearn(n, c.x, c.y[:10], t), 'clean_y has 10 labels for 100 images'),
    (lambda n, c, t: nc_prune(n, c.x, c.y, t, target=4), 'target=4 is out of range'),
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
    m, r = nc_unlearn(net, clean.x, clean.y, bd.trigger, target=0, epochs=4, lr=0.01, eval_fn=ev, device='cpu')
    assert r.before['asr'] > 0.9 and r.after['asr'] < 0.1 and r.after['clean_acc'] > 0.9
    m, r = nc_prune(net, clean.x, clean.y, [bd.trigger], target=0, step=1/32, full_curve=False, eval_fn=ev, device='cpu')
    assert r.info['reached_asr_budget'] and r.after['asr'] < 0.3
    ex = PruningExplorer(r, net); ex.slider.value = 0.
    assert ex.current['n_pruned'] == 0 and abs(ex.current['asr'] - r.before['asr']) < 1e-9
    m, r = fine_pruning(net, clean.x, clean.y, epochs=2, device='cpu')
    gone = r.info['order'][:round(r.chosen * 8)]
    assert len(gone) and unit_activations(m, r.info['layer'], te.x)[:, gone].abs().max() == 0
    f = nc_filter(net, clean.x, bd.trigger, top=0.25, device='cpu')
    assert f.evaluate(te.x, bd.stamp(te.x[te.y != 0]))['fnr'] < 0.1
    d = nc_filter(net, clean.x, bd.trigger, device='cpu')  # 1 % of 32 units, but at least 8
    assert len(d.units) == 8 and d.evaluate(te.x, bd.stamp(te.x[te.y != 0]))['fnr'] < 0.1
    assert _same(net, before)  # no repair touches the input model

def test_repair_demo_step(toy):
    net, clean, te, bd, ev = toy
    res = repair_demo_step(net, clean.x, clean.y, bd.trigger, te.x, te.y, bd, device='cpu')
    assert res['asr_before'] > 0.9 and res['asr_after'] < 0.2 and res['seconds'] > 0
    assert abs(ev(res['model'])['asr'] - res['asr_after']) < 1e-6
