import NormKit

/// What `diagnose` shows: the report and what is needed to word it.
public struct DiagnosisView: Sendable {
    public let title: String
    /// The user's tensor for each role, by name.
    public let names: [DiagnosisRole: String]
    public let report: DiagnosisReport
    public let spec: LayerSpec
    public let batch: Int
    public let setSize: Int
    /// No backward had run: dy was taken as zeros, and only y means anything.
    public let forwardOnly: Bool
    /// The format of the user's y (or of the first tensor judged): what the low-precision causes are worded in.
    public var format: DType = .float32
}

/// The words for each cause: what went wrong, in one line, and the fix. `help diagnose` lists them.
enum DiagnosisWords {
    /// The cause for this case, in one line. `subject`: the user's tensor (its role in `diagnose`, its name in
    /// `compare`).
    static func explanation(_ cause: DiagnosisCause, _ v: DiagnosisView, subject: String, fitted: Double?) -> String {
        let m = v.setSize, n = v.batch
        switch cause {
        case .missingMeanTerm: return "\(subject) lacks −rstd·mean(∂x̂), the term that comes through μ: it does not sum to 0 over each set"
        case .missingXhatTerm: return "\(subject) lacks −rstd·x̂·mean(∂x̂·x̂), the term that comes through σ²"
        case .xhatTermSign: return "the x̂ term of \(subject) (the one through σ²) has the wrong sign"
        case .dxNegated: return "\(subject) has the opposite sign everywhere: the gradient of −L, or dy negated"
        case .dxMissingGamma: return "∂x̂ was taken as dy, not dy·γ: γ is missing from the chain rule"
        case .wrongSetSize: return "the terms through μ and σ² divide by m′ = \(fitted.map { String(Int($0)) } ?? "?") instead of m = \(m), the number of elements in a set"
        case .rstdPower: return "∂σ² uses (σ² + eps) to the power −\(fitted.map { String(Int($0)) } ?? "?")/2 instead of −3/2"
        case .lossAveraged: return "\(subject) is the gradient divided by N = \(n): the loss was averaged over the batch where dy assumes a sum"
        case .interleavedGroups: return "channel c went to group c mod G: a reshape to (N, C/G, G, …) instead of (N, G, C/G, …)"
        case .perPositionStatistics:
            return v.spec.reduce == .group
                ? "μ and σ² were taken per position over the group's channels only (PyDLLib's .sum(2)), not over channels × positions"
                : "μ and σ² were taken over channels × positions, where this layer (reduce=channels) takes them per position"
        case .perSampleStatistics:
            return "μ and σ² were taken within each sample (over \(v.spec.reduce == .group ? "the positions" : "the channels") only), leaving out the batch axis: every sample normalised on its own, as InstanceNorm does"
        case .unbiasedVariance:
            return v.spec.variance == .biased
                ? "σ² divides by m − 1 (ddof=1, torch.var's default) where the layer divides by m"
                : "σ² divides by m where the layer divides by m − 1"
        case .epsOutsideSqrt: return "x̂ = (x − μ)/(σ + eps) instead of (x − μ)/√(σ² + eps)"
        case .epsValue: return "eps = \(fitted.map(formatOption) ?? "?") fits your y; the layer uses eps = \(formatOption(v.spec.eps))"
        case .onepassCancellation: return "σ² computed as E[x²] − E[x]² in \(v.format == .float64 ? "low precision" : v.format.rawValue): the two terms cancel when |μ| ≫ σ"
        case .float16Overflow: return "x² went past float16's largest finite value 65504 in the variance: σ² = ∞ there, so x̂ = 0 (or NaN where x − μ is ∞ too)"
        case .epsUnderflow: return "eps = \(formatOption(v.spec.eps)) is 0 in \(v.format): a constant set gets σ² + eps = 0, rstd = ∞ and x̂ = 0·∞ = NaN"
        case .lowPrecisionAccumulation: return "the statistics were summed in \(v.format) itself: the formulas are right, but its \(String(format1: v.format.decimalDigits)) digits are lost in the sums"
        case .otherPreset:
            return "\(subject) is what the layer gives under preset=\(v.spec.preset == .torch ? "pydllib" : "torch"): a convention mismatch, not an arithmetic slip (help conventions)"
        case .paramGradMean: return "\(subject) is averaged over the batch (÷ N = \(n)) where the layer sums it"
        case .paramGradSum: return "\(subject) is summed over the batch where the layer averages it (paramgrad=mean: ÷ N = \(n))"
        case .dgammaWithoutXhat: return "dγ = Σ dy: the factor x̂ is missing"
        case .dgammaUsesY: return "dγ = Σ dy·y: y used where x̂ belongs (y = γ·x̂ + β)"
        }
    }

    static func fix(_ cause: DiagnosisCause) -> String {
        switch cause {
        case .missingMeanTerm: return "subtract the set's mean of ∂x̂ (∂μ = −Σ ∂x̂·rstd, spread as ∂μ/m)"
        case .missingXhatTerm: return "add the path through the variance: ∂σ² = −½·Σ ∂x̂·(x − μ)·(σ² + eps)^(−3/2), spread as 2(x − μ)/m·∂σ²"
        case .xhatTermSign: return "∂σ² carries a minus sign: −½·Σ ∂x̂·(x − μ)·(σ² + eps)^(−3/2)"
        case .dxNegated: return "L = Σ dy·y: check the sign of dy and of the result"
        case .dxMissingGamma: return "multiply dy by γ before back-propagating through the normalisation"
        case .wrongSetSize: return "m counts every element of a set: its C/G channels × all positions (and for BatchNorm, the batch)"
        case .rstdPower: return "d(σ² + eps)^(−½)/dσ² = −½·(σ² + eps)^(−3/2)"
        case .lossAveraged: return "differentiate the same loss on both sides: scale dy by 1/N, or sum the loss"
        case .interleavedGroups: return "reshape x to (N, G, C/G, *spatial): a group is C/G consecutive channels"
        case .perPositionStatistics: return "reduce over the channel and spatial axes together (or choose the convention you meant with reduce=)"
        case .perSampleStatistics: return "reduce over the batch axis too: x.mean(axis=(0, 2, 3), keepdims=True) for an (N, C, H, W) input"
        case .unbiasedVariance: return "divide Σ(x − μ)² by the layer's divisor (or choose variance= to match yours)"
        case .epsOutsideSqrt: return "add eps to the variance, inside the square root"
        case .epsValue: return "use the layer's eps (or set eps= on the layer to yours)"
        case .onepassCancellation: return "two passes: the mean first, then the mean of (x − μ)² (or Welford's update); or accumulate in a wider type"
        case .float16Overflow: return "accumulate in float32 (upcast x before squaring: x.float()), as PyTorch does for float16"
        case .epsUnderflow: return "keep eps in float32 (accumulate in float32), or use an eps the format holds (1e-5 is fine in float16)"
        case .lowPrecisionAccumulation: return "accumulate sums and squares in float32 and round only the result to the storage format"
        case .otherPreset: return "choose the preset you implemented (layer … preset=…), or change your code to the layer's conventions"
        case .paramGradMean, .paramGradSum: return "reduce dγ and dβ over the batch as the layer does (or choose paramgrad= to match yours)"
        case .dgammaWithoutXhat, .dgammaUsesY: return "dγ = Σ dy·x̂ over the batch (and the positions, for γ of shape (C))"
        }
    }

    /// What each cause is, in general (the report words it with the numbers of the case).
    static func what(_ cause: DiagnosisCause) -> String {
        switch cause {
        case .missingMeanTerm: "dx lacks the term through μ, −rstd·mean(∂x̂)"
        case .missingXhatTerm: "dx lacks the term through σ², −rstd·x̂·mean(∂x̂·x̂)"
        case .xhatTermSign: "dx's term through σ² has the wrong sign"
        case .dxNegated: "dx has the opposite sign"
        case .dxMissingGamma: "∂x̂ taken as dy instead of dy·γ"
        case .wrongSetSize: "the set size m counted wrong (say as C/G, forgetting the positions)"
        case .rstdPower: "(σ² + eps) to the wrong power in ∂σ²"
        case .lossAveraged: "dx divided by N: a loss averaged over the batch"
        case .interleavedGroups: "channel c in group c mod G"
        case .perPositionStatistics: "statistics per position (or not per position, where the layer's are)"
        case .perSampleStatistics: "BatchNorm's statistics per sample: the batch axis left out"
        case .unbiasedVariance: "σ² divided by m − 1 instead of m (or the reverse)"
        case .epsOutsideSqrt: "(x − μ)/(σ + eps) instead of (x − μ)/√(σ² + eps)"
        case .epsValue: "another eps (the one that fits is shown)"
        case .onepassCancellation: "σ² as E[x²] − E[x]² in float32, float16 or bfloat16"
        case .float16Overflow: "x² past float16's 65504 in the variance"
        case .epsUnderflow: "eps that rounds to 0 in the format (1e-12 in float16)"
        case .lowPrecisionAccumulation: "sums and squares in float16 or bfloat16 themselves"
        case .otherPreset: "the other preset's conventions (torch against pydllib)"
        case .paramGradMean: "dγ, dβ averaged over the batch where the layer sums"
        case .paramGradSum: "dγ, dβ summed over the batch where the layer averages"
        case .dgammaWithoutXhat: "dγ = Σ dy"
        case .dgammaUsesY: "dγ = Σ dy·y"
        }
    }

    /// For `help diagnose`: every cause with what it is and its fix.
    static var catalogue: String {
        DiagnosisCause.allCases.map { "  [\($0.rawValue)] \(what($0)).\n      fix: \(fix($0))" }.joined(separator: "\n")
    }

    /// Why no low-precision cause is named when the layer's input is not values of the tensors' format.
    static func inputRoundingNote(_ rounding: InputRounding?) -> String? {
        guard let r = rounding else { return nil }
        return "the layer's input x is not \(r.format) (\(r.changed) of \(r.count) elements change when rounded to it): a \(r.format) result made from this x rounded x first, and that rounding counts as a difference here — no low-precision cause is named; load the \(r.format) x your code saw (e.g. x.half()) as the layer's input"
    }

    static func lines(_ v: DiagnosisView) -> [String] {
        var lines = ["diagnose — " + v.title,
                     "  reference: NormLab's pass in float64 on the layer's input, γ, β" + (v.forwardOnly ? " (no backward yet: y only)" : " and the last backward's dy")]
        if let note = inputRoundingNote(v.report.inputRounding) { lines.append("  note: " + note) }
        let width = v.report.findings.map { "\($0.role) (\(v.names[$0.role] ?? ""))".count }.max() ?? 0
        for finding in v.report.findings {
            let label = "\(finding.role) (\(v.names[finding.role] ?? ""))"
            let pad = String(repeating: " ", count: width - label.count + 2)
            lines.append("  " + label + pad + verdictLine(finding))
            let indent = "    "
            if let cause = finding.cause {
                lines.append(indent + "[\(cause)] " + explanation(cause, v, subject: finding.role.rawValue, fitted: finding.fittedValue))
                lines.append(indent + "fix: " + fix(cause))
                if cause.isForward { lines.append(indent + "the forward is the first thing to fix; the gradients below are judged against the backward of this forward") }
            } else if let forward = finding.followsForward {
                lines.append(indent + "right for your forward: it is what the backward gives when the forward has [\(forward)]; fix y first")
            } else if finding.verdict == .differs {
                lines.append(indent + "no single known mistake reproduces it" + (finding.role == .y ? "; fix y before judging the gradients" : ""))
            }
            if let fit = finding.termFit, finding.verdict == .differs, finding.followsForward == nil {
                lines.append(indent + "terms: dx ≈ \(coefficient(fit.a))·T1 + \(coefficient(fit.b))·T2 + \(coefficient(fit.c))·T3, residual \(formatNumber(fit.residual, precision: 1))")
                lines.append(indent + "       (T1 = rstd·∂x̂, T2 = −rstd·mean(∂x̂), T3 = −rstd·x̂·mean(∂x̂·x̂); a correct dx is 1, 1, 1)")
            }
        }
        return lines
    }

    static func verdictLine(_ f: DiagnosisFinding) -> String {
        let diff = formatNumber(f.maxAbsDifference, precision: 1)
        switch f.verdict {
        case .match:
            return "[match]     max |Δ| \(diff): within rounding"
        case .rounding:
            return "[rounding]  max |Δ| \(diff): beyond plain rounding at \(f.beyondPlain) of \(f.count) elements, but within the estimate once the mean's offset is counted (|μ|·rstd up to \(formatNumber(f.amplification, precision: 0))): rounding, not a bug"
        case .differs:
            return "[differs]   max |Δ| \(diff) at \(Shape.format(f.worstIndex)); \(f.beyondEstimate) of \(f.count) elements beyond the rounding estimate (\(formatNumber(f.conditionedEstimate, precision: 1)) there)"
        }
    }

    static func coefficient(_ value: Double) -> String {
        value.isFinite ? String(printf: "%.3f", abs(value) < 5e-4 ? 0 : value) : "?"
    }
}
