#!/usr/bin/env python3
"""The .npy files NormLab's tests and tutorial sessions read, written by NumPy itself.

Run from the repository root:  python3 scripts/make_npy_fixtures.py
Writes Tests/NormLabCoreTests/Fixtures/*.npy (good and bad files for the reader) and sessions/data/*.npy.
"""
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "NormLabCoreTests", "Fixtures")
DATA = os.path.join(ROOT, "sessions", "data")


def fixtures():
    os.makedirs(FIX, exist_ok=True)
    p = lambda name: os.path.join(FIX, name)
    a = np.arange(6, dtype=np.float64).reshape(2, 3) / 4 - 0.5
    np.save(p("float64.npy"), a)
    np.save(p("float32.npy"), np.array([[1.5, -2.25, 3e-3], [4e4, -5.5, 6.0]], dtype=np.float32))
    np.save(p("int64.npy"), np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int64))
    np.save(p("uint8.npy"), np.array([0, 7, 255], dtype=np.uint8))
    np.save(p("int16.npy"), np.array([-32768, 5, 32767], dtype=np.int16))
    np.save(p("bool.npy"), np.array([True, False, True]))
    np.save(p("rank5.npy"), np.arange(32, dtype=np.float32).reshape(2, 2, 2, 2, 2))
    np.save(p("fortran.npy"), np.asfortranarray(a))
    np.save(p("bigendian.npy"), a.astype(">f8"))
    np.save(p("complex.npy"), np.array([1 + 2j, 3 - 1j]))
    np.save(p("float16.npy"), np.array([1, 2], dtype=np.float16))
    np.save(p("scalar.npy"), np.float64(3.5))
    np.save(p("empty.npy"), np.zeros((2, 0)))
    np.save(p("object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with open(p("float64.npy"), "rb") as f:
        whole = f.read()
    with open(p("truncated.npy"), "wb") as f:
        f.write(whole[: len(whole) - 5])
    with open(p("truncated_header.npy"), "wb") as f:
        f.write(whole[:40])
    with open(p("not_npy.npy"), "wb") as f:
        f.write(b"PK\x03\x04 this is a zip file, not npy")
    # Version 2.0 (a 4-byte header length), as NumPy writes when a header is too big for version 1.
    from numpy.lib import format as fmt
    with open(p("version2.npy"), "wb") as f:
        fmt.write_array(f, a, version=(2, 0))
    with open(p("version3.npy"), "wb") as f:
        fmt.write_array(f, a.astype(np.float32), version=(3, 0))
    # A header whose shape claims more elements than the data holds.
    header = whole.replace(b"(2, 3)", b"(2, 9)")
    with open(p("short_payload.npy"), "wb") as f:
        f.write(header)
    with open(p("overflow.npy"), "wb") as f:
        head = b"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"
        head += b" " * (118 - len(head)) + b"\n"
        f.write(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + b"\0" * 16)


def session_data():
    os.makedirs(DATA, exist_ok=True)
    rng = np.random.default_rng(2026)
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.save(os.path.join(DATA, "x.npy"), x)
    np.save(os.path.join(DATA, "gamma.npy"), np.array([1.0, 0.5, 2.0, 1.5], dtype=np.float32))
    np.save(os.path.join(DATA, "labels.npy"), np.array([[0, 1, 2, 3]], dtype=np.int64))

    # Tutorial 05: somebody's GroupNorm backward (G=2, eps 1e-5, gamma 1, beta 0) with the mean term forgotten.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3))
    dy = rng.standard_normal((2, 4, 3))
    xr = x.reshape(2, 2, -1)
    mu = xr.mean(2, keepdims=True)
    var = xr.var(2, keepdims=True)
    rstd = 1 / np.sqrt(var + 1e-5)
    xhat = (xr - mu) * rstd
    g = dy.reshape(2, 2, -1)
    m = xr.shape[2]
    right = rstd / m * (m * g - g.sum(2, keepdims=True) - xhat * (g * xhat).sum(2, keepdims=True))
    wrong = rstd / m * (m * g - xhat * (g * xhat).sum(2, keepdims=True))  # the -sum(g) term is missing
    np.save(os.path.join(DATA, "my_x.npy"), x)
    np.save(os.path.join(DATA, "my_dy.npy"), dy)
    np.save(os.path.join(DATA, "my_dx.npy"), wrong.reshape(x.shape))
    np.save(os.path.join(DATA, "my_dx_fixed.npy"), right.reshape(x.shape))

    # Tutorial 10: a PyDLLib-style GroupNorm (G=2, statistics per position, element-wise gamma and beta,
    # eps 1e-6) by somebody whose dgamma sums over the batch where the library averages.
    rng = np.random.default_rng(10)
    n, c, h, w, groups = 2, 4, 2, 2, 2
    x = rng.standard_normal((n, c, h, w))
    gamma = 1 + 0.5 * rng.standard_normal((c, h, w))
    beta = 0.5 * rng.standard_normal((c, h, w))
    dy = rng.standard_normal((n, c, h, w))
    xr = x.reshape(n, groups, c // groups, h * w)
    mu = xr.mean(2, keepdims=True)
    var = xr.var(2, keepdims=True)
    rstd = 1 / np.sqrt(var + 1e-6)
    xhat = ((xr - mu) * rstd).reshape(x.shape)
    y = xhat * gamma + beta
    g = (dy * gamma).reshape(xr.shape)
    hr = xhat.reshape(xr.shape)
    k = c // groups
    dx = (rstd / k * (k * g - g.sum(2, keepdims=True) - hr * (g * hr).sum(2, keepdims=True))).reshape(x.shape)
    for name, value in [("x", x), ("gamma", gamma), ("beta", beta), ("dy", dy), ("y", y), ("dx", dx),
                        ("dgamma", (dy * xhat).sum(0)), ("dbeta", dy.mean(0))]:
        np.save(os.path.join(DATA, f"their_{name}.npy"), value)


if __name__ == "__main__":
    fixtures()
    session_data()
    print("wrote", sorted(os.listdir(FIX)), sorted(os.listdir(DATA)))
