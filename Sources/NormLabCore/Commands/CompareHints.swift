import NormKit

/// Known mistakes a difference between two tensors can reveal, for `compare`: the usual ways a hand-written
/// normalisation gradient goes wrong.
enum CompareHints {
    struct Context {
        let a: [Double]
        let b: [Double]
        let names: (String, String)
        let shape: Shape
        let record: PassRecord?
        let dy: [Double]?
    }

    static func hints(_ c: Context) -> [String] {
        guard c.a.allSatisfy(\.isFinite), c.b.allSatisfy(\.isFinite), !close(c.a, c.b, 1e-9) else { return [] }
        var hints: [String] = []
        let (a, b) = c.names
        if close(c.a, c.b.map { -$0 }, 1e-6) {
            hints.append("\(a) ≈ −\(b): a sign flip (the gradient of −L, or dy negated)")
        }
        if let record = c.record {
            let n = Double(record.plan.batch)
            if n > 1 && close(c.a, c.b.map { $0 * n }, 1e-6) {
                hints.append("\(a) ≈ N·\(b) with N = \(record.plan.batch): looks like a mean-vs-sum reduction over the batch (paramgrad=sum gives the sum, paramgrad=mean the mean)")
            } else if n > 1 && close(c.a, c.b.map { $0 / n }, 1e-6) {
                hints.append("\(a) ≈ \(b)/N with N = \(record.plan.batch): looks like a mean-vs-sum reduction over the batch (paramgrad=mean averages, paramgrad=sum sums)")
            }
            if c.shape == record.plan.inputShape {
                hints += setHints(c, record)
            }
            hints += conventionHints(c, record)
        }
        return hints
    }

    /// For tensors of the layer's input shape (dx, y, x̂): per statistics set.
    static func setHints(_ c: Context, _ r: PassRecord) -> [String] {
        var hints: [String] = []
        let (a, b) = c.names
        let plan = r.plan
        let sets = (0..<plan.statsShape.count).map { plan.memberOffsets(ofStat: $0) }
        let scale = max(c.a.map(abs).max() ?? 0, c.b.map(abs).max() ?? 0, 1e-300)
        func sums(_ v: [Double]) -> [Double] { sets.map { $0.map { v[$0] }.reduce(0, +) } }
        let sumsA = sums(c.a), sumsB = sums(c.b)
        let zeroA = sumsA.allSatisfy { abs($0) <= 1e-8 * scale * Double(plan.setSize) }
        let zeroB = sumsB.allSatisfy { abs($0) <= 1e-8 * scale * Double(plan.setSize) }
        // a − b constant within every set: exactly what dropping the −Σ∂x̂/m term does.
        let constantDifference = sets.allSatisfy { set in
            let d = set.map { c.a[$0] - c.b[$0] }
            return (d.max()! - d.min()!) <= 1e-8 * scale
        }
        if r.spec.centres && constantDifference && zeroA != zeroB {
            let wrong = zeroA ? b : a
            hints.append("\(wrong) does not sum to 0 over each statistics set, and differs from the other by a constant per set: the mean term (−rstd·Σ∂x̂/m, from ∂μ) seems missing")
        } else if r.spec.centres && zeroA != zeroB && r.mode == .train {
            let wrong = zeroA ? b : a
            hints.append("\(wrong) does not sum to 0 over each statistics set, as a centring layer's dx must: a term from ∂μ seems missing or wrong")
        }
        // A ratio fixed per set near √(m/(m − 1)) or m/(m − 1): the biased and unbiased variances swapped.
        let m = Double(plan.setSize)
        if m > 1 {
            let ratios = zip(c.a, c.b).compactMap { $1 != 0 && abs($1) > 1e-6 * scale ? $0 / $1 : nil }
            if let first = ratios.first, ratios.allSatisfy({ abs($0 - first) <= 1e-3 * abs(first) }) {
                for (factor, words) in [(m / (m - 1), "m/(m − 1)"), ((m / (m - 1)).squareRoot(), "√(m/(m − 1))")] {
                    if abs(first - factor) <= 2e-3 * factor || abs(first - 1 / factor) <= 2e-3 / factor {
                        hints.append("\(a)/\(b) ≈ \(formatNumber(first, precision: 4)), close to \(words) = \(formatNumber(first > 1 ? factor : 1 / factor, precision: 4)) with m = \(plan.setSize): biased against unbiased variance (÷ m or ÷ (m − 1))")
                        break
                    }
                }
            }
        }
        return hints
    }

    /// Recompute the last pass under the other convention's choices and see whether either tensor matches.
    static func conventionHints(_ c: Context, _ r: PassRecord) -> [String] {
        guard let dy = c.dy, let x = try? Tensor<Double>(shape: r.plan.inputShape, scalars: r.x) else { return [] }
        var variants: [(String, LayerSpec)] = []
        var flipped = r.spec
        flipped.reduce = r.spec.reduce == .group ? .channels : .group
        variants.append(("reduce=\(flipped.reduce)", flipped))
        var other = r.spec
        other.apply(r.spec.preset == .torch ? .pydllib : .torch)
        if other != flipped && other != r.spec { variants.append(("preset=\(other.preset)", other)) }
        var unbiased = r.spec
        unbiased.variance = r.spec.variance == .biased ? .unbiased : .biased
        if r.spec.kind.centres { variants.append(("variance=\(unbiased.variance)", unbiased)) }
        var hints: [String] = []
        for (label, spec) in variants {
            guard let pass = try? Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, mode: r.mode),
                  let dyTensor = try? Tensor<Double>(shape: pass.output.shape, scalars: dy),
                  let grads = try? Normalization.backward(forward: pass, gamma: nil, outputGradient: dyTensor) else { continue }
            var candidates: [(String, [Double])] = [("y", pass.output.scalars), ("dx", grads.dx.scalars)]
            if let g = grads.dgamma, let bt = grads.dbeta { candidates += [("dgamma", g.scalars), ("dbeta", bt.scalars)] }
            let usesDefaultParameters = (r.gamma ?? []).allSatisfy { $0 == 1 } && (r.beta ?? []).allSatisfy { $0 == 0 }
            guard usesDefaultParameters else { continue }
            for (what, values) in candidates where values.count == c.a.count {
                for (name, tensor) in [(c.names.0, c.a), (c.names.1, c.b)] where close(tensor, values, 1e-6) {
                    hints.append("\(name) matches the \(what) of the same layer with \(label): a convention mismatch, not an arithmetic slip (see `help conventions`)")
                }
            }
        }
        return hints
    }

    /// Elementwise |x − y| ≤ rtol·max(|x|, |y|, 1e-12·scale).
    static func close(_ x: [Double], _ y: [Double], _ rtol: Double) -> Bool {
        guard x.count == y.count, !x.isEmpty else { return false }
        let scale = max(x.map(abs).max() ?? 0, y.map(abs).max() ?? 0)
        guard scale > 0 else { return true }
        return zip(x, y).allSatisfy { abs($0 - $1) <= rtol * max(abs($0), abs($1), 1e-6 * scale) }
    }
}

extension CompareHints {
    /// Hints for `compare A B`, against the last pass and the dy its backward used.
    static func hints(_ a: [Double], _ b: [Double], names: (String, String), shape: Shape, layer: AnyLayer?) -> [String] {
        let record = layer?.passRecord
        return hints(.init(a: a, b: b, names: names, shape: shape, record: record, dy: record?.dy))
    }
}
