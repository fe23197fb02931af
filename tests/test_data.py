"""Bad input and round trips for backdoor_nb.data (CPU, fast, no network)."""
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from backdoor_nb.data import ImageData, Splits, load_data, random_crop_flip, shared_data


def _arrays(rng, n_train=6, n_test=3, shape=(5, 4, 3), k=3):
    return dict(x_train=rng.integers(0, 256, (n_train, *shape), dtype=np.uint8), y_train=np.arange(n_train) % k,
                x_test=rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), y_test=np.arange(n_test) % k,
                classes=np.array([f"c{i}" for i in range(k)]))


@pytest.fixture
def arrays():
    return _arrays(np.random.default_rng(0))


def _save(tmp_path, arrays, fname='d.npz', drop=(), **changes):
    a = {k: v for k, v in {**arrays, **changes}.items() if k not in drop}
    np.savez_compressed(tmp_path / fname, **a)
    return tmp_path / fname


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    return ImageData(torch.rand(12, 1, 3, 3, generator=g), torch.arange(12) % 3, ['a', 'b', 'c'], 'toy')


# --- bad input -----------------------------------------------------------------------------------

def test_unknown_name():
    with pytest.raises(ValueError, match=r"source='foo' is not a known data set name \(known: digits, mnist"):
        load_data('foo')


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match='not a known data set name .* nor an existing path'):
        load_data(tmp_path / 'missing.npz')


def test_not_npz_file(tmp_path):
    (tmp_path / 'x.csv').write_text('1,2')
    with pytest.raises(ValueError, match='is a file but not an .npz'):
        load_data(tmp_path / 'x.csv')
    (tmp_path / 'bad.npz').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='not a readable .npz'):
        load_data(tmp_path / 'bad.npz')


def test_npz_missing_keys(tmp_path, arrays):
    with pytest.raises(ValueError, match=r"missing keys \['x_test', 'classes'\]"):
        load_data(_save(tmp_path, arrays, drop=('x_test', 'classes')))


def test_npz_labels_out_of_range(tmp_path, arrays):
    with pytest.raises(ValueError, match=r'y_test must be in \[0, 3\)'):
        load_data(_save(tmp_path, arrays, y_test=np.array([0, 1, 3])))
    with pytest.raises(ValueError, match=r'y_train must be in \[0, 3\)'):
        load_data(_save(tmp_path, arrays, y_train=-np.ones(6, np.int64)))


def test_npz_pixels_not_uint8(tmp_path, arrays):
    with pytest.raises(TypeError, match='x_train must be uint8 pixels in 0..255'):
        load_data(_save(tmp_path, arrays, x_train=arrays['x_train'] / 255.0))
    with pytest.raises(TypeError, match='x_test must be uint8'):
        load_data(_save(tmp_path, arrays, x_test=arrays['x_test'].astype(np.int64)))


def test_npz_mismatches(tmp_path, arrays):
    with pytest.raises(ValueError, match='y_train has 4 labels for 6 images in x_train'):
        load_data(_save(tmp_path, arrays, y_train=np.zeros(4, np.int64)))
    with pytest.raises(ValueError, match='channels last'):
        load_data(_save(tmp_path, arrays, x_train=arrays['x_train'].transpose(0, 3, 1, 2)))
    with pytest.raises(ValueError, match='x_train images are'):
        load_data(_save(tmp_path, arrays, x_test=arrays['x_test'][:, :, :3]))
    with pytest.raises(TypeError, match='y_test must be a 1-D integer array'):
        load_data(_save(tmp_path, arrays, y_test=np.zeros(3)))


def test_imagedata_rejects_0_255_and_bad_labels():
    x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(TypeError, match='x must be a floating tensor'):
        ImageData((x * 255).to(torch.uint8), y, ['a', 'b'])
    with pytest.raises(ValueError, match=r'x must be in \[0, 1\]'):
        ImageData(x * 255, y, ['a', 'b'])
    with pytest.raises(ValueError, match=r'y must be in \[0, 1\)'):
        ImageData(x, y, ['a'])
    with pytest.raises(ValueError, match='y has 3 labels for 4 images'):
        ImageData(x, y[:3], ['a', 'b'])
    with pytest.raises(ValueError, match='x contains NaN'):
        ImageData(torch.full((4, 1, 2, 2), float('nan')), y, ['a', 'b'])


def test_per_class_too_few(toy):
    with pytest.raises(ValueError, match=r"class 0 \('a'\) has only 4 images .* fewer than k=5"):
        toy.per_class(5)
    with pytest.raises(ValueError, match=r"class 2 \('c'\) has only 1 images"):
        toy[[0, 1, 2, 3, 4]].per_class(2)


def test_take_too_many(toy):
    with pytest.raises(ValueError, match='take: n=13 is more than the 12 images'):
        toy.take(13)
    with pytest.raises(ValueError, match='n=0 must be >= 1'):
        toy.take(0)
    with pytest.raises(TypeError, match='n must be an int'):
        toy.take(2.5)


def test_split_and_where_errors(toy):
    with pytest.raises(ValueError, match=r'must be in \(0, 1\)'):
        toy.split(1.5)
    with pytest.raises(ValueError, match='both must be non-empty'):
        toy.split(12)
    with pytest.raises(ValueError, match="class 'z' is not one of"):
        toy.where('z')


def test_image_folder_errors(tmp_path):
    for c, hw in (('a', (4, 4)), ('b', (5, 4))):
        for i in range(3):
            (tmp_path / 'f' / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros(hw, np.uint8)).save(tmp_path / 'f' / c / f'{i}.png')
    with pytest.raises(ValueError, match=r'images differ in size .* pass size=\(H, W\)'):
        load_data(tmp_path / 'f')
    with pytest.raises(ValueError, match='test_frac must be a float'):
        load_data(tmp_path / 'f', size=4, test_frac=0)
    (tmp_path / 'e').mkdir()
    with pytest.raises(ValueError, match='has no class folders'):
        load_data(tmp_path / 'e')


def test_torchvision_missing_offline(tmp_path):
    with pytest.raises(RuntimeError, match=r'could not find \(download=False\) MNIST .* offline'):
        load_data('mnist', root=tmp_path, download=False)


def test_shared_data_unknown(monkeypatch, tmp_path):
    monkeypatch.setenv('BACKDOOR_NB_DATA', str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"name='nope' \(nope.npz\) not found"):
        shared_data('nope')
    np.savez(tmp_path / 'mine.npz', a=np.zeros(1))
    assert shared_data('mine') == tmp_path / 'mine.npz'


# --- round trips ---------------------------------------------------------------------------------

def test_npz_round_trip(tmp_path, arrays):
    sp = load_data(_save(tmp_path, arrays))
    assert isinstance(sp, Splits) and sp.name == 'd' and sp.classes == ['c0', 'c1', 'c2'] and sp.shape == (3, 5, 4)
    back = (sp.train.x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(back, arrays['x_train'])
    np.testing.assert_array_equal(sp.test.y.numpy(), arrays['y_test'])
    assert sp.train.x.dtype == torch.float32 and sp.train.y.dtype == torch.int64


def test_image_folder_round_trip(tmp_path):
    rng = np.random.default_rng(1); saved = {}
    for split in ('train', 'test'):
        for c in ('cat', 'dog'):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                a = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
                Image.fromarray(a).save(tmp_path / split / c / f'{i}.png'); saved[split, c, i] = a
    sp = load_data(tmp_path)
    assert (len(sp.train), len(sp.test), sp.shape, sp.classes) == (4, 4, (3, 6, 7), ['cat', 'dog'])
    np.testing.assert_array_equal((sp.test.x[2].permute(1, 2, 0) * 255).round().byte().numpy(), saved['test', 'dog', 0])
    assert load_data(tmp_path, size=(3, 3)).shape == (3, 3, 3)


def _idx(path, arr):
    arr = np.ascontiguousarray(arr, np.uint8); path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack('>I', 0x800 + arr.ndim) + b''.join(struct.pack('>I', s) for s in arr.shape) + arr.tobytes())


def test_fake_torchvision_mnist(tmp_path):
    rng = np.random.default_rng(2)
    imgs = {}
    for pre, n in (('train', 4), ('t10k', 2)):
        imgs[pre] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        _idx(tmp_path / 'MNIST/raw' / f'{pre}-images-idx3-ubyte', imgs[pre])
        _idx(tmp_path / 'MNIST/raw' / f'{pre}-labels-idx1-ubyte', np.arange(n) + 5)
    sp = load_data('MNIST', root=tmp_path, download=False)
    assert sp.name == 'mnist' and sp.classes == [str(i) for i in range(10)]
    assert sp.test.y.tolist() == [5, 6]
    np.testing.assert_array_equal((sp.train.x[:, 0] * 255).round().byte().numpy(), imgs['train'])


def test_digits_bundled():
    sp = load_data('digits')
    assert (len(sp.train), len(sp.test), sp.shape, sp.n_classes) == (4000, 1000, (1, 28, 28), 10)
    assert sp.train.counts.tolist() == [400] * 10


def test_subsets_are_seeded_and_disjoint(toy):
    assert torch.equal(toy.take(5, seed=3).x, toy.take(5, seed=3).x)
    a, b = toy.split(0.25, seed=1)
    assert (len(a), len(b)) == (3, 9)
    assert not set(a.x.flatten().tolist()) & set(b.x.flatten().tolist())
    assert toy.per_class(2).y.tolist() == [0, 0, 1, 1, 2, 2]
    x0, y0 = toy[0]
    assert x0.shape == (1, 3, 3) and int(y0) == 0
    xs, ys = next(iter(toy.loader(batch_size=5, shuffle=False)))
    assert torch.equal(xs, toy.x[:5]) and torch.equal(ys, toy.y[:5])


def test_random_crop_flip_shapes_and_identity():
    x = torch.rand(8, 3, 5, 5)
    assert torch.equal(random_crop_flip(x, pad=0, flip=False), x)
    assert random_crop_flip(x, pad=2).shape == x.shape
    with pytest.raises(ValueError, match='x must be a batch tensor'):
        random_crop_flip(x[0])
