"The TrojanZoo peer of the Neural Cleanse benchmark: a clear error without TrojanZoo, the job it hands over, the CPU ratio."
import importlib.util, json, stat, sys
from pathlib import Path
from types import SimpleNamespace
import pytest, torch
from safetensors.torch import load_file
from backdoor_nb.models import build_model

ROOT = Path(__file__).resolve().parents[1]
def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod
nc = _load('bench_nc', ROOT/'benchmarks'/'neural_cleanse.py')
peer = _load('bench_peer_tz', ROOT/'benchmarks'/'peers'/'trojanzoo_nc.py')

def _script(path, body):
    path.write_text('#!/bin/sh\n' + body); path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)

@pytest.mark.parametrize('py', ['fails', 'missing'])
def test_no_trojanzoo_names_the_venv_command(tmp_path, py):
    exe = _script(tmp_path/'python', 'exit 1\n') if py == 'fails' else str(tmp_path/'nope'/'python')
    with pytest.raises(SystemExit) as e:  # before any model is loaded or trained
        nc.main(['mnist', '--names', 'badnets', '--peer', 'trojanzoo', '--peer-python', exe, '--speed-steps', '0'])
    msg = str(e.value.code)
    assert exe in msg and 'cannot import trojanzoo' in msg
    assert 'python3.11 -m venv' in msg and 'pip install trojanzoo' in msg and '--peer-python' in msg

def test_peer_python_accepts_an_interpreter_that_imports_trojanzoo(tmp_path):
    exe = _script(tmp_path/'python', 'exit 0\n')
    assert nc.peer_python(exe) == exe

def test_run_peer_hands_over_weights_support_and_threads(tmp_path):
    "A stand-in interpreter records the job and answers with a fake result: the plumbing, without TrojanZoo."
    seen = tmp_path/'seen'
    exe = _script(tmp_path/'python', f'cp "$2" {seen}.json; for f in $(ls "$(dirname "$2")"); do echo $f >> {seen}.files; done\n'
                                     'echo \'{"models": {"m": {"flagged": [3], "cpu_seconds": 1.5}}}\' > "$3"\n')
    model = build_model('mnist_cnn', seed=0)
    sup = SimpleNamespace(x=torch.rand(4, 1, 28, 28), y=torch.tensor([0, 1, 2, 3]))
    res = nc.run_peer(exe, 'mnist', {'m': SimpleNamespace(model=model)}, sup, seed=7, epochs=3, batch_size=16)
    assert res == {'m': {'flagged': [3], 'cpu_seconds': 1.5}}
    job = json.loads((tmp_path/'seen.json').read_text())
    assert (job['threads'], job['seed'], job['dataset'], job['epochs'], job['batch_size']) == (torch.get_num_threads(), 7, 'mnist', 3, 16)
    assert job['models'][0]['arch'] == 'backdoor_nb.models:build_model' and job['models'][0]['arch_kwargs']['arch'] == 'mnist_cnn'
    assert set((tmp_path/'seen.files').read_text().split()) == {'job.json', 'support.safetensors', 'm.safetensors'}
    # the peer rebuilds the same module from the job's spec
    rebuilt = peer.build(job['models'][0]['arch'], job['models'][0]['arch_kwargs'])
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(sup.x), model(sup.x))
    with pytest.raises(ValueError, match="has no `config`"):
        nc.run_peer(exe, 'mnist', {'m': SimpleNamespace(model=torch.nn.Linear(2, 2))}, sup, seed=0)

def _row(name, target, flagged, cpu, peer_flagged, peer_cpu):
    return dict(ds='mnist', name=name, target=target, flagged=flagged, score=3.0, seconds=cpu / 2, cpu_seconds=cpu,
                peer=dict(flagged=peer_flagged, max_anomaly=2.5, seconds=peer_cpu / 2, cpu_seconds=peer_cpu))

def test_peer_summary_ratio_and_cover(capsys):
    rows = [_row('clean', None, [], 10.0, [4], 60.0), _row('badnets', 0, [0], 20.0, [0], 90.0), _row('blend', 0, [0], 10.0, [], 30.0)]
    s = nc.peer_summary(rows)
    assert s['cpu_ratio'] == pytest.approx(180 / 40) and (s['peer_targets'], s['our_targets'], s['covers']) == (1, 2, True)
    rows[1]['flagged'] = [5]  # the peer flags badnets' target, ours does not
    assert nc.peer_summary(rows)['covers'] is False
    rows.append(dict(rows[0], name='no-peer', peer=None, cpu_seconds=1000.0))  # a model without a peer row is left out
    assert nc.peer_summary(rows)['cpu_ratio'] == pytest.approx(180 / 40)
    nc.print_peer(rows)
    out = capsys.readouterr().out.splitlines()
    rows_out = [l.split()[2] for l in out if l.startswith('mnist ')]
    assert rows_out == ['backdoor_nb', 'trojanzoo'] * 3 + ['backdoor_nb']
    assert '4.5x over 3 models' in out[-1] and 'flags every target trojanzoo flags: False' in out[-1]
    with pytest.raises(ValueError, match='no row has a peer result'): nc.peer_summary([dict(rows[0], peer=None)])
