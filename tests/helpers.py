"""Shared test helpers: snapshot a model's state and the global RNGs, and check that a call leaves them as it found them.

    from helpers import assert_untouched, untouched, mixed_model

    out = assert_untouched(model, fn, *args, **kwargs)          # calls fn(*args, **kwargs), returns its result
    out = assert_untouched(model, fn, *args, ignore=('values', 'modes'), **kwargs)  # e.g. for a trainer
    with untouched(model): ...                                   # the same as a context manager
    with untouched(None): ...                                    # the global RNGs only

What is compared (names usable in `ignore`):
  'modes'          every module's `training` flag (a model may mix modes, e.g. a frozen BN in eval)
  'values'         every parameter and buffer (BN running statistics and `num_batches_tracked` included)
  'requires_grad'  every parameter's flag
  'grads'          every parameter's `.grad` (None stays None; a set grad keeps its value)
  'devices'        the device of every parameter and buffer
  'layout'         dtype and strides (memory format: channels-last stays channels-last)
  'identity'       the parameter objects themselves (no parameter replaced)
  'hooks'          the number of forward/backward hooks on every module (none left behind)
  'rng'            torch's CPU (and CUDA) generator, NumPy's global state and Python's `random`

By default the global RNGs are first set to an unusual state (`scramble=True`), so a function that reseeds
them with the seed an earlier call used is caught too.
"""
import random
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

KEYS = ('modes', 'values', 'requires_grad', 'grads', 'devices', 'layout', 'identity', 'hooks', 'rng')

def rng_state()->dict:
    s = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'random': random.getstate()}
    if torch.cuda.is_available(): s['cuda'] = torch.cuda.get_rng_state_all()
    return s

def scramble_rng(seed:int=918273645):
    "Put every global RNG in a state no library function would seed it to."
    random.seed(seed); np.random.seed(seed % 2**32); torch.manual_seed(seed)
    torch.rand(7); np.random.rand(3); random.random()

def _tensors(model):
    return [*((f"param {n}", p) for n, p in model.named_parameters(remove_duplicate=False)),
            *((f"buffer {n}", b) for n, b in model.named_buffers(remove_duplicate=False))]

def _hooks(m):
    return tuple(len(getattr(m, a, {}) or {}) for a in ('_forward_hooks', '_forward_pre_hooks', '_backward_hooks',
                                                        '_backward_pre_hooks', '_state_dict_hooks', '_load_state_dict_pre_hooks'))

def snapshot(model=None)->dict:
    "Everything `assert_untouched` compares, for `model` (or the RNGs only when `model` is None)."
    s = {'rng': rng_state()}
    if model is None: return s
    if not isinstance(model, nn.Module): raise TypeError(f"snapshot needs an nn.Module, got {type(model).__name__}")
    ts = _tensors(model)
    s['modes'] = {n or '<root>': m.training for n, m in model.named_modules()}
    s['values'] = {n: t.detach().clone() for n, t in ts}
    s['devices'] = {n: t.device for n, t in ts}
    s['layout'] = {n: (t.dtype, tuple(t.stride())) for n, t in ts}
    s['requires_grad'] = {n: p.requires_grad for n, p in model.named_parameters(remove_duplicate=False)}
    s['grads'] = {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}
    s['identity'] = {n: id(p) for n, p in model.named_parameters(remove_duplicate=False)}
    s['hooks'] = {n or '<root>': _hooks(m) for n, m in model.named_modules()}
    s['_param_hooks'] = {n: len(p._backward_hooks or {}) for n, p in model.named_parameters(remove_duplicate=False)}
    return s

def _eq(a, b)->bool:
    if a is None or b is None: return a is b
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, tuple) and len(a) and isinstance(a[0], str) and a[0] == 'MT19937':  # numpy state
        return all(_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray): return np.array_equal(a, b)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    return a == b

def differences(before:dict, after:dict, ignore=())->list:
    "Human-readable differences between two snapshots (empty when equal), skipping the keys in `ignore`."
    bad = [k for k in ignore if k not in KEYS]
    if bad: raise ValueError(f"ignore: unknown keys {bad} (known: {', '.join(KEYS)})")
    out = []
    for k in KEYS:
        if k in ignore or k not in before: continue
        b, a = before[k], after[k]
        if k == 'rng':
            out += [f"global RNG '{g}' changed" for g in b if not _eq(b[g], a.get(g))]
            continue
        if set(b) != set(a): out.append(f"{k}: entries differ ({sorted(set(b) ^ set(a))[:5]})"); continue
        diff = [n for n in b if not _eq(b[n], a[n])]
        if diff: out.append(f"{k} changed for {len(diff)} entr{'y' if len(diff) == 1 else 'ies'}: {diff[:4]}")
    if 'hooks' not in ignore and '_param_hooks' in before and before['_param_hooks'] != after['_param_hooks']:
        out.append("tensor hooks left on parameters")
    return out

@contextmanager
def untouched(model=None, ignore=(), scramble:bool=True):
    "Context manager: the block must leave `model` (and the global RNGs) as it found them."
    if scramble: scramble_rng()
    before = snapshot(model)
    yield before
    d = differences(before, snapshot(model), ignore)
    assert not d, 'the call changed the caller\'s state: ' + '; '.join(d)

def assert_untouched(model, fn, *args, ignore=(), scramble:bool=True, **kwargs):
    "Call `fn(*args, **kwargs)` and assert that `model` and the global RNGs are as they were; returns the result."
    with untouched(model, ignore, scramble): return fn(*args, **kwargs)

def mixed_model(channels:int=1, n_classes:int=6, size:int=12, grads:bool=True)->nn.Module:
    """A small classifier in an unusual state, to catch functions that change the caller's model: modules in mixed
    modes (train, with one BatchNorm in eval), a frozen first conv, a channels-last conv weight, `.grad` set on the head."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * size * size, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, n_classes))
    with torch.no_grad():
        for p in net.parameters(): p.copy_(0.3 * torch.randn(p.shape, generator=g))
        for bn in (net[1], net[4]):
            bn.running_mean.copy_(0.1 * torch.randn(4, generator=g)); bn.running_var.uniform_(0.5, 1.5, generator=g)
    net.train(); net[4].eval()
    net[0].requires_grad_(False)
    net[3].weight.data = net[3].weight.data.contiguous(memory_format=torch.channels_last)
    if grads: net[-1].weight.grad = torch.full_like(net[-1].weight, 0.5)
    return net

class Interrupting(nn.Module):
    "Wraps `net`; raises KeyboardInterrupt once, on its (after+1)-th forward pass, as a user's Ctrl-C would."
    def __init__(self, net, after): super().__init__(); self.net, self.n, self.after = net, 0, after
    def forward(self, x):
        self.n += 1
        if self.n == self.after + 1: raise KeyboardInterrupt
        return self.net(x)
