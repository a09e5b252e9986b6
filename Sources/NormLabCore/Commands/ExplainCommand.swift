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

public enum ExplainTopic: String, Equatable, Sendable, CaseIterable {
    case forward, backward, layer
}

struct Explain: Command, Equatable {
    static let help = CommandHelp(
        name: "explain",
        usage: ["explain forward [full] [n=I g=J p=K c=C]", "explain backward [full] [n=I g=J p=K c=C]",
                "explain layer [n=I g=J p=K c=C]"],
        summary: "derive the last forward or backward pass step by step, with its numbers",
        details: """
        Picks one statistics set (default the first): n= sample and g= group, p= position for per-position
        statistics (reduce=channels), c= channel for batchnorm. forward: μ, x − μ, its squares, σ², rstd, x̂ and
        y = γ·x̂ + β, in the order the seed layer computes them. backward: the chain rule back through the same
        steps, then the closed form of dx, both checked against the engine's dx, and dγ, dβ with their batch
        reduction. layer: the same as `show axes`. Every number shown is the engine's own (or computed from
        its values, where the engine does not keep it). Sets of more than 8 values are shown as their first 4
        and last 2; `full` shows every value, so each step can be checked by hand. A step whose effect is
        below the session's precision (σ² + eps with a small eps) is shown with the digits that make it visible.
        """,
        examples: ["explain forward", "explain backward n=1 g=1", "explain forward c=2", "explain forward full"])

    let topic: ExplainTopic
    let selector: SetSelector
    /// Every value of the chosen set, not the first 4 and last 2.
    let full: Bool

    init(_ topic: ExplainTopic, _ selector: SetSelector = SetSelector(), full: Bool = false) {
        self.topic = topic
        self.selector = selector
        self.full = full
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        topic = ExplainTopic(rawValue: try cursor.keyword(ExplainTopic.allCases.map(\.rawValue), "forward, backward or layer").text)!
        full = topic != .layer && cursor.takeFlag("full")
        selector = try SetSelector(parsing: &cursor)
    }

    func run(in context: StatementContext) throws -> Report {
        switch topic {
        case .forward:
            let record = try context.passRecord("there is no forward pass to explain yet: run forward first")
            return Report([.derivation(try ForwardDerivation(record: record, selector: selector, context: context, full: full).derive())])
        case .backward:
            let record = try context.passRecord("there is no forward pass to explain yet: run forward first")
            guard record.dx != nil, record.dy != nil else {
                throw Diagnostic("explain backward needs a backward pass after the last forward: run backward first")
            }
            return Report([.derivation(try BackwardDerivation(record: record, selector: selector, context: context, full: full).derive())])
        case .layer:
            return try Show.axes(selector, context: context)
        }
    }
}

/// "exactly", or "to within 1e-15": the largest difference rounded up to a power of ten, so the wording does
/// not hang on the last bit of a rounding error.
func agreement(_ difference: Double) -> String {
    guard difference > 0 else { return "exactly" }
    guard difference.isFinite else { return "nowhere: the difference is not finite" }
    return "to within 1e\(Int(log10(difference).rounded(.up)))"
}

/// The axes a layer's statistics reduce over, as `help conventions` words them, without the leading
/// "one mean and variance" / "one mean square".
func reducedOver(_ spec: LayerSpec) -> String {
    LayerDescription.conventions(spec)[0].1.replacing("one \(LayerDescription.sharedStatistics(spec)) ", with: "")
}

/// `explain forward`: μ, x − μ, its squares, σ², rstd, x̂ and y for one set, in the seed layer's order.
struct ForwardDerivation {
    let r: PassRecord
    let stat: Int, label: String, members: [Int]
    let w: Wording

    init(record: PassRecord, selector: SetSelector, context: StatementContext, full: Bool = false) throws {
        r = record
        (stat, label, members) = try selector.select(in: record, context: context)
        var wording = context.wording
        wording.full = full
        w = wording
    }

    func derive() -> Derivation {
        let spec = r.spec
        let m = members.count
        var d = Derivation(title: "explain forward — \(LayerDescription.title(spec, mode: r.mode))")
        d.text("the set: \(label); m = \(m) elements share one \(LayerDescription.sharedStatistics(spec))")
        d.text("reduced over: " + reducedOver(spec))
        let x = members.map { r.x[$0] }
        d.text("x = " + w.list(x))
        if !spec.computesExactly && r.mode != .eval { precision(x, into: &d) } else { statistics(x, into: &d) }
        let xhat = members.map { r.xhat[$0] }
        d.step(spec.centres ? "x̂ = (x − μ)·rstd" : "x̂ = x·rstd", w.list(xhat))
        affine(into: &d)
        check(xhat, into: &d)
        return d
    }

    private var divisor: Int { r.spec.variance == .unbiased ? members.count - 1 : members.count }

    /// Enough significant digits to show every digit the format holds (float64: 10, so the line stays readable).
    private func significant(_ value: Double, _ format: DType) -> String {
        let digits = min(10, Int(format.decimalDigits.rounded(.up)) + 1)
        return String(printf: "%.\(digits)g", value)
    }

    /// The steps as the layer's method and format computed them, beside the exact values, with the digits that agree.
    private func precision(_ x: [Double], into d: inout Derivation) {
        let trace = PrecisionTrace(x: x, spec: r.spec, storage: r.dtype)
        d.heading("as computed — method=\(trace.method), every step rounded to \(trace.format) — against the exact values (float64, two passes):")
        for step in trace.steps {
            let digits = PrecisionTrace.agreeingDigits(step.computed, step.exact, format: trace.format)
            let agree = digits.map { $0 < 0.5 ? "no digit agrees" : "\(Int($0.rounded())) digit\(Int($0.rounded()) == 1 ? "" : "s") agree" } ?? "equal"
            d.detail("\(step.name) = \(significant(step.computed, trace.format)), exactly \(significant(step.exact, .float64))   (\(agree))")
        }
        let worst = trace.normalized.map { abs($0.computed - $0.exact) }.max() ?? 0
        d.detail("x̂ as computed differs from the exact x̂ by up to \(w.number(worst))" + (r.dtype.isReduced ? "; y is then stored in \(r.dtype)" : ""))
    }

    private func statistics(_ x: [Double], into d: inout Derivation) {
        let spec = r.spec, m = members.count
        let rstd = r.rstd[stat], variance = r.variance[stat]
        let plusEps = w.sum(variance, plus: spec.eps, bText: formatOption(spec.eps))
        if r.mode == .eval {
            let mu = r.mean?[stat] ?? 0
            d.step("μ = running_mean (eval mode: the statistics are not the batch's)", w.number(mu))
            d.step("σ² = running_var", w.number(variance))
            d.step("σ² + eps", plusEps)
            d.step("rstd = (σ² + eps)^(−½)", w.number(rstd))
            d.step("x − μ", w.list(x.map { $0 - mu }))
        } else if spec.centres {
            let mu = r.mean?[stat] ?? 0
            d.step("μ = Σx / m", "\(w.number(x.reduce(0, +))) / \(m) = \(w.number(mu))")
            let centred = x.map { $0 - mu }
            d.step("x − μ", w.list(centred))
            let squares = centred.map { $0 * $0 }
            d.step("(x − μ)²", w.list(squares))
            let divisorText = spec.variance == .unbiased ? "(m − 1)" : "m"
            d.step("σ² = Σ(x − μ)² / \(divisorText)", "\(w.number(squares.reduce(0, +))) / \(divisor) = \(w.number(variance))" + (spec.variance == .biased ? "   (biased: ÷ m)" : "   (unbiased: ÷ (m − 1))"))
            d.step("σ² + eps", plusEps)
            d.step("rstd = (σ² + eps)^(−½)", w.number(rstd))
        } else {
            let squares = x.map { $0 * $0 }
            d.step("x²", w.list(squares))
            d.step("ms = Σx² / m", "\(w.number(squares.reduce(0, +))) / \(m) = \(w.number(variance))   (no mean is subtracted)")
            d.step("ms + eps", plusEps)
            d.step("rstd = (ms + eps)^(−½)", w.number(rstd))
        }
    }

    private func affine(into d: inout Derivation) {
        let y = members.map { r.y[$0] }
        switch r.spec.affine {
        case .none:
            d.step("y = x̂ (affine=none)", w.list(y))
        case .channel where r.plan.normalizedShape != nil:
            let along = "along the last dims \(LayerDescription.shapeText(r.spec))"
            d.step(r.spec.bias ? "y = γ·x̂ + β, γ and β element by element \(along); γ" : "y = γ·x̂ (no β), γ element by element \(along); γ",
                   w.list(members.map { r.gamma?[r.parameterIndex(ofOffset: $0)] ?? 1 }))
            if r.spec.bias { d.detail("β = " + w.list(members.map { r.beta?[r.parameterIndex(ofOffset: $0)] ?? 0 })) }
            d.detail("y = " + w.list(y))
        case .channel:
            d.heading("y = γ·x̂ + β, with one γ and β per channel:")
            var byChannel: [Int: [Int]] = [:]
            for (k, offset) in members.enumerated() { byChannel[(offset / r.plan.spatial) % r.plan.channels, default: []].append(k) }
            let channels = byChannel.keys.sorted()
            for c in channels.prefix(6) {
                d.detail("channel \(c): γ = \(w.number(r.gamma?[c] ?? 1)), β = \(w.number(r.beta?[c] ?? 0)) → y = " + w.list(byChannel[c]!.map { y[$0] }))
            }
            if channels.count > 6 { d.detail("… and \(channels.count - 6) more channels") }
        case .element:
            d.step("y = γ·x̂ + β, with γ and β per element (affine=element); γ", w.list(members.map { r.gamma?[r.parameterIndex(ofOffset: $0)] ?? 1 }))
            d.detail("β = " + w.list(members.map { r.beta?[r.parameterIndex(ofOffset: $0)] ?? 0 }))
            d.detail("y = " + w.list(y))
        }
    }

    private func check(_ xhat: [Double], into d: inout Derivation) {
        let spec = r.spec, m = members.count
        guard r.mode != .eval else { return }
        if m == 1 && spec.centres {
            d.text("note: a set of one element has x − μ = 0, so x̂ = 0 and y = β whatever x is")
            return
        }
        let variance = r.variance[stat]
        let meanHat = xhat.reduce(0, +) / Double(m)
        let meanSquare = xhat.map { $0 * $0 }.reduce(0, +) / Double(m)
        let expected = Double(divisor) / Double(m) * variance / (variance + spec.eps)
        let scale = NoiseFloor.relative(r.dtype) * (xhat.map(abs).max() ?? 1)
        if !spec.computesExactly {
            let x = members.map { r.x[$0] }
            let mu = spec.centres ? x.reduce(0, +) / Double(m) : 0
            let exact = x.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(divisor)
            let target = Double(divisor) / Double(m) * exact / (exact + spec.eps)
            d.text("check: mean(x̂) = \(formatNumber(meanHat, precision: w.precision, scale: scale)), mean(x̂²) = \(w.number(meanSquare)); an exact pass gives \(spec.centres ? "0 and " : "")\(w.number(target))")
            return
        }
        d.text("check: mean(x̂) = \(formatNumber(meanHat, precision: w.precision, scale: scale)), mean(x̂²) = \(w.number(meanSquare))" + (spec.centres ? " = \(divisor == m ? "" : "(m − 1)/m·")σ²/(σ² + eps) = \(w.number(expected))" : ""))
    }
}
