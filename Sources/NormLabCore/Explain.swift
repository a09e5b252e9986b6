import NormKit

/// Which statistics set `explain` and `show axes` talk about: `n=` sample, `g=` group, `p=` position (for
/// per-position statistics), `c=` channel (BatchNorm).
public struct SetSelector: Equatable, Sendable {
    public var sample: Located<Int>?
    public var group: Located<Int>?
    public var position: Located<Int>?
    public var channel: Located<Int>?

    public init() {}
}

public enum ExplainTopic: String, Equatable, Sendable, CaseIterable {
    case forward, backward, layer
}

extension Interpreter {
    /// The statistics set a selector names, with words for it.
    func selectSet(_ selector: SetSelector, record: PassRecord, text: String) throws -> (stat: Int, label: String, members: [Int]) {
        let plan = record.plan
        let bn = record.spec.kind == .batchnorm
        func pick(_ value: Located<Int>?, _ name: String, below limit: Int, _ what: String) throws -> Int {
            guard let value else { return 0 }
            guard value.value >= 0 && value.value < limit else {
                throw Diagnostic("\(name)=\(value.value) is out of range: \(what) runs from 0 to \(limit - 1)", at: value.range, in: text)
            }
            return value.value
        }
        func refuse(_ value: Located<Int>?, _ name: String, _ why: String) throws {
            if let value { throw Diagnostic("\(name)= does not apply: \(why)", at: value.range, in: text) }
        }
        let perPosition = record.spec.reduce == .channels && plan.spatial > 1
        if !perPosition { try refuse(selector.position, "p", "this layer's statistics cover all positions") }
        let p = perPosition ? try pick(selector.position, "p", below: plan.spatial, "the position (flattened)") : 0
        let stat: Int
        var label: String
        if bn {
            try refuse(selector.sample, "n", "batchnorm's statistics cover the whole batch")
            try refuse(selector.group, "g", "batchnorm has channels, not groups (use c=)")
            let c = try pick(selector.channel, "c", below: plan.channels, "the channel")
            stat = perPosition ? c * plan.spatial + p : c
            label = "channel c = \(c)" + (perPosition ? ", position p = \(p)" : "")
        } else {
            try refuse(selector.channel, "c", "use g= for the group")
            let n = try pick(selector.sample, "n", below: plan.batch, "the sample")
            let g = try pick(selector.group, "g", below: plan.groups, "the group")
            stat = perPosition ? (n * plan.groups + g) * plan.spatial + p : n * plan.groups + g
            let range = plan.channels(ofGroup: g)
            let channels = range.count == 1 ? "channel \(range.lowerBound)" : "channels \(range.lowerBound)–\(range.upperBound - 1)"
            label = "sample n = \(n), group g = \(g) (\(channels))" + (perPosition ? ", position p = \(p)" : "")
        }
        return (stat, label, plan.memberOffsets(ofStat: stat))
    }

    func passRecord() throws -> PassRecord {
        let layer = try currentLayer()
        guard let record = layer.passRecord else {
            throw Diagnostic("there is no forward pass to explain yet: run forward first")
        }
        return record
    }

    /// A list of numbers, all of them up to 8, else the first 4, …, the last 2, and the count.
    func list(_ values: [Double]) -> String {
        let p = session.settings.precision
        let f = { (v: Double) in formatNumber(v, precision: p) }
        if values.count <= 8 { return "[" + values.map(f).joined(separator: ", ") + "]" }
        return "[" + values.prefix(4).map(f).joined(separator: ", ") + ", …, " + values.suffix(2).map(f).joined(separator: ", ") + "]  (\(values.count) values)"
    }

    func number(_ value: Double) -> String { formatNumber(value, precision: session.settings.precision) }

    func explain(_ topic: ExplainTopic, _ selector: SetSelector, text: String) throws {
        switch topic {
        case .forward: try explainForward(selector, text: text)
        case .backward: try explainBackward(selector, text: text)
        case .layer: try showAxes(selector, text: text)
        }
    }

    func explainForward(_ selector: SetSelector, text: String) throws {
        let r = try passRecord()
        let (stat, label, members) = try selectSet(selector, record: r, text: text)
        let m = members.count
        let spec = r.spec
        let x = members.map { r.x[$0] }
        let eval = r.mode == .eval
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let divisorText = spec.variance == .unbiased ? "(m − 1)" : "m"

        out("explain forward — \(LayerDescription.title(spec, mode: r.mode))")
        out("  the set: \(label); m = \(m) elements share one \(spec.centres ? "mean and variance" : "mean square")")
        out("  reduced over: " + reducedOver(spec))
        out("  x = " + list(x))
        var step = 0
        func line(_ formula: String, _ value: String) {
            step += 1
            out("  \(step). " + formula + " = " + value)
        }
        let rstd = r.rstd[stat], variance = r.variance[stat]
        if eval {
            let mu = r.mean?[stat] ?? 0
            line("μ = running_mean (eval mode: the statistics are not the batch's)", number(mu))
            line("σ² = running_var", number(variance))
            line("σ² + eps", "\(number(variance)) + \(formatOption(spec.eps)) = \(number(variance + spec.eps))")
            line("rstd = (σ² + eps)^(−½)", number(rstd))
            line("x − μ", list(x.map { $0 - mu }))
        } else if spec.centres {
            let mu = r.mean?[stat] ?? 0
            let sum = x.reduce(0, +)
            line("μ = Σx / m", "\(number(sum)) / \(m) = \(number(mu))")
            let centred = x.map { $0 - mu }
            line("x − μ", list(centred))
            let squares = centred.map { $0 * $0 }
            line("(x − μ)²", list(squares))
            line("σ² = Σ(x − μ)² / \(divisorText)", "\(number(squares.reduce(0, +))) / \(divisor) = \(number(variance))" + (spec.variance == .biased ? "   (biased: ÷ m)" : "   (unbiased: ÷ (m − 1))"))
            line("σ² + eps", "\(number(variance)) + \(formatOption(spec.eps)) = \(number(variance + spec.eps))")
            line("rstd = (σ² + eps)^(−½)", number(rstd))
        } else {
            let squares = x.map { $0 * $0 }
            line("x²", list(squares))
            line("ms = Σx² / m", "\(number(squares.reduce(0, +))) / \(m) = \(number(variance))   (no mean is subtracted)")
            line("ms + eps", "\(number(variance)) + \(formatOption(spec.eps)) = \(number(variance + spec.eps))")
            line("rstd = (ms + eps)^(−½)", number(rstd))
        }
        let xhat = members.map { r.xhat[$0] }
        line(spec.centres ? "x̂ = (x − μ)·rstd" : "x̂ = x·rstd", list(xhat))
        let y = members.map { r.y[$0] }
        switch spec.affine {
        case .none:
            line("y = x̂ (affine=none)", list(y))
        case .channel:
            step += 1
            out("  \(step). y = γ·x̂ + β, with one γ and β per channel:")
            var byChannel: [Int: [Int]] = [:]
            for (k, offset) in members.enumerated() { byChannel[(offset / r.plan.spatial) % r.plan.channels, default: []].append(k) }
            let channels = byChannel.keys.sorted()
            for c in channels.prefix(6) {
                let ks = byChannel[c]!
                out("     channel \(c): γ = \(number(r.gamma?[c] ?? 1)), β = \(number(r.beta?[c] ?? 0)) → y = " + list(ks.map { y[$0] }))
            }
            if channels.count > 6 { out("     … and \(channels.count - 6) more channels") }
        case .element:
            line("y = γ·x̂ + β, with γ and β per element (affine=element); γ", list(members.map { r.gamma?[r.parameterIndex(ofOffset: $0)] ?? 1 }))
            out("     β = " + list(members.map { r.beta?[r.parameterIndex(ofOffset: $0)] ?? 0 }))
            out("     y = " + list(y))
        }
        if m == 1 && spec.centres && !eval {
            out("  note: a set of one element has x − μ = 0, so x̂ = 0 and y = β whatever x is")
        } else if !eval {
            let meanHat = xhat.reduce(0, +) / Double(m)
            let meanSquare = xhat.map { $0 * $0 }.reduce(0, +) / Double(m)
            let expected = Double(divisor) / Double(m) * variance / (variance + spec.eps)
            let scale = NoiseFloor.relative(r.dtype) * (xhat.map(abs).max() ?? 1)
            out("  check: mean(x̂) = \(formatNumber(meanHat, precision: session.settings.precision, scale: scale)), mean(x̂²) = \(number(meanSquare))" + (spec.centres ? " = \(divisor == m ? "" : "(m − 1)/m·")σ²/(σ² + eps) = \(number(expected))" : ""))
        }
    }

    func explainBackward(_ selector: SetSelector, text: String) throws {
        let r = try passRecord()
        guard let engineDx = r.dx, let dyTensor = session["dy"], dyTensor.count == r.x.count else {
            throw Diagnostic("explain backward needs a backward pass after the last forward: run backward first")
        }
        let dyAll = dyTensor.doubles
        let (stat, label, members) = try selectSet(selector, record: r, text: text)
        let spec = r.spec
        let m = Double(members.count)
        let mInt = members.count
        let d = spec.variance == .unbiased ? m - 1 : m
        let eval = r.mode == .eval
        let rstd = r.rstd[stat], variance = r.variance[stat]
        let mu = r.mean?[stat] ?? 0
        let dy = members.map { dyAll[$0] }
        let gamma = members.map { r.gamma?[r.parameterIndex(ofOffset: $0)] ?? 1 }
        let x = members.map { r.x[$0] }
        let xc = spec.centres ? x.map { $0 - mu } : x
        let xhat = members.map { r.xhat[$0] }
        let engine = members.map { engineDx[$0] }

        out("explain backward — \(LayerDescription.title(spec, mode: r.mode))")
        out("  the set: \(label); m = \(mInt); the loss is L = Σ dy·y, with dy the last backward's")
        out("  reduced over: " + reducedOver(spec) + "; so are the sums below")
        out("  dy = " + list(dy))
        var step = 0
        func line(_ formula: String, _ value: String) {
            step += 1
            out("  \(step). " + formula + " = " + value)
        }
        let dxhat = zip(dy, gamma).map { $0 * $1 }
        line("∂x̂ = dy·γ", list(dxhat))
        var stepwise: [Double]
        if eval {
            line("dx = ∂x̂·rstd   (eval mode: μ and σ² are constants, so nothing flows through them)", list(engine))
            stepwise = dxhat.map { $0 * rstd }
        } else {
            let dRstd = zip(dxhat, xc).map { $0 * $1 }.reduce(0, +)
            let name = spec.centres ? "σ²" : "ms"
            line("∂rstd = Σ ∂x̂·\(spec.centres ? "(x − μ)" : "x")", number(dRstd))
            let dVar = -0.5 * Foundation_pow(variance + spec.eps, -1.5) * dRstd
            line("∂\(name) = −½·(\(name) + eps)^(−3/2)·∂rstd", number(dVar))
            let dCentred = zip(dxhat, xc).map { $0 * rstd + 2 * $1 / d * dVar }
            let divisorText = spec.variance == .unbiased ? "(m − 1)" : "m"
            if spec.centres {
                line("∂(x − μ) = ∂x̂·rstd + 2(x − μ)/\(divisorText)·∂σ²", list(dCentred))
                let dMu = -dCentred.reduce(0, +)
                line("∂μ = −Σ∂(x − μ)", number(dMu))
                stepwise = dCentred.map { $0 + dMu / m }
                line("dx = ∂(x − μ) + ∂μ/m", list(engine))
            } else {
                stepwise = dCentred
                line("dx = ∂x̂·rstd + 2x/m·∂ms", list(engine))
            }
            let sumD = dxhat.reduce(0, +)
            let sumDX = zip(dxhat, xhat).map { $0 * $1 }.reduce(0, +)
            let closed: [Double]
            if spec.centres {
                out("  closed form: dx = rstd/m·(m·∂x̂ − Σ∂x̂ − \(spec.variance == .unbiased ? "m/(m − 1)·" : "")x̂·Σ(∂x̂·x̂)), with Σ∂x̂ = \(number(sumD)), Σ(∂x̂·x̂) = \(number(sumDX))")
                closed = zip(dxhat, xhat).map { rstd / m * (m * $0 - sumD - m / d * $1 * sumDX) }
            } else {
                out("  closed form: dx = rstd·(∂x̂ − x̂·Σ(∂x̂·x̂)/m), with Σ(∂x̂·x̂) = \(number(sumDX))")
                closed = zip(dxhat, xhat).map { rstd * ($0 - $1 * sumDX / m) }
            }
            out("     = " + list(closed))
            let closedDiff = zip(closed, engine).map { abs($0 - $1) }.max() ?? 0
            out("     agrees with the engine's dx \(agreement(closedDiff))")
            if spec.centres {
                out("  why Σ dx = 0: the −Σ∂x̂ term removes the mean of ∂x̂, and the x̂ term is orthogonal to it (Σx̂ = 0)")
            }
        }
        let stepDiff = zip(stepwise, engine).map { abs($0 - $1) }.max() ?? 0
        out("  the chain rule above agrees with the engine's dx \(agreement(stepDiff))")

        guard spec.affine != .none, let dgamma = r.dgamma, let dbeta = r.dbeta else {
            out("  no dγ or dβ: affine=none")
            return
        }
        let reduction = spec.paramGrad == .sum ? "summed over the batch" : "averaged over the batch (÷ N = \(r.plan.batch))"
        let over = spec.affine == .channel ? "samples and positions" : "samples"
        let indices = Array(Set(members.map { r.parameterIndex(ofOffset: $0) })).sorted()
        out("  dγ = Σ dy·x̂ and dβ = Σ dy over the \(over), \(reduction); for this set's \(spec.affine == .channel ? "channels" : "elements") \(Shape.format(indices.count <= 8 ? indices : Array(indices.prefix(8))))\(indices.count > 8 ? "…" : ""):")
        out("     dγ = " + list(indices.map { dgamma[$0] }))
        out("     dβ = " + list(indices.map { dbeta[$0] }))
        if layerBackwardCount > 1 {
            out("     (these are the last backward's; `show grad` has the \(layerBackwardCount) passes accumulated)")
        }
    }

    var layerBackwardCount: Int { session.layer?.backwardCount ?? 0 }

    /// "exactly", or "to within 1e-15": the largest difference rounded up to a power of ten, so the wording does
    /// not hang on the last bit of a rounding error.
    func agreement(_ difference: Double) -> String {
        guard difference > 0 else { return "exactly" }
        guard difference.isFinite else { return "nowhere: the difference is not finite" }
        return "to within 1e\(Int(Foundation.log10(difference).rounded(.up)))"
    }
}

import Foundation
private func Foundation_pow(_ a: Double, _ b: Double) -> Double { Foundation.pow(a, b) }

extension Interpreter {
    /// The axes a layer's statistics reduce over, as `help conventions` words them, without the leading
    /// "one mean and variance" / "one mean square".
    func reducedOver(_ spec: LayerSpec) -> String {
        LayerDescription.conventions(spec)[0].1
            .replacingOccurrences(of: "one mean and variance ", with: "")
            .replacingOccurrences(of: "one mean square ", with: "")
    }
}
