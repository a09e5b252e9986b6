"""GroupNorm whose groups interleave the channels: channel c in group c % G (hidden when G = 1 or G = C)."""
import numpy as np


def forward(x, gamma, beta, groups, eps):
    n, c = x.shape[:2]
    grouped = np.swapaxes(x.reshape((n, c // groups, groups) + x.shape[2:]), 1, 2).reshape(n, groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    centred = grouped - mean
    var = (centred ** 2).mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = np.swapaxes((centred * rstd).reshape((n, groups, c // groups) + x.shape[2:]), 1, 2).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    y = xhat * gamma.reshape(shape) + beta.reshape(shape)
    return y, (xhat, rstd, gamma, groups, shape, c)


def backward(dy, cache):
    xhat, rstd, gamma, groups, shape, c = cache
    n = dy.shape[0]
    def group(a):
        return np.swapaxes(a.reshape((n, c // groups, groups) + a.shape[2:]), 1, 2).reshape(n, groups, -1)
    axes = (0,) + tuple(range(2, dy.ndim))
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    dxhat = group(dy * gamma.reshape(shape))
    xh = group(xhat)
    dx = rstd * (dxhat - dxhat.mean(axis=2, keepdims=True) - xh * (dxhat * xh).mean(axis=2, keepdims=True))
    dx = np.swapaxes(dx.reshape((n, groups, c // groups) + dy.shape[2:]), 1, 2).reshape(dy.shape)
    return dx, dgamma, dbeta
