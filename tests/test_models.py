"Checkpoints: round trip, never unpickle, clear errors."
import json, pickle, pytest, torch
from backdoor_nb.models import build_model, save_model, load_model

def test_round_trip(tmp_path):
    m = build_model('compact_cnn', seed=0, n_classes=4, width=8)
    save_model(m, tmp_path / 'm', classes=list('abcd'), input_shape=(3, 32, 32), meta={'k': 1})
    m2, ck = load_model(tmp_path / 'm.safetensors', device='cpu')
    x = torch.rand(2, 3, 32, 32)
    m.eval(); torch.testing.assert_close(m(x), m2(x))
    assert ck.classes == list('abcd') and ck.meta == {'k': 1} and ck.arch == 'compact_cnn'

def test_pickle_is_never_loaded(tmp_path):
    # a pickle disguised as a checkpoint must be refused, not executed
    class Evil:
        def __reduce__(self): return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / 'pwned'),))
    (tmp_path / 'evil.safetensors').write_bytes(pickle.dumps(Evil()))
    (tmp_path / 'evil.json').write_text(json.dumps({'format': 'backdoor_nb/1', 'arch': 'mnist_cnn', 'arch_kwargs': {}}))
    with pytest.raises(ValueError, match='not a readable safetensors'): load_model(tmp_path / 'evil')
    assert not (tmp_path / 'pwned').exists()

def test_missing_sidecar(tmp_path):
    save_model(build_model('mnist_cnn'), tmp_path / 'm')
    (tmp_path / 'm.json').unlink()
    with pytest.raises(FileNotFoundError, match='sidecar'): load_model(tmp_path / 'm')

def test_unknown_arch_in_sidecar(tmp_path):
    save_model(build_model('mnist_cnn'), tmp_path / 'm')
    d = json.loads((tmp_path / 'm.json').read_text()); d['arch'] = 'nope'
    (tmp_path / 'm.json').write_text(json.dumps(d))
    with pytest.raises(ValueError, match="arch='nope' is not a known architecture"): load_model(tmp_path / 'm')

def test_user_model_needs_instance(tmp_path):
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    save_model(m, tmp_path / 'u')
    with pytest.raises(ValueError, match='pass `model=`'): load_model(tmp_path / 'u')
    m2, _ = load_model(tmp_path / 'u', model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)), device='cpu')
    torch.testing.assert_close(m2[1].weight, m[1].weight)
