#!/usr/bin/env python3
"""The NumPy and PyTorch side of NormLab's benchmark (run by `swift run -c release normlab-bench`).

usage: compare.py N C H W G THREADS RUNS
Prints one JSON line: median seconds of GroupNorm forward and forward+backward (float32) for a plain NumPy
implementation and, when `import torch` works, PyTorch's F.group_norm with autograd at THREADS threads.
"""
import json
import sys
import time

import numpy as np

n, c, h, w, g, threads, runs = map(int, sys.argv[1:8])
rng = np.random.default_rng(0)
x = rng.standard_normal((n, c, h, w)).astype(np.float32)
dy = rng.standard_normal((n, c, h, w)).astype(np.float32)
gamma = np.ones(c, dtype=np.float32)
beta = np.zeros(c, dtype=np.float32)
eps = 1e-5


def median(f):
    f()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[len(samples) // 2]


def np_forward():
    xr = x.reshape(n, g, -1)
    mean = xr.mean(2, keepdims=True)
    var = xr.var(2, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = ((xr - mean) * rstd).reshape(x.shape)
    return xhat * gamma.reshape(1, c, 1, 1) + beta.reshape(1, c, 1, 1), xhat, rstd


def np_step():
    y, xhat, rstd = np_forward()
    dxhat = (dy * gamma.reshape(1, c, 1, 1)).reshape(n, g, -1)
    xh = xhat.reshape(n, g, -1)
    m = xh.shape[2]
    dx = rstd / m * (m * dxhat - dxhat.sum(2, keepdims=True) - xh * (dxhat * xh).sum(2, keepdims=True))
    dgamma = (dy * xhat).sum((0, 2, 3))
    dbeta = dy.sum((0, 2, 3))
    return dx, dgamma, dbeta


result = {"numpy_forward": median(np_forward), "numpy_step": median(np_step)}
try:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    tx = torch.tensor(x)
    tdy = torch.tensor(dy)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)

    def torch_forward():
        with torch.no_grad():
            return F.group_norm(tx, g, tg, tb, eps)

    def torch_step():
        xi = tx.detach().requires_grad_(True)
        y = F.group_norm(xi, g, tg, tb, eps)
        y.backward(tdy)
        return xi.grad

    result.update(torch_forward=median(torch_forward), torch_step=median(torch_step), torch_version=torch.__version__)
except ImportError:
    pass
print(json.dumps(result))
