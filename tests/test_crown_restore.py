"CROWN-restore: gradient sources agree at a tiny radius, CROWN finds a backdoor the exact gradient cannot see, the caller's state, bad input."
import pytest, torch
from torch import nn
from backdoor_nb.core import Trigger, InversionResult, attack_success_rate
from backdoor_nb.invert import Perf
from backdoor_nb.lirpa import UnsupportedModelError
from backdoor_nb.crown_restore import (GRADIENTS, RestoreConfig, BoundGradient, restore, rho_schedule, start_images, WEIGHTS,
                                       exact_gradient, gradient_line, split_model, plot_asr_curves, CrownRestoreExplorer)

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

FAST = dict(steps=60, lr=0.1, rho=0.3)
KW = dict(device='cpu', progress=False)

def test_toy_backdoor_is_real(toy):
    m, x, y, patch = toy
    assert (m(x).argmax(1) == y).all()
    assert attack_success_rate(m, x, y, trigger=patch, target=3) > 0.99

@pytest.mark.parametrize('name', ['crown', 'crown-ibp', 'crown-tail'])
def test_tiny_ball_gives_the_exact_gradient(toy, name):
    m, x, _, _ = toy
    xs, w, t = x[:3], torch.rand(3, 5), torch.full((3,), 3)
    ge = GRADIENTS['exact'].make(m, xs, 'cpu')(xs, t, 1e-4, w)
    for side in ('mid', 'lower'):
        torch.testing.assert_close(GRADIENTS[name].make(m, xs, 'cpu', side=side)(xs, t, 1e-4, w), ge, atol=1e-4, rtol=0)
    assert not torch.allclose(GRADIENTS[name].make(m, xs, 'cpu')(xs, t, 0.3, w), ge, atol=1e-3)
    assert all(p.requires_grad for p in m.parameters())   # auto_LiRPA's side effect never reaches the caller's model

def test_crown_finds_the_dead_backdoor_unit_exact_does_not(toy):
    m, x, y, patch = toy
    ho = dict(x_heldout=x[20:], y_heldout=y[20:], **KW)
    for xin in (None, x[:10]):
        # clean images alone, or blank and mean starts (bright noise starts can wake the corner unit by chance)
        st = dict(n_starts=12, starts=('blank', 'mean')) if xin is None else dict(n_starts=0)
        c = restore(m, xin, target=3, grad='crown-tail', config={**st, **FAST}, **ho)
        e = restore(m, xin, target=3, grad='exact', config={**st, **FAST}, **ho)
        assert isinstance(c, InversionResult) and c.method == 'crown-tail-restore' and e.method == 'exact-sgd'
        assert c.asr > 0.9 and c.fidelity(patch)['iou'] == 1.0
        assert e.fidelity(patch)['iou'] == 0.0   # the exact optimizer paints label 3's rows instead
        if xin is not None: assert e.asr < 0.1
        assert c.history['asr'][-1] == c.asr and len(c.history['loss']) == 60
    full = restore(m, x[:3], target=3, grad='crown', config=dict(n_starts=0, **FAST), **ho)
    assert full.asr > 0.9 and full.method == 'crown-restore'
    low = restore(m, x[:10], target=3, grad=GRADIENTS['crown-tail'].with_opts(side='lower'), config=dict(n_starts=0, **FAST), **ho)
    assert low.asr < 0.1   # the lower bound relaxes the backdoor ReLU with slope 0

def test_additive_budget_and_reproducibility(toy):
    m, x, y, _ = toy
    for norm, eps in ((float('inf'), 0.5), (2., 2.)):
        r = restore(m, x[:8], target=3, grad='crown-tail' if norm > 2 else 'crown', config=dict(kind='additive', eps=eps, norm=norm, steps=20), **KW)
        assert r.trigger.delta.flatten().norm(p=norm) <= eps + 1e-5
    cfg = RestoreConfig(image_shape=(1, 12, 12), steps=10)
    a, b = (restore(m, target=3, config=cfg, seed=1, **KW) for _ in range(2))
    assert torch.equal(a.trigger.mask, b.trigger.mask) and a.asr is None and a.info['n_clean'] == 0
    assert not torch.equal(a.trigger.pattern, restore(m, target=3, config=cfg, seed=2, **KW).trigger.pattern)

def test_bound_gradient_is_the_engine_source(toy):
    m, x, _, _ = toy
    from backdoor_nb.invert import WeightedMargin, margins
    obj, t = WeightedMargin(WEIGHTS['ce'], kappa=100.), torch.full((5,), 3)
    loss, out, g = BoundGradient(GRADIENTS['crown'], [1e-4])(m, x[:5], t, obj, 0)
    w = obj.weigh(margins(out, t))
    torch.testing.assert_close(g, exact_gradient(m, x[:5], 'cpu')(x[:5], t, 0., w), atol=1e-4, rtol=0)
    torch.testing.assert_close(loss, obj(out, t))
    with pytest.raises(ValueError, match='needs norm in'): BoundGradient(GRADIENTS['crown-ibp'], [0.1], norm=2.)

def _snapshot(net):
    return ({k: v.clone() for k, v in net.state_dict().items()}, [mod.training for mod in net.modules()],
            [(p.requires_grad, p.grad) for p in net.parameters()], torch.get_rng_state())

@pytest.mark.parametrize('grad', ['crown-tail', 'crown', 'crown-ibp', 'exact'])
def test_callers_model_and_rng_untouched(toy, grad):
    _, x, y, _ = toy
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(300, 12), nn.BatchNorm1d(12), nn.ReLU(),
                        nn.Dropout(0.1), nn.Linear(12, 6)).train()
    net[0].weight.requires_grad_(False)  # a mixed freeze, to be kept
    before = _snapshot(net)
    r = restore(net, x[:4], target=3, grad=grad, config=dict(steps=3, n_starts=2, eval_every=1), x_heldout=x[20:30], y_heldout=y[20:30], **KW)
    after = _snapshot(net)
    assert all(torch.equal(v, before[0][k]) for k, v in after[0].items())   # BatchNorm statistics and weights
    assert after[1] == before[1] and after[2] == before[2] and torch.equal(after[3], before[3])
    assert next(net.parameters()).device.type == 'cpu' and len(r.history['asr']) == 4

def test_unsupported_layer_named_and_exact_still_works(toy):
    _, x, _, _ = toy
    class Odd(nn.Module):
        def forward(self, z): return z.sign() * z.abs().sqrt()
    odd = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), Odd(), nn.Linear(16, 6))
    for g in ('crown', 'crown-tail', 'crown-ibp'):
        with pytest.raises(UnsupportedModelError, match=r'Odd.*exact-gradient methods still work'):
            restore(odd, x[:4], target=3, grad=g, config=dict(steps=2), **KW)
    assert restore(odd, x[:4], target=3, grad='exact', config=dict(steps=2), **KW).method == 'exact-sgd'

@pytest.mark.parametrize('kw, exc, msg', [
    (dict(config=dict(rho=0.)), ValueError, 'rho must be > 0'), (dict(config=dict(rho=-1.)), ValueError, 'rho must be > 0'),
    (dict(config=dict(rho=(0.1, 0.))), ValueError, 'rho must be > 0'), (dict(config=dict(rho=float('nan'))), ValueError, 'rho must be > 0'),
    (dict(grad='smooth'), ValueError, "grad='smooth' is not one of"), (dict(config=dict(kind='blend')), ValueError, "kind='blend' is not one of"),
    (dict(config=dict(weights='x')), ValueError, "weights='x' is not one of"), (dict(config=dict(steps=0)), ValueError, 'steps must be an int >= 1'),
    (dict(config=dict(lr=-1.)), ValueError, 'lr must be > 0'), (dict(config=dict(norm=1)), ValueError, "norm must be float('inf') or 2"),
    (dict(target=6), ValueError, 'target=6 is out of range'), (dict(target=1.5), TypeError, 'target must be an int'),
    (dict(config=3), TypeError, 'config must be a RestoreConfig'), (dict(config=dict(norm=2.), grad='crown-tail'), ValueError, 'needs norm in'),
    (dict(config=dict(kappa=-1.)), ValueError, 'kappa must be >= 0'), (dict(config=dict(eval_every=-1)), ValueError, 'eval_every must be an int >= 0'),
    (dict(config=dict(n_starts=1.5)), TypeError, 'n_starts must be an int'), (dict(config=dict(warmup=2.)), ValueError, 'warmup must be'),
    (dict(seed=-1), ValueError, 'seed must be an int >= 0'), (dict(seed=1.5), TypeError, 'seed must be an int'),
    (dict(perf='fast'), TypeError, 'perf must be an invert.Perf'), (dict(perf=Perf(fast=True)), ValueError, 'perf.fast'),
    (dict(budget_s=0.), ValueError, 'budget_s must be > 0'),
])
def test_bad_input(toy, kw, exc, msg):
    m, x, _, _ = toy
    kw = {'target': 3, **kw}
    cfg = kw.pop('config', {})
    cfg = {'steps': 3, **cfg} if isinstance(cfg, dict) else cfg
    with pytest.raises(exc, match=msg.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')):
        restore(m, x[:4], config=cfg, **KW, **kw)

def test_bad_images_and_helpers(toy):
    m, x, y, _ = toy
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): restore(m, x[:4] * 255, target=3)
    with pytest.raises(ValueError, match='give config.image_shape'): restore(m, target=3)
    with pytest.raises(ValueError, match='give x_heldout and y_heldout together'): restore(m, x[:4], target=3, x_heldout=x)
    with pytest.raises(ValueError, match='y has 3 labels for 4 images'): restore(m, x[:4], y[:3], target=3)
    with pytest.raises(ValueError, match=r'y_heldout must be in \[0, 6\)'): restore(m, x[:4], target=3, x_heldout=x[:5], y_heldout=y[:5] + 6)
    with pytest.raises(ValueError, match=r'x: images of shape \(3, 12, 12\) do not fit the model'): restore(m, x[:4].expand(-1, 3, -1, -1), target=3)
    with pytest.raises(ValueError, match='x_heldout: images of shape'): restore(m, x[:4], target=3, x_heldout=x[:5, :, :10], y_heldout=y[:5])
    with pytest.raises(ValueError, match="starts='zeros' is not one of"): start_images(m, (1, 12, 12), n=3, starts=['zeros'])
    with pytest.raises(ValueError, match='eps must be'): RestoreConfig(kind='additive', eps=0)
    with pytest.raises(ValueError, match='cost must be >= 0'): RestoreConfig(cost=-1)
    with pytest.raises(ValueError, match='pass split'): split_model(nn.Linear(2, 2))
    with pytest.raises(ValueError, match='rho must be > 0'): gradient_line(m, x[0], direction=x[1] - x[0], target=3, source=1, dims=[0], rho=0.)
    assert rho_schedule((0.2, 0.02), 3)[-1] == pytest.approx(0.02)

def test_figures_and_widget(toy):
    m, x, y, _ = toy
    r = restore(m, x[:5], target=3, grad='crown-tail', config=dict(steps=20, rho=0.3, eval_every=5), x_heldout=x[20:], y_heldout=y[20:], **KW)
    assert len(plot_asr_curves([r]).lines) == 1 and r.history['step'] == [0, 5, 10, 15, 20]
    lp = gradient_line(m, x[0], direction=x[0] * 0 + 1 - x[0], target=3, source=int(y[0]), dims=[143, 5], rho=0.2, device='cpu')
    assert lp.exact.shape == (41, 2) and set(lp.roughness()) == {'exact', 'crown'}
    ex = CrownRestoreExplorer(m, x[:10], target=3, x_heldout=x[20:], y_heldout=y[20:], config=dict(steps=20))
    ex.n_clean.value = 4
    assert ex.result.info['n_clean'] == 4 and ex.exact.method == 'exact-sgd'
