"""A student's GroupNorm. It passed their own tests, which used G = 1 (LayerNorm) and G = C (InstanceNorm).

The bug: the channels are split into groups with reshape(N, C // G, G, ...) and the group axis taken second,
so channel c lands in group c % G instead of c // G. With G = 1 or G = C both are the same grouping.
"""
import numpy as np


def forward(x, gamma, beta, groups, eps):
    n, c = x.shape[0], x.shape[1]
    rest = x.shape[2:]
    # (N, C/G, G, *rest) -> (N, G, C/G, *rest): "the group axis second"
    split = x.reshape((n, c // groups, groups) + rest).swapaxes(1, 2)
    flat = split.reshape(n, groups, -1)
    mu = flat.mean(axis=-1, keepdims=True)
    var = flat.var(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat_flat = (flat - mu) * inv
    xhat = xhat_flat.reshape(split.shape).swapaxes(1, 2).reshape(x.shape)
    bshape = (1, c) + (1,) * len(rest)
    out = gamma.reshape(bshape) * xhat + beta.reshape(bshape)
    return out, (xhat, inv, gamma.reshape(bshape), groups)


def backward(dout, cache):
    xhat, inv, g, groups = cache
    n, c = dout.shape[0], dout.shape[1]
    rest = dout.shape[2:]
    axes = tuple(i for i in range(dout.ndim) if i != 1)
    dgamma = np.sum(dout * xhat, axis=axes)
    dbeta = np.sum(dout, axis=axes)

    def grouped(a):
        return a.reshape((n, c // groups, groups) + rest).swapaxes(1, 2).reshape(n, groups, -1)

    dxh = grouped(dout * g)
    xh = grouped(xhat)
    m = xh.shape[-1]
    dx_flat = inv / m * (m * dxh - dxh.sum(axis=-1, keepdims=True) - xh * (dxh * xh).sum(axis=-1, keepdims=True))
    dx = dx_flat.reshape((n, groups, c // groups) + rest).swapaxes(1, 2).reshape(dout.shape)
    return dx, dgamma, dbeta
