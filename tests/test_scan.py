"scan(): verdicts on the toy backdoor, the caller's model and RNG left as found, results that save and load, a self-contained report."
import re
import pytest, torch
from backdoor_nb.core import LabelScan
from backdoor_nb.scan import scan, ToyBackdoor, toy_images, DETECTORS, register_detector, ScanData

FAST = {'nc': dict(max_steps=80), 'smoothinv': dict(eps=1.5, n_noise=8, steps=60)}

@pytest.fixture(scope='module')
def data(): return toy_images(300)

def test_verdicts(data):
    r = scan(ToyBackdoor(target=2), data, config=FAST, progress=False, device='cpu')
    assert r.backdoored and r.target == 2 and r.trigger is not None and r.trigger_asr > 0.9
    c = scan(ToyBackdoor(backdoor=False), data, config=FAST, progress=False, device='cpu')
    assert not c.backdoored and c.target is None and c.trigger_asr is None

def test_model_and_rng_untouched(data):
    m = ToyBackdoor(); m.train(); m.gain.requires_grad_(True)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    scan(m, data, config=FAST, progress=False, device='cpu')
    assert m.training and m.gain.requires_grad and m.gain.grad is None
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())

def test_same_seed_same_report(data):
    a = scan(ToyBackdoor(), data, config=FAST, progress=False, device='cpu', seed=3).to_dict()
    b = scan(ToyBackdoor(), data, config=FAST, progress=False, device='cpu', seed=3).to_dict()
    strip = lambda d: {k: ({n: {**v, 'seconds': 0} for n, v in d[k].items()} if k == 'detectors' else d[k]) for k in ('verdict', 'detectors')}
    assert strip(a) == strip(b)

def test_results_save_load(data, tmp_path):
    r = scan(ToyBackdoor(), data, ['nc', 'smoothinv', 'df-tnd'], config={**FAST, 'df-tnd': dict(n_images=4, steps=10)},
             progress=False, device='cpu')
    assert list(r.results) == ['smoothinv', 'df-tnd', 'nc']  # cheapest first
    for n, res in r.results.items():
        back = LabelScan.load(res.save(tmp_path / n))
        assert type(back) is type(res) and back.flagged == res.flagged and back.summary()['score'] == pytest.approx(res.summary()['score'])

def test_html_is_self_contained(data, tmp_path):
    r = scan(ToyBackdoor(), data, config=FAST, progress=False, device='cpu')
    page = r.to_html(tmp_path / 'r.html', x=data[0][:2])
    assert not re.search(r"""(src|href)=['"](?!data:)""", page), 'a resource that is not embedded'
    assert 'BACKDOORED' in page and '<script' not in page

def test_registry_extends(data):
    "Adding a detector is one registry entry; scan runs it and the vote counts it."
    from backdoor_nb.neural_cleanse import neural_cleanse
    @register_detector('nc-short', needs='10 images', missing=lambda d, k: None, cost=0.1, default=False)
    def short(model, data, *, seed=0, device=None, progress=True, budget_s=None, **cfg):
        return neural_cleanse(model, data.x[:20], config=dict(max_steps=40), progress=False, device=device, seed=seed)
    try:
        r = scan(ToyBackdoor(), data, ['nc-short'], progress=False, device='cpu')
        assert list(r.results) == ['nc-short'] and r.verdict.votes['nc-short']['weight'] == 1.
    finally: DETECTORS.pop('nc-short')

def test_bad_input(data):
    x, y = data
    with pytest.raises(ValueError, match='data.x'): scan(ToyBackdoor(), x * 2, progress=False)
    with pytest.raises(ValueError, match='data.y has label 7'): scan(ToyBackdoor(), (x, y.clone().fill_(7)), progress=False)
    with pytest.raises(TypeError, match='config must map'): scan(ToyBackdoor(), data, config={'nc': 3}, progress=False)
    with pytest.raises(ValueError, match='dl-tnd needs one clean image of every class'):
        scan(ToyBackdoor(), (x[y < 3], y[y < 3]), ['dl-tnd'], progress=False)
    with pytest.raises(ValueError, match='do not fit the model'):
        scan(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5, 6)), data, progress=False)

def test_interrupt_stops_the_scan(data):
    "Ctrl-C in the first detector: its partial result is kept and the later detectors are reported as not run."
    from helpers import Interrupting
    from backdoor_nb.invert import Perf
    cfg = {'nc': FAST['nc'], 'smoothinv': {**FAST['smoothinv'], 'perf': Perf(fast=False)}}
    r = scan(Interrupting(ToyBackdoor(target=2), 8), data, config=cfg, progress=False, device='cpu')
    assert list(r.results) == ['smoothinv'] and r.results['smoothinv'].interrupted
    assert 'interrupted' in r.skipped['nc']
