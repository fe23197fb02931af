#!/usr/bin/env python
"""Build backdoor_nb/assets/digits.npz, the small real digit set bundled with the package.

A class-balanced, seeded (seed 0) subset of the official MNIST t10k images as repacked in
shared/data/mnist_test10k.npz: 400 images per class from its train split (4000) and 100 per class from its
test split (1000), rows shuffled, written with np.savez_compressed in the same format
(x_train, x_test uint8 (N, H, W, C); y_train, y_test int64; classes str).
MNIST: Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0.

Usage: python tools/make_digits.py [--src PATH] [--out PATH] [--n-train 4000] [--n-test 1000] [--seed 0]
"""
import argparse
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 2 * 1024 * 1024

def balanced_subset(y, n, n_classes, rng):
    "Indices of `n` rows, `n // n_classes` of every class, in shuffled order."
    if n % n_classes: raise ValueError(f"n={n} is not a multiple of the {n_classes} classes")
    k = n // n_classes
    idx = []
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        if len(rows) < k: raise ValueError(f"class {c} has {len(rows)} rows, fewer than the {k} wanted")
        idx.append(rng.choice(rows, k, replace=False))
    return rng.permutation(np.concatenate(idx))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--src', default=str(ROOT.parent / 'shared/data/mnist_test10k.npz'))
    p.add_argument('--out', default=str(ROOT / 'backdoor_nb/assets/digits.npz'))
    p.add_argument('--n-train', type=int, default=4000)
    p.add_argument('--n-test', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    with np.load(a.src, allow_pickle=False) as d: src = {k: d[k] for k in d.files}
    classes = src['classes']
    rng = np.random.default_rng(a.seed)
    out = {'classes': classes}
    for split, n in (('train', a.n_train), ('test', a.n_test)):
        idx = balanced_subset(src[f'y_{split}'], n, len(classes), rng)
        out[f'x_{split}'] = np.ascontiguousarray(src[f'x_{split}'][idx], dtype=np.uint8)
        out[f'y_{split}'] = src[f'y_{split}'][idx].astype(np.int64)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, **out)
    size = Path(a.out).stat().st_size
    print(f"wrote {a.out}: {size/1024:.0f} KiB, " + ', '.join(f"{k} {v.dtype} {v.shape}" for k, v in out.items()))
    if size > MAX_BYTES: raise SystemExit(f"{a.out} is {size} bytes, over the {MAX_BYTES} byte budget: lower --n-train/--n-test")

if __name__ == '__main__': main()
