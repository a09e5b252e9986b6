#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Compares a user's tensor with one role of a pass, element by element, against rounding estimates.
///
/// The estimates model a correct implementation in the user's dtype (unit roundoff u: 2⁻²⁴ for float32, 2⁻⁵³
/// for float64; float16 and bfloat16 as PyTorch computes them, accumulating in float32 and rounding each result
/// once to the format: the float32 estimates plus 2·u_format·|value|), with a safety factor K = 4·(2 + log₂ m)
/// for the sums over a set:
/// - plain: every value rounded a few times: K·u·(|γ|·(1 + |x̂|) + |β|) for y; K·u·rstd·max|∂x̂|·(1 + max|x̂|)
///   per set for dx; K·u·Σ|dy|·(1 + |x̂|) for dγ; K·u·Σ|dy| for dβ.
/// - conditioned: plus what the mean's own rounding does to x − μ, which grows with |μ|·rstd (a float32 mean of
///   values near 1000 with σ = 1 is off by about u·1000, i.e. 1000·u in x̂): the same estimates times
///   (1 + |μ|·rstd).
struct Judge {
    let reference: DiagnosisPass
    let role: DiagnosisRole
    /// The user's tensor's format.
    let format: DType
    /// The format its sums are assumed to run in: float32 for float16/bfloat16 unless `accumulating(in:)` says.
    let accumulation: DType
    /// True for any format narrower than float64.
    var lowPrecision: Bool { format != .float64 }
    private(set) var plain: [Double]
    private(set) var conditioned: [Double]
    /// The largest |μ|·rstd of any set: how much the mean's rounding is amplified in x̂.
    let amplification: Double
    /// The values a tensor is compared with: the pass's own, or a hypothesis's (`against`).
    private(set) var expected: [Double]?

    init(reference p: DiagnosisPass, role: DiagnosisRole, format: DType, accumulation: DType? = nil) {
        self.reference = p
        self.role = role
        self.format = format
        let accumulation = accumulation ?? (format.isReduced ? .float32 : format)
        self.accumulation = accumulation
        switch role {
        case .y: expected = p.y
        case .dx: expected = p.dx
        case .dgamma: expected = p.dgamma
        case .dbeta: expected = p.dbeta
        }
        let u = accumulation.unitRoundoff
        let k = 4 * (2 + log2(max(p.m, 1)))
        let amplification = p.sets.indices.map { 1 + (p.spec.centres ? abs(p.mean[$0]) * p.rstd[$0] : 0) }
        self.amplification = (amplification.max() ?? 1) - 1
        switch role {
        case .y:
            let simple = (0..<p.count).map { k * u * (abs(p.gammaAt($0)) * (1 + abs(p.xhat[$0])) + abs(p.betaAt($0))) }
            plain = simple
            conditioned = (0..<p.count).map { simple[$0] + k * u * abs(p.gammaAt($0)) * (amplification[p.setOf[$0]] - 1) * (1 + abs(p.xhat[$0])) }
        case .dx:
            let g = p.dxhat()
            var perSet = [Double](repeating: 0, count: p.sets.count)
            for (s, members) in p.sets.enumerated() {
                let gMax = members.map { abs(g[$0]) }.max() ?? 0
                let hMax = members.map { abs(p.xhat[$0]) }.max() ?? 0
                perSet[s] = k * u * p.rstd[s] * gMax * (1 + hMax)
            }
            plain = (0..<p.count).map { perSet[p.setOf[$0]] }
            conditioned = (0..<p.count).map { perSet[p.setOf[$0]] * amplification[p.setOf[$0]] }
        case .dgamma, .dbeta:
            let size = p.plan.affineShape?.count ?? 0
            var simple = [Double](repeating: 0, count: size), amplified = simple
            for i in 0..<p.count where size > 0 {
                let q = p.parameterOf[i]
                let weight = role == .dgamma ? 1 + abs(p.xhat[i]) : 1
                simple[q] += abs(p.dy[i]) * weight
                amplified[q] += abs(p.dy[i]) * weight * (role == .dgamma ? amplification[p.setOf[i]] : 1)
            }
            let scale = k * u * (p.spec.paramGrad == .mean ? 1 / Double(p.plan.batch) : 1)
            plain = simple.map { $0 * scale }
            conditioned = amplified.map { $0 * scale }
        }
        if format.precisionBits < accumulation.precisionBits, let expected {
            // Each result rounded once to the storage format (twice: a margin for the last operation's own rounding).
            let stored = expected.map { 2 * format.unitRoundoff * (abs($0).isFinite ? abs($0) : 0) }
            plain = zip(plain, stored).map(+)
            conditioned = zip(conditioned, stored).map(+)
        }
    }

    /// The same judge with sums assumed to run in `format` itself: what an implementation accumulating in float16
    /// may differ by.
    func accumulating(in format: DType) -> Judge {
        var judge = Judge(reference: reference, role: role, format: self.format, accumulation: format)
        judge.expected = expected
        return judge
    }

    /// The same estimates, against another pass's values for this role (a hypothesis about the user's forward).
    func against(_ values: PassValues) -> Judge {
        var other = self
        switch role {
        case .y: other.expected = values.y
        case .dx: other.expected = values.dx
        case .dgamma: other.expected = values.dgamma
        case .dbeta: other.expected = values.dbeta
        }
        return other
    }

    var shape: Shape { role == .y || role == .dx ? reference.plan.inputShape : (reference.plan.affineShape ?? reference.plan.inputShape) }

    /// |a − b|, with NaN against a number (or two different infinities) as infinitely far.
    static func distance(_ a: Double, _ b: Double) -> Double {
        if a == b || (a.isNaN && b.isNaN) { return 0 }
        let d = abs(a - b)
        return d.isNaN ? .infinity : d
    }

    /// True when `values` equal `candidate` within the conditioned estimate everywhere.
    func reproduces(_ candidate: [Double], _ values: [Double]) -> Bool {
        guard candidate.count == values.count else { return false }
        return values.indices.allSatisfy { Self.distance(candidate[$0], values[$0]) <= conditioned[$0] }
    }

    /// True when `values` equal this pass's role within the conditioned estimate.
    func agrees(_ values: [Double]) -> Bool {
        guard let expected else { return false }
        return reproduces(expected, values)
    }

    func compare(_ values: [Double], cause: DiagnosisCause? = nil, follows: DiagnosisCause? = nil, fit: TermFit? = nil,
                 fitted: Double? = nil) -> DiagnosisFinding {
        let expected = self.expected ?? []
        var worst = 0.0, worstAt = 0, beyondPlain = 0, beyond = 0, worstRatio = -1.0, worstRatioAt = 0
        for i in values.indices {
            let d = Self.distance(values[i], expected[i])
            if d > worst { worst = d; worstAt = i }
            if d > plain[i] { beyondPlain += 1 }
            if d > conditioned[i] { beyond += 1 }
            let ratio = conditioned[i] > 0 ? d / conditioned[i] : (d > 0 ? .infinity : 0)
            if ratio > worstRatio { worstRatio = ratio; worstRatioAt = i }
        }
        return DiagnosisFinding(
            role: role, verdict: beyondPlain == 0 ? .match : (beyond == 0 ? .rounding : .differs),
            maxAbsDifference: worst, worstIndex: shape.multiIndex(ofOffset: worstAt), beyondPlain: beyondPlain,
            beyondEstimate: beyond, count: values.count,
            plainEstimate: values.isEmpty ? 0 : plain[worstRatioAt], conditionedEstimate: values.isEmpty ? 0 : conditioned[worstRatioAt],
            amplification: amplification, worstRatio: max(worstRatio, 0), cause: cause, followsForward: follows, termFit: fit, fittedValue: fitted)
    }
}
