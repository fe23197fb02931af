"CROWN bounds through auto_LiRPA: patches, soundness on a normalized conv net, A matrices, clear errors."
import importlib.util, sys
from unittest import mock

import pytest
import torch
from torch import nn

if importlib.util.find_spec('auto_LiRPA') is None:  # optional dependency (plain `import auto_LiRPA` needs our patches)
    pytest.skip('auto_LiRPA is not installed', allow_module_level=True)
from backdoor_nb import lirpa as L
from backdoor_nb.models import Normalize

INF = float('inf')


def small_net(seed=0, in_ch=3, size=10, n_classes=5):
    "Normalize (per-channel), conv-ReLU-maxpool, conv-ReLU, two dense layers."
    torch.manual_seed(seed)
    s = (size - 2) // 2 - 2
    return nn.Sequential(Normalize([0.4, 0.5, 0.6][:in_ch], [0.2, 0.25, 0.3][:in_ch]),
                         nn.Conv2d(in_ch, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 6, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * s * s, 24), nn.ReLU(), nn.Linear(24, n_classes)).eval()


def ball_samples(x, eps, norm, n=64, seed=0):
    "n points per image in the Lp ball around x, half of them on its surface: shape (n, *x.shape)."
    g = torch.Generator().manual_seed(seed)
    if norm == INF:
        d = torch.rand(n, *x.shape, generator=g) * 2 - 1
        d[: n // 2] = d[: n // 2].sign()
    else:
        d = torch.randn(n, *x.shape, generator=g)
        d = d / d.flatten(2).norm(dim=2).view(n, len(x), 1, 1, 1)
        d[n // 2:] *= torch.rand(n - n // 2, len(x), 1, 1, 1, generator=g)
    return x + eps * d


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "These nets are tiny: one thread is fastest, and much faster than two when the CPU is oversubscribed."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def setup():
    net = small_net()
    x = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    return net, x, L.bound_model(net, x, device='cpu')


def test_lazy_reexports_and_idempotent_patches():
    lirpa = L.load_lirpa()
    from backdoor_nb.lirpa import BoundedModule, BoundedTensor, PerturbationLpNorm
    assert (BoundedModule, BoundedTensor, PerturbationLpNorm) == (lirpa.BoundedModule, lirpa.BoundedTensor, lirpa.PerturbationLpNorm)
    assert L.apply_patches() == []  # already applied: nothing is clobbered
    assert L.apply_patches() == []
    with pytest.raises(AttributeError, match='no attribute'): L.NoSuchName
    with pytest.raises(ValueError, match='unknown patches'): L.apply_patches(['nope'])


def test_missing_auto_lirpa_says_how_to_install():
    with mock.patch.dict(sys.modules, {'auto_LiRPA': None}):
        with pytest.raises(ImportError, match=r'pip install --no-deps auto_LiRPA==0\.3 tqdm packaging appdirs pyyaml'):
            L.load_lirpa()
        with pytest.raises(ImportError, match='not installed'):
            from backdoor_nb.lirpa import BoundedModule  # noqa: F401


def test_margin_matrix():
    C = L.margin_matrix(torch.tensor([2, 0]), 4)
    assert C.shape == (2, 3, 4)
    assert torch.equal(C[0], torch.tensor([[-1., 0, 1, 0], [0, -1, 1, 0], [0, 0, 1, -1]]))
    assert torch.equal(L.other_classes(torch.tensor([2, 0]), 4), torch.tensor([[0, 1, 3], [1, 2, 3]]))
    assert torch.equal(L.margin_matrix(1, 3, batch=2)[1], torch.tensor([[-1., 1, 0], [0, 1, -1]]))
    with pytest.raises(ValueError, match='target=5 is out of range'): L.margin_matrix(5, 4, 2)
    with pytest.raises(ValueError, match='batch must be >= 1'): L.margin_matrix(0, 4)


@pytest.mark.parametrize('norm,eps', [(INF, 0.02), (2, 0.5)])
def test_bounds_bracket_logits_and_margins(setup, norm, eps):
    net, x, bm = setup
    pts = ball_samples(x, eps, norm)
    with torch.no_grad(): outs = net(pts.flatten(0, 1)).view(len(pts), len(x), -1)
    r = L.crown_bounds(bm, x, eps, norm=norm)
    assert r.lb.shape == r.ub.shape == (3, 5) and (r.lb <= r.ub).all()
    assert (outs >= r.lb - 1e-5).all() and (outs <= r.ub + 1e-5).all()
    t = net(x).argmax(1); C = L.margin_matrix(t, 5)
    m = L.crown_bounds(bm, x, eps, norm=norm, C=C, return_A=True)
    margins = torch.einsum('bsk,nbk->nbs', C, outs)
    assert m.A.shape == (3, 4, 3, 10, 10) and m.bias.shape == (3, 4)  # one input-shaped A per spec
    assert (margins >= m.lb - 1e-5).all() and (margins <= m.ub + 1e-5).all()
    # the linear lower bound holds at every sampled point (this failed for l2 with auto_LiRPA's defaults)
    lin = torch.stack([m.linear_lower(p) for p in pts])
    assert (margins >= lin - 1e-5).all()
    q = 1. if norm == INF else 2.
    torch.testing.assert_close(m.linear_lower(x) - eps * m.A.flatten(2).norm(p=q, dim=2), m.lb, atol=1e-4, rtol=0)


def test_A_is_the_margin_gradient_for_a_tiny_ball(setup):
    net, x, bm = setup
    t = net(x).argmax(1); C = L.margin_matrix(t, 5)
    m = L.crown_bounds(bm, x, 1e-5, C=C, return_A=True)
    xg = x.clone().requires_grad_()
    mg = torch.einsum('bsk,bk->bs', C, net(xg))
    grads = torch.stack([torch.autograd.grad(mg[:, s].sum(), xg, retain_graph=True)[0] for s in range(4)], 1)
    torch.testing.assert_close(m.A, grads, atol=1e-5, rtol=1e-4)


def test_batching_plain_model_and_crown_ibp(setup):
    net, x, bm = setup
    C = L.margin_matrix(0, 5, 3)
    full = L.crown_bounds(bm, x, 0.02, C=C, return_A=True)
    chunked = L.crown_bounds(bm, x, 0.02, C=C, return_A=True, batch_size=2)
    torch.testing.assert_close(chunked.lb, full.lb, atol=1e-5, rtol=0)
    torch.testing.assert_close(L.crown_bounds(net, x, 0.02, C=C[0], device='cpu').lb, full.lb, atol=1e-5, rtol=0)
    ibp = L.crown_bounds(bm, x, 0.02, C=C, method='CROWN-IBP')
    assert (ibp.lb <= full.lb + 1e-5).all()
    with pytest.raises(ValueError, match='needs norm=inf'): L.crown_bounds(bm, x, 0.1, norm=2, method='CROWN-IBP')


@pytest.mark.parametrize('eps', [0., -0.1, float('nan'), INF])
def test_bad_eps_is_named(setup, eps):
    _, x, bm = setup
    with pytest.raises(ValueError, match='eps must be a positive finite number'): L.crown_bounds(bm, x, eps)


def test_other_bad_arguments(setup):
    _, x, bm = setup
    with pytest.raises(ValueError, match='norm must be >= 1'): L.crown_bounds(bm, x, 0.1, norm=0.5)
    with pytest.raises(ValueError, match="method='alpha-CROWN' is not known"): L.crown_bounds(bm, x, 0.1, method='alpha-CROWN')
    with pytest.raises(ValueError, match=r'C must have shape \(N, n_spec, 5\)'): L.crown_bounds(bm, x, 0.1, C=torch.zeros(3, 2, 7))
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'): L.crown_bounds(bm, x * 3, 0.1)


def test_bounded_module_follows_weight_updates():
    net = small_net(seed=1); x = torch.rand(2, 3, 10, 10)
    bm = L.bound_model(net, x, device='cpu')
    before = L.crown_bounds(bm, x, 0.01).lb
    with torch.no_grad(): net[-1].bias += 1.
    torch.testing.assert_close(L.crown_bounds(bm, x, 0.01).lb, before + 1, atol=1e-4, rtol=0)


def test_bound_model_keeps_requires_grad_flags():
    "auto_LiRPA switches off requires_grad on the wrapped model; bound_model puts every flag back as it was."
    net = small_net(seed=2); x = torch.rand(2, 3, 10, 10)
    params = list(net.parameters()); params[0].requires_grad_(False)
    want = [p.requires_grad for p in params]
    bm = L.bound_model(net, x, device='cpu')
    assert [p.requires_grad for p in params] == want and any(want)
    L.crown_bounds(bm, x, 0.01)
    assert [p.requires_grad for p in params] == want


class _Sign(nn.Module):
    def forward(self, x): return x.sign() * x.abs().sqrt()


def test_unsupported_layer_is_named():
    odd = nn.Sequential(nn.Flatten(), nn.Linear(3 * 10 * 10, 16), _Sign(), nn.Linear(16, 5))
    x = torch.rand(2, 3, 10, 10)
    with pytest.raises(L.UnsupportedModelError, match=r'_Sign.*exact-gradient methods still work'):
        L.check_supported(odd, x, device='cpu')
    with pytest.raises(NotImplementedError, match=r'onnx::Sign in _Sign \(2\)'):
        L.crown_bounds(odd, x, 0.1, device='cpu')
    assert isinstance(L.check_supported(small_net(), x, device='cpu'), L.load_lirpa().BoundedModule)
