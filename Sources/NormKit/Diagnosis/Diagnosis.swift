/// Why a user's tensor differs from NormKit's, by name. A cause is reported only when its hypothesis, recomputed
/// in Float64, reproduces the user's tensor to within the rounding estimate of the user's dtype: a wrong cause
/// is worse than none.
public enum DiagnosisCause: String, Sendable, CaseIterable, CustomStringConvertible {
    // dx
    case missingMeanTerm = "missing-mean-term"
    case missingXhatTerm = "missing-xhat-term"
    case xhatTermSign = "xhat-term-sign"
    case dxNegated = "dx-negated"
    case dxMissingGamma = "dx-missing-gamma"
    case wrongSetSize = "wrong-set-size"
    case rstdPower = "rstd-power"
    case lossAveraged = "loss-averaged"
    // y (and what follows from it)
    case interleavedGroups = "interleaved-groups"
    case perPositionStatistics = "per-position-statistics"
    /// BatchNorm's statistics taken within each sample (the batch axis left out): InstanceNorm (GroupNorm for
    /// grouped channels) where the layer spans the batch.
    case perSampleStatistics = "per-sample-statistics"
    case unbiasedVariance = "unbiased-variance"
    case epsOutsideSqrt = "eps-outside-sqrt"
    case epsValue = "eps-value"
    /// σ² as E[x²] − E[x]² in the user's format (float32, float16, bfloat16): the two terms cancel when |μ| ≫ σ.
    case onepassCancellation = "onepass-cancellation"
    /// x² (or a sum of squares) past float16's largest finite value 65504: σ² = ∞ and y = 0 or NaN.
    case float16Overflow = "float16-overflow"
    /// eps rounds to 0 in the user's format, so a constant set gets rstd = ∞ and x̂ = NaN.
    case epsUnderflow = "eps-underflow"
    /// Sums and steps in the storage format (float16, bfloat16): right formulas, most digits lost.
    case lowPrecisionAccumulation = "low-precision-accumulation"
    /// Every convention of the other preset at once (torch against pydllib).
    case otherPreset = "other-preset"
    // dγ, dβ
    case paramGradMean = "param-grad-mean"
    case paramGradSum = "param-grad-sum"
    case dgammaWithoutXhat = "dgamma-without-xhat"
    case dgammaUsesY = "dgamma-uses-y"

    public var description: String { rawValue }

    /// Causes that are mistakes in the forward pass: the backward is then judged against the backward of that
    /// forward.
    public var isForward: Bool {
        switch self {
        case .interleavedGroups, .perPositionStatistics, .perSampleStatistics, .unbiasedVariance, .epsOutsideSqrt, .epsValue, .onepassCancellation,
             .otherPreset, .float16Overflow, .epsUnderflow, .lowPrecisionAccumulation: true
        default: false
        }
    }

    /// Causes that are the arithmetic of a low-precision format rather than a wrong formula: what follows from
    /// them is judged with that format's accumulation error.
    public var isLowPrecision: Bool {
        switch self {
        case .onepassCancellation, .float16Overflow, .epsUnderflow, .lowPrecisionAccumulation: true
        default: false
        }
    }
}

/// Which result of the pass a tensor is.
public enum DiagnosisRole: String, Sendable, CaseIterable, CustomStringConvertible {
    case y, dx, dgamma, dbeta
    public var description: String { rawValue }
}

/// How a user's tensor compares with NormKit's.
public enum DiagnosisVerdict: String, Sendable {
    /// Equal within the dtype's plain rounding.
    case match
    /// Different, but no more than the dtype's rounding amplified by the problem's conditioning explains.
    case rounding
    case differs
}

/// The verdict for one tensor, with the measurements behind it.
public struct DiagnosisFinding: Sendable {
    /// Which result the tensor is.
    public let role: DiagnosisRole
    /// Match, rounding, or differs, against NormKit's pass.
    public let verdict: DiagnosisVerdict
    /// The largest |user − NormKit| (infinite where one side is NaN and the other not).
    public let maxAbsDifference: Double
    /// The multi-index of the largest difference.
    public let worstIndex: [Int]
    /// How many elements exceed plain rounding.
    public let beyondPlain: Int
    /// How many elements exceed the rounding estimate with the conditioning counted.
    public let beyondEstimate: Int
    /// How many elements the tensor has.
    public let count: Int
    /// Plain rounding's estimate at the element that is furthest beyond its estimate.
    public let plainEstimate: Double
    /// The estimate there with the conditioning (|μ|·rstd) counted.
    public let conditionedEstimate: Double
    /// The largest |μ|·rstd of any set.
    public let amplification: Double
    /// max |Δ| / estimate over the elements (≤ 1: within the conditioned estimate).
    public let worstRatio: Double
    /// Nil unless a hypothesis reproduces the tensor.
    public let cause: DiagnosisCause?
    /// The tensor differs from NormKit's only as the forward's identified cause makes it: it is right for the
    /// user's own forward.
    public let followsForward: DiagnosisCause?
    /// For dx: the least-squares fit of the user's dx as a·T1 + b·T2 + c·T3.
    public let termFit: TermFit?
    /// eps-value: the eps that fits; wrong-set-size: the m that was used; rstd-power: the power used.
    public let fittedValue: Double?
}

/// dx ≈ a·rstd·∂x̂ + b·(−rstd·mean ∂x̂) + c·(−rstd·x̂·mean(∂x̂·x̂)), over all sets, and what is left.
public struct TermFit: Sendable {
    /// The weights of T1 = rstd·∂x̂, T2 = −rstd·mean(∂x̂) and T3 = −rstd·x̂·mean(∂x̂·x̂); a correct dx has 1, 1, 1.
    public let a: Double, b: Double, c: Double
    /// ‖dx − fit‖ / ‖dx‖.
    public let residual: Double
}

/// The layer's input holds values that a tensor's format does not: code that made the tensor in that format from
/// this x rounded x first, and the comparison counts that rounding (it is not in the estimates).
public struct InputRounding: Sendable, Equatable {
    /// The narrowest format among the judged tensors (float16 or bfloat16) that x does not fit.
    public let format: DType
    /// How many of x's elements change when rounded to it, of how many.
    public let changed: Int, count: Int
}

/// What `Diagnosis.run` found.
public struct DiagnosisReport: Sendable {
    /// One finding per tensor given, y first.
    public let findings: [DiagnosisFinding]
    /// Set when x is not values of a judged tensor's format: then no low-precision cause is named (x's own
    /// rounding would pass for one), and the user is told to load the x their code saw.
    public var inputRounding: InputRounding? = nil
    /// The forward's cause, when y differs and one was identified.
    public var forwardCause: DiagnosisCause? { findings.first { $0.role == .y }?.cause }
}

/// A user's tensors for one layer, input, γ, β and dy, judged against NormKit's pass.
public enum Diagnosis {
    /// For each result of the pass, the largest difference that rounding in `dtype` explains for this problem
    /// (the conditioned estimate of `diagnose`): what an independent implementation may differ by.
    public static func roundingEstimates(spec: LayerSpec, shape: Shape, x: [Double], gamma: [Double]?, beta: [Double]?,
                                         dy: [Double], float32: Bool, format: DType? = nil,
                                         accumulation: DType? = nil) throws(NormError) -> [DiagnosisRole: Double] {
        let pass = try DiagnosisPass(spec: spec, shape: shape, x: x, gamma: gamma, beta: beta, dy: dy)
        var out: [DiagnosisRole: Double] = [:]
        for role in DiagnosisRole.allCases {
            let judge = Judge(reference: pass, role: role, format: format ?? (float32 ? .float32 : .float64),
                              accumulation: accumulation)
            if judge.expected != nil { out[role] = judge.conditioned.max() ?? 0 }
        }
        return out
    }

    /// `user`: the tensors to judge (any subset of y, dx, dγ, dβ) and whether each was computed in float32;
    /// `formats` names each tensor's format where it is float16 or bfloat16 (it overrides `float32`).
    public static func run(spec: LayerSpec, shape: Shape, x: [Double], gamma: [Double]?, beta: [Double]?, dy: [Double],
                           user: [DiagnosisRole: [Double]], float32: [DiagnosisRole: Bool],
                           formats: [DiagnosisRole: DType] = [:]) throws(NormError) -> DiagnosisReport {
        let reference = try DiagnosisPass(spec: spec, shape: shape, x: x, gamma: gamma, beta: beta, dy: dy)
        var findings: [DiagnosisFinding] = []
        let given = DiagnosisRole.allCases.filter { user[$0] != nil }
        let narrowest = given.map { formats[$0] ?? ((float32[$0] ?? false) ? .float32 : .float64) }
            .min { $0.precisionBits < $1.precisionBits }
        var inputRounding: InputRounding? = nil
        // float16 and bfloat16 only: their estimates assume float32 sums and count the result's own rounding, not
        // x's (float32's estimates are wide enough to hold x's rounding to float32).
        if let narrowest, narrowest.isReduced {
            let changed = x.reduce(0) { $0 + (narrowest.round($1) == $1 || $1.isNaN ? 0 : 1) }
            if changed > 0 { inputRounding = InputRounding(format: narrowest, changed: changed, count: x.count) }
        }
        // Forward first: a wrong forward explains what follows it.
        var forward: ForwardHypotheses.Found? = nil
        for role in DiagnosisRole.allCases {
            guard let values = user[role] else { continue }
            let format = formats[role] ?? ((float32[role] ?? false) ? .float32 : .float64)
            let judge = Judge(reference: reference, role: role, format: format)
            guard let expected = judge.expected, values.count == expected.count else {
                throw NormError.mismatch("\(role) has \(values.count) elements; the layer's \(role) has \(judge.expected?.count ?? 0)")
            }
            var finding = judge.compare(values)
            if finding.verdict == .differs {
                if role == .y {
                    if let found = ForwardHypotheses(reference: reference, judge: judge).explain(values),
                       inputRounding == nil || !found.cause.isLowPrecision {
                        forward = found
                        finding = judge.compare(values, cause: found.cause, fitted: found.fitted)
                    }
                } else if let forward, role != .dbeta,  // Σ dy does not depend on the forward
                          (forward.cause.isLowPrecision ? judge.accumulating(in: format) : judge)
                            .against(forward.values).agrees(values) {
                    finding = judge.compare(values, follows: forward.cause)
                } else if format.isReduced && inputRounding == nil && judge.accumulating(in: format).agrees(values) {
                    finding = judge.compare(values, cause: .lowPrecisionAccumulation)
                } else {
                    finding = BackwardHypotheses(reference: reference, judge: judge).explain(values, finding: finding)
                }
            }
            findings.append(finding)
        }
        var report = DiagnosisReport(findings: findings)
        report.inputRounding = inputRounding
        return report
    }
}
