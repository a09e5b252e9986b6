#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

public enum ExportTarget: String, Equatable, Sendable, CaseIterable {
    case numpy, torch
}

/// The Python scripts `export` writes: they rebuild the layer with its conventions from the .npy files beside
/// them, recompute y, dx, dγ, dβ (plain NumPy, or PyTorch with autograd) and check NormLab's.
enum PythonExport {
    /// A Python string literal for any text: backslashes, quotes and control characters escaped, so a file name
    /// like `bs\.py` or `t\x41.py` is that name in the script, not an escape sequence or a syntax error.
    static func pythonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case _ where RawBytes.byte(of: scalar) != nil:
                // A byte that is not UTF-8 in a file name: Python's own spelling of it (surrogateescape).
                out += String(printf: "\\udc%02x", RawBytes.byte(of: scalar)!)
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                || (0xD800...0xDFFF).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += scalar.value <= 0xFF ? String(printf: "\\x%02x", scalar.value) : String(printf: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// What the script checks, and how closely.
    struct Check {
        /// "NormLab's", or the user's names of the tensors checked.
        let whose: String
        /// The largest absolute difference allowed for each result: twice the rounding estimate of the checked
        /// tensors' dtype for this problem (they and the script's recomputation each round).
        let tolerances: [DiagnosisRole: Double]
    }

    private static func header(_ spec: LayerSpec, _ record: PassRecord, stem: String, check: Check, what: String) -> String {
        let groups = record.plan.groups
        let tolerances = DiagnosisRole.allCases.compactMap { role in check.tolerances[role].map { "\"\(role)\": \(String(printf: "%.3e", $0))" } }
        return """
        #!/usr/bin/env python3
        \"\"\"\(what)

        Made by NormLab \(NormLabVersion.current): \(LayerDescription.title(spec, mode: record.mode)).
        The input, parameters and upstream gradient are the .npy files beside this script; so are \(check.whose) y, dx,
        dgamma and dbeta (those that were exported). The script recomputes them and prints the largest difference of
        each; it exits 1 when any is above its tolerance, 0 otherwise. The tolerances are twice what rounding in the
        tensors' dtype explains for this problem (NormLab's `diagnose` estimate: it grows with the set size and
        with |μ|·rstd, where the mean's rounding is amplified), not one fixed number.
        \"\"\"
        import os
        import sys

        import numpy as np

        HERE = os.path.dirname(os.path.abspath(__file__))
        STEM = \(pythonString(stem))


        def load(name):
            path = os.path.join(HERE, f"{STEM}_{name}.npy")
            return np.load(path).astype(np.float64) if os.path.exists(path) else None


        KIND = "\(spec.kind)"          # groupnorm, layernorm, instancenorm, batchnorm or rmsnorm
        GROUPS = \(groups)              # G (instancenorm: C; batchnorm: C, fewer when its channels are grouped)
        REDUCE = "\(spec.reduce)"        # group: over C/G channels × positions; channels: per position (batchnorm: per element)
        AFFINE = "\(spec.affine)"        # channel: γ, β of shape (C); element: (C, *spatial); none
        PARAMGRAD = "\(spec.paramGrad)"     # sum or mean over the batch
        VARIANCE = "\(spec.variance)"      # biased (÷ m) or unbiased (÷ (m − 1))
        EPS = \(spec.eps)
        NORMALIZED_SHAPE = \(spec.normalizedShape.map { "(" + $0.map(String.init).joined(separator: ", ") + ($0.count == 1 ? ",)" : ")") } ?? "None")  # the last dims, as nn.LayerNorm/nn.RMSNorm's normalized_shape; None: the (N, C, *spatial) form
        MODE = "\(record.mode)"            # batchnorm: train uses the batch's statistics, eval the running ones
        TOLERANCE = {\(tolerances.joined(separator: ", "))}

        x, dy = load("x"), load("dy")
        gamma, beta = load("gamma"), load("beta")
        running_mean, running_var = load("running_mean"), load("running_var")
        expected = {name: load(name) for name in ("y", "dx", "dgamma", "dbeta")}


        def view(a):
            \"\"\"a reshaped so that `axes` hold exactly the elements that share one mean and variance.\"\"\"
            if NORMALIZED_SHAPE is not None:
                return a.reshape(-1, int(np.prod(NORMALIZED_SHAPE))), (1,)
            n, c = a.shape[:2]
            s = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
            if KIND == "batchnorm" and GROUPS != c:  # sets over the batch × a group's channels (× positions)
                k = c // GROUPS
                return (a.reshape(n, GROUPS, k * s), (0, 2)) if REDUCE == "group" else (a.reshape(n, GROUPS, k, s), (0, 2))
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

        """
    }

    private static func checkTail() -> String {
        """


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
        """
    }

    static func numpyScript(spec: LayerSpec, record: PassRecord, stem: String, check: Check) -> String {
        header(spec, record, stem: stem, check: check, what: "NormLab's layer, recomputed with plain NumPy (float64).") + """
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
        """ + checkTail()
    }

    static func torchScript(spec: LayerSpec, record: PassRecord, stem: String, check: Check) -> String {
        let shapeForm = spec.normalizedShape != nil
        let native = shapeForm || (!spec.groupsSpanBatch && spec.reduce == .group && spec.affine == .channel && spec.variance == .biased && spec.kind.centres)
        let nativeName = shapeForm ? (spec.kind == .rmsnorm ? "F.rms_norm" : "F.layer_norm")
            : spec.kind.statisticsSpanBatch ? "F.batch_norm" : "F.group_norm"
        let how = native
            ? "PyTorch's own \(nativeName) with autograd"
            : "the layer's formula in PyTorch operations with autograd (PyTorch has no built-in layer for these conventions)"
        return header(spec, record, stem: stem, check: check, what: "NormLab's layer, recomputed with \(how).") + """
        import torch
        import torch.nn.functional as F

        torch.set_default_dtype(torch.float64)
        X = torch.tensor(x, requires_grad=True)
        G = torch.tensor(gamma, requires_grad=True) if gamma is not None and AFFINE != "none" else None
        B = torch.tensor(beta, requires_grad=True) if beta is not None and AFFINE != "none" else None
        NATIVE = \(native ? "True" : "False")
        if NORMALIZED_SHAPE is not None and KIND == "rmsnorm":
            Y = F.rms_norm(X, NORMALIZED_SHAPE, G, eps=EPS)
        elif NORMALIZED_SHAPE is not None:
            Y = F.layer_norm(X, NORMALIZED_SHAPE, G, B, eps=EPS)
        elif NATIVE and KIND == "batchnorm":
            rm = torch.tensor(running_mean) if running_mean is not None else torch.zeros(x.shape[1])
            rv = torch.tensor(running_var) if running_var is not None else torch.ones(x.shape[1])
            Y = F.batch_norm(X, rm, rv, G, B, training=(MODE == "train"), momentum=0.0, eps=EPS)
        elif NATIVE:
            Y = F.group_norm(X, GROUPS, G, B, eps=EPS)
        else:
            xr, axes = view(X)
            m = int(np.prod([xr.shape[a] for a in axes]))
            d = m - 1 if VARIANCE == "unbiased" else m
            if KIND == "batchnorm" and MODE == "eval":
                shape = xr.sum(dim=axes, keepdim=True).shape
                mean, var = torch.tensor(running_mean).reshape(shape), torch.tensor(running_var).reshape(shape)
            else:
                mean = xr.mean(dim=axes, keepdim=True) if KIND != "rmsnorm" else torch.zeros(1)
                var = ((xr - mean) ** 2).sum(dim=axes, keepdim=True) / d
            xhat = ((xr - mean) / torch.sqrt(var + EPS)).reshape(X.shape)
            Y = xhat * (affine(G, 1.0) if G is not None else 1.0) + (affine(B, 0.0) if B is not None else 0.0)
        (Y * torch.tensor(dy)).sum().backward()
        results = {"y": Y.detach().numpy(), "dx": X.grad.numpy()}
        if G is not None:
            leading = x.shape[:x.ndim - len(NORMALIZED_SHAPE)] if NORMALIZED_SHAPE is not None else x.shape[:1]
            scale = int(np.prod(leading)) if PARAMGRAD == "mean" else 1
            results.update(dgamma=G.grad.numpy() / scale)
            if B is not None:
                results.update(dbeta=B.grad.numpy() / scale)
        """ + checkTail()
    }
}

