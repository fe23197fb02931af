"DL-TND and DF-TND: bad input raises clear errors, extra images are used, w stays on the simplex, seeds reproduce, a toy Trojan is found."
import pytest, torch
import torch.nn.functional as F
from torch import nn
from backdoor_nb.data import ImageData, load_data
from backdoor_nb.attacks import Backdoor, AllToOne, PoisonedData, place, solid_patch
from backdoor_nb.models import train
from backdoor_nb.tnd import dl_tnd, df_tnd, DLTNDConfig, DFTNDConfig
from backdoor_nb.invert import project_simplex

TARGET = 3

@pytest.fixture(scope='module')
def digits():
    d = load_data('digits')  # bundled, no network
    small = lambda s: ImageData(F.avg_pool2d(s.x, 2), s.y, s.classes, s.name)  # 14x14: trains in about a second
    return small(d.train), small(d.test)

@pytest.fixture(scope='module')
def toy(digits):
    "A small CNN with a BadNets backdoor (2x2 white corner square -> label 3), trained in a couple of seconds."
    tr, _ = digits
    bd = Backdoor(place(solid_patch(2), (1, 14, 14), 'bottom-right'), AllToOne(TARGET))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(392, 64), nn.ReLU(), nn.Linear(64, 10))
    train(net, PoisonedData(tr, bd, 0.1), epochs=4, lr=0.05, batch_size=64, progress=False, device='cpu')
    return net

@pytest.fixture(scope='module')
def one(digits): return digits[1].per_class(1, seed=0)

# --- bad input
def test_zero_images_for_a_class(toy, one):
    keep = one.y != 7
    with pytest.raises(ValueError, match=r'y has no image of class \[7\]'): dl_tnd(toy, one.x[keep], one.y[keep], progress=False, device='cpu')

def test_images_outside_unit_range(toy, one):
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): dl_tnd(toy, one.x * 3, one.y, progress=False, device='cpu')

def test_nan_images(toy, one):
    x = one.x.clone(); x[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='x contains NaN'): dl_tnd(toy, x, one.y, progress=False, device='cpu')

def test_label_out_of_range(toy, one):
    with pytest.raises(ValueError, match=r'y must be in \[0, 10\)'): dl_tnd(toy, one.x, one.y + 1, progress=False, device='cpu')
    with pytest.raises(ValueError, match='labels=12 is out of range'): dl_tnd(toy, one.x, one.y, labels=[0, 1, 12], progress=False, device='cpu')

def test_bad_hyper_parameters(toy):
    with pytest.raises(ValueError, match='quantile must be in'): DLTNDConfig(quantile=1.5)
    with pytest.raises(ValueError, match='steps must be an int >= 1'): DFTNDConfig(steps=0)
    with pytest.raises(ValueError, match=r'input_shape must be \(C, H, W\)'): df_tnd(toy, (14, 14), progress=False, device='cpu')

# --- more than one image per class
def test_more_images_per_class_are_used(toy, digits):
    three = digits[1].per_class(3, seed=2)
    r = dl_tnd(toy, three.x, three.y, config=dict(max_steps=20), progress=False, device='cpu')
    assert r.info['similarity']['features'].shape == (10, 30)
    assert (r.info['others'].sum(1) == 27).all()  # each label compares over the 27 images of the other classes
    assert r.info['per_image_masks'].shape == (10, 30, 1, 14, 14)
    assert torch.isfinite(r.score).all() and torch.isfinite(r.anomaly).all()

# --- DF-TND's weights stay on the simplex
def test_w_on_the_simplex(toy):
    r = df_tnd(toy, (1, 14, 14), config=dict(steps=40), progress=False, device='cpu')
    w = r.info['w']
    assert w.shape == (64,)
    assert (w >= 0).all() and (w <= 1).all() and abs(w.sum().item() - 1) < 1e-5

def test_project_simplex():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        v = 3 * torch.randn(17, generator=g)
        w = project_simplex(v)
        assert (w >= 0).all() and abs(w.sum().item() - 1) < 1e-5
        z = torch.distributions.Dirichlet(torch.ones(17)).sample()  # any point of the simplex is not closer to v
        assert (v - w).norm() <= (v - z).norm() + 1e-5
    assert torch.allclose(project_simplex(torch.tensor([0.1, 0.7, 0.2])), torch.tensor([0.1, 0.7, 0.2]))

# --- seeds reproduce
def test_deterministic_for_a_seed(toy, one):
    a = dl_tnd(toy, one.x, one.y, config=dict(max_steps=20), progress=False, device='cpu')
    b = dl_tnd(toy, one.x, one.y, config=dict(max_steps=20), progress=False, device='cpu')
    torch.testing.assert_close(a.score, b.score); torch.testing.assert_close(a.triggers.mask, b.triggers.mask)
    c = df_tnd(toy, (1, 14, 14), config=dict(steps=30), progress=False, device='cpu')
    d = df_tnd(toy, (1, 14, 14), config=dict(steps=30), progress=False, device='cpu')
    torch.testing.assert_close(c.score, d.score); torch.testing.assert_close(c.info['w'], d.info['w'])
    e = df_tnd(toy, (1, 14, 14), config=dict(steps=30), seed=1, progress=False, device='cpu')
    assert not torch.equal(e.info['noise'], c.info['noise'])

# --- both detectors find the toy's target
def test_dl_tnd_finds_the_target(toy, one):
    r = dl_tnd(toy, one.x, one.y, progress=False, device='cpu')
    assert TARGET in r.flagged and r.top == TARGET
    assert r.info['universal_l1'][TARGET] < r.info['universal_l1'].median() / 3  # the universal perturbation is the small trigger

def test_df_tnd_finds_the_target(toy):
    r = df_tnd(toy, (1, 14, 14), progress=False, device='cpu')
    assert TARGET in r.flagged and r.top == TARGET
    assert r.score[TARGET] == r.score.max()

def test_interrupt_stops_both_stages(toy, one):
    "Ctrl-C in the universal stage: the per-image stage only takes one step, and the result says it was interrupted."
    from helpers import Interrupting
    full = Interrupting(toy, 10 ** 9)
    dl_tnd(full, one.x, one.y, config=dict(max_steps=20), progress=False, device='cpu')
    cut = Interrupting(toy, 8)
    r = dl_tnd(cut, one.x, one.y, config=dict(max_steps=20), progress=False, device='cpu')
    assert r.interrupted and torch.isfinite(r.score).all() and cut.n < full.n / 2
