#!/usr/bin/env python3
"""Hand-written GroupNorm passes in NumPy, each with one real mistake (or none), for `diagnose`'s tests.

Run from the repository root:  python3 scripts/make_diagnose_fixtures.py
Writes Tests/NormLabCoreTests/Fixtures/diagnose/CASE/{x,gamma,beta,dy,y,dx,dgamma,dbeta}.npy, the
sessions/data/f32_*.npy files of sessions/12, and
Tests/NormLabCoreTests/Fixtures/diagnose/cases.json, which names for every case the layer (G, preset), the
dtype, and the cause each tensor should get: "" for none (a correct tensor must never be accused), "follows"
for a tensor that is right for the user's own (wrong) forward pass, else the cause's ID.

Each implementation below is written out on its own, the way somebody debugging their own layer would write
it: forward in the usual steps, backward by hand. None of them calls NormLab, and none shares code with
another beyond the helpers at the top (reshaping into groups and the random inputs), so a diagnosis that
names the right cause has found it in the numbers, not in a shared code path.
"""
import json
import os
import shutil

import ml_dtypes
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "NormLabCoreTests", "Fixtures", "diagnose")

EPS = 1e-5


def grouped(a, G):
    """(N, C, *S) -> (N, G, C/G * S): the elements of each (sample, group) in one row."""
    N, C = a.shape[:2]
    return a.reshape(N, G, -1)


def per_channel(v, shape):
    """A (C) vector shaped to broadcast over (N, C, *S)."""
    return v.reshape((1, shape[1]) + (1,) * (len(shape) - 2))


# ---- correct, paper/PyTorch conventions (two-pass variance) -------------------------------------------------

def correct(x, gamma, beta, dy, G, eps=EPS):
    shape = x.shape
    xg = grouped(x, G)
    mu = xg.mean(axis=2, keepdims=True)
    xc = xg - mu
    var = (xc * xc).mean(axis=2, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (xc * rstd).reshape(shape)
    y = per_channel(gamma, shape) * xhat + per_channel(beta, shape)
    axes = (0,) + tuple(range(2, len(shape)))
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    g = grouped(dy * per_channel(gamma, shape), G)
    h = grouped(xhat, G)
    dx = rstd * (g - g.mean(axis=2, keepdims=True) - h * (g * h).mean(axis=2, keepdims=True))
    return y, dx.reshape(shape), dgamma, dbeta


def correct_pydllib(x, gamma, beta, dy, G, eps=1e-6):
    """PyDLLib's conventions: statistics per (sample, group, position), element-wise γ, β, batch-mean dγ, dβ."""
    N, C = x.shape[:2]
    S = x.shape[2:]
    v = x.reshape((N, G, C // G) + S)
    mu = v.mean(axis=2, keepdims=True)
    var = ((v - mu) ** 2).mean(axis=2, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = ((v - mu) * inv).reshape(x.shape)
    y = gamma[None] * xhat + beta[None]
    dgamma = (dy * xhat).mean(axis=0)
    dbeta = dy.mean(axis=0)
    g = (dy * gamma[None]).reshape(v.shape)
    h = xhat.reshape(v.shape)
    dx = inv * (g - g.mean(axis=2, keepdims=True) - h * (g * h).mean(axis=2, keepdims=True))
    return y, dx.reshape(x.shape), dgamma, dbeta


# ---- forward mistakes (each with the backward that is right for its own forward) -------------------------

def interleaved_groups(x, gamma, beta, dy, G):
    """Channel c in group c mod G: reshaping (N, C/G, G, S) instead of (N, G, C/G, S)."""
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:]))
    v = x.reshape(N, C // G, G, S).transpose(0, 2, 1, 3).reshape(N, G, -1)
    mu = v.mean(axis=2, keepdims=True)
    var = ((v - mu) ** 2).mean(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(var + EPS)
    h = (v - mu) * rstd
    xhat = h.reshape(N, G, C // G, S).transpose(0, 2, 1, 3).reshape(x.shape)
    y = per_channel(gamma, x.shape) * xhat + per_channel(beta, x.shape)
    axes = (0,) + tuple(range(2, x.ndim))
    g = (dy * per_channel(gamma, x.shape)).reshape(N, C // G, G, S).transpose(0, 2, 1, 3).reshape(N, G, -1)
    dxg = rstd * (g - g.mean(axis=2, keepdims=True) - h * (g * h).mean(axis=2, keepdims=True))
    dx = dxg.reshape(N, G, C // G, S).transpose(0, 2, 1, 3).reshape(x.shape)
    return y, dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def per_position(x, gamma, beta, dy, G):
    """Statistics over the group's channels at each position (the `.sum(2)` of PyDLLib) under torch's affine."""
    N, C = x.shape[:2]
    v = x.reshape((N, G, C // G) + x.shape[2:])
    mu = v.mean(axis=2, keepdims=True)
    var = v.var(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(var + EPS)
    h = (v - mu) * rstd
    xhat = h.reshape(x.shape)
    y = per_channel(gamma, x.shape) * xhat + per_channel(beta, x.shape)
    g = (dy * per_channel(gamma, x.shape)).reshape(v.shape)
    dx = (rstd * (g - g.mean(axis=2, keepdims=True) - h * (g * h).mean(axis=2, keepdims=True))).reshape(x.shape)
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def unbiased_variance(x, gamma, beta, dy, G):
    xg = grouped(x, G)
    m = xg.shape[2]
    mu = xg.mean(axis=2, keepdims=True)
    var = xg.var(axis=2, ddof=1, keepdims=True)
    rstd = 1 / np.sqrt(var + EPS)
    h = (xg - mu) * rstd
    xhat = h.reshape(x.shape)
    y = per_channel(gamma, x.shape) * xhat + per_channel(beta, x.shape)
    g = grouped(dy * per_channel(gamma, x.shape), G)
    dx = rstd * (g - g.mean(axis=2, keepdims=True) - h * (g * h).sum(axis=2, keepdims=True) / (m - 1))
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx.reshape(x.shape), (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def eps_outside_sqrt(x, gamma, beta, dy, G):
    """x̂ = (x − μ) / (σ + eps)."""
    xg = grouped(x, G)
    mu = xg.mean(axis=2, keepdims=True)
    sigma = np.sqrt(((xg - mu) ** 2).mean(axis=2, keepdims=True))
    s = sigma + EPS
    h = (xg - mu) / s
    xhat = h.reshape(x.shape)
    y = per_channel(gamma, x.shape) * xhat + per_channel(beta, x.shape)
    g = grouped(dy * per_channel(gamma, x.shape), G)
    dx = (g - g.mean(axis=2, keepdims=True)) / s - h * (g * h).mean(axis=2, keepdims=True) / sigma
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx.reshape(x.shape), (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def eps_value(x, gamma, beta, dy, G):
    """eps = 1e-3 where the layer says 1e-5."""
    return correct(x, gamma, beta, dy, G, eps=1e-3)


def float32_one_pass(x, gamma, beta, dy, G):
    """var = E[x²] − E[x]², all in float32: cancellation when |μ| ≫ σ."""
    xg = grouped(x, G).astype(np.float32)
    mu = xg.mean(axis=2, keepdims=True, dtype=np.float32)
    var = (xg * xg).mean(axis=2, keepdims=True, dtype=np.float32) - mu * mu
    var = np.maximum(var, np.float32(0))
    rstd = (np.float32(1) / np.sqrt(var + np.float32(EPS))).astype(np.float32)
    h = (xg - mu) * rstd
    xhat = h.reshape(x.shape)
    gamma32, beta32 = gamma.astype(np.float32), beta.astype(np.float32)
    y = per_channel(gamma32, x.shape) * xhat + per_channel(beta32, x.shape)
    g = grouped(dy.astype(np.float32) * per_channel(gamma32, x.shape), G)
    dx = rstd * (g - g.mean(axis=2, keepdims=True) - h * (g * h).mean(axis=2, keepdims=True))
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx.reshape(x.shape), (dy.astype(np.float32) * xhat).sum(axis=axes), dy.astype(np.float32).sum(axis=axes)


# ---- backward mistakes (the forward is right) ------------------------------------------------------------

def step_by_step(x, gamma, beta, dy, G, *, mean_term=True, xhat_term=1.0, negate=False, use_gamma=True,
                 set_size=None, rstd_power=3, dgamma_mode="xhat", param_mean=False):
    """Backward through the forward's steps (∂x̂, ∂σ², ∂μ), with the chosen mistake."""
    shape = x.shape
    xg = grouped(x, G)
    m = xg.shape[2] if set_size is None else set_size
    mu = xg.mean(axis=2, keepdims=True)
    xc = xg - mu
    var = (xc ** 2).mean(axis=2, keepdims=True)
    rstd = (var + EPS) ** -0.5
    xhat = (xc * rstd).reshape(shape)
    y = per_channel(gamma, shape) * xhat + per_channel(beta, shape)
    dxhat = grouped(dy * (per_channel(gamma, shape) if use_gamma else 1.0), G)
    dvar = (dxhat * xc).sum(axis=2, keepdims=True) * -0.5 * (var + EPS) ** (-rstd_power / 2)
    dmu = -(dxhat * rstd).sum(axis=2, keepdims=True)
    dx = dxhat * rstd + xhat_term * dvar * 2 * xc / m + (dmu / m if mean_term else 0)
    if negate:
        dx = -dx
    axes = (0,) + tuple(range(2, len(shape)))
    dbeta = dy.sum(axis=axes)
    dgamma = {"xhat": (dy * xhat).sum(axis=axes), "none": dy.sum(axis=axes), "y": (dy * y).sum(axis=axes)}[dgamma_mode]
    if param_mean:
        dgamma, dbeta = dgamma / shape[0], dbeta / shape[0]
    return y, dx.reshape(shape), dgamma, dbeta


# ---- other layers: BatchNorm (per channel over the batch) and RMSNorm (no centring) ------------------------

def batchnorm(x, gamma, beta, dy, G, *, mean_term=True, ddof=0, per_sample=False):
    """Training-mode BatchNorm, PyTorch's conventions (G unused). per_sample: the batch axis left out of the
    statistics (x.mean(axis=(2, 3)) — each sample normalised on its own, InstanceNorm), with that forward's own
    correct backward; dγ, dβ still summed over the batch."""
    axes = tuple(range(2, x.ndim)) if per_sample else (0,) + tuple(range(2, x.ndim))
    m = int(np.prod([x.shape[a] for a in axes]))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    rstd = 1 / np.sqrt(var + EPS)
    xhat = (x - mu) * rstd
    y = per_channel(gamma, x.shape) * xhat + per_channel(beta, x.shape)
    g = dy * per_channel(gamma, x.shape)
    dx = rstd * (g - (g.mean(axis=axes, keepdims=True) if mean_term else 0)
                 - xhat * (g * xhat).sum(axis=axes, keepdims=True) / (m - ddof))
    batch_axes = (0,) + tuple(range(2, x.ndim))
    return y, dx, (dy * xhat).sum(axis=batch_axes), dy.sum(axis=batch_axes)


def rmsnorm(x, gamma, beta, dy, G, *, xhat_term=True, negate=False):
    """NormLab's CNN-form RMSNorm over (sample, group): y = γ·x/√(mean(x²) + eps) + β."""
    xg = grouped(x, G)
    ms = (xg * xg).mean(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(ms + EPS)
    h = xg * rstd
    xhat = h.reshape(x.shape)
    y = per_channel(gamma, x.shape) * xhat + per_channel(beta, x.shape)
    g = grouped(dy * per_channel(gamma, x.shape), G)
    dx = rstd * (g - (h * (g * h).mean(axis=2, keepdims=True) if xhat_term else 0))
    if negate:
        dx = -dx
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx.reshape(x.shape), (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


# ---- the cases ---------------------------------------------------------------------------------------------

SHAPES = {  # name: (shape, G)
    "a": ((2, 6, 3, 3), 3),
    "n1": ((1, 4, 2, 3), 2),
    "g1": ((3, 4, 2, 2), 1),
    "gc": ((2, 4, 5), 4),
    "big": ((4, 32, 6, 6), 8),
}

NONE = {"y": "", "dx": "", "dgamma": "", "dbeta": ""}


def expect(**causes):
    out = dict(NONE)
    out.update(causes)
    return out


def inputs(shape, seed, dtype, offset=0.0, scale=1.0):
    r = np.random.default_rng(seed)
    C = shape[1]
    x = (offset + scale * r.standard_normal(shape)).astype(dtype)
    gamma = (1 + 0.5 * r.standard_normal(C)).astype(dtype)
    beta = (0.3 * r.standard_normal(C)).astype(dtype)
    dy = r.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    cases = []

    def add(name, shape_name, impl, causes, dtype=np.float64, preset="torch", offset=0.0, scale=1.0, seed=0,
            note="", kind="groupnorm", eps=None, constant_set=False):
        shape, G = SHAPES[shape_name]
        x, gamma, beta, dy = inputs(shape, seed, dtype, offset, scale)
        if constant_set:  # the first (sample, group) holds one value
            xg = grouped(x, G)
            xg[0, 0, :] = dtype(2.0)
            x = xg.reshape(shape)
        if preset == "pydllib":  # element-wise γ, β of the sample's shape
            r = np.random.default_rng(seed + 100)
            gamma = (1 + 0.5 * r.standard_normal(shape[1:])).astype(dtype)
            beta = (0.3 * r.standard_normal(shape[1:])).astype(dtype)
        # Every implementation computes in float64 from float64 inputs unless it is a float32 one.
        wide = lambda a: a.astype(np.float64) if dtype == np.float64 else a
        if dtype not in (np.float32, np.float64):
            y, dx, dg, db = impl(x, gamma, beta, dy, G)
        elif dtype == np.float32 and impl is not float32_one_pass:
            # A float32 implementation: the same formulas with every array float32 (NumPy keeps the dtype).
            y, dx, dg, db = impl(x, gamma, beta, dy, G)
        else:
            y, dx, dg, db = impl(wide(x), wide(gamma), wide(beta), wide(dy), G)
        folder = os.path.join(OUT, name)
        os.makedirs(folder)
        # NumPy has no bfloat16 of its own: bfloat16 values are saved as float32 (exactly) and the case says bfloat16.
        stored = np.float32 if dtype == ml_dtypes.bfloat16 else dtype
        for key, value in dict(x=x, gamma=gamma, beta=beta, dy=dy, y=y, dx=dx, dgamma=dg, dbeta=db).items():
            np.save(os.path.join(folder, key + ".npy"), np.ascontiguousarray(value.astype(dtype).astype(stored)))
        names = {np.float32: "float32", np.float64: "float64", np.float16: "float16", ml_dtypes.bfloat16: "bfloat16"}
        case = dict(name=name, kind=kind, shape=list(shape), groups=G, preset=preset, dtype=names[dtype], expect=causes,
                    note=note)
        if eps is not None:
            case["eps"] = eps
        cases.append(case)

    # Correct passes on a realistic size: never accused.
    add("correct_big", "big", correct, expect(), seed=30)
    add("correct32_big", "big", correct, expect(), dtype=np.float32, seed=31)
    add("float32_offset_correct_big", "big", correct, expect(), dtype=np.float32, offset=1000.0, seed=32)
    add("pydllib_correct32", "a", correct_pydllib, expect(), dtype=np.float32, preset="pydllib", seed=33)
    # What no single hypothesis explains: named as different, with no cause.
    def corrupted(*a):
        y, dx, dg, db = step_by_step(*a)
        dx = dx.copy()
        dx.flat[5] += 0.3
        return y, dx, dg, db
    add("corrupted_dx_a", "a", corrupted, expect(dx="differs"), seed=34)
    add("two_bugs_a", "a", lambda *a: step_by_step(*a, mean_term=False, negate=True), expect(dx="differs"), seed=35)

    for s in [k for k in SHAPES if k != "big"]:
        add(f"correct_{s}", s, correct, expect(), seed=1)
        add(f"correct32_{s}", s, correct, expect(), dtype=np.float32, seed=2)
        add(f"missing_mean_{s}", s, lambda *a: step_by_step(*a, mean_term=False), expect(dx="missing-mean-term"), seed=3)
        add(f"missing_xhat_{s}", s, lambda *a: step_by_step(*a, xhat_term=0.0), expect(dx="missing-xhat-term"), seed=4)
        add(f"xhat_sign_{s}", s, lambda *a: step_by_step(*a, xhat_term=-1.0), expect(dx="xhat-term-sign"), seed=5)
        add(f"negated_{s}", s, lambda *a: step_by_step(*a, negate=True), expect(dx="dx-negated"), seed=6)
        add(f"no_gamma_{s}", s, lambda *a: step_by_step(*a, use_gamma=False), expect(dx="dx-missing-gamma"), seed=7)
        add(f"rstd_power_{s}", s, lambda *a: step_by_step(*a, rstd_power=2), expect(dx="rstd-power"), seed=8)
        add(f"dgamma_sum_dy_{s}", s, lambda *a: step_by_step(*a, dgamma_mode="none"), expect(dgamma="dgamma-without-xhat"), seed=9)
        add(f"dgamma_y_{s}", s, lambda *a: step_by_step(*a, dgamma_mode="y"), expect(dgamma="dgamma-uses-y"), seed=10)
        add(f"eps_value_{s}", s, eps_value, expect(y="eps-value", dx="follows", dgamma="follows"), scale=0.02, seed=11)
        add(f"eps_outside_{s}", s, eps_outside_sqrt, expect(y="eps-outside-sqrt", dx="follows", dgamma="follows"), scale=0.02, seed=12)
        add(f"float32_offset_correct_{s}", s, correct, expect(), dtype=np.float32, offset=1000.0, seed=13,
            note="a correct float32 pass on x ≈ 1000: rounding, not a bug")
    # Mistakes that need more than one sample, more than one group, or positions to show.
    for s in ("a", "g1", "gc"):
        add(f"param_mean_{s}", s, lambda *a: step_by_step(*a, param_mean=True), expect(dgamma="param-grad-mean", dbeta="param-grad-mean"), seed=14)
    for s in ("a", "n1"):
        add(f"interleaved_{s}", s, interleaved_groups, expect(y="interleaved-groups", dx="follows", dgamma="follows"), seed=15)
        add(f"set_size_{s}", s, lambda *a: step_by_step(*a, set_size=a[0].shape[1] // a[4]), expect(dx="wrong-set-size"), seed=16)
    for s in ("a", "n1", "g1"):
        add(f"per_position_{s}", s, per_position, expect(y="per-position-statistics", dx="follows", dgamma="follows"), seed=17)
        add(f"unbiased_{s}", s, unbiased_variance, expect(y="unbiased-variance", dx="follows", dgamma="follows"), seed=18)
        add(f"one_pass32_{s}", s, float32_one_pass, expect(y="onepass-cancellation", dx="follows", dgamma="follows"),
            dtype=np.float32, offset=1000.0, seed=19)
    # PyDLLib's conventions: correct, and its most common mistake (summing dγ, dβ where it averages).
    add("pydllib_correct", "a", correct_pydllib, expect(), preset="pydllib", seed=20)
    add("pydllib_param_sum", "a", lambda *a: (lambda r: (r[0], r[1], r[2] * a[0].shape[0], r[3] * a[0].shape[0]))(correct_pydllib(*a)),
        expect(dgamma="param-grad-sum", dbeta="param-grad-sum"), preset="pydllib", seed=21)

    # A loss averaged over the batch: every gradient divided by N (dγ, dβ too: they are reported as the batch mean).
    def averaged(*a):
        y, dx, dg, db = correct(*a)
        n = a[0].shape[0]
        return y, dx / n, dg / n, db / n
    add("loss_averaged_a", "a", averaged, expect(dx="loss-averaged", dgamma="param-grad-mean", dbeta="param-grad-mean"), seed=60)
    # PyDLLib's conventions (statistics per position, eps 1e-6) where the layer is PyTorch's. γ and β are the same
    # at every position, so they mean the same in both.
    def pydllib_everywhere(x, gamma, beta, dy, G):
        S = x.shape[2:]
        tile = lambda v: np.broadcast_to(v.reshape((-1,) + (1,) * len(S)), (x.shape[1],) + S).copy()
        y, dx, dg, db = correct_pydllib(x, tile(gamma), tile(beta), dy, G)
        return y, dx, dg.reshape(x.shape[1], -1).sum(axis=1) * x.shape[0], db.reshape(x.shape[1], -1).sum(axis=1) * x.shape[0]
    add("other_preset_a", "a", pydllib_everywhere, expect(y="other-preset", dx="follows", dgamma="follows"), seed=61)

    # BatchNorm and RMSNorm: the causes that apply to them.
    for s in ("a", "gc"):
        add(f"bn_correct_{s}", s, batchnorm, expect(), kind="batchnorm", seed=50)
        add(f"bn_correct32_{s}", s, batchnorm, expect(), dtype=np.float32, kind="batchnorm", seed=51)
        add(f"bn_missing_mean_{s}", s, lambda *a: batchnorm(*a, mean_term=False), expect(dx="missing-mean-term"), kind="batchnorm", seed=52)
        add(f"bn_unbiased_{s}", s, lambda *a: batchnorm(*a, ddof=1), expect(y="unbiased-variance", dx="follows", dgamma="follows"), kind="batchnorm", seed=53)
        add(f"bn_per_sample_{s}", s, lambda *a: batchnorm(*a, per_sample=True),
            expect(y="per-sample-statistics", dx="follows", dgamma="follows"), kind="batchnorm", seed=58)
        add(f"rms_correct_{s}", s, rmsnorm, expect(), kind="rmsnorm", seed=54)
        add(f"rms_correct32_{s}", s, rmsnorm, expect(), dtype=np.float32, kind="rmsnorm", seed=55)
        add(f"rms_missing_xhat_{s}", s, lambda *a: rmsnorm(*a, xhat_term=False), expect(dx="missing-xhat-term"), kind="rmsnorm", seed=56)
        add(f"rms_negated_{s}", s, lambda *a: rmsnorm(*a, negate=True), expect(dx="dx-negated"), kind="rmsnorm", seed=57)
    # float16 and bfloat16: PyTorch's way (float32 inside) is never accused; the storage format's own sums are named.
    bf16 = ml_dtypes.bfloat16
    for s in ("a", "g1", "big"):
        add(f"f16_as_pytorch_{s}", s, half_as_pytorch, expect(), dtype=np.float16, seed=70)
        add(f"bf16_as_pytorch_{s}", s, lambda *a: half_as_pytorch(*a, fmt=bf16), expect(), dtype=bf16, seed=71)
    add("f16_overflow_a", "a", half_naive, expect(y="float16-overflow", dx="follows", dgamma="follows", dbeta="low-precision-accumulation"),
        dtype=np.float16, scale=300.0, seed=72, note="conv outputs of size ~300: x² > 65504 in float16")
    for s in ("a", "gc"):
        add(f"f16_eps_underflow_{s}", s, lambda *a: half_naive(*a, eps=1e-12),
            expect(y="eps-underflow", dx="follows", dgamma="follows"), dtype=np.float16, eps=1e-12, constant_set=True,
            seed=73, note="eps = 1e-12 is 0 in float16; one set is constant")
    add("bf16_one_pass_a", "a", lambda *a: half_naive(*a, one_pass=True, fmt=bf16),
        expect(y="onepass-cancellation", dx="differs", dgamma="follows", dbeta="low-precision-accumulation"), dtype=bf16,
        offset=5.0, scale=0.1, seed=74,
        note="the backward's own bfloat16 sums of values scaled by a wrong rstd: no single cause reproduces dx")
    add("f16_accumulate_big", "big", half_naive,
        expect(y="low-precision-accumulation", dx="follows", dgamma="follows", dbeta="low-precision-accumulation"),
        dtype=np.float16, offset=20.0, seed=75, note="float16 sums of values near 20")
    session_data()
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"wrote {len(cases)} cases to {os.path.relpath(OUT, ROOT)}")


# ---- low precision: float16 and bfloat16 -------------------------------------------------------------------

def half_as_pytorch(x, gamma, beta, dy, G, fmt=np.float16):
    """PyTorch's way for float16/bfloat16: upcast to float32, compute, round each result once. Correct."""
    up = [a.astype(np.float32) for a in (x, gamma, beta, dy)]
    return tuple(r.astype(fmt) for r in correct(*up, G))


def half_naive(x, gamma, beta, dy, G, eps=EPS, one_pass=False, fmt=np.float16):
    """Everything in the storage format itself: every array stays float16 (or bfloat16), sums included."""
    shape = x.shape
    f = lambda v: fmt(v)
    xg = grouped(x, G)
    m = f(xg.shape[2])
    total = np.sum(xg, axis=2, keepdims=True, dtype=fmt)
    mu = (total / m).astype(fmt)
    if one_pass:
        squares = np.sum((xg * xg).astype(fmt), axis=2, keepdims=True, dtype=fmt)
        var = np.maximum((squares / m).astype(fmt) - (mu * mu).astype(fmt), f(0)).astype(fmt)
    else:
        xc = (xg - mu).astype(fmt)
        var = (np.sum((xc * xc).astype(fmt), axis=2, keepdims=True, dtype=fmt) / m).astype(fmt)
    with np.errstate(all="ignore"):
        rstd = (f(1) / np.sqrt((var + f(eps)).astype(fmt))).astype(fmt)
        xhat = ((xg - mu).astype(fmt) * rstd).astype(fmt).reshape(shape)
        y = (per_channel(gamma, shape) * xhat + per_channel(beta, shape)).astype(fmt)
        axes = (0,) + tuple(range(2, len(shape)))
        dbeta = np.sum(dy, axis=axes, dtype=fmt)
        dgamma = np.sum((dy * xhat).astype(fmt), axis=axes, dtype=fmt)
        g = grouped((dy * per_channel(gamma, shape)).astype(fmt), G)
        h = grouped(xhat, G)
        gm = (np.sum(g, axis=2, keepdims=True, dtype=fmt) / m).astype(fmt)
        ghm = (np.sum((g * h).astype(fmt), axis=2, keepdims=True, dtype=fmt) / m).astype(fmt)
        dx = (rstd * ((g - gm).astype(fmt) - (h * ghm).astype(fmt)).astype(fmt)).astype(fmt)
    return y, dx.reshape(shape), dgamma, dbeta


def session_data():
    """sessions/data/f32_*.npy for sessions/12: float32 on x ≈ 1000, computed right (two passes) and wrong (one)."""
    data = os.path.join(ROOT, "sessions", "data")
    x, gamma, beta, dy = inputs((2, 4, 3, 3), 40, np.float32, offset=1000.0)
    save = lambda name, a: np.save(os.path.join(data, f"f32_{name}.npy"), np.ascontiguousarray(a.astype(np.float32)))
    for name, a in dict(x=x, gamma=gamma, beta=beta, dy=dy).items():
        save(name, a)
    y, dx, _, _ = correct(x, gamma, beta, dy, 2)
    save("y_two_pass", y)
    save("dx_two_pass", dx)
    y, dx, _, _ = float32_one_pass(x, gamma, beta, dy, 2)
    save("y_one_pass", y)
    save("dx_one_pass", dx)


if __name__ == "__main__":
    main()
