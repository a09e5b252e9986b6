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

/// `explain backward`: the chain rule back through the forward's steps for one set, the closed form of dx,
/// both checked against the engine's dx, then dγ and dβ with their batch reduction. dy is the one the last
/// backward used.
struct BackwardDerivation {
    let r: PassRecord
    let stat: Int, label: String, members: [Int]
    let w: Wording
    let backwardCount: Int

    init(record: PassRecord, selector: SetSelector, context: StatementContext, full: Bool = false) throws {
        r = record
        (stat, label, members) = try selector.select(in: record, context: context)
        var wording = context.wording
        wording.full = full
        w = wording
        backwardCount = context.session.layer?.backwardCount ?? 0
    }

    func derive() -> Derivation {
        let spec = r.spec
        var d = Derivation(title: "explain backward — \(LayerDescription.title(spec, mode: r.mode))")
        d.text("the set: \(label); m = \(members.count); the loss is L = Σ dy·y, with dy the last backward's")
        d.text("reduced over: " + reducedOver(spec) + "; so are the sums below")
        let dyAll = r.dy ?? []
        let dy = members.map { dyAll[$0] }
        d.text("dy = " + w.list(dy))
        let gamma = members.map { r.gamma?[r.parameterIndex(ofOffset: $0)] ?? 1 }
        let dxhat = zip(dy, gamma).map { $0 * $1 }
        d.step("∂x̂ = dy·γ", w.list(dxhat))
        let engine = members.map { (r.dx ?? [])[$0] }
        let stepwise = r.mode == .eval ? evalChain(dxhat, engine, into: &d) : trainChain(dxhat, engine, into: &d)
        let stepDiff = zip(stepwise, engine).map { abs($0 - $1) }.max() ?? 0
        d.text("the chain rule above agrees with the engine's dx \(agreement(stepDiff))")
        if r.dtype != .float64 || !r.spec.computesExactly {
            let format = r.spec.accumulate.format(storage: r.dtype)
            let how = r.spec.computesExactly ? "is \(r.dtype), each value rounded once"
                : "was computed with every sum and step in \(format)" + (format == r.dtype ? "" : ", stored in \(r.dtype)")
            d.text("(the steps here are float64; the engine's dx \(how): the difference is that rounding)")
        }
        parameterGradients(into: &d)
        return d
    }

    /// Eval mode: μ and σ² are constants.
    private func evalChain(_ dxhat: [Double], _ engine: [Double], into d: inout Derivation) -> [Double] {
        let rstd = r.rstd[stat]
        d.step("dx = ∂x̂·rstd   (eval mode: μ and σ² are constants, so nothing flows through them)", w.list(engine))
        return dxhat.map { $0 * rstd }
    }

    /// Training: back through rstd, σ² (or the mean square) and μ, then the closed form.
    private func trainChain(_ dxhat: [Double], _ engine: [Double], into d: inout Derivation) -> [Double] {
        let spec = r.spec
        let m = Double(members.count)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let rstd = r.rstd[stat], variance = r.variance[stat]
        let mu = r.mean?[stat] ?? 0
        let x = members.map { r.x[$0] }
        let xc = spec.centres ? x.map { $0 - mu } : x
        let xhat = members.map { r.xhat[$0] }
        let name = spec.centres ? "σ²" : "ms"
        let dRstd = zip(dxhat, xc).map { $0 * $1 }.reduce(0, +)
        d.step("∂rstd = Σ ∂x̂·\(spec.centres ? "(x − μ)" : "x")", w.number(dRstd))
        let dVar = -0.5 * pow(variance + spec.eps, -1.5) * dRstd
        d.step("∂\(name) = −½·(\(name) + eps)^(−3/2)·∂rstd", w.number(dVar))
        let dCentred = zip(dxhat, xc).map { $0 * rstd + 2 * $1 / divisor * dVar }
        let stepwise: [Double]
        if spec.centres {
            let divisorText = spec.variance == .unbiased ? "(m − 1)" : "m"
            d.step("∂(x − μ) = ∂x̂·rstd + 2(x − μ)/\(divisorText)·∂σ²", w.list(dCentred))
            let dMu = -dCentred.reduce(0, +)
            d.step("∂μ = −Σ∂(x − μ)", w.number(dMu))
            stepwise = dCentred.map { $0 + dMu / m }
            d.step("dx = ∂(x − μ) + ∂μ/m", w.list(engine))
        } else {
            stepwise = dCentred
            d.step("dx = ∂x̂·rstd + 2x/m·∂ms", w.list(engine))
        }
        let sumD = dxhat.reduce(0, +)
        let sumDX = zip(dxhat, xhat).map { $0 * $1 }.reduce(0, +)
        let closed: [Double]
        if spec.centres {
            d.text("closed form: dx = rstd/m·(m·∂x̂ − Σ∂x̂ − \(spec.variance == .unbiased ? "m/(m − 1)·" : "")x̂·Σ(∂x̂·x̂)), with Σ∂x̂ = \(w.number(sumD)), Σ(∂x̂·x̂) = \(w.number(sumDX))")
            closed = zip(dxhat, xhat).map { rstd / m * (m * $0 - sumD - m / divisor * $1 * sumDX) }
        } else {
            d.text("closed form: dx = rstd·(∂x̂ − x̂·Σ(∂x̂·x̂)/m), with Σ(∂x̂·x̂) = \(w.number(sumDX))")
            closed = zip(dxhat, xhat).map { rstd * ($0 - $1 * sumDX / m) }
        }
        d.detail("= " + w.list(closed))
        let closedDiff = zip(closed, engine).map { abs($0 - $1) }.max() ?? 0
        d.detail("agrees with the engine's dx \(agreement(closedDiff))")
        if spec.centres {
            d.text("why Σ dx = 0: the −Σ∂x̂ term removes the mean of ∂x̂, and the x̂ term is orthogonal to it (Σx̂ = 0)")
        }
        return stepwise
    }

    private func parameterGradients(into d: inout Derivation) {
        let spec = r.spec
        guard spec.affine != .none, let dgamma = r.dgamma else {
            d.text("no dγ or dβ: affine=none")
            return
        }
        let shapeForm = spec.normalizedShape != nil
        let batchWords = shapeForm ? "the leading dims" : "the batch"
        let reduction = spec.paramGrad == .sum ? "summed over \(batchWords)" : "averaged over \(batchWords) (÷ \(r.plan.batch))"
        let over = shapeForm ? "rows" : spec.affine == .channel ? "samples and positions" : "samples"
        let indices = Array(Set(members.map { r.parameterIndex(ofOffset: $0) })).sorted()
        let shown = Shape.format(indices.count <= 8 ? indices : Array(indices.prefix(8))) + (indices.count > 8 ? "…" : "")
        let which = shapeForm ? "positions along the last dims" : spec.affine == .channel ? "channels" : "elements"
        let sums = r.dbeta != nil ? "dγ = Σ dy·x̂ and dβ = Σ dy" : "dγ = Σ dy·x̂ (no β)"
        d.text("\(sums) over the \(over), \(reduction); for this set's \(which) \(shown):")
        d.detail("dγ = " + w.list(indices.map { dgamma[$0] }))
        if let dbeta = r.dbeta { d.detail("dβ = " + w.list(indices.map { dbeta[$0] })) }
        if backwardCount > 1 {
            d.detail("(these are the last backward's; `show grad` has the \(backwardCount) passes accumulated)")
        }
    }
}
