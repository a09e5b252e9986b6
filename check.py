#!/usr/bin/env python3
"""NormLab's layer, recomputed with plain NumPy (float64).

Made by NormLab 0.2.0: GroupNorm, G = 2, preset=torch (paper and PyTorch).
The input, parameters and upstream gradient are the .npy files beside this script; so are NormLab's y, dx,
dgamma and dbeta (those that were exported). The script recomputes them and prints the largest difference of
each; it exits 1 when any is above its tolerance, 0 otherwise. The tolerances are twice what rounding in the
tensors' dtype explains for this problem (NormLab's `diagnose` estimate: it grows with the set size and
with |μ|·rstd, where the mean's rounding is amplified), not one fixed number.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STEM = "check"


def load(name):
    path = os.path.join(HERE, f"{STEM}_{name}.npy")
    return np.load(path).astype(np.float64) if os.path.exists(path) else None


KIND = "groupnorm"          # groupnorm, layernorm, instancenorm, batchnorm or rmsnorm
GROUPS = 2              # G (batchnorm and instancenorm: C)
REDUCE = "group"        # group: over C/G channels × positions; channels: per position (batchnorm: per element)
AFFINE = "channel"        # channel: γ, β of shape (C); element: (C, *spatial); none
PARAMGRAD = "sum"     # sum or mean over the batch
VARIANCE = "biased"      # biased (÷ m) or unbiased (÷ (m − 1))
EPS = 1e-05
NORMALIZED_SHAPE = None  # the last dims, as nn.LayerNorm/nn.RMSNorm's normalized_shape; None: the (N, C, *spatial) form
MODE = "train"            # batchnorm: train uses the batch's statistics, eval the running ones
TOLERANCE = {"y": 2.156e-14, "dx": 6.977e-14, "dgamma": 9.929e-14, "dbeta": 2.893e-14}

x, dy = load("x"), load("dy")
gamma, beta = load("gamma"), load("beta")
running_mean, running_var = load("running_mean"), load("running_var")
expected = {name: load(name) for name in ("y", "dx", "dgamma", "dbeta")}


def view(a):
    """a reshaped so that `axes` hold exactly the elements that share one mean and variance."""
    if NORMALIZED_SHAPE is not None:
        return a.reshape(-1, int(np.prod(NORMALIZED_SHAPE))), (1,)
    n, c = a.shape[:2]
    s = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
    if KIND == "batchnorm":
        return (a.reshape(n, c, s), (0, 2)) if REDUCE == "group" else (a.reshape(n, c * s), (0,))
    k = c // GROUPS
    return (a.reshape(n, GROUPS, k * s), (2,)) if REDUCE == "group" else (a.reshape(n, GROUPS, k, s), (2,))


def affine(p, identity):
    if AFFINE == "none" or p is None:
        return identity
    if NORMALIZED_SHAPE is not None:
        return p  # the normalised shape: broadcasts over the leading dims
    if AFFINE == "channel":
        return p.reshape((1, -1) + (1,) * (x.ndim - 2))
    return p.reshape((1,) + x.shape[1:])
xr, axes = view(x)
m = int(np.prod([xr.shape[a] for a in axes]))
d = m - 1 if VARIANCE == "unbiased" else m
centre = KIND != "rmsnorm"
if KIND == "batchnorm" and MODE == "eval":
    shape = np.sum(xr, axis=axes, keepdims=True).shape
    mean, var = running_mean.reshape(shape), running_var.reshape(shape)
else:
    mean = xr.mean(axis=axes, keepdims=True) if centre else np.zeros(1)
    var = ((xr - mean) ** 2).sum(axis=axes, keepdims=True) / d
rstd = 1.0 / np.sqrt(var + EPS)
xhat = ((xr - mean) * rstd).reshape(x.shape)
y = xhat * affine(gamma, 1.0) + affine(beta, 0.0)

g = (dy * affine(gamma, 1.0)).reshape(xr.shape)      # ∂x̂
h = xhat.reshape(xr.shape)
if KIND == "batchnorm" and MODE == "eval":
    dxr = g * rstd
else:
    sum_g = g.sum(axis=axes, keepdims=True) if centre else 0.0
    dxr = rstd * (g - sum_g / m - h * (g * h).sum(axis=axes, keepdims=True) / d)
dx = dxr.reshape(x.shape)
results = {"y": y, "dx": dx}
if AFFINE != "none":
    if NORMALIZED_SHAPE is not None:
        batch_axes = tuple(range(x.ndim - len(NORMALIZED_SHAPE)))
    else:
        batch_axes = (0,) if AFFINE == "element" else (0,) + tuple(range(2, x.ndim))
    dgamma, dbeta = (dy * xhat).sum(axis=batch_axes), dy.sum(axis=batch_axes)
    if PARAMGRAD == "mean":
        batch = int(np.prod([x.shape[a] for a in batch_axes[:1]])) if NORMALIZED_SHAPE is None else int(np.prod([x.shape[a] for a in batch_axes]))
        dgamma, dbeta = dgamma / batch, dbeta / batch
    results.update(dgamma=dgamma, dbeta=dbeta)

ok = True
for name, value in results.items():
    want = expected.get(name)
    if want is None:
        continue
    difference = float(np.max(np.abs(value - want)))
    good = difference <= TOLERANCE[name]
    ok = ok and good
    print(f"{name}: max |difference| {difference:.3e}, tolerance {TOLERANCE[name]:.3e}: {'ok' if good else 'DIFFERS'}")
sys.exit(0 if ok else 1)