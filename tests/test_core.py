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
        attack_success_rate(model, x, torch.zeros(5, dtype=torch.long), trigger=Trigger(delta=torch.zeros(1, 2, 2)), target=-1)

def test_batched_logits_matches_full_pass():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(37, 1, 2, 2)
    torch.testing.assert_close(batched_logits(model, x, batch_size=5, device='cpu'), model(x))

@pytest.mark.parametrize('arch', ['compact_cnn', 'preact_resnet18'])
def test_inference_copy_matches_zoo_architectures(arch):
    "BN folding, ReLU/pool swap and channels-last keep outputs and input gradients of the zoo models."
    from backdoor_nb.core import inference_copy
    from backdoor_nb.models import CompactCNN, PreActResNet18
    torch.manual_seed(0)
    m = CompactCNN(n_classes=7, size=16, width=8) if arch == 'compact_cnn' else PreActResNet18(n_classes=7)
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            b.running_mean.uniform_(-0.5, 0.5); b.running_var.uniform_(0.5, 2.); b.weight.data.uniform_(0.5, 2.)
    m.eval()
    f = inference_copy(m)
    assert not any(isinstance(b, torch.nn.BatchNorm2d) for b in f.modules()) or arch == 'preact_resnet18'  # pre-activation BN has no conv before it
    assert all(p.requires_grad for p in m.parameters()) and not any(p.requires_grad for p in f.parameters())
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y0, y1 = m(x), f(x)
    assert torch.allclose(y0, y1, atol=1e-4, rtol=1e-4)
    g0, = torch.autograd.grad(y0[:, 1].sum(), x); g1, = torch.autograd.grad(y1[:, 1].sum(), x)
    assert torch.allclose(g0, g1, atol=1e-4, rtol=1e-3)
