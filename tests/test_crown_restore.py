"CROWN-restore: gradient sources agree at a tiny radius, CROWN finds a backdoor the exact gradient cannot see, bad input."
import pytest, torch
from torch import nn
from backdoor_nb.core import Trigger, InversionResult, attack_success_rate
from backdoor_nb.lirpa import UnsupportedModelError
from backdoor_nb.crown_restore import (GRADIENTS, Additive, Patch, restore, rho_schedule, start_images, margins, WEIGHTS,
                                       gradient_line, split_model, plot_asr_curves, CrownRestoreExplorer)

def toy_net():
    "Six row-pair detectors (label k: rows 2k, 2k+1) and a ReLU unit on the bottom-right 2x2 corner wired to label 3."
    net = nn.Sequential(nn.Flatten(), nn.Linear(144, 7), nn.ReLU(), nn.Linear(7, 6))
    with torch.no_grad():
        W1 = torch.zeros(7, 12, 12)
        for k in range(6): W1[k, 2 * k:2 * k + 2, :10] = 1 / 20
        W1[6, -2:, -2:] = 1.
        net[1].weight.copy_(W1.flatten(1)); net[1].bias.copy_(torch.tensor([0.] * 6 + [-2.]))
        W2 = torch.zeros(6, 7); W2[:, :6] = 4 * torch.eye(6); W2[3, 6] = 20.
        net[3].weight.copy_(W2); net[3].bias.zero_()
    return net.eval()

def toy_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(6, (n,), generator=g)
    rows = 0.2 + 0.1 * torch.rand(n, 6, generator=g)
    rows[torch.arange(n), y] += 0.4
    x = rows[:, :, None, None].expand(-1, -1, 2, 12).reshape(n, 1, 12, 12).clone()
    x[..., 10:] = 0.2
    return (x + 0.1 * torch.rand(n, 1, 12, 12, generator=g)).clamp(0, 1), y

@pytest.fixture(scope='module')
def toy():
    x, y = toy_images(200)
    mask = torch.zeros(1, 12, 12); mask[:, -2:, -2:] = 1
    return toy_net(), x, y, Trigger(mask, torch.ones(1, 12, 12))

KW = dict(steps=60, lr=0.1, rho=0.3, device='cpu')

def test_toy_backdoor_is_real(toy):
    m, x, y, patch = toy
    assert (m(x).argmax(1) == y).all()
    assert attack_success_rate(m, x, y, trigger=patch, target=3) > 0.99

@pytest.mark.parametrize('name', ['crown', 'crown-ibp', 'crown-tail'])
def test_tiny_ball_gives_the_exact_gradient(toy, name):
    m, x, _, _ = toy
    xs, w = x[:3], torch.rand(3, 5)
    ge = GRADIENTS['exact'].make(m, xs, 'cpu')(xs, 3, 1e-4, w)
    for side in ('mid', 'lower'):
        torch.testing.assert_close(GRADIENTS[name].make(m, xs, 'cpu', side=side)(xs, 3, 1e-4, w), ge, atol=1e-4, rtol=0)
    assert not torch.allclose(GRADIENTS[name].make(m, xs, 'cpu')(xs, 3, 0.3, w), ge, atol=1e-3)
    assert all(p.requires_grad for p in m.parameters())   # auto_LiRPA's side effect on the wrapped model is undone

def test_crown_finds_the_dead_backdoor_unit_exact_does_not(toy):
    m, x, y, patch = toy
    ho = dict(x_heldout=x[20:], y_heldout=y[20:])
    for xin in (None, x[:10]):
        # clean images alone, or blank and mean starts (bright noise starts can wake the corner unit by chance)
        st = dict(n_starts=12, starts=('blank', 'mean')) if xin is None else dict(n_starts=0)
        c = restore(m, 3, xin, grad='crown-tail', **st, **KW, **ho)
        e = restore(m, 3, xin, grad='exact', **st, **KW, **ho)
        assert isinstance(c, InversionResult) and c.method == 'crown-tail-restore' and e.method == 'exact-sgd'
        assert c.asr > 0.9 and c.fidelity(patch)['iou'] == 1.0
        assert e.fidelity(patch)['iou'] == 0.0   # the exact optimizer paints label 3's rows instead
        if xin is not None: assert e.asr < 0.1
        assert c.history['asr'][-1] == c.asr and len(c.history['loss']) == 60
    full = restore(m, 3, x[:3], n_starts=0, grad='crown', **KW, **ho)
    assert full.asr > 0.9 and full.method == 'crown-restore'
    low = restore(m, 3, x[:10], n_starts=0, grad='crown-tail', grad_opts={'side': 'lower'}, **KW, **ho)
    assert low.asr < 0.1   # the lower bound relaxes the backdoor ReLU with slope 0

def test_additive_budget_and_reproducibility(toy):
    m, x, y, _ = toy
    for norm, eps in ((float('inf'), 0.5), (2., 2.)):
        r = restore(m, 3, x[:8], kind=Additive(eps=eps, norm=norm), grad='crown-tail' if norm > 2 else 'crown', norm=norm, steps=20, device='cpu')
        assert r.trigger.delta.flatten().norm(p=norm) <= eps + 1e-5
    a = restore(m, 3, None, image_shape=(1, 12, 12), steps=10, device='cpu', seed=1)
    b = restore(m, 3, None, image_shape=(1, 12, 12), steps=10, device='cpu', seed=1)
    assert torch.equal(a.trigger.mask, b.trigger.mask) and a.asr is None and a.info['n_clean'] == 0

def test_unsupported_layer_named_and_exact_still_works(toy):
    _, x, _, _ = toy
    class Odd(nn.Module):
        def forward(self, z): return z.sign() * z.abs().sqrt()
    odd = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), Odd(), nn.Linear(16, 6))
    for g in ('crown', 'crown-tail', 'crown-ibp'):
        with pytest.raises(UnsupportedModelError, match=r'Odd.*exact-gradient methods still work'):
            restore(odd, 3, x[:4], grad=g, steps=2, device='cpu')
    assert restore(odd, 3, x[:4], grad='exact', steps=2, device='cpu').method == 'exact-sgd'

@pytest.mark.parametrize('kw, exc, msg', [
    (dict(rho=0.), ValueError, 'rho must be > 0'), (dict(rho=-1.), ValueError, 'rho must be > 0'),
    (dict(rho=(0.1, 0.)), ValueError, 'rho must be > 0'), (dict(rho=float('nan')), ValueError, 'rho must be > 0'),
    (dict(grad='smooth'), ValueError, "grad='smooth' is not known"), (dict(kind='blend'), ValueError, "kind='blend' is not known"),
    (dict(weights='x'), ValueError, "weights='x' is not known"), (dict(steps=0), ValueError, 'steps must be an int >= 1'),
    (dict(lr=-1.), ValueError, 'lr must be > 0'), (dict(norm=1), ValueError, "norm must be float('inf') or 2"),
    (dict(target=6), ValueError, 'target=6 is out of range'), (dict(target=1.5), TypeError, 'target must be an int'),
    (dict(kind=3), TypeError, 'kind must be a key of KINDS'), (dict(norm=2., grad='crown-tail'), ValueError, 'needs norm=inf'),
])
def test_bad_input(toy, kw, exc, msg):
    m, x, _, _ = toy
    kw = {'target': 3, **kw}
    with pytest.raises(exc, match=msg.replace('(', r'\(').replace(')', r'\)')):
        restore(m, kw.pop('target'), x[:4], steps=kw.pop('steps', 3), device='cpu', **kw)

def test_bad_images_and_helpers(toy):
    m, x, y, _ = toy
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): restore(m, 3, x[:4] * 255)
    with pytest.raises(ValueError, match='give image_shape'): restore(m, 3, None)
    with pytest.raises(ValueError, match='give x_heldout and y_heldout together'): restore(m, 3, x[:4], x_heldout=x)
    with pytest.raises(ValueError, match="starts='zeros' is not known"): start_images(m, (1, 12, 12), 3, starts=['zeros'])
    with pytest.raises(ValueError, match='eps must be > 0'): Additive(eps=0)
    with pytest.raises(ValueError, match='lam must be >= 0'): Patch(lam=-1)
    with pytest.raises(ValueError, match='pass split'): split_model(nn.Linear(2, 2))
    with pytest.raises(ValueError, match='rho must be > 0'): gradient_line(m, x[0], x[1] - x[0], 3, 1, dims=[0], rho=0.)
    assert rho_schedule((0.2, 0.02), 3)[-1] == pytest.approx(0.02)

def test_figures_and_widget(toy):
    m, x, y, _ = toy
    r = restore(m, 3, x[:5], grad='crown-tail', steps=20, rho=0.3, x_heldout=x[20:], y_heldout=y[20:], eval_every=5, device='cpu')
    assert len(plot_asr_curves([r]).lines) == 1
    lp = gradient_line(m, x[0], x[0] * 0 + 1 - x[0], 3, int(y[0]), dims=[143, 5], rho=0.2, device='cpu')
    assert lp.exact.shape == (41, 2) and set(lp.roughness()) == {'exact', 'crown'}
    ex = CrownRestoreExplorer(m, 3, x[:10], x[20:], y[20:], steps=20)
    ex.n_clean.value = 4
    assert ex.result.info['n_clean'] == 4 and ex.exact.method == 'exact-sgd'
