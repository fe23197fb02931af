"""Every public method leaves the caller's model and the global RNGs as it found them (issue 20).

`helpers.mixed_model` is a small conv net in an unusual state: modules in mixed train/eval modes, a frozen first conv,
a channels-last weight, `.grad` set on the head. Each test calls one public method on it through `assert_untouched`,
which compares modes, parameters and BN buffers, requires_grad flags, grads, devices, memory layout, parameter
identity, hooks and the global RNGs (torch, NumPy, Python) before and after the call.
"""
import pytest, torch
from helpers import assert_untouched, untouched, mixed_model, snapshot, differences

from backdoor_nb.core import Trigger, accuracy, attack_success_rate, batched_logits, predict, evaluate
from backdoor_nb.scan import toy_images, scan
from backdoor_nb.data import ImageData, Splits
from backdoor_nb.models import build_model, train
from backdoor_nb.attacks import (Backdoor, AllToOne, PoisonedData, place, solid_patch, evaluate_backdoor, train_backdoored,
                                 random_colour_patch)
from backdoor_nb.mitigation import nc_filter, nc_prune, nc_unlearn, fine_pruning
from backdoor_nb.neural_cleanse import neural_cleanse
from backdoor_nb.smoothinv import smoothinv, plainadv, identify_target, train_denoiser
from backdoor_nb.crown_restore import restore
from backdoor_nb.mine import window_search, sgd_trigger, mine_staircase
from backdoor_nb.tnd import dl_tnd, df_tnd

X, Y = toy_images(24, seed=0)
TOP = int(batched_logits(mixed_model(), X).argmax(1).mode().values)  # the mixed model's most frequent prediction: a target some window reaches
TRIG = place(solid_patch(2), (1, 12, 12))
BD = Backdoor(TRIG, AllToOne(0))
SI = {'steps': 2, 'n_noise': 2}

@pytest.fixture
def model(): return mixed_model()

def test_helper_catches_changes(model):
    "The helper itself can fail: a mode flip, a BN update, a grad, a reseeded RNG, a flag are all reported."
    before = snapshot(model)
    model.eval(); model[1](torch.rand(4, 4, 12, 12)); model[0].weight.requires_grad_(True); torch.manual_seed(0)
    model[-1].weight.grad = None
    d = ' '.join(differences(before, snapshot(model)))
    for k in ('modes', 'requires_grad', 'grads', 'global RNG'): assert k in d, (k, d)
    model[1].train(); model[1](torch.rand(4, 4, 12, 12))
    assert 'values' in ' '.join(differences(before, snapshot(model)))

CALLS = {
    'accuracy': lambda m: accuracy(m, X, Y, device='cpu'),
    'batched_logits': lambda m: batched_logits(m, X, TRIG, device='cpu'),
    'predict': lambda m: predict(m, X, device='cpu'),
    'evaluate': lambda m: evaluate(m, X, Y, TRIG, 0, device='cpu'),
    'attack_success_rate': lambda m: attack_success_rate(m, X, Y, trigger=TRIG, target=0, device='cpu'),
    'evaluate_backdoor': lambda m: evaluate_backdoor(m, X, Y, BD, device='cpu'),
    'nc_filter': lambda m: nc_filter(m, X, triggers=TRIG, device='cpu'),
    'nc_prune': lambda m: nc_prune(m, X, Y, triggers=TRIG, target=0, config={'step': 0.25}, device='cpu'),
    'nc_unlearn': lambda m: nc_unlearn(m, X, Y, triggers=TRIG, target=0, config={'epochs': 1, 'batch_size': 8}, device='cpu'),
    'fine_pruning': lambda m: fine_pruning(m, X, Y, triggers=TRIG, target=0, config={'step': 0.25, 'epochs': 1, 'batch_size': 8}, device='cpu'),
    'neural_cleanse': lambda m: neural_cleanse(m, X, Y, labels=[0, 1], config={'max_steps': 2}, progress=False, device='cpu'),
    'smoothinv': lambda m: smoothinv(m, X[0], target=1, config=SI, x_heldout=X, y_heldout=Y, progress=False, device='cpu'),
    'plainadv': lambda m: plainadv(m, X[0], target=1, config={'steps': 2}, progress=False, device='cpu'),
    'identify_target': lambda m: identify_target(m, X[0], x_heldout=X, y_heldout=Y, labels=[0, 1], config=SI, progress=False, device='cpu'),
    'restore (crown-tail)': lambda m: restore(m, X[:4], target=1, config={'steps': 2, 'n_starts': 2}, progress=False, device='cpu'),
    'restore (exact)': lambda m: restore(m, X[:4], target=1, grad='exact', config={'steps': 2, 'n_starts': 2}, progress=False, device='cpu'),
    'window_search': lambda m: window_search(m, X, Y, target=TOP, config={'steps': 2, 'window': 6, 'stride': 6, 'n_eval': 8},
                                            progress=False, device='cpu'),
    'sgd_trigger': lambda m: sgd_trigger(m, X, Y, target=1, config={'steps': 2}, progress=False, device='cpu'),
    'mine_staircase': lambda m: mine_staircase(m, X, Y, target=1, n_levels=2, config={'steps': 2, 'n_z': 4}, progress=False, device='cpu'),
    'dl_tnd': lambda m: dl_tnd(m, X, Y, labels=[0, 1, 2], config={'max_steps': 2}, progress=False, device='cpu'),
    'df_tnd': lambda m: df_tnd(m, (1, 12, 12), config={'steps': 2, 'n_images': 2}, progress=False, device='cpu'),
    'scan': lambda m: scan(m, (X, Y), ['nc'], config={'nc': {'max_steps': 2, 'n_support': 16}}, progress=False, device='cpu'),
}

@pytest.mark.parametrize('name', list(CALLS))
def test_method_leaves_model_and_rng(model, name):
    assert_untouched(model, CALLS[name], model)

def test_train_leaves_grads_and_rng(model):
    "`train` changes the weights (and ends in eval mode) by design; grads, flags, layout, device and the global RNGs stay."
    g = model[-1].weight.grad.clone()
    assert_untouched(model, train, model, ImageData(X, Y, list('abcdef')), epochs=1, batch_size=8, progress=False, device='cpu',
                     ignore=('values', 'modes'))
    assert torch.equal(model[-1].weight.grad, g)

def test_train_no_grad_left():
    m = build_model('mnist_cnn', n_classes=2, size=16)
    train(m, ImageData(torch.rand(8, 1, 16, 16), torch.arange(8) % 2, ['a', 'b']), epochs=1, batch_size=4, progress=False, device='cpu')
    assert all(p.grad is None for p in m.parameters())

def _tiny_splits():
    x, y = toy_images(48, seed=1)
    x = torch.nn.functional.interpolate(x, size=16)
    d = ImageData(x, y, list('abcdef'))
    return Splits(d[:32], d[32:], 'tiny')

@pytest.mark.parametrize('name, call', [
    ('build_model', lambda: build_model('mnist_cnn', seed=3, size=16)),
    ('train_backdoored', lambda: train_backdoored(_tiny_splits(), Backdoor(place(solid_patch(2), (1, 16, 16)), AllToOne(0)), size=16,
                                                  epochs=1, batch_size=16, progress=False, device='cpu')),
    ('train_denoiser', lambda: train_denoiser(X[:8], width=4, depth=2, epochs=1, batch_size=8, progress=False, device='cpu')),
    ('PoisonedData', lambda: PoisonedData(ImageData(X, Y, list('abcdef')), BD, 0.2, seed=1).get_batch(torch.arange(8))),
    ('ImageData ops', lambda: (ImageData(X, Y, list('abcdef')).take(5, seed=2), ImageData(X, Y, list('abcdef')).split(0.5, seed=3),
                               next(iter(ImageData(X, Y, list('abcdef')).loader(4, shuffle=True))))),
    ('trigger zoo', lambda: random_colour_patch(3, seed=5)),
])
def test_global_rng_untouched(name, call):
    with untouched(None): call()

def test_same_seed_same_result(model):
    a = neural_cleanse(model, X, labels=[0, 1], config={'max_steps': 3}, progress=False, device='cpu', seed=4)
    b = neural_cleanse(model, X, labels=[0, 1], config={'max_steps': 3}, progress=False, device='cpu', seed=4)
    assert torch.equal(a.l1, b.l1) and torch.equal(a.masks, b.masks)
