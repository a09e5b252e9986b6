"""A correct nn.LayerNorm(normalized_shape) / nn.RMSNorm: over the last gamma.ndim dims (beta None for RMSNorm)."""
import numpy as np


def forward(x, gamma, beta, eps):
    axes = tuple(range(x.ndim - gamma.ndim, x.ndim))
    if beta is None:  # RMSNorm: no mean is subtracted
        mean = np.zeros_like(x.mean(axis=axes, keepdims=True))
    else:
        mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    rstd = 1.0 / np.sqrt((centred ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = centred * rstd
    y = xhat * gamma + (beta if beta is not None else 0)
    return y, (xhat, rstd, gamma, axes, beta is not None)


def backward(dy, cache):
    xhat, rstd, gamma, axes, centres = cache
    lead = tuple(range(dy.ndim - gamma.ndim))
    dgamma = (dy * xhat).sum(axis=lead)
    dbeta = dy.sum(axis=lead) if centres else None
    dxhat = dy * gamma
    mean_term = dxhat.mean(axis=axes, keepdims=True) if centres else 0
    dx = rstd * (dxhat - mean_term - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    return dx, dgamma, dbeta
