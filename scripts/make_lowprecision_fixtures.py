#!/usr/bin/env python3
"""Fixtures for NormLab's float16/bfloat16 emulation and its method=/accumulate= kernels.

Written without NormLab's code: NumPy's own float16 scalars and the ml_dtypes package's bfloat16 scalars do the
arithmetic (each operation rounded by the library), following the order of operations NormLab documents in
Sources/NormKit/Kernels/EmulatedKernels.swift:

    sums run sequentially over each statistics set's elements in row-major order;
    twopass  mu = sum(x)/m;  var = sum((x - mu)^2)/d
    onepass  mu = sum(x)/m;  var = sum(x^2)/m - mu^2        (x m/(m-1) when unbiased)
    welford  delta = x - mu;  mu += delta/k;  M2 += delta*(x - mu);  var = M2/d
    rstd = 1/sqrt(var + eps);  xhat = (x - mu)*rstd;  y = xhat*gamma + beta, then rounded to the storage format;
    backward with g = dy*gamma: dx = rstd*((g - sum(g)/m) - xhat*(sum(g*xhat)/d)).

Also rounding fixtures: float64 and float32 values with their float16 bits (NumPy's astype) and bfloat16 bits
(ml_dtypes' astype from float32).

Needs numpy and ml_dtypes (pip install ml_dtypes). Writes Tests/NormKitTests/Reference/lowprecision.json.
"""
import json
import os

import ml_dtypes
import numpy as np

FORMATS = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64}
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "NormKitTests", "Reference", "lowprecision.json")


def text(values):
    return [repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel()]


def sets_of(kind, shape, groups):
    """For each element in row-major order: (statistics set, parameter index)."""
    out = []
    if kind in ("layernorm_shape", "rmsnorm_shape"):
        d = shape[-1]
        for i in range(int(np.prod(shape))):
            out.append((i // d, i % d))
        return out
    n, c = shape[0], shape[1]
    s = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    for ni in range(n):
        for ci in range(c):
            for si in range(s):
                if kind == "groupnorm":
                    stat = ni * groups + ci // (c // groups)
                else:  # batchnorm: per channel over the batch and positions
                    stat = ci
                out.append((stat, ci))
    return out


def forward_backward(kind, x, gamma, beta, dy, groups, method, accumulate, storage, eps, unbiased=False):
    A = FORMATS[accumulate if accumulate != "storage" else storage]
    S = FORMATS[storage]
    members = sets_of(kind, x.shape, groups)
    count = max(stat for stat, _ in members) + 1
    m = sum(1 for stat, _ in members if stat == 0)
    centre = kind != "rmsnorm_shape"
    d = A(m - 1) if unbiased else A(m)
    xs = [A(v) for v in x.ravel()]
    mean = [A(0)] * count
    var = [A(0)] * count
    sums = [A(0)] * count
    squares = [A(0)] * count
    if method == "twopass":
        if centre:
            for i, (stat, _) in enumerate(members):
                sums[stat] = A(sums[stat] + xs[i])
            mean = [A(sv / A(m)) for sv in sums]
        for i, (stat, _) in enumerate(members):
            dv = A(xs[i] - mean[stat]) if centre else xs[i]
            squares[stat] = A(squares[stat] + A(dv * dv))
        var = [A(q / d) for q in squares]
    elif method == "onepass":
        for i, (stat, _) in enumerate(members):
            sums[stat] = A(sums[stat] + xs[i])
            squares[stat] = A(squares[stat] + A(xs[i] * xs[i]))
        for k in range(count):
            ms = A(squares[k] / A(m))
            if centre:
                mean[k] = A(sums[k] / A(m))
                var[k] = A(ms - A(mean[k] * mean[k]))
            else:
                var[k] = ms
            if unbiased:
                var[k] = A(var[k] * A(A(m) / A(m - 1)))
    else:  # welford
        seen = [0] * count
        for i, (stat, _) in enumerate(members):
            v = xs[i]
            seen[stat] += 1
            if centre:
                delta = A(v - mean[stat])
                mean[stat] = A(mean[stat] + A(delta / A(seen[stat])))
                squares[stat] = A(squares[stat] + A(delta * A(v - mean[stat])))
            else:
                squares[stat] = A(squares[stat] + A(v * v))
        var = [A(q / d) for q in squares]
    e = A(eps)
    with np.errstate(all="ignore"):
        rstd = [A(A(1) / A(np.sqrt(A(v + e)))) for v in var]
        g_a = [A(v) for v in gamma.ravel()]
        b_a = [A(v) for v in beta.ravel()] if beta is not None else None
        y = []
        xhat = []
        for i, (stat, p) in enumerate(members):
            c = A(xs[i] - mean[stat]) if centre else xs[i]
            h = A(c * rstd[stat])
            xhat.append(h)
            scaled = A(h * g_a[p])
            y.append(S(A(scaled + b_a[p])) if b_a is not None else S(scaled))
        # backward
        g = [A(v) for v in dy.ravel()]
        sum_g = [A(0)] * count
        sum_gh = [A(0)] * count
        dgamma = [A(0)] * len(g_a)
        dbeta = [A(0)] * len(g_a)
        dh_all = []
        for i, (stat, p) in enumerate(members):
            h = xhat[i]
            dh = A(g[i] * g_a[p])
            dh_all.append(dh)
            sum_g[stat] = A(sum_g[stat] + dh)
            sum_gh[stat] = A(sum_gh[stat] + A(dh * h))
            dgamma[p] = A(dgamma[p] + A(g[i] * h))
            dbeta[p] = A(dbeta[p] + g[i])
        mean_terms = [A(sg / A(m)) if centre else A(0) for sg in sum_g]
        projections = [A(sgh / d) for sgh in sum_gh]
        dx = []
        for i, (stat, p) in enumerate(members):
            inner = A(A(dh_all[i] - mean_terms[stat]) - A(xhat[i] * projections[stat]))
            dx.append(S(A(rstd[stat] * inner)))
    return {
        "mean": text(mean) if centre else None, "var": text(var), "rstd": text(rstd), "y": text(y), "dx": text(dx),
        "dgamma": text([S(v) for v in dgamma]), "dbeta": text([S(v) for v in dbeta]) if b_a is not None else None,
    }


def rounding_cases(rng):
    specials = [65504.0, 65519.99, 65520.0, 65536.0, 6.103515625e-05, 5.960464477539063e-08, 2.98e-08,
                2.9802322387695312e-08, 1.0009765625, 1.00048828125, 1.00146484375, 0.1, -0.1, 1e-12, 1e-5,
                3.3895313892515355e38, 3.39e38, 1.0e-40, 256.0, 300.5, 2049.0, 2051.0, -0.0]
    wide = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-9, 6, 200), np.array(specials)])
    f32 = wide.astype(np.float32)
    with np.errstate(all="ignore"):
        return {
            "float64": text(wide),
            "float64_to_float16": [int(b) for b in wide.astype(np.float16).view(np.uint16)],
            "float32": text(f32),
            "float32_to_float16": [int(b) for b in f32.astype(np.float16).view(np.uint16)],
            "float32_to_bfloat16": [int(b) for b in f32.astype(ml_dtypes.bfloat16).view(np.uint16)],
        }


def main():
    rng = np.random.default_rng(19)
    cases = []
    layouts = [
        ("layernorm_shape", (3, 16), None),
        ("groupnorm", (2, 4, 2, 3), 2),
        ("batchnorm", (4, 3, 2, 2), None),
        ("rmsnorm_shape", (2, 8), None),
    ]
    data = {"plain": (1.0, 0.0), "offset": (0.05, 6.0)}
    for storage in ("float16", "bfloat16", "float32"):
        S = FORMATS[storage]
        for accumulate in (["storage", "float32"] if storage != "float32" else ["float32"]):
            for method in ("twopass", "onepass", "welford"):
                for kind, shape, groups in layouts:
                    for label, (scale, shift) in data.items():
                        x = (rng.standard_normal(shape) * scale + shift).astype(S)
                        width = shape[-1] if kind.endswith("_shape") else shape[1]
                        gamma = (1 + 0.1 * rng.standard_normal(width)).astype(S)
                        beta = (0.1 * rng.standard_normal(width)).astype(S) if kind != "rmsnorm_shape" else None
                        dy = rng.standard_normal(shape).astype(S)
                        eps = 1e-5 if kind != "rmsnorm_shape" else 1e-6
                        result = forward_backward(kind, x, gamma, beta, dy, groups, method, accumulate, storage, eps)
                        cases.append({
                            "name": f"{kind} {storage} accumulate={accumulate} method={method} {label}",
                            "kind": kind, "shape": list(shape), "groups": groups, "storage": storage,
                            "accumulate": accumulate, "method": method, "eps": eps,
                            "x": text(x), "gamma": text(gamma), "beta": text(beta) if beta is not None else None,
                            "dy": text(dy), "expected": result,
                        })
    # The breakages: float16 squares past 65504, eps 1e-12 that is 0 in float16, bfloat16 one-pass.
    specials = [
        ("groupnorm", (2, 4, 2, 2), 2, "float16", "storage", "twopass", 1e-5, 300.0, 0.0),
        ("layernorm_shape", (2, 8), None, "float16", "storage", "twopass", 1e-12, 0.0, 3.0),
        ("batchnorm", (8, 2, 2, 2), None, "bfloat16", "storage", "onepass", 1e-5, 0.1, 5.0),
    ]
    for kind, shape, groups, storage, accumulate, method, eps, scale, shift in specials:
        S = FORMATS[storage]
        x = (rng.standard_normal(shape) * scale + shift).astype(S)
        width = shape[-1] if kind.endswith("_shape") else shape[1]
        gamma = np.ones(width, dtype=S)
        beta = np.zeros(width, dtype=S)
        dy = rng.standard_normal(shape).astype(S)
        result = forward_backward(kind, x, gamma, beta, dy, groups, method, accumulate, storage, eps)
        cases.append({
            "name": f"breakage {kind} {storage} accumulate={accumulate} method={method} eps={eps} scale={scale} shift={shift}",
            "kind": kind, "shape": list(shape), "groups": groups, "storage": storage, "accumulate": accumulate,
            "method": method, "eps": eps, "x": text(x), "gamma": text(gamma), "beta": text(beta), "dy": text(dy),
            "expected": result,
        })
    with open(OUT, "w") as f:
        json.dump({"rounding": rounding_cases(rng), "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
