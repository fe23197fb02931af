"SmoothInv: bad input, the PGD invariants, identification on a toy backdoor, the caller's state (real-data checks: the notebook's slow cells)."
import math
import pytest, torch
from torch import nn
from backdoor_nb.core import Trigger, strength_map
from backdoor_nb.invert import Perf
from backdoor_nb.scan import ToyBackdoor, toy_images
from backdoor_nb.smoothinv import (scale_eps, default_eps, Smoothed, smoothed_predict, _pgd, smoothinv, plainadv, smoothinv_sweep,
                                   identify_target, smoothing_sanity, smoothinv_demo_step, SmoothInvExplorer, SmoothInvConfig,
                                   DnCNN, pretrained_denoiser, nc_single_image, SMOOTHINV_PERF)

@pytest.fixture(scope='module')
def toy():
    x, y = toy_images(200)
    return ToyBackdoor(), x[0], x[1:], y[1:]

FAST = dict(n_noise=8, steps=60)

@pytest.mark.parametrize('kw, msg', [
    (dict(eps=0.), 'eps must be > 0'), (dict(eps=-2.), 'eps must be > 0'), (dict(eps=float('inf')), 'eps must be > 0'),
    (dict(sigma=-0.1), 'sigma must be >= 0'), (dict(n_noise=0), 'n_noise must be an int >= 1'),
    (dict(steps=0), 'steps must be an int >= 1'), (dict(step_size=0.), 'step_size must be > 0'),
    (dict(threshold=1.5), r'threshold must be in \(0, 1\]'), (dict(shrink=1.5), 'shrink must be an int >= 0'),
    (dict(schedule='x'), "schedule='x' is not one of"), (dict(chunk=8), r"config: unknown field\(s\) \['chunk'\]"),
])
def test_bad_hyper_parameters(toy, kw, msg):
    m, x0, _, _ = toy
    with pytest.raises(ValueError, match=msg): smoothinv(m, x0, target=3, config=kw)

def test_bad_target_and_image(toy):
    m, x0, xh, yh = toy
    with pytest.raises(ValueError, match='target=6 is out of range for 6 classes'): smoothinv(m, x0, target=6)
    with pytest.raises(ValueError, match='target=-1 is out of range'): plainadv(m, x0, target=-1)
    with pytest.raises(TypeError, match='target must be an int'): smoothinv(m, x0, target=1.5)
    with pytest.raises(TypeError, match="required keyword-only argument: 'target'"): smoothinv(m, x0, 3)
    with pytest.raises(ValueError, match='y=7 is out of range'): smoothinv(m, x0, 7, target=3)
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): smoothinv(m, x0 * 255, target=3)
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): identify_target(m, x0 - 1, x_heldout=xh, y_heldout=yh)
    with pytest.raises(ValueError, match='x contains NaN'): smoothinv(m, x0 * float('nan'), target=3)
    with pytest.raises(ValueError, match=r'x must have shape \(C, H, W\)'): smoothinv(m, xh[:3], target=3)
    with pytest.raises(ValueError, match='labels=9 is out of range'): identify_target(m, x0, x_heldout=xh, y_heldout=yh, labels=[1, 9])
    with pytest.raises(ValueError, match='give x_heldout and y_heldout together'): smoothinv(m, x0, target=3, y_heldout=yh)
    with pytest.raises(ValueError, match='y_heldout has 5 labels'): smoothinv(m, x0, target=3, x_heldout=xh, y_heldout=yh[:5])
    with pytest.raises(ValueError, match=r'y_heldout must be in \[0, 6\)'): identify_target(m, x0, x_heldout=xh, y_heldout=yh + 6)
    with pytest.raises(ValueError, match='needs x_heldout'): smoothinv_sweep(m, x0, target=3)
    with pytest.raises(ValueError, match='identify_target needs x_heldout'): identify_target(m, x0, x_heldout=None, y_heldout=None)
    with pytest.raises(TypeError, match='perf must be an invert.Perf'): identify_target(m, x0, x_heldout=xh, y_heldout=yh, perf=1)
    with pytest.raises(ValueError, match='budget_s must be > 0'): smoothinv(m, x0, target=3, budget_s=-1)
    with pytest.raises(ValueError, match='seed must be an int >= 0'): identify_target(m, x0, x_heldout=xh, y_heldout=yh, seed=-1)
    with pytest.raises(ValueError, match='plainadv runs the model itself'): plainadv(m, x0, target=3, config={'sigma': 0.5})
    with pytest.raises(ValueError, match='y has 5 labels'): smoothinv_demo_step(m, xh, yh[:5])
    with pytest.raises(ValueError, match='target=6 is out of range'): nc_single_image(m, x0, target=6)

def test_denoiser_name_cannot_leave_the_cache(toy, tmp_path):
    "A data-set name is part of a file name: '../x' and the like are refused before anything is trained or written."
    _, _, xh, _ = toy
    cache = tmp_path / 'cache'; cache.mkdir()
    for bad in ('../x', '..', 'a/b', '/tmp/x', 'x.y', '', 'a\\b'):
        with pytest.raises(ValueError, match='name must be a plain identifier'): pretrained_denoiser(bad, xh, cache_dir=cache)
    assert list(tmp_path.rglob('*')) == [cache]

def test_scale_eps():
    assert scale_eps(5, (3, 32, 32)) == pytest.approx(5.)
    assert default_eps((1, 28, 28)) == pytest.approx((5 / math.sqrt(3), 10 / math.sqrt(3)))
    assert scale_eps(10, (3, 112, 112), rule='sqrt_d') == pytest.approx(5.)
    with pytest.raises(ValueError, match="rule='x' is not an eps rule"): scale_eps(5, (1, 28, 28), rule='x')

def test_pgd_invariants_and_batching(toy):
    m, x0, _, _ = toy
    P = SMOOTHINV_PERF
    run = _pgd(m, x0, [3, 1, 0], [1.5, 0.7, 1.5], [0.25, 0.5, 0.], n_noise=8, steps=40, seed=3, perf=P)
    p = run['p']
    assert (p.flatten(1).norm(dim=1) <= run['eps'] + 1e-4).all()
    assert ((x0 + p) >= 0).all() and ((x0 + p) <= 1 + 1e-6).all()
    assert (run['history']['loss'][-1] < run['history']['loss'][0]).all()
    alone = _pgd(m, x0, [1], 0.7, 0.5, n_noise=8, steps=40, seed=3, perf=P)['p'][0]
    torch.testing.assert_close(alone, p[1], atol=1e-5, rtol=0)   # common random numbers: batch == alone
    again = _pgd(m, x0, [1], 0.7, 0.5, n_noise=8, steps=40, seed=3, perf=P)['p'][0]
    assert torch.equal(alone, again)                               # the seed reproduces the run
    assert not torch.equal(alone, _pgd(m, x0, [1], 0.7, 0.5, n_noise=8, steps=40, seed=4, perf=P)['p'][0])
    chunked = _pgd(m, x0, [3, 1, 0], [1.5, 0.7, 1.5], [0.25, 0.5, 0.], n_noise=8, steps=40, seed=3, perf=Perf(fast=True, batch=8))['p']
    torch.testing.assert_close(chunked, p, atol=1e-5, rtol=0)      # one row per forward-backward pass: the same run
    with pytest.raises(ValueError, match='batch must be an int >= 1'): Perf(batch=0)
    with pytest.raises(ValueError, match='n_noise must be an int >= 1'): _pgd(m, x0, [1], 0.7, 0.5, steps=1, n_noise=0, perf=P)
    with pytest.raises(ValueError, match='sigma has 2 values for 3 rows'): _pgd(m, x0, [1, 2, 3], 0.7, [0.5, 0.1], steps=1, n_noise=2, perf=P)

def test_smoothed_classifier_reduces_to_model(toy):
    m, _, xh, _ = toy
    with torch.no_grad(): torch.testing.assert_close(Smoothed(m, 0., 1)(xh[:4]), m(xh[:4]).log_softmax(1))
    assert torch.equal(smoothed_predict(m, xh[:20], sigma=0., n_noise=1), m(xh[:20]).argmax(1))

def test_smoothinv_finds_the_toy_backdoor(toy):
    m, x0, xh, yh = toy
    r = smoothinv(m, x0, target=3, config=dict(eps=1.5, **FAST), x_heldout=xh, y_heldout=yh, device='cpu')
    assert r.method == 'smoothinv' and r.target == 3 and r.asr > 0.95
    s = strength_map(r.trigger)
    assert s[-2:, -2:].mean() > 3 * s.mean()
    assert r.trigger.delta.shape == (1, 12, 12) and r.info['pred_synth'] == 3
    normal = smoothinv(m, x0, target=1, config=dict(eps=1.5, **FAST), x_heldout=xh, y_heldout=yh, device='cpu')
    assert normal.asr < 0.5

def test_identification(toy):
    m, x0, xh, yh = toy
    s = identify_target(m, x0, x_heldout=xh, y_heldout=yh, config=dict(eps=1.5, **FAST), device='cpu')
    assert s.target == 3 and s.backdoored and s.margin > 0.4
    assert s.perturbations.shape == (6, 1, 12, 12) and s.asr.shape == (6,)
    assert not identify_target(ToyBackdoor(backdoor=False), x0, x_heldout=xh, y_heldout=yh, config=dict(eps=1.5, **FAST), device='cpu').backdoored
    ax = s.plot(); assert len(ax.patches) == 6

def test_budget_ladder(toy):
    "Too large a budget lets every label transfer: the scan halves it until at most one label does."
    m, x0, xh, yh = toy
    fixed = identify_target(m, x0, x_heldout=xh, y_heldout=yh, config=dict(eps=6., shrink=0, **FAST), device='cpu')
    assert (fixed.asr >= 0.5).sum() > 1 and not fixed.backdoored and len(fixed.ladder) == 1
    s = identify_target(m, x0, x_heldout=xh, y_heldout=yh, config=dict(eps=6., **FAST), device='cpu')
    assert [e for e, *_ in s.ladder][0] == 6. and s.eps < 6. and s.target == 3 and s.backdoored
    assert all(e2 == e1 / 2 for (e1, *_), (e2, *_) in zip(s.ladder, s.ladder[1:]))
    assert not identify_target(ToyBackdoor(backdoor=False), x0, x_heldout=xh, y_heldout=yh, config=dict(eps=6., **FAST), device='cpu').backdoored
    with pytest.raises(ValueError, match='shrink must be an int >= 0'): identify_target(m, x0, x_heldout=xh, y_heldout=yh, config=dict(shrink=1.5))

def test_denoiser_hook_is_used(toy):
    m, x0, xh, yh = toy
    calls = []
    def T(z): calls.append(len(z)); return z.clamp(0, 1)
    r = smoothinv(m, x0, target=3, config=dict(eps=1.5, n_noise=4, steps=10), denoiser=T, x_heldout=xh, y_heldout=yh, device='cpu')
    assert calls == [4] * 10 and r.info['denoiser']
    dn = DnCNN(1, 4, 2)
    smoothinv(m, x0, target=3, config=dict(eps=1.5, n_noise=2, steps=2), denoiser=dn, device='cpu')
    assert all(p.requires_grad for p in dn.parameters())

def test_sanity_table(toy):
    m, _, xh, yh = toy
    patch = Trigger(torch.zeros(1, 12, 12).index_put_((torch.tensor([0] * 4), torch.tensor([10, 10, 11, 11]), torch.tensor([10, 11, 10, 11])),
                                                      torch.ones(4)), torch.ones(1, 12, 12))
    st = smoothing_sanity(m, xh, yh, trigger=patch, target=3, sigmas=[0., 0.25], n_noise=8)
    assert st.rows['w/o']['asr'] == [1.0, 1.0] and st.rows['w/o']['clean_acc'][0] == 1.0
    with pytest.raises(ValueError, match='sigma must be >= 0'): smoothing_sanity(m, xh, yh, trigger=patch, target=3, sigmas=[-0.5])

def test_widget_and_demo(toy):
    m, x0, xh, yh = toy
    ex = SmoothInvExplorer(m, x0, x_heldout=xh, y_heldout=yh, config=dict(n_noise=4, steps=20), target=3)
    assert ex.result.target == 3
    ex.eps.value = 0.4
    assert max(ex.result.history['norm']) <= 0.4 + 1e-4
    ex.target.value = 2
    assert ex.result.target == 2 and 'target 2' in ex.info.value
    x, y = toy_images(200)
    d = smoothinv_demo_step(m, x, y, config=dict(eps=1.5, n_noise=4, steps=40), device='cpu')
    assert d['target'] == 3 and d['backdoored'] and d['seconds'] >= 0

class _BNToy(nn.Module):
    "The toy behind a BatchNorm in training mode, one frozen parameter, a sub-module in eval mode: state to be left alone."
    def __init__(self):
        super().__init__(); self.bn = nn.BatchNorm2d(1); self.toy = ToyBackdoor()
    def forward(self, x): return self.toy(self.bn(x) * 0.01 + x)

@pytest.mark.parametrize('call', ['smoothinv', 'plainadv', 'identify', 'sweep', 'predict'])
def test_callers_model_and_rng_are_left_alone(toy, call):
    _, x0, xh, yh = toy
    m = _BNToy().train(); m.toy.eval(); m.toy.gain.requires_grad_(False)
    modes, flags = [mm.training for mm in m.modules()], [p.requires_grad for p in m.parameters()]
    state = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    kw = dict(config=dict(eps=1.5, n_noise=4, steps=5), device='cpu')
    for perf in (Perf(), Perf(fast=True, amp=True)):
        if call == 'smoothinv': smoothinv(m, x0, target=3, perf=perf, x_heldout=xh, y_heldout=yh, **kw)
        if call == 'plainadv': plainadv(m, x0, target=3, perf=perf, config=dict(eps=1.5, steps=5), device='cpu')
        if call == 'identify': identify_target(m, x0, x_heldout=xh, y_heldout=yh, perf=perf, progress=False, **kw)
        if call == 'sweep': smoothinv_sweep(m, x0, target=3, eps_grid=[1.], sigmas=[0.1], perf=perf, config=dict(n_noise=4, steps=5),
                                            x_heldout=xh, y_heldout=yh, progress=False, device='cpu')
        if call == 'predict': smoothed_predict(m, xh[:10], sigma=0.25, n_noise=4, perf=perf, device='cpu')
    assert [mm.training for mm in m.modules()] == modes
    assert [p.requires_grad for p in m.parameters()] == flags
    assert all(p.grad is None for p in m.parameters())
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())  # BN running statistics included
    assert all(p.device.type == 'cpu' for p in m.parameters())
    assert torch.equal(torch.get_rng_state(), rng)

def test_schedule_keeps_a_late_starter():
    "A label whose probe ASR is still ~0 after the first rounds is not dropped before `drop_after` of the steps (the CIFAR-10 BadNets"
    " target at eps 1.25 transfers to 3 % after 50 steps and 76 % after 100); after that, the halving drops it."
    from backdoor_nb.smoothinv import SCHEDULES, Schedule, _open_after
    sch = SCHEDULES['halving']
    open_, asr = torch.arange(10), torch.tensor([0.02, 0.3, 0.1, 0.05, 0.14, 0.01, 0.19, 0.03, 0.02, 0.07])
    for done in (25, 50):  # before a quarter of 400 steps: every label stays open, no early verdict
        nxt, decision = _open_after(sch, asr, open_, 0.5, done, 400)
        assert decision == '' and nxt.tolist() == list(range(10))
    nxt, decision = _open_after(sch, asr, open_, 0.5, 100, 400)
    assert decision == '' and nxt.tolist() == [1, 6]  # the cut at 0.3 after 100 steps: below it only the best `min_keep` go on
    from dataclasses import replace
    assert _open_after(replace(sch, cuts=()), asr, open_, 0.5, 100, 400)[0].tolist() == [1, 2, 4, 6]  # no cuts: the best third and all >= 0.2
    # two labels clearly above the threshold end the budget at any round: it is too large
    assert _open_after(sch, torch.tensor([0.7, 0.65] + [0.] * 8), open_, 0.5, 25, 400)[1] == 'too large'
    with pytest.raises(ValueError, match='Schedule.drop_after must be in'): Schedule(rounds=((1., 1.),), drop_after=1.5)

def test_schedule_cuts_and_none():
    "From a quarter of the steps, every label far below (< 0.2) ends the budget; the cuts drop labels too far below to reach"
    " the threshold in the steps left (0.3 after 100 steps, 0.35 after 200), whatever their rank, keeping the best two."
    from backdoor_nb.smoothinv import SCHEDULES, Schedule, _open_after
    sch, open_ = SCHEDULES['halving'], torch.arange(6)
    low = torch.tensor([0.19, 0.15, 0.02, 0.0, 0.1, 0.05])
    nxt, decision = _open_after(sch, low, open_, 0.5, 50, 400)
    assert decision == '' and nxt.tolist() == list(range(6))  # too early to decide
    nxt, decision = _open_after(sch, low, open_, 0.5, 100, 400)
    assert decision == 'none' and len(nxt) == 0
    asr = torch.tensor([0.55, 0.45, 0.34, 0.36, 0.25, 0.1])
    assert _open_after(sch, asr, open_, 0.5, 100, 400)[0].tolist() == [0, 1, 2, 3]  # cut 0.3: 0.25 goes although >= 0.2
    assert _open_after(sch, asr, open_, 0.5, 200, 400)[0].tolist() == [0, 1, 3]  # cut 0.35: 0.34 goes although in the best third
    assert len(_open_after(sch, torch.full((6,), 0.21), open_, 0.5, 200, 400)[0]) == 2  # the best two always stay
    assert SCHEDULES['paper'].cuts == ()
    with pytest.raises(ValueError, match='Schedule.cuts: each cut'): Schedule(rounds=((1., 1.),), cuts=((0.5, 2.),))
    with pytest.raises(ValueError, match='Schedule.cuts must be a tuple'): Schedule(rounds=((1., 1.),), cuts=0.3)

def test_interrupt_stops_the_scan(toy):
    "Ctrl-C in the first round: the transfer reached so far is measured, no further round or budget runs, the scan says so."
    from helpers import Interrupting
    m, x0, xh, yh = toy
    s = identify_target(Interrupting(m, 8), x0, x_heldout=xh, y_heldout=yh, config=FAST, perf=Perf(fast=False), progress=False, device='cpu')
    assert s.interrupted and len(s.rounds) == 1 and len(s.ladder) == 1 and '[interrupted]' in repr(s)
    assert s.rounds[0]['steps'] < FAST['steps'] and torch.isfinite(s.asr).all()
    full = identify_target(m, x0, x_heldout=xh, y_heldout=yh, config=FAST, perf=Perf(fast=False), progress=False, device='cpu')
    assert not full.interrupted and len(full.rounds) > 1  # without the Ctrl-C the scan goes on to more rounds or budgets

def test_interrupted_denoiser_is_not_cached(tmp_path, monkeypatch):
    "Ctrl-C while the denoiser trains: nothing half-trained is written to the cache (the next call trains it again)."
    import backdoor_nb.models as M
    monkeypatch.setattr(M, 'train', lambda model, data, **kw: M.History(interrupted=True))
    with pytest.raises(KeyboardInterrupt, match='not cached'):
        pretrained_denoiser('tiny', torch.rand(8, 1, 8, 8), cache_dir=tmp_path, progress=False, device='cpu')
    assert not list(tmp_path.iterdir())

def test_concentration_test_flags_the_patch_and_round_trips(toy, tmp_path):
    "At eps 6 every band transfers; kept on 3 % of the pixels only the patch's label does. The decision survives save/load."
    from backdoor_nb.core import LabelScan
    from backdoor_nb.smoothinv import TargetScan, concentrate
    m, x0, xh, yh = toy
    cfg = dict(eps=6., n_noise=8, steps=60, shrink=0)
    s = identify_target(m, x0, x_heldout=xh, y_heldout=yh, config={**cfg, 'concentrate': 0.03}, progress=False)
    assert (s.backdoored, s.target, s.decided_by) == (True, 3, 'concentration') and s.flagged == [3]
    assert s.concentrated_asr[s.candidates.index(3)] >= 0.4 and sum(a >= 0.4 for a in s.concentrated_asr) == 1
    assert s.margin > 0 and s.target_asr == s.asr[s.labels.index(3)].item()
    back = LabelScan.load(s.save(tmp_path / 'conc'))
    assert type(back) is TargetScan and (back.backdoored, back.target, back.decided_by, back.candidates) == (True, 3, 'concentration', s.candidates)
    off = identify_target(m, x0, x_heldout=xh, y_heldout=yh, config={**cfg, 'concentrate': 0.}, progress=False)
    assert not off.backdoored and off.candidates == []  # the test switched off: the ladder's verdict alone
    clean = identify_target(ToyBackdoor(backdoor=False), x0, x_heldout=xh, y_heldout=yh, config={**cfg, 'concentrate': 0.03}, progress=False)
    assert not clean.backdoored and clean.decided_by == 'transfer' and clean.candidates  # it ran and found no patch
    with pytest.raises(ValueError, match=r'concentrate must be in \[0, 1\)'): SmoothInvConfig(concentrate=1.)
    with pytest.raises(ValueError, match=r'concentrated must be in \(0, 1\]'): SmoothInvConfig(concentrated=0.)
    with pytest.raises(ValueError, match=r'frac must be in \(0, 1\]'): concentrate(torch.zeros(3, 4, 4), 0.)
