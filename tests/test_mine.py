"MINE trigger distribution: bad input, the MINE estimate, the staircase on a toy backdoor, the sampler in nc_unlearn and retrain, the caller's state (real data: the notebook's slow cells)."
import math
import pytest, torch
import torch.nn.functional as F
from torch import nn
from backdoor_nb.core import Trigger, as_sampler, predict, attack_success_rate
from backdoor_nb.invert import Perf
from backdoor_nb.mine import (staircase_betas, check_beta, scaled_window, check_region, window_grid, heat_region, window_trigger,
                              optimize_windows, window_search, StatisticsNetwork, mine_lower_bound, MineConfig, SearchConfig, train_level,
                              ensemble_weights, mine_staircase, mine_trigger_distribution, sgd_trigger, evaluate_levels,
                              pairwise_distance, compare_defenses, retrain, FreshStamps, TriggerExplorer)
from backdoor_nb.mitigation import nc_unlearn
from helpers import Interrupting

class ToyNet(nn.Module):
    "Label k reads rows 2k, 2k+1 (columns 0-7); a bright 2x2 top-right patch adds to label 3 with learnable strength `bd`."
    def __init__(self): super().__init__(); self.gain = nn.Parameter(torch.tensor(10.)); self.bd = nn.Parameter(torch.tensor(8.))
    def forward(self, x):
        logits = self.gain * x[..., :8].mean((1, 3)).view(len(x), 5, 2).mean(2)
        patch = x[:, :, :2, -2:].mean((1, 2, 3))
        return logits + torch.eye(5, device=x.device)[3] * self.bd * F.softplus(8 * (patch - 0.6))[:, None]

def toy_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(5, (n,), generator=g)
    rows = 0.2 + 0.1 * torch.rand(n, 5, generator=g); rows[torch.arange(n), y] += 0.4
    x = rows[:, None, :, None, None].expand(-1, -1, -1, 2, 10).reshape(n, 1, 10, 10).clone()
    x[..., 8:] = 0.2
    return (x + 0.1 * torch.rand(n, 1, 10, 10, generator=g)).clamp(0, 1), y

FAST = MineConfig(steps=150, n_z=32, lr=3e-3)

@pytest.fixture(scope='module')
def toy():
    x, y = toy_images(300)
    return ToyNet(), x, y

@pytest.fixture(scope='module')
def dist(toy):
    net, x, y = toy
    return mine_trigger_distribution(net, x, target=3, search=dict(window=4, steps=60), n_levels=4, config=FAST, device='cpu', progress=False)

@pytest.mark.parametrize('call, msg', [
    (lambda n, x, y: mine_staircase(n, x, target=3, betas=[0.], config=FAST), 'betas must be a number in (0, 1)'),
    (lambda n, x, y: mine_staircase(n, x, target=3, betas=[1.], config=FAST), 'betas must be a number in (0, 1)'),
    (lambda n, x, y: mine_staircase(n, x, target=3, betas=[-0.2], config=FAST), 'betas must be a number in (0, 1)'),
    (lambda n, x, y: train_level(n, x, target=3, beta=1.5, region=(0, 0, 3, 3), config=FAST), 'beta must be a number in (0, 1)'),
    (lambda n, x, y: mine_staircase(n, x, target=3, betas=[0.5, 0.2], config=FAST), 'betas must be increasing'),
    (lambda n, x, y: mine_staircase(n, x, target=3, n_levels=0), 'n_levels (N) must be an int >= 1'),
    (lambda n, x, y: mine_staircase(n, x, target=3, n_levels=-1), 'n_levels (N) must be an int >= 1'),
    (lambda n, x, y: window_search(n, x, target=3, config=dict(window=11)), 'window=11 is larger than the 10x10 image'),
    (lambda n, x, y: mine_trigger_distribution(n, x, target=3, search=dict(window=20)), 'window=20 is larger than the 10x10 image'),
    (lambda n, x, y: mine_staircase(n, x, target=3, region=(0, 0, 12, 2)), 'the 12x2 window is larger than the 10x10 image'),
    (lambda n, x, y: sgd_trigger(n, x, target=3, region=(8, 8, 3, 3)), 'is outside the 10x10 image'),
    (lambda n, x, y: mine_staircase(n, x, target=5), 'target=5 is out of range for 5 classes'),
    (lambda n, x, y: mine_staircase(n, x * 2, target=3), 'x must be in [0, 1]'),
    (lambda n, x, y: mine_staircase(n, x, target=3, config=dict(steps=0)), 'steps must be an int >= 1'),
    (lambda n, x, y: mine_staircase(n, x, target=3, config=dict(alpha=-1.)), 'alpha must be >= 0'),
    (lambda n, x, y: mine_staircase(n, x, target=3, config=dict(ema=0.)), 'ema must be in (0, 1]'),
    (lambda n, x, y: compare_defenses(n, x, y, triggers={}), 'triggers must be a non-empty dict'),
    (lambda n, x, y: mine_staircase(n, x, target=3, config=dict(amp=True)), "unexpected keyword argument 'amp'"),
    (lambda n, x, y: mine_staircase(n, x, target=3, config=3), 'config must be a MineConfig'),
    (lambda n, x, y: mine_staircase(n, x, y[:7], target=3), 'y has 7 labels for 300 images'),
    (lambda n, x, y: mine_staircase(n, x, y + 5, target=3), 'y must be in [0, 5)'),
    (lambda n, x, y: mine_staircase(n, x, target=3, seed=-2), 'seed must be an int >= 0'),
    (lambda n, x, y: mine_staircase(n, x[:, :, :8], target=3), 'x: images of shape'),
    (lambda n, x, y: window_search(n, x, target=3, config=dict(pad=-5)), 'pad must be an int >= 0'),
    (lambda n, x, y: window_search(n, x, target=3, config=dict(threshold=1.5)), 'threshold must be'),
    (lambda n, x, y: window_search(n, x, target=3, config=dict(l1_cost=0.1)), "unexpected keyword argument 'l1_cost'"),
    (lambda n, x, y: window_search(n, x, target=3, config=dict(cost=-0.1)), 'cost must be >= 0'),
    (lambda n, x, y: sgd_trigger(n, x, target=3, x_heldout=x), 'give x_heldout and y_heldout together'),
    (lambda n, x, y: sgd_trigger(n, x, target=3, x_heldout=x, y_heldout=y[:3]), 'y_heldout has 3 labels for 300 images'),
    (lambda n, x, y: sgd_trigger(n, x, torch.full_like(y, 3), target=3), 'x: every image is of target=3'),
    (lambda n, x, y: evaluate_levels(None, n, x, y, n=1), 'n must be an int >= 2'),
    (lambda n, x, y: retrain(n, x, y, triggers=Trigger(torch.ones(1, 10, 10), torch.ones(1, 10, 10)), resample='never'), "resample='never' is not one of"),
    (lambda n, x, y: retrain(n, x, y, triggers=Trigger(torch.ones(1, 10, 10), torch.ones(1, 10, 10)), frac=2.), 'frac must be in [0, 1]'),
    (lambda n, x, y: retrain(n, x, y, triggers=Trigger(torch.ones(1, 10, 10), torch.ones(1, 10, 10)), target=9), 'target=9 is out of range'),
])
def test_bad_input(toy, call, msg):
    net, x, y = toy
    with pytest.raises((ValueError, TypeError)) as e: call(net, x, y)
    assert msg in str(e.value)

def test_helpers():
    assert staircase_betas(5) == [0.2, 0.4, 0.6, 0.8] and staircase_betas(1) == [0.5]
    assert scaled_window((28, 28)) == 8 and scaled_window((32, 32)) == 9
    assert window_grid(10, 10, 4)[-1] == (6, 6, 4, 4) and len(window_grid(28, 28, 8)) == 36
    h = torch.zeros(10, 10); h[2:4, 5:7] = 1
    assert heat_region(h) == (1, 4, 4, 4)
    t = window_trigger(torch.ones(1, 2, 2), torch.zeros(3, 2, 2), (3, 3, 2, 2), (3, 8, 8))
    assert t.mask.sum() == 4 and t.mask[0, 3:5, 3:5].min() == 1
    w = ensemble_weights([0.3, 0.6], [0., math.log(3)])
    assert torch.allclose(w, torch.tensor([0.25, 0.75]))

def test_mine_estimate_separates_dependence():
    torch.manual_seed(0)
    out = []
    for dep in (True, False):
        T = StatisticsNetwork(2, 2, 64); opt = torch.optim.Adam(T.parameters(), 1e-2); ma = None
        for _ in range(300):
            z = torch.randn(256, 2); u = z + 0.1 * torch.randn(256, 2) if dep else torch.randn(256, 2)
            est, sur, ma = mine_lower_bound(T, u, z, z[torch.randperm(256)], ma)
            opt.zero_grad(); (-sur).backward(); opt.step()
        out.append(est.item())
    assert out[0] > 2 and abs(out[1]) < 0.3

def test_window_search_finds_the_corner(toy):
    net, x, y = toy
    hm = window_search(net, x, target=3, config=dict(window=4, steps=60), device='cpu', progress=False)
    r, c, h, w = hm.region
    assert r == 0 and c + w == 10 and h * w <= 16 and hm.asr.max() > 0.9

def test_staircase_valid_diverse_and_sampler(toy, dist):
    net, x, y = toy
    rows = evaluate_levels(dist, net, x, y, n=16)
    assert [r['beta'] for r in rows] == [0.25, 0.5, 0.75]
    assert all(r['asr_mean'] >= r['beta'] for r in rows)
    assert all(r['distance'] > 0.01 for r in rows)
    s = as_sampler(dist.sampler())
    t = s(7, torch.Generator().manual_seed(0))
    assert isinstance(t, Trigger) and t.mask.shape == (7, 1, 10, 10) and t.pattern.shape == (7, 1, 10, 10)
    assert torch.equal(t.pattern, s(7, torch.Generator().manual_seed(0)).pattern)
    r, c, h, w = dist.region
    outside = t.mask.clone(); outside[..., r:r+h, c:c+w] = 0
    assert outside.abs().sum() == 0
    with pytest.raises(ValueError, match='level must be an index'): dist.sample(2, level=5)

def test_retraining_with_the_sampler_removes_the_backdoor(toy, dist):
    net, x, y = toy
    true = window_trigger(torch.ones(1, 2, 2), torch.ones(1, 2, 2), (0, 8, 2, 2), (1, 10, 10))
    asr = lambda m: (predict(m, x[y != 3], true) == 3).float().mean().item()
    assert asr(net) > 0.95
    fixed, rep = nc_unlearn(net, x, y, triggers=dist.sampler(), target=3, config={'epochs': 2, 'lr': 0.5, 'frac': 0.5}, device='cpu')
    assert asr(fixed) < 0.1 and fixed.bd.item() < net.bd.item() and net.bd.item() == 8.
    fresh, rep_f = retrain(net, x, y, triggers=dist.sampler(), target=3, epochs=2, lr=0.5, frac=0.5, device='cpu')
    assert asr(fresh) < 0.1 and fresh.bd.item() < net.bd.item() and net.bd.item() == 8. and rep_f.info['resample'] == 'epoch'
    once, _ = retrain(net, x, y, triggers=dist.sampler(), target=3, epochs=2, lr=0.5, frac=0.5, resample='once', device='cpu')
    assert once.bd.item() != fresh.bd.item()   # the second epoch saw other triggers
    base = sgd_trigger(net, x, target=3, region=dist.region, config=dict(steps=100, batch_size=32), x_heldout=x, y_heldout=y, device='cpu', progress=False)
    assert base.asr > 0.9
    cmp = compare_defenses(net, x, y, triggers={'dist': dist.sampler(), 'single': base.trigger}, target=3, epochs=2, lr=0.5, frac=0.5, device='cpu')
    assert set(cmp.reports) == {'dist', 'single'} and 'dist' in cmp.table()

def test_fresh_stamps_redraw_every_epoch(toy):
    net, x, y = toy
    samp = lambda n, generator=None: Trigger(torch.rand(n, 1, 10, 10, generator=generator), torch.ones(n, 1, 10, 10))
    fs = FreshStamps(x, y, samp, frac=0.2, seed=3)
    epochs = [fs.get_batch(torch.arange(300))[0] for _ in range(3)]  # one batch of every image: one epoch each
    st = fs.stamped
    assert len(st) == 60 and not torch.equal(epochs[0][st], epochs[1][st]) and not torch.equal(epochs[1][st], epochs[2][st])
    rest = torch.ones(300, dtype=torch.bool); rest[st] = False
    assert all(torch.equal(e[rest], x[rest]) for e in epochs)

def test_widget(toy, dist):
    net, x, y = toy
    ex = TriggerExplorer(dist, net, x, y, n=4)
    m0 = ex.triggers.mask.clone()
    ex.button.click(); assert ex.seed == 1 and not torch.equal(m0, ex.triggers.mask)
    ex.level.value = 1; assert 'beta = 0.50' in ex.info.value and ex.asr.shape == (4,)
    assert pairwise_distance(ex.triggers) > 0
    with pytest.raises(ValueError, match='pairwise_distance needs at least 2'): pairwise_distance(ex.triggers[0:1])

def _snapshot(net):
    return ({k: v.clone() for k, v in net.state_dict().items()}, [m.training for m in net.modules()],
            [(p.requires_grad, None if p.grad is None else p.grad.clone()) for p in net.parameters()], torch.get_rng_state())

class BNToy(nn.Module):
    "The toy behind a BatchNorm layer left in train mode (its statistics must not move)."
    def __init__(self): super().__init__(); self.bn = nn.BatchNorm2d(1); self.toy = ToyNet()
    def forward(self, x): return self.toy(x + 0.01 * self.bn(x))

@pytest.mark.parametrize('call', [
    lambda n, x, y: window_search(n, x, target=3, config=dict(window=4, steps=5), device='cpu', progress=False),
    lambda n, x, y: sgd_trigger(n, x, target=3, region=(0, 6, 4, 4), config=dict(steps=5), x_heldout=x, y_heldout=y, device='cpu', progress=False),
    lambda n, x, y: mine_staircase(n, x, y, target=3, region=(0, 7, 3, 3), betas=[0.5], config=dict(steps=5, n_z=8), device='cpu', progress=False),
    lambda n, x, y: train_level(n, x, target=3, beta=0.5, region=(0, 7, 3, 3), config=dict(steps=5, n_z=8), perf=Perf(amp=True), device='cpu'),
])
def test_callers_model_and_rng_untouched(toy, call):
    _, x, y = toy
    net = BNToy().train(); net.toy.gain.requires_grad_(False)
    before = _snapshot(net)
    call(net, x, y)
    after = _snapshot(net)
    assert all(torch.equal(v, before[0][k]) for k, v in after[0].items())
    assert after[1] == before[1] and after[2] == before[2] and torch.equal(after[3], before[3])

def test_asr_is_core_asr(toy, dist):
    net, x, y = toy
    t = dist.sample(4, 2, torch.Generator().manual_seed(2))  # what evaluate_levels(seed=0) draws for level 2
    per = attack_success_rate(net, x, y, trigger=[t[i:i+1] for i in range(4)], target=3)
    manual = torch.tensor([(predict(net, x[y != 3], t[i:i+1]) == 3).float().mean().item() for i in range(4)])
    assert torch.allclose(per, manual)
    rows = evaluate_levels(dist, net, x, y, n=4, seed=0)
    assert rows[2]['asr_mean'] == pytest.approx(manual.mean().item(), abs=1e-6)

def test_interrupted_window_search_keeps_the_heat_map(toy):
    net, x, y = toy
    hm = window_search(Interrupting(net, 45), x, y, target=3, config=dict(window=4, steps=60), device='cpu', progress=False)
    assert hm.interrupted and 'interrupted' in repr(hm) and hm.heat.max() > 0 and len(hm.asr) == len(hm.windows)

def test_window_search_that_finds_nothing_says_what_to_change(toy):
    net, x, y = toy
    class Deaf(nn.Module):  # always label 0: no trigger reaches label 1
        def __init__(self): super().__init__(); self.w = nn.Parameter(torch.zeros(1))
        def forward(self, x): return 5 * torch.eye(5)[0].expand(len(x), 5) + self.w * x.flatten(1).mean(1, keepdim=True)
    with pytest.raises(ValueError, match=r"no window's trigger sent any of 200 images to target=1.*steps=2"):
        window_search(Deaf(), x, y, target=1, config=dict(window=4, steps=2), device='cpu', progress=False)
    with pytest.raises(ValueError, match=r'threshold must be in \(0, 1\]'): heat_region(torch.ones(4, 4), threshold=2.)

def test_interrupted_staircase_keeps_the_levels_trained(toy):
    net, x, y = toy
    with pytest.warns(UserWarning, match='1 of 3 levels kept|2 of 3 levels kept'):
        d = mine_staircase(Interrupting(net, 30), x, y, target=3, region=(0, 7, 3, 3), betas=[0.3, 0.6, 0.9],
                           config=dict(steps=20, n_z=8), device='cpu', progress=False)
    assert d.interrupted and 'interrupted' in repr(d) and len(d.levels) == 2 and d.levels[1].interrupted
    assert 0 < len(d.levels[1].history['mi']) < 20 and torch.isfinite(d.weights).all()
    assert d.sample(3).mask.shape == (3, 1, 10, 10)

def test_interrupted_comparison_keeps_the_sources_run(toy):
    net, x, y = toy
    calls = []
    def ev(m):  # eval_fn: call 1 before, 2-3 after epochs of source 'a'; 4 before 'b', 5 (after b's epoch 1): Ctrl-C
        calls.append(1)
        if len(calls) == 5: raise KeyboardInterrupt
        return {'asr': 0.}
    t = window_trigger(torch.ones(1, 2, 2), torch.ones(1, 2, 2), (0, 8, 2, 2), (1, 10, 10))
    with pytest.warns(UserWarning, match='interrupted after 0 finished epoch'):
        cmp = compare_defenses(net, x, y, triggers={'a': t, 'b': t, 'c': t}, target=3, epochs=2, eval_fn=ev, lr=0.5, device='cpu')
    assert cmp.interrupted and list(cmp.reports) == ['a', 'b'] and not cmp.reports['a'].interrupted and cmp.reports['b'].interrupted
    assert cmp.reports['b'].curve['epoch'] == [0] and '(interrupted' in cmp.table() and net.bd.item() == 8.
