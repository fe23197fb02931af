"CLI: the demo runs end to end (train, attack, detect, repair) and prints its table; bad commands fail clearly."
import json, subprocess, sys
from pathlib import Path
import pytest

EXE = Path(sys.executable).parent / 'backdoor_nb'  # the console script that pip installs

def run(*args, check=True):
    r = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=1200)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    return run('demo', '--out', str(out)), out  # the README's demo: deterministic, same models

def test_demo_prints_table(demo_run):
    r, _ = demo_run
    rows = {l.split()[0]: l.split()[1:] for l in r.stdout.splitlines() if l.startswith(('clean ', 'badnets ', 'repaired '))}
    assert set(rows) == {'clean', 'badnets', 'repaired'}, r.stdout
    clean_acc, clean_asr = float(rows['clean'][0]), float(rows['clean'][1])
    bad_acc, bad_asr = float(rows['badnets'][0]), float(rows['badnets'][1])
    assert clean_acc > 0.9 and bad_acc > 0.9
    assert bad_asr > 0.9 > clean_asr
    # Neural Cleanse flags the backdoored model at label 0, and not the clean one
    assert rows['badnets'][4] == '0' and rows['clean'][4] == '-', r.stdout
    # SmoothInv finds a transferable perturbation toward label 0 from one image, and none on the clean model
    assert rows['badnets'][6] == '0' and float(rows['badnets'][7]) >= 0.5, r.stdout
    assert rows['clean'][6] == '-' and float(rows['clean'][7]) < 0.5, r.stdout
    # the repair removes the backdoor at a small cost in clean accuracy
    rep_acc, rep_asr = float(rows['repaired'][0]), float(rows['repaired'][1])
    assert rep_asr < 0.1 and rep_acc > bad_acc - 0.03, r.stdout

def test_demo_checkpoints_hold_ground_truth(demo_run):
    _, out = demo_run
    r = run('info', str(next(out.glob('*badnets*.json'))))
    info = json.loads(r.stdout)
    assert info['backdoored'] and info['target'] == 0
    assert info['metrics']['asr'] > 0.9 and info['metrics']['clean_acc'] > 0.9

def test_info_missing_file(tmp_path):
    r = run('info', str(tmp_path / 'nope'), check=False)
    assert r.returncode == 2 and 'does not exist' in r.stderr

def test_zoo_unknown_dataset():
    r = run('zoo', 'imagenet', check=False)
    assert r.returncode == 2 and "dataset='imagenet'" in r.stderr

def test_console_script_installed():
    exe = Path(sys.executable).parent / 'backdoor_nb'
    assert exe.exists()
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout
