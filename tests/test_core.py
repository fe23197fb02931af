"Bad input to the trigger type and the metrics raises clear errors naming the argument."
import pytest, torch
from backdoor_nb.core import Trigger, check_images, attack_success_rate, accuracy, batched_logits

def test_trigger_rejects_out_of_range_mask():
    with pytest.raises(ValueError, match='mask must be in'): Trigger(torch.full((1, 4, 4), 2.), torch.ones(1, 4, 4))

def test_trigger_rejects_nan_delta():
    with pytest.raises(ValueError, match='delta contains NaN'): Trigger(delta=torch.full((1, 4, 4), float('nan')))

def test_trigger_rejects_size_mismatch_on_apply():
    t = Trigger(torch.ones(1, 4, 4), torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match='images are'): t.apply(torch.rand(2, 1, 5, 5))

def test_images_0_255_rejected():
    with pytest.raises(ValueError, match='x must be in \\[0, 1\\]'): check_images(torch.rand(1, 1, 2, 2) * 255)

def test_label_out_of_range_in_metrics():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2)
    with pytest.raises(ValueError, match='target=3 is out of range|target'):
        attack_success_rate(model, x, torch.zeros(5, dtype=torch.long), Trigger(delta=torch.zeros(1, 2, 2)), target=-1)

def test_batched_logits_matches_full_pass():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(37, 1, 2, 2)
    torch.testing.assert_close(batched_logits(model, x, batch_size=5, device='cpu'), model(x))
