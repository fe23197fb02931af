"`backdoor_nb scan` end to end on the hand-built toy backdoor (a subprocess per call), and every bad input -> exit 2 naming it."
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest, torch
from safetensors.torch import save_file
from backdoor_nb.scan import ToyBackdoor, toy_images

EXE = Path(sys.executable).parent / 'backdoor_nb'

def run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=600)

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('scan')
    (d / 'arch.py').write_text(
        "from backdoor_nb.scan import ToyBackdoor\n"
        "def make(backdoor=True, channels=1): return ToyBackdoor(backdoor, channels=channels)\n"
        "def tuple_out():\n"
        "    import torch\n"
        "    class T(torch.nn.Module):\n"
        "        def __init__(self): super().__init__(); self.m = ToyBackdoor()\n"
        "        def forward(self, x): return self.m(x), x\n"
        "    return T()\n"
        "def broken(): raise RuntimeError('boom')\n")
    x, y = toy_images(900, seed=1)
    u8 = lambda t: (t.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    np.savez(d / 'toy.npz', x_train=u8(x[:100]), y_train=y[:100].numpy(), x_test=u8(x[100:]), y_test=y[100:].numpy(),
             classes=np.array([f"c{i}" for i in range(6)]))
    np.savez(d / 'ten.npz', x_train=u8(x[:100]), y_train=y[:100].numpy(), x_test=u8(x[100:]), y_test=y[100:].numpy(),
             classes=np.array([f"c{i}" for i in range(10)]))
    torch.save(ToyBackdoor().state_dict(), d / 'bd.pt')
    torch.save(ToyBackdoor(channels=3).state_dict(), d / 'rgb3.pt')
    save_file(ToyBackdoor(backdoor=False).state_dict(), str(d / 'clean.safetensors'))
    torch.save(ToyBackdoor(), d / 'pickled.pt')
    torch.save({'gain': torch.tensor(1.)}, d / 'partial.pt')
    return d

def test_scan_backdoored_and_clean(files):
    d = files
    r = run('scan', d / 'bd.pt', '--arch', f"{d}/arch.py:make", '--data', d / 'toy.npz', '--json', d / 'bd.json',
            '--report', d / 'bd.html', '--quiet')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'BACKDOORED, target 3' in r.stdout
    js = json.loads((d / 'bd.json').read_text())
    assert js['verdict']['backdoored'] is True and js['verdict']['target'] == 3 and 0.5 < js['verdict']['score'] <= 1
    assert set(js['detectors']) == {'nc', 'smoothinv'}
    for v in js['detectors'].values(): assert {'backdoored', 'flagged', 'score', 'seconds'} <= set(v)
    assert js['model']['input_shape'] == [1, 12, 12] and js['model']['n_classes'] == 6 and js['model']['classes'][0] == 'c0'
    assert {'backdoor_nb', 'torch'} <= set(js['versions']) and js['config']['seed'] == 0
    page = (d / 'bd.html').read_text()
    assert 'BACKDOORED' in page and page.count('data:image/png;base64,') >= 3
    r = run('scan', d / 'clean.safetensors', '--arch', f"{d}/arch.py:make", '--arch-kwargs', '{"backdoor": false}',
            '--data', d / 'toy.npz', '--json', d / 'clean.json', '--detectors', 'smoothinv', '--quiet')
    assert r.returncode == 0, r.stderr[-3000:]
    js = json.loads((d / 'clean.json').read_text())
    assert js['verdict'] == {**js['verdict'], 'backdoored': False, 'target': None} and list(js['detectors']) == ['smoothinv']

@pytest.mark.parametrize('args, msg', [
    (['{d}/nope.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/toy.npz'], 'no such file'),
    (['{d}/bd.pt', '--data', '{d}/toy.npz'], 'arch is needed'),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:make'], '--data is needed'),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/missing.npz'], 'missing.npz'),
    (['{d}/pickled.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/toy.npz'], 'torch.save(model.state_dict(), path)'),
    (['{d}/partial.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/toy.npz'], 'missing keys: mean'),
    (['{d}/bd.pt', '--arch', '{d}/nofile.py:make', '--data', '{d}/toy.npz'], 'does not exist'),
    (['{d}/bd.pt', '--arch', 'no_such_module_xyz:make', '--data', '{d}/toy.npz'], 'cannot import'),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:nothing', '--data', '{d}/toy.npz'], "no callable 'nothing'"),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:broken', '--data', '{d}/toy.npz'], 'boom'),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:make', '--arch-kwargs', '{{bad', '--data', '{d}/toy.npz'], '--arch-kwargs is not valid JSON'),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:tuple_out', '--data', '{d}/toy.npz'], 'missing keys'),
    (['{d}/clean.safetensors', '--arch', '{d}/arch.py:make', '--arch-kwargs', '{{"channels": 3}}', '--data', '{d}/toy.npz'], 'shape mismatches: mean'),
    (['{d}/rgb3.pt', '--arch', '{d}/arch.py:make', '--arch-kwargs', '{{"channels": 3}}', '--data', '{d}/toy.npz'], "1 channel(s) but the model's first layer expects 3"),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/ten.npz'], 'model outputs 6 logits but the data has 10 classes'),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/toy.npz', '--detectors', 'nc,bogus'], "unknown detector 'bogus'"),
    (['{d}/bd.pt', '--arch', '{d}/arch.py:make', '--data', '{d}/toy.npz', '--budget-s', '-1'], 'budget_s'),
])
def test_scan_bad_input(files, args, msg):
    r = run('scan', *[a.format(d=files) for a in args], '--quiet')
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert msg in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
