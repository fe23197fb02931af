"Neural Cleanse: bad input raises clear errors; results never contain NaN; interrupting keeps partial results; the caller's model is untouched."
import pytest, torch
from torch import nn
from backdoor_nb.neural_cleanse import neural_cleanse, anomaly_index, NCConfig
from backdoor_nb.core import make_config
from helpers import Interrupting

FAST = dict(max_steps=3, samples_per_step=32, batch_size=8)

@pytest.fixture
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))

@pytest.fixture
def x(): return torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))

def test_empty_clean_set(model, x):
    with pytest.raises(ValueError, match='x is empty'): neural_cleanse(model, x[:0], progress=False)

def test_images_outside_unit_range(model, x):
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): neural_cleanse(model, x * 3, progress=False)

def test_output_width_mismatch(model, x):
    with pytest.raises(ValueError, match='outputs 5 logits but n_classes=10'): neural_cleanse(model, x, n_classes=10, progress=False)

def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match='asr_threshold'): NCConfig(asr_threshold=1.5)
    with pytest.raises(ValueError, match=r"unknown NCConfig field\(s\) \['chunk'\]"): make_config(NCConfig, chunk=0)
    with pytest.raises(ValueError, match='max_steps must be an int >= 1'): NCConfig(max_steps=True)

def test_no_nan_and_deterministic(model, x):
    a = neural_cleanse(model, x, config=FAST, progress=False, device='cpu')
    b = neural_cleanse(model, x, config=FAST, progress=False, device='cpu')
    assert torch.isfinite(a.l1).all() and torch.isfinite(a.anomaly).all()
    torch.testing.assert_close(a.l1, b.l1)
    assert a.masks.shape == (5, 1, 8, 8) and a.patterns.shape == (5, 1, 8, 8)

def test_interrupt_keeps_partial_results(model, x):
    r = neural_cleanse(Interrupting(model, 12), x, config=dict(max_steps=50, samples_per_step=16, batch_size=8), progress=False, device='cpu')
    assert r.interrupted and torch.isfinite(r.l1).all() and (r.steps > 0).all() and (r.steps < 50).all()

def test_anomaly_index_needs_three():
    with pytest.raises(ValueError, match='at least 3'): anomaly_index([1., 2.])

def test_caller_model_untouched(model, x):
    "The scan freezes the weights while it runs and leaves each flag, mode, buffer, grad and the global RNG as it found them."
    model[1].bias.requires_grad_(False); model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    neural_cleanse(model, x, config=dict(max_steps=2, samples_per_step=16, batch_size=8), progress=False, device='cpu')
    assert [p.requires_grad for p in model.parameters()] == [True, False]
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)

def test_budget_marks_result(model, x):
    r = neural_cleanse(model, x, config=dict(max_steps=500, samples_per_step=16, batch_size=8), budget_s=1e-3, progress=False, device='cpu')
    assert r.budget_limited and (r.steps >= 1).all()
