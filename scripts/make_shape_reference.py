#!/usr/bin/env python3
"""Reference cases for LayerNorm and RMSNorm over the last dims (`layer layernorm|rmsnorm shape=…`).

Each case is computed twice, independently: by PyTorch (F.layer_norm / F.rms_norm with autograd) and by a
closed-form NumPy implementation written here; the script stops unless they agree within 1e-12 relative in
float64 (float32 cases are PyTorch's own float32 results, checked against NumPy in float64 within 1e-5).
Writes Tests/NormKitTests/Reference/shape_cases.json; `swift test` reads it offline (ShapeReferenceTests).

    python3 scripts/make_shape_reference.py
"""
import json
import os
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("make_shape_reference.py needs PyTorch (pip install torch): the cases are PyTorch's own results")

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "NormKitTests", "Reference", "shape_cases.json")


def numpy_reference(kind, x, normalized, gamma, beta, dy, eps):
    """y, dx, dgamma, dbeta, the statistics, in float64 by the closed form (no autograd)."""
    axes = tuple(range(x.ndim - len(normalized), x.ndim))
    m = int(np.prod(normalized))
    g = np.ones(normalized) if gamma is None else gamma
    if kind == "layernorm":
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        spread = (xc ** 2).mean(axis=axes, keepdims=True)
    else:
        mu = None
        xc = x
        spread = (x ** 2).mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(spread + eps)
    xhat = xc * rstd
    y = xhat * g + (0 if beta is None else beta)
    dxhat = dy * g
    if kind == "layernorm":
        dx = rstd * (dxhat - dxhat.mean(axis=axes, keepdims=True) - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    else:
        dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    lead = tuple(range(x.ndim - len(normalized)))
    dgamma = (dy * xhat).sum(axis=lead) if gamma is not None else None
    dbeta = dy.sum(axis=lead) if beta is not None else None
    return dict(y=y, dx=dx, dgamma=dgamma, dbeta=dbeta, mean=None if mu is None else mu.reshape(mu.shape[:len(lead)]),
                spread=spread.reshape(spread.shape[:len(lead)]), rstd=rstd.reshape(rstd.shape[:len(lead)]))


def torch_reference(kind, x, normalized, gamma, beta, dy, eps, dtype):
    tx = torch.tensor(x, dtype=dtype, requires_grad=True)
    tg = None if gamma is None else torch.tensor(gamma, dtype=dtype, requires_grad=True)
    tb = None if beta is None else torch.tensor(beta, dtype=dtype, requires_grad=True)
    if kind == "layernorm":
        y = F.layer_norm(tx, normalized, tg, tb, eps)
    else:
        y = F.rms_norm(tx, normalized, tg, eps)  # eps None: torch.finfo(dtype).eps
    y.backward(torch.tensor(dy, dtype=dtype))
    out = dict(y=y.detach().numpy(), dx=tx.grad.numpy(), dgamma=None if tg is None else tg.grad.numpy(),
               dbeta=None if tb is None else tb.grad.numpy())
    return {k: (None if v is None else v.astype(np.float64)) for k, v in out.items()}


def encode(a):
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": " ".join(repr(float(v)) for v in a.reshape(-1))}


def case(name, kind, shape, normalized, seed, eps="default", affine=True, scale=1.0, offset=0.0, dtype="float64",
         about=""):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale + offset
    gamma = 1 + 0.5 * rng.standard_normal(normalized) if affine else None
    beta = 0.5 * rng.standard_normal(normalized) if affine and kind == "layernorm" else None
    dy = rng.standard_normal(shape)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    if dtype == "float32":  # the inputs as float32 holds them, so both sides see the same numbers
        x, dy = x.astype(np.float32).astype(np.float64), dy.astype(np.float32).astype(np.float64)
        gamma = None if gamma is None else gamma.astype(np.float32).astype(np.float64)
        beta = None if beta is None else beta.astype(np.float32).astype(np.float64)
    torch_eps = (1e-5 if kind == "layernorm" else None) if eps == "default" else eps
    numeric_eps = torch_eps if torch_eps is not None else float(torch.finfo(torch_dtype).eps)
    t = torch_reference(kind, x, normalized, gamma, beta, dy, torch_eps, torch_dtype)
    n = numpy_reference(kind, x, normalized, gamma, beta, dy, numeric_eps)
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    for key in ("y", "dx", "dgamma", "dbeta"):
        if t[key] is None:
            assert n[key] is None, (name, key)
            continue
        err = np.max(np.abs(t[key] - n[key]) / (np.abs(n[key]) + 1e-3))
        if err > tolerance:
            sys.exit(f"{name}: PyTorch and NumPy disagree on {key} by {err:.3g} (tolerance {tolerance})")
    expected = dict(t)
    if dtype == "float64":  # statistics: torch does not return them, NumPy's agree with its y to 1e-12
        expected.update(mean=n["mean"], spread=n["spread"], rstd=n["rstd"])
    return {
        "name": name, "about": about, "kind": kind, "normalized_shape": list(normalized), "dtype": dtype,
        "eps": None if eps == "default" and kind == "rmsnorm" else numeric_eps,
        "x": encode(x), "gamma": encode(gamma), "beta": encode(beta), "dy": encode(dy),
        "expected": {k: encode(v) for k, v in expected.items() if v is not None},
    }


def cases():
    yield case("ln_last_dim", "layernorm", (2, 3, 4), (4,), 1, about="nn.LayerNorm(4) on (B, T, D)")
    yield case("ln_last_two", "layernorm", (2, 3, 4), (3, 4), 2, about="nn.LayerNorm((3, 4))")
    yield case("ln_no_leading", "layernorm", (5,), (5,), 3, about="input of exactly the normalised shape")
    yield case("ln_rows", "layernorm", (6, 7), (7,), 4, offset=3.0, about="(N, D) rows with an offset")
    yield case("ln_no_affine", "layernorm", (2, 2, 3, 5), (3, 5), 5, affine=False, about="elementwise_affine=False")
    yield case("ln_eps", "layernorm", (3, 4), (4,), 6, eps=0.5, about="a large eps")
    yield case("rms_last_dim", "rmsnorm", (2, 3, 4), (4,), 7, about="nn.RMSNorm(4), eps=None (machine epsilon)")
    yield case("rms_last_two", "rmsnorm", (2, 3, 4), (3, 4), 8, about="nn.RMSNorm((3, 4))")
    yield case("rms_eps_given", "rmsnorm", (4, 6), (6,), 9, eps=1e-5, about="nn.RMSNorm(6, eps=1e-5)")
    yield case("rms_tiny_values", "rmsnorm", (3, 5), (5,), 10, scale=1e-7,
               about="mean square 1e-14: eps = machine epsilon dominates")
    yield case("rms_f32_tiny", "rmsnorm", (3, 8), (8,), 11, scale=1e-4, dtype="float32",
               about="float32, mean square 1e-8 against eps = 1.19e-7 (float32's machine epsilon)")
    yield case("ln_f32", "layernorm", (4, 16), (16,), 12, dtype="float32", about="float32 LayerNorm rows")


def main():
    data = {"generator": f"torch {torch.__version__}, numpy {np.__version__}", "cases": list(cases())}
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {len(data['cases'])} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
