"""Bad input over the public entry points (issue 20): each case must fail before any work with a `ValueError`/`TypeError`
(or `FileNotFoundError` for a missing file) whose message names the argument; good unusual input (NumPy/torch scalars,
int32 labels) must be accepted. The model is `scan.ToyBackdoor` (3 channels, 12x12 images, 6 classes)."""
import contextlib, io, json
import numpy as np, pytest, torch
from torch import nn
from pathlib import Path

from backdoor_nb.core import Trigger, accuracy, attack_success_rate, batched_logits, predict, check_images, check_model
from backdoor_nb.scan import ToyBackdoor, toy_images, scan
from backdoor_nb.data import ImageData, load_data, random_crop_flip
from backdoor_nb.models import Normalize, build_model, train, save_model, load_model
from backdoor_nb.attacks import (Backdoor, AllToOne, SourceSpecific, PoisonedData, ZooModel, place, solid_patch, evaluate_backdoor,
                                 save_zoo_model, load_zoo_model, cache_path)
from backdoor_nb.mitigation import nc_filter, nc_prune, nc_unlearn, fine_pruning
from backdoor_nb.neural_cleanse import neural_cleanse
from backdoor_nb.smoothinv import smoothinv, identify_target, pretrained_denoiser
from backdoor_nb.crown_restore import restore
from backdoor_nb.mine import window_search, sgd_trigger, mine_staircase
from backdoor_nb.tnd import dl_tnd, df_tnd
from backdoor_nb import cli

M = ToyBackdoor(channels=3)
X, Y = toy_images(12, channels=3)
X1, X8 = X[:, :1], torch.rand(4, 3, 8, 8)
Y99, YNEG = torch.full_like(Y, 99), torch.full_like(Y, -1)
T = Trigger(torch.zeros(1, 12, 12), torch.ones(3, 12, 12))
NC, SI, R = {'max_steps': 2}, {'steps': 2, 'n_noise': 2}, {'steps': 2, 'n_starts': 2}
q = dict(progress=False, device='cpu')
D = lambda: ImageData(torch.rand(8, 1, 28, 28), torch.arange(8) % 2, ['a', 'b'])
m2 = lambda: build_model('mnist_cnn', n_classes=2)

class TupleNet(nn.Module):
    def forward(self, x): return x.flatten(1)[:, :6], None

CASES = [
    # a 1-channel batch into a 3-channel model, and images of the wrong H x W
    ('accuracy 1ch', lambda: accuracy(M, X1, Y), "x: the images have 1 channel(s) but the model's first layer expects 3"),
    ('batched_logits 1ch', lambda: batched_logits(M, X1), 'x: the images have 1 channel(s)'),
    ('predict HxW', lambda: predict(M, X8), 'x: images of shape (3, 8, 8) do not fit the model'),
    ('accuracy HxW', lambda: accuracy(M, X8, Y[:4]), 'x: images of shape (3, 8, 8) do not fit the model'),
    ('asr 1ch', lambda: attack_success_rate(M, X1, Y, trigger=T, target=1), 'x: the images have 1 channel(s)'),
    ('evaluate_backdoor 1ch', lambda: evaluate_backdoor(M, X1, Y), 'x: the images have 1 channel(s)'),
    ('nc_filter 1ch', lambda: nc_filter(M, X1, triggers=T), 'x: the images have 1 channel(s)'),
    ('neural_cleanse 1ch', lambda: neural_cleanse(M, X1, config=NC, **q), 'x: the images have 1 channel(s)'),
    ('neural_cleanse HxW', lambda: neural_cleanse(M, X8, config=NC, **q), 'x: images of shape (3, 8, 8) do not fit'),
    ('smoothinv 1ch', lambda: smoothinv(M, X1[0], target=1, config=SI, **q), 'the images have 1 channel(s)'),
    ('restore 1ch', lambda: restore(M, X1, target=1, config=R, **q), 'x: the images have 1 channel(s)'),
    ('df_tnd 1ch', lambda: df_tnd(M, (1, 12, 12), **q), 'input_shape: the images have 1 channel(s)'),
    ('scan 1ch', lambda: scan(M, (X1, Y), ['nc'], **q), 'the images have 1 channel(s)'),
    # image dtypes and ranges
    ('check_images float64', lambda: check_images(X.double(), 'imgs'), 'imgs has dtype torch.float64'),
    ('accuracy uint8', lambda: accuracy(M, (X * 255).byte(), Y), 'x must be a floating tensor'),
    ('Trigger.apply uint8', lambda: T.apply((X * 255).byte()), 'x must be floating images in [0, 1], got dtype torch.uint8'),
    ('smoothinv x > 1', lambda: smoothinv(M, X[0] * 2, target=1, config=SI, **q), 'must be in [0, 1]'),
    ('accuracy NaN', lambda: accuracy(M, X * float('nan'), Y), 'x contains NaN'),
    # a model that returns more than logits
    ('check_model tuple', lambda: check_model(TupleNet(), X), 'wrap it so forward returns the logits only'),
    # labels and targets out of range, negative, duplicated, mis-typed
    ('accuracy y=99', lambda: accuracy(M, X, Y99), 'y must be in [0, 6)'),
    ('accuracy y=-1', lambda: accuracy(M, X, YNEG), 'y must be in [0, 6)'),
    ('accuracy float y', lambda: accuracy(M, X, Y.float()), 'y must be an integer tensor'),
    ('accuracy short y', lambda: accuracy(M, X, Y[:3]), 'y has 3 labels for 12 images'),
    ('asr target=99', lambda: attack_success_rate(M, X, Y, trigger=T, target=99), 'target=99 is out of range'),
    ('evaluate_backdoor y=99', lambda: evaluate_backdoor(M, X, Y99, Backdoor(T, AllToOne(0))), 'y must be in [0, 6)'),
    ('evaluate_backdoor target=99', lambda: evaluate_backdoor(M, X, Y, Backdoor(T, AllToOne(99))), 'target=99 is out of range'),
    ('AllToOne(-1)', lambda: AllToOne(-1), 'target must be an int >= 0'),
    ('SourceSpecific target in sources', lambda: SourceSpecific(1, [1, 2]), 'contains the target 1'),
    ('attack_success_rate y=99', lambda: attack_success_rate(M, X, Y99, trigger=T, target=1), 'y must be in [0, 6)'),
    ('nc_prune clean_y=-1', lambda: nc_prune(M, X, YNEG, triggers=T), 'y must be in [0, 6)'),
    ('neural_cleanse labels=[99]', lambda: neural_cleanse(M, X, labels=[99], config=NC, **q), 'labels'),
    ('neural_cleanse duplicate labels', lambda: neural_cleanse(M, X, labels=[1, 1], config=NC, **q), 'labels has duplicates'),
    ('neural_cleanse y_heldout=99', lambda: neural_cleanse(M, X, config=NC, x_heldout=X, y_heldout=Y99, **q), 'y_heldout must be in [0, 6)'),
    ('smoothinv target=99', lambda: smoothinv(M, X[0], target=99, config=SI, **q), 'target=99 is out of range'),
    ('smoothinv y_heldout=99', lambda: smoothinv(M, X[0], target=1, config=SI, x_heldout=X, y_heldout=Y99, **q), 'y_heldout must be in [0, 6)'),
    ('identify_target y_heldout=99', lambda: identify_target(M, X[0], x_heldout=X, y_heldout=Y99, config=SI, **q), 'y_heldout must be in [0, 6)'),
    ('identify_target duplicate labels', lambda: identify_target(M, X[0], x_heldout=X, y_heldout=Y, labels=[2, 2], config=SI, **q), 'labels has duplicates'),
    ('restore target=99', lambda: restore(M, X, target=99, config=R, **q), 'target=99 is out of range'),
    ('restore y_heldout=99', lambda: restore(M, X, target=1, config=R, x_heldout=X, y_heldout=Y99, **q), 'y_heldout must be in [0, 6)'),
    ('sgd_trigger y_heldout=99', lambda: sgd_trigger(M, X, Y, target=1, config={'steps': 2}, x_heldout=X, y_heldout=Y99, **q), 'y_heldout must be in [0, 6)'),
    ('mine_staircase target=99', lambda: mine_staircase(M, X, Y, target=99, **q), 'target=99 is out of range'),
    ('dl_tnd y=99', lambda: dl_tnd(M, X, Y99, **q), 'y must be in [0, 6)'),
    ('ImageData y=99', lambda: ImageData(X, Y99, list('abcdef')), 'y must be in [0, 6)'),
    # hyper-parameters: NaN, inf, negative, bool, string, None
    ('Normalize std=0', lambda: Normalize([0.5], [0.]), 'std must be'),
    ('Normalize std=nan', lambda: Normalize([0.5], [float('nan')]), 'std must be'),
    ('Normalize std=inf', lambda: Normalize([0.5], [float('inf')]), 'std must be'),
    ('build_model n_classes=0', lambda: build_model('mnist_cnn', n_classes=0), 'n_classes must be an int >= 2'),
    ('build_model n_classes=True', lambda: build_model('mnist_cnn', n_classes=True), 'n_classes must be an int'),
    ('train lr=nan', lambda: train(m2(), D(), lr=float('nan'), progress=False), 'lr must be > 0'),
    ('train lr=None', lambda: train(m2(), D(), lr=None, progress=False), 'lr must be a number'),
    ('train lr=str', lambda: train(m2(), D(), lr='0.1', progress=False), 'lr must be a number'),
    ('train epochs=True', lambda: train(m2(), D(), epochs=True, progress=False), 'epochs must be an int'),
    ('neural_cleanse threshold=nan', lambda: neural_cleanse(M, X, config={**NC, 'threshold': float('nan')}, **q), 'threshold'),
    ('neural_cleanse threshold=-1', lambda: neural_cleanse(M, X, config={**NC, 'threshold': -1}, **q), 'threshold'),
    ('neural_cleanse early_stop_patience=True', lambda: neural_cleanse(M, X, config={**NC, 'early_stop_patience': True}, **q), 'early_stop_patience'),
    ('neural_cleanse early_stop_threshold=str', lambda: neural_cleanse(M, X, config={**NC, 'early_stop_threshold': '1'}, **q), 'early_stop_threshold'),
    ('neural_cleanse lr=None', lambda: neural_cleanse(M, X, config={**NC, 'lr': None}, **q), 'lr'),
    ('neural_cleanse unknown field', lambda: neural_cleanse(M, X, config={'max_step': 2}, **q), "unknown NCConfig field(s) ['max_step']"),
    ('smoothinv eps=-1', lambda: smoothinv(M, X[0], target=1, config={**SI, 'eps': -1}, **q), 'eps'),
    ('smoothinv sigma=-1', lambda: smoothinv(M, X[0], target=1, config={**SI, 'sigma': -1}, **q), 'sigma'),
    ('smoothinv step_size=0', lambda: smoothinv(M, X[0], target=1, config={**SI, 'step_size': 0}, **q), 'step_size'),
    ('window_search pad=-5', lambda: window_search(M, X, Y, target=1, config={'pad': -5, 'steps': 2}, **q), 'pad'),
    ('nc_prune asr_budget=nan', lambda: nc_prune(M, X, Y, triggers=T, config={'asr_budget': float('nan')}), 'asr_budget must be a number in [0, 1]'),
    ('nc_unlearn lr=nan', lambda: nc_unlearn(M, X, Y, triggers=T, config={'lr': float('nan')}), 'lr must be > 0'),
    ('nc_unlearn epochs=0', lambda: nc_unlearn(M, X, Y, triggers=T, config={'epochs': 0}), 'epochs must be an int >= 1'),
    ('fine_pruning schedule', lambda: fine_pruning(M, X, Y, config={'schedule': 'warm'}), "schedule='warm'"),
    ('nc_filter top=True', lambda: nc_filter(M, X, triggers=T, config={'top': True}), 'top must be a number in [0, 1]'),
    ('nc_filter layer=0', lambda: nc_filter(M, X, triggers=T, config={'layer': 0}), 'layer must be a module name'),
    ('nc_prune step=None', lambda: nc_prune(M, X, Y, triggers=T, config={'step': None}), 'step must be a number in [0, 1]'),
    ('nc_prune unknown field', lambda: nc_prune(M, X, Y, triggers=T, config={'steps': 3}), "unknown PruneConfig field(s) ['steps']"),
    ('nc_unlearn config=list', lambda: nc_unlearn(M, X, Y, triggers=T, config=[1]), 'config must be a UnlearnConfig or a dict'),
    ('nc_unlearn optimizer', lambda: nc_unlearn(M, X, Y, triggers=T, config={'optimizer': 'rmsprop'}), "optimizer='rmsprop' is not one of"),
    ('fine_pruning batch_size=2.5', lambda: fine_pruning(M, X, Y, config={'batch_size': 2.5}), 'batch_size must be an int'),
    ('fine_pruning side', lambda: fine_pruning(M, X, Y, config={'side': 'out'}), "side='out' is not one of"),
    ('place alpha=nan', lambda: place(solid_patch(2), (1, 8, 8), alpha=float('nan')), 'alpha'),
    ('place margin=True', lambda: place(solid_patch(2), (1, 8, 8), margin=True), 'margin must be an int'),
    ('solid_patch size=0', lambda: solid_patch(0), 'size must be a positive int'),
    ('PoisonedData rate=inf', lambda: PoisonedData(ImageData(X, Y, list('abcdef')), Backdoor(T, AllToOne(0)), rate=float('inf')), 'rate'),
    ('random_crop_flip pad=-5', lambda: random_crop_flip(X, pad=-5), 'pad=-5 must be >= 0'),
    ('ImageData.take n=2.0', lambda: ImageData(X, Y, list('abcdef')).take(2.0), 'n must be an int'),
    # seeds: ints >= 0 only
    ('neural_cleanse seed=0.0', lambda: neural_cleanse(M, X, config=NC, seed=0.0, **q), 'seed must be an int'),
    ('train seed=1.0', lambda: train(m2(), D(), seed=1.0, progress=False), 'seed must be an int'),
    ('build_model seed=-1', lambda: build_model('mnist_cnn', seed=-1), 'seed must be an int >= 0'),
    ('ImageData.take seed=1.5', lambda: ImageData(X, Y, list('abcdef')).take(2, seed=1.5), 'seed must be an int'),
    ('smoothinv seed=True', lambda: smoothinv(M, X[0], target=1, config=SI, seed=True, **q), 'seed must be an int'),
    # devices
    ('accuracy device=3', lambda: attack_success_rate(M, X, Y, trigger=T, target=1, device=3), 'device must be None'),
    # files: missing, empty names, path traversal
    ('load_data empty', lambda: load_data(''), "source='' is empty"),
    ('load_data missing', lambda: load_data('/nonexistent/x.npz'), "source='/nonexistent/x.npz' is not a known data set name"),
    ('load_model empty', lambda: load_model(''), 'path must be a file path'),
    ('pretrained_denoiser ../x', lambda: pretrained_denoiser('../x', X), 'name must be a plain identifier'),
    ('cache_path ../x', lambda: cache_path('../x', '/tmp/zoo'), 'must be a plain file name'),
]

@pytest.mark.parametrize('name, call, msg', CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, call, msg):
    with pytest.raises((ValueError, TypeError)) as e: call()
    assert msg in str(e.value), f"{name}: {type(e.value).__name__}: {e.value}"

@pytest.mark.parametrize('name, call, msg', [
    ('load_model missing', lambda: load_model('/nonexistent/m'), "path='/nonexistent/m': weights file"),
])
def test_missing_files(name, call, msg):
    with pytest.raises(FileNotFoundError) as e: call()
    assert msg in str(e.value)

@pytest.mark.parametrize('name, call', [
    ('train NumPy/torch scalars', lambda: train(m2(), D(), epochs=np.int64(1), lr=np.float32(0.01), batch_size=torch.tensor(4), progress=False)),
    ('smoothinv eps np.float32', lambda: smoothinv(M, X[0], target=np.int64(1), config={**SI, 'eps': np.float32(0.5)}, **q)),
    ('neural_cleanse NumPy labels and threshold', lambda: neural_cleanse(M, X, labels=np.array([0, 1]), config={**NC, 'threshold': np.float64(2.)}, **q)),
    ('accuracy int32 labels', lambda: accuracy(M, X, Y.int())),
    ('nc_unlearn int32 labels', lambda: nc_unlearn(M, X, Y.int(), triggers=T, config={'epochs': 1, 'batch_size': 4})),
    ('nc_filter NumPy config', lambda: nc_filter(M, X, triggers=T, config={'fpr': np.float32(0.1), 'min_units': np.int64(2)})),
    ('place numpy alpha', lambda: place(solid_patch(2), (1, 8, 8), alpha=np.float32(0.5), margin=np.int64(1))),
])
def test_unusual_but_valid(name, call):
    call()

def test_fine_pruning_frozen_last_conv():
    "Fine-Pruning fine-tunes what is trainable; a frozen last conv stays frozen (and pruned), no hook error."
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 144, 6))
    net[2].requires_grad_(False)
    x, y = toy_images(16)
    out, rep = fine_pruning(net, x, y.int(), config={'step': 0.25, 'epochs': 1, 'batch_size': 8}, device='cpu')
    assert not out[2].weight.requires_grad and net[2].weight.requires_grad is False

def _zoo(d):
    zm = ZooModel('bd', 'digits', build_model('mnist_cnn', n_classes=3, size=16), Backdoor(place(solid_patch(2), (1, 16, 16)), AllToOne(0)),
                  {'clean_acc': 0.9}, {})
    p = save_zoo_model(zm, Path(d) / 'bd', classes=['a', 'b', 'c'], input_shape=(1, 16, 16))
    return p, json.loads((Path(d) / 'bd.json').read_text())

@pytest.mark.parametrize('edit, msg', [
    (lambda s: [s], 'sidecar is not a JSON object'),
    (lambda s: {**s, 'format': None}, "format None is not 'backdoor_nb/1'"),
    (lambda s: {**s, 'arch_kwargs': {**s['arch_kwargs'], 'n_classes': 200000}}, 'arch_kwargs.n_classes must be an int in [2, 100000]'),
    (lambda s: {**s, 'arch_kwargs': {**s['arch_kwargs'], 'size': 'big'}}, 'arch_kwargs.size must be an int'),
    (lambda s: {**s, 'classes': ['a', 'b']}, 'classes names 2 classes but the model outputs 3 logits'),
    (lambda s: {**s, 'meta': {**s['meta'], 'metrics': [1]}}, 'metrics must be a JSON object'),
    (lambda s: {**s, 'meta': {**s['meta'], 'backdoor': {**s['meta']['backdoor'], 'mapping': {'target': 0}}}}, 'unknown mapping kind None'),
    (lambda s: {**s, 'meta': {**s['meta'], 'backdoor': {**s['meta']['backdoor'], 'mapping': {'kind': 'AllToOne', 'target': 99},
                                                          'target': 99}}}, 'target=99 is out of range for 3 classes'),
])
def test_bad_sidecar(tmp_path, edit, msg):
    p, side = _zoo(tmp_path)
    (tmp_path / 'bd.json').write_text(json.dumps(edit(side)))
    with pytest.raises(ValueError) as e: load_zoo_model(p, device='cpu')
    assert msg in str(e.value) and 'bd.safetensors' in str(e.value)

def test_nan_weights_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    p, _ = _zoo(tmp_path)
    sd = load_file(str(p)); sd['model.head.bias'] = torch.full_like(sd['model.head.bias'], float('nan')); save_file(sd, str(p))
    with pytest.raises(ValueError, match='head.bias.*NaN'): load_zoo_model(p, device='cpu')

def _cli(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try: cli.main(args); code = 0
        except SystemExit as e: code = e.code
    return code, err.getvalue()

@pytest.mark.parametrize('exc, code', [(AttributeError("'NoneType' object has no attribute 'x'"), 2), (OSError('disk full'), 2),
                                       (RuntimeError('CUDA error\nmore'), 1), (KeyboardInterrupt(), 130)])
def test_cli_no_traceback(monkeypatch, exc, code):
    def boom(*a, **k): raise exc
    monkeypatch.setattr(cli, 'load_zoo_model', boom)
    got, err = _cli(['info', 'x'])
    assert got == code and err.count('\n') == 1 and 'Traceback' not in err and err.startswith('backdoor_nb info: '), (got, err)

def test_cli_missing_checkpoint():
    code, err = _cli(['info', '/nonexistent/ckpt'])
    assert code == 2 and err.count('\n') == 1 and '/nonexistent/ckpt' in err
