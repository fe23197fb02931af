"Attacks: bad input, and an integration run on the bundled digits."
import pytest, torch
from backdoor_nb.attacks import (place, solid_patch, Backdoor, AllToOne, SourceSpecific, PoisonedData, model_zoo,
                                 evaluate_backdoor, load_zoo_model)
from backdoor_nb.data import load_data

@pytest.fixture(scope='module')
def digits(): return load_data('digits')

def test_trigger_larger_than_image():
    with pytest.raises(ValueError, match='larger than the image'): place(solid_patch(40), (1, 28, 28))

def test_poison_rate_out_of_range(digits):
    bd = Backdoor(place(solid_patch(3), (1, 28, 28)), AllToOne(0))
    for r in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match='rate must be in \\(0, 1\\]'): PoisonedData(digits.train, bd, rate=r)

def test_target_out_of_range(digits):
    with pytest.raises(ValueError, match='target=10 is out of range'):
        PoisonedData(digits.train, Backdoor(place(solid_patch(3), (1, 28, 28)), AllToOne(10)), 0.1)

def test_source_classes_empty():
    with pytest.raises(ValueError, match='sources is empty'): SourceSpecific(0, [])

def test_zoo_round_trip_and_determinism(digits, tmp_path):
    small = type(digits)(digits.train[:1500], digits.test[:500], digits.name) if hasattr(digits, 'name') else digits
    z1 = model_zoo('digits', ['badnets'], data=small, cache_dir=tmp_path / 'a', epochs=5, batch_size=32, progress=False)['badnets']
    z2 = model_zoo('digits', ['badnets'], data=small, cache_dir=tmp_path / 'b', epochs=5, batch_size=32, progress=False)['badnets']
    assert z1.metrics['asr'] > 0.9 and z1.metrics['clean_acc'] > 0.85
    for (k, a), (_, b) in zip(z1.model.state_dict().items(), z2.model.state_dict().items()):
        torch.testing.assert_close(a, b, msg=f'training not deterministic for {k}')
    z3 = load_zoo_model(z1.path, device='cpu')
    assert z3.backdoor.target == 0 and z3.metrics == z1.metrics
    again = evaluate_backdoor(z3.model, small.test.x, small.test.y, z3.backdoor, device='cpu')
    assert abs(again['asr'] - z1.metrics['asr']) < 1e-6

def test_adaptive_loss_mgda_weights_and_bad_alphas():
    from backdoor_nb.attacks import adaptive_loss, min_norm_weights
    bd = Backdoor(place(solid_patch(2), (1, 8, 8)), AllToOne(0))
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    x, y = torch.rand(16, 1, 8, 8) * 0.9, torch.arange(16) % 5
    f = adaptive_loss(bd)
    f(m, x, y).backward()
    w = torch.tensor(f.weights[0])
    assert len(w) == 3 and (w >= 0).all() and abs(w.sum().item() - 1) < 1e-5
    g = torch.tensor([[3., 0.], [0., 1.]])                      # min |a g_0 + (1-a) g_1|: a = 1/10
    assert torch.allclose(min_norm_weights(g @ g.T), torch.tensor([0.1, 0.9]), atol=1e-6)
    with pytest.raises(ValueError, match="alphas must be 'mgda' or three weights >= 0"): adaptive_loss(bd, alphas=(1., 1.))
    with pytest.raises(ValueError, match='sigma must be > 0'): adaptive_loss(bd, sigma=-1)
