"""A forward that never returns."""
import numpy as np


def forward(x, gamma, beta, groups, eps):
    while True:
        pass
    grouped = x.reshape(n, groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    centred = grouped - mean
    var = (centred ** 2).mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (centred * rstd).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    y = xhat * gamma.reshape(shape) + beta.reshape(shape)
    return y, (xhat, rstd, gamma, groups, shape)


def backward(dy, cache):
    xhat, rstd, gamma, groups, shape = cache
    n = dy.shape[0]
    axes = (0,) + tuple(range(2, dy.ndim))
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    dxhat = (dy * gamma.reshape(shape)).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    dx = rstd * (dxhat - dxhat.mean(axis=2, keepdims=True) - xh * (dxhat * xh).mean(axis=2, keepdims=True))
    return dx.reshape(dy.shape), dgamma, dbeta
