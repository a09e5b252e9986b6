"""BatchNorm whose sets are the batch × a group's channels × positions (layer norm over=n,c,s groups=G)."""
import numpy as np

def forward(x, gamma, beta, groups, eps):
    n, c = x.shape[:2]
    xr = x.reshape(n, groups, -1)
    mean = xr.mean(axis=(0, 2), keepdims=True)
    var = ((xr - mean) ** 2).mean(axis=(0, 2), keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = ((xr - mean) * rstd).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return xhat * gamma.reshape(shape) + beta.reshape(shape), (xhat, rstd, gamma, groups, shape)

def backward(dy, cache):
    xhat, rstd, gamma, groups, shape = cache
    n = dy.shape[0]
    axes = (0,) + tuple(range(2, dy.ndim))
    dgamma, dbeta = (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
    g = (dy * gamma.reshape(shape)).reshape(n, groups, -1)
    h = xhat.reshape(n, groups, -1)
    m = g.shape[0] * g.shape[2]
    dx = rstd * (g - g.sum(axis=(0, 2), keepdims=True) / m - h * (g * h).sum(axis=(0, 2), keepdims=True) / m)
    return dx.reshape(dy.shape), dgamma, dbeta
