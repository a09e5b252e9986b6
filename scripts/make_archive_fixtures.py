#!/usr/bin/env python3
"""Multi-tensor files written by the real libraries, for the .npz and .safetensors tests and sessions/09.

Run from the repository root:  python3 scripts/make_archive_fixtures.py   (needs numpy and `pip install safetensors`)
Writes Tests/NormLabCoreTests/Fixtures/archives/*.{npz,safetensors} and sessions/data/pair.npz.
"""
import os

import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "NormLabCoreTests", "Fixtures", "archives")


def main():
    os.makedirs(OUT, exist_ok=True)
    x = (np.arange(24, dtype=np.float64).reshape(2, 4, 3) / 7 - 1.5)
    w = np.array([[1.5, -2.25, 3e-3], [4e4, -5.5, 6.0]], dtype=np.float32)
    n = np.array([1, -2, 3], dtype=np.int64)
    np.savez(os.path.join(OUT, "savez.npz"), x=x, w=w, n=n)
    np.savez_compressed(os.path.join(OUT, "compressed.npz"), x=x)
    # Large enough for dynamic Huffman blocks and long back-references, with the same arrays stored beside.
    a = np.arange(20000.0).reshape(100, 200)
    r = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    np.savez(os.path.join(OUT, "big.npz"), a=a, r=r)
    np.savez_compressed(os.path.join(OUT, "big_compressed.npz"), a=a, r=r)
    save_file({"x": x, "weight": w, "count": n}, os.path.join(OUT, "three.safetensors"))
    save_file({"only": w}, os.path.join(OUT, "one.safetensors"))
    # float16 and bfloat16 (BF16 through the ml_dtypes package: pip install ml_dtypes).
    import ml_dtypes
    h = np.array([1.5, -2.0, 65504.0, 2.0 ** -24, 0.1], dtype=np.float16)
    b = np.array([1.5, -2.0, 3.0e38, 0.1, 2.0 ** -130], dtype=ml_dtypes.bfloat16)
    save_file({"h": h, "b": b}, os.path.join(OUT, "halves.safetensors"))
    np.save(os.path.join(OUT, "half.npy"), h)
    np.savez(os.path.join(ROOT, "sessions", "data", "pair.npz"), gamma=np.array([1.0, 0.5, 2.0, 1.5]), beta=np.array([0.0, 0.1, -0.1, 0.2]))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
