"SmoothInv: bad input, the PGD invariants, identification on a toy backdoor (real-data checks: the notebook's slow cells)."
import math
import pytest, torch
import torch.nn.functional as F
from torch import nn
from backdoor_nb.core import Trigger, strength_map
from backdoor_nb.smoothinv import (scale_eps, default_eps, smoothed_log_probs, smooth_pgd, smoothinv, plainadv, smoothinv_sweep,
                                   identify_target, smoothing_sanity, smoothinv_demo_step, SmoothInvExplorer, DnCNN)

class Toy(nn.Module):
    "Label k reads the mean of rows 2k..2k+1 (columns 0-9); a bright 2x2 bottom-right patch also fires label 3."
    def __init__(self, backdoor=True): super().__init__(); self.gain = nn.Parameter(torch.tensor(10.)); self.backdoor = backdoor
    def forward(self, x):
        logits = self.gain * x[..., :10].mean((1, 3)).view(-1, 6, 2).mean(2)
        if not self.backdoor: return logits
        patch = x[:, :, -2:, -2:].mean((1, 2, 3))
        return logits + torch.eye(6, device=x.device)[3] * 8 * F.softplus(5 * (patch - 0.6))[:, None]

def toy_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(6, (n,), generator=g)
    rows = 0.2 + 0.1 * torch.rand(n, 6, generator=g)
    rows[torch.arange(n), y] += 0.4
    x = rows[:, None, :, None, None].expand(-1, -1, -1, 2, 12).reshape(n, 1, 12, 12).clone()
    x[..., 10:] = 0.2
    return (x + 0.1 * torch.rand(n, 1, 12, 12, generator=g)).clamp(0, 1), y

@pytest.fixture(scope='module')
def toy():
    x, y = toy_images(200)
    return Toy(), x[0], x[1:], y[1:]

FAST = dict(n_noise=8, steps=60, device='cpu')

@pytest.mark.parametrize('kw, msg', [
    (dict(eps=0.), 'eps must be > 0'), (dict(eps=-2.), 'eps must be > 0'), (dict(eps=float('inf')), 'eps must be > 0'),
    (dict(sigma=-0.1), 'sigma must be >= 0'), (dict(n_noise=0), 'n_noise must be an int >= 1'),
    (dict(steps=0), 'steps must be an int >= 1'), (dict(step_size=0.), 'step_size must be > 0'),
])
def test_bad_hyper_parameters(toy, kw, msg):
    m, x0, _, _ = toy
    with pytest.raises(ValueError, match=msg): smoothinv(m, x0, 3, **kw)

def test_bad_target_and_image(toy):
    m, x0, xh, yh = toy
    with pytest.raises(ValueError, match='target=6 is out of range for 6 classes'): smoothinv(m, x0, 6)
    with pytest.raises(ValueError, match='target=-1 is out of range'): plainadv(m, x0, -1)
    with pytest.raises(TypeError, match='target must be an int'): smoothinv(m, x0, 1.5)
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): smoothinv(m, x0 * 255, 3)
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): identify_target(m, x0 - 1, xh, yh)
    with pytest.raises(ValueError, match='x contains NaN'): smoothinv(m, x0 * float('nan'), 3)
    with pytest.raises(ValueError, match='x must be a single image'): smoothinv(m, xh[:3], 3)
    with pytest.raises(ValueError, match='labels=9 is out of range'): identify_target(m, x0, xh, yh, labels=[1, 9])
    with pytest.raises(ValueError, match='give x_heldout and y_heldout together'): smoothinv(m, x0, 3, y_heldout=yh)
    with pytest.raises(ValueError, match='y_heldout has 5 labels'): smoothinv(m, x0, 3, x_heldout=xh, y_heldout=yh[:5])
    with pytest.raises(ValueError, match='needs x_heldout'): smoothinv_sweep(m, x0, 3)

def test_scale_eps():
    assert scale_eps(5, (3, 32, 32)) == pytest.approx(5.)
    assert default_eps((1, 28, 28)) == pytest.approx((5 / math.sqrt(3), 10 / math.sqrt(3)))
    assert scale_eps(10, (3, 112, 112), rule='sqrt_d') == pytest.approx(5.)
    with pytest.raises(ValueError, match="rule='x' is not an eps rule"): scale_eps(5, (1, 28, 28), rule='x')

def test_pgd_invariants_and_batching(toy):
    m, x0, _, _ = toy
    run = smooth_pgd(m, x0, [3, 1, 0], [1.5, 0.7, 1.5], [0.25, 0.5, 0.], n_noise=8, steps=40, seed=3)
    p = run['p']
    assert (p.flatten(1).norm(dim=1) <= run['eps'] + 1e-4).all()
    assert ((x0 + p) >= 0).all() and ((x0 + p) <= 1 + 1e-6).all()
    assert (run['history']['loss'][-1] < run['history']['loss'][0]).all()
    alone = smooth_pgd(m, x0, 1, 0.7, 0.5, n_noise=8, steps=40, seed=3)['p'][0]
    torch.testing.assert_close(alone, p[1], atol=1e-5, rtol=0)   # common random numbers: batch == alone
    again = smooth_pgd(m, x0, 1, 0.7, 0.5, n_noise=8, steps=40, seed=3)['p'][0]
    assert torch.equal(alone, again)                               # the seed reproduces the run
    assert not torch.equal(alone, smooth_pgd(m, x0, 1, 0.7, 0.5, n_noise=8, steps=40, seed=4)['p'][0])
    chunked = smooth_pgd(m, x0, [3, 1, 0], [1.5, 0.7, 1.5], [0.25, 0.5, 0.], n_noise=8, steps=40, seed=3, chunk=8)['p']
    torch.testing.assert_close(chunked, p, atol=1e-5, rtol=0)      # one row per forward-backward pass: the same run
    with pytest.raises(ValueError, match='chunk must be an int >= 1'): smooth_pgd(m, x0, 1, 0.7, 0.5, steps=1, chunk=0)
    with pytest.raises(ValueError, match='n_noise must be an int >= 1'): smooth_pgd(m, x0, 1, 0.7, 0.5, steps=1, n_noise=0)

def test_smoothed_classifier_reduces_to_model(toy):
    m, _, xh, _ = toy
    torch.testing.assert_close(smoothed_log_probs(m, xh[:4], 0., torch.zeros(1, 1, 12, 12)), m(xh[:4]).log_softmax(1))

def test_smoothinv_finds_the_toy_backdoor(toy):
    m, x0, xh, yh = toy
    r = smoothinv(m, x0, 3, eps=1.5, x_heldout=xh, y_heldout=yh, **FAST)
    assert r.method == 'smoothinv' and r.target == 3 and r.asr > 0.95
    s = strength_map(r.trigger)
    assert s[-2:, -2:].mean() > 3 * s.mean()
    assert r.trigger.delta.shape == (1, 12, 12) and r.info['pred_synth'] == 3
    normal = smoothinv(m, x0, 1, eps=1.5, x_heldout=xh, y_heldout=yh, **FAST)
    assert normal.asr < 0.5

def test_identification(toy):
    m, x0, xh, yh = toy
    s = identify_target(m, x0, xh, yh, eps=1.5, **FAST)
    assert s.target == 3 and s.backdoored and s.margin > 0.4
    assert s.perturbations.shape == (6, 1, 12, 12) and s.asr.shape == (6,)
    assert not identify_target(Toy(backdoor=False), x0, xh, yh, eps=1.5, **FAST).backdoored
    ax = s.plot(); assert len(ax.patches) == 6

def test_budget_ladder(toy):
    "Too large a budget lets every label transfer: the scan halves it until at most one label does."
    m, x0, xh, yh = toy
    fixed = identify_target(m, x0, xh, yh, eps=6., shrink=0, **FAST)
    assert (fixed.asr >= 0.5).sum() > 1 and not fixed.backdoored and len(fixed.ladder) == 1
    s = identify_target(m, x0, xh, yh, eps=6., **FAST)
    assert [e for e, *_ in s.ladder][0] == 6. and s.eps < 6. and s.target == 3 and s.backdoored
    assert all(e2 == e1 / 2 for (e1, *_), (e2, *_) in zip(s.ladder, s.ladder[1:]))
    assert not identify_target(Toy(backdoor=False), x0, xh, yh, eps=6., **FAST).backdoored
    with pytest.raises(ValueError, match='shrink must be an int >= 0'): identify_target(m, x0, xh, yh, shrink=1.5)

def test_denoiser_hook_is_used(toy):
    m, x0, xh, yh = toy
    calls = []
    def T(z): calls.append(len(z)); return z.clamp(0, 1)
    r = smoothinv(m, x0, 3, eps=1.5, denoiser=T, x_heldout=xh, y_heldout=yh, n_noise=4, steps=10, device='cpu')
    assert calls == [4] * 10 and r.info['denoiser']
    dn = DnCNN(1, 4, 2)
    smoothinv(m, x0, 3, eps=1.5, denoiser=dn, n_noise=2, steps=2, device='cpu')
    assert all(p.requires_grad for p in dn.parameters())

def test_sanity_table(toy):
    m, _, xh, yh = toy
    patch = Trigger(torch.zeros(1, 12, 12).index_put_((torch.tensor([0] * 4), torch.tensor([10, 10, 11, 11]), torch.tensor([10, 11, 10, 11])),
                                                      torch.ones(4)), torch.ones(1, 12, 12))
    st = smoothing_sanity(m, xh, yh, patch, 3, sigmas=[0., 0.25], n_noise=8)
    assert st.rows['w/o']['asr'] == [1.0, 1.0] and st.rows['w/o']['clean_acc'][0] == 1.0
    with pytest.raises(ValueError, match='sigma must be >= 0'): smoothing_sanity(m, xh, yh, patch, 3, sigmas=[-0.5])

def test_widget_and_demo(toy):
    m, x0, xh, yh = toy
    ex = SmoothInvExplorer(m, x0, xh, yh, n_noise=4, steps=20, target=3)
    assert ex.result.target == 3
    ex.eps.value = 0.4
    assert max(ex.result.history['norm']) <= 0.4 + 1e-4
    ex.target.value = 2
    assert ex.result.target == 2 and 'target 2' in ex.info.value
    x, y = toy_images(200)
    d = smoothinv_demo_step(m, x, y, eps=1.5, n_noise=4, steps=40, device='cpu')
    assert d['target'] == 3 and d['backdoored'] and d['seconds'] >= 0
