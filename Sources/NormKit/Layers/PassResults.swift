#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Something a user should know about a result that is not an error: the numbers are what the convention
/// defines, but probably not what the user meant.
public enum NormWarning: Sendable, Equatable, CustomStringConvertible {
    /// Every statistics set holds one element, so x − μ = 0 everywhere: y = β and dx = 0.
    /// PyDLLib's InstanceNorm really does this (its per-position statistics over C/G = 1 channel).
    case singleElementSets(layer: String)
    /// eps = 0 and some sets have zero variance: rstd = 1/0 = ∞ and x̂ = 0·∞ = NaN there.
    case zeroVarianceWithZeroEps(sets: Int)
    /// Some inputs were NaN or ±Inf; they propagate through the statistics of their sets.
    case nonFiniteInput(count: Int)
    /// Some values of γ or β were NaN or ±Inf; they make y non-finite wherever they apply.
    case nonFiniteParameters(count: Int)
    /// A square or a sum went past the accumulation format's largest finite value in some sets.
    case overflow(quantity: String, sets: Int, format: DType)
    /// eps is not a value of the accumulation format: it rounded to another value (to 0 below its smallest subnormal).
    case epsRounded(eps: Double, to: Double, format: DType)
    /// The variance as computed came out ≤ 0 or NaN, or far from the exact one, in some sets.
    case cancellation(sets: Int, nonPositive: Int, notANumber: Int, worstRelativeError: Double, digitsLost: Double?,
                      method: VarianceMethod, format: DType)
    /// Some values of a result are NaN or ±∞ although the input was finite.
    case nonFiniteResult(name: String, count: Int, total: Int)
    /// Finite results past the storage format's largest value became ±∞ when stored.
    case storageOverflow(name: String, count: Int, format: DType)

    public var description: String {
        switch self {
        case .singleElementSets(let layer):
            "every statistics set of this \(layer) holds a single element, so x − μ = 0: y = β and dx = 0 everywhere"
        case .zeroVarianceWithZeroEps(let sets):
            "eps = 0 and \(sets) statistics set\(sets == 1 ? " has" : "s have") zero variance: rstd = 1/√0 = ∞, so x̂ there is NaN (0·∞) or ±∞ (where rounding leaves x − μ ≠ 0), and so is y; use eps > 0"
        case .nonFiniteInput(let count):
            "the input holds \(count) NaN or infinite value\(count == 1 ? "" : "s"); they make their sets' statistics NaN"
        case .nonFiniteParameters(let count):
            "γ and β hold \(count) NaN or infinite value\(count == 1 ? "" : "s"); y is not finite wherever they apply"
        case .overflow(let quantity, let sets, let format):
            "overflow: \(quantity) went past \(format)'s largest finite value \(Self.number(format.largestFinite)) in \(Self.sets(sets)), so σ² = ∞ there and x̂ = 0 (or NaN); accumulate=\(format == .float32 ? "float64" : "float32") avoids it (as PyTorch accumulates float16 in float32)"
        case .epsRounded(let eps, let rounded, let format):
            rounded == 0
                ? "eps = \(Self.number(eps)) is 0 in \(format) (its smallest positive value is \(Self.number(format.smallestSubnormal))): a constant set gets σ² + eps = 0, rstd = 1/√0 = ∞ and x̂ = 0·∞ = NaN; use an eps \(format) holds (1e-5 is \(Self.number(format.round(1e-5))) there) or accumulate=float32"
                : "eps = \(Self.number(eps)) is \(Self.number(rounded)) in \(format), the nearest value it holds (\(Self.percent(abs(rounded - eps) / eps)) off); the layer adds that"
        case .cancellation(let sets, let nonPositive, let notANumber, let worst, let digitsLost, let method, let format):
            Self.cancellationText(sets: sets, nonPositive: nonPositive, notANumber: notANumber, worst: worst,
                                  digitsLost: digitsLost, method: method, format: format)
        case .nonFiniteResult(let name, let count, let total):
            "\(count) of \(total) values of \(name) are NaN or ±∞ although the input is finite"
        case .storageOverflow(let name, let count, let format):
            "\(count) value\(count == 1 ? "" : "s") of \(name) went past \(format)'s largest finite value \(Self.number(format.largestFinite)) and became ±∞ when stored; keep \(name) in float32 (set dtype float32) or scale the input down"
        }
    }
}

extension NormWarning {
    /// Integers as they are, other values to 4 significant digits ("6.104e-05", "1.001e-05", "65504").
    public static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e7 { return String(Int(value)) }
        guard value.isFinite else { return value.isNaN ? "NaN" : value < 0 ? "-inf" : "inf" }
        var buffer = [CChar](repeating: 0, count: 32)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.4g", $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func sets(_ count: Int) -> String { "\(count) statistics set\(count == 1 ? "" : "s")" }

    static func cancellationText(sets: Int, nonPositive: Int, notANumber: Int, worst: Double, digitsLost: Double?,
                                 method: VarianceMethod, format: DType) -> String {
        var what: [String] = []
        if nonPositive > 0 { what.append("≤ 0 in \(Self.sets(nonPositive))") }
        if notANumber > 0 { what.append("NaN in \(Self.sets(notANumber))") }
        let off = worst.isFinite ? "off by up to \(Self.percent(worst))" : "wrong"
        let head = what.isEmpty ? "σ² is \(off) in \(Self.sets(sets))"
            : "σ² came out \(what.joined(separator: " and ")) (\(off) in \(Self.sets(sets)))"
        let why: String
        switch method {
        case .onepass:
            let lost = digitsLost.map { lost in
                let available = format.decimalDigits
                return lost >= available
                    ? "μ²/σ² ≈ 1e\(Int(lost.rounded())), more than the \(String(format1: available)) digits \(format) carries: every digit of σ² is lost"
                    : "μ²/σ² ≈ 1e\(Int(lost.rounded())): about \(Int(lost.rounded())) of \(format)'s \(String(format1: available)) digits are lost"
            }
            why = "E[x²] − E[x]² in \(format) cancels when |μ| ≫ σ" + (lost.map { " (\($0))" } ?? "")
                + "; method=twopass or method=welford avoids it"
        case .twopass, .welford:
            why = "\(format) sums lose the small terms"
                + (format == .float64 ? "" : "; accumulate=\(format == .float32 ? "float64" : "float32") avoids it")
        }
        return "cancellation: \(head): \(why)"
    }

    static func percent(_ fraction: Double) -> String {
        fraction >= 10 ? "\(Int(fraction.rounded()))×" : "\(Self.number((fraction * 1000).rounded() / 10))%"
    }
}

extension String {
    /// One decimal: "7.2".
    public init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}

/// Everything a forward pass computed, kept so a learner can look at it and backward can use it.
public struct ForwardResult<Scalar: NormScalar>: Sendable {
    /// The conventions the pass ran with.
    public internal(set) var spec: LayerSpec
    /// Which elements shared statistics.
    public internal(set) var plan: NormPlan
    /// train, or eval (BatchNorm with its running statistics).
    public let mode: Mode
    /// x, as the pass saw it.
    public let input: Tensor<Scalar>
    /// y = γ·x̂ + β.
    public internal(set) var output: Tensor<Scalar>
    /// x̂ = (x − μ)·rstd (RMSNorm: x·rstd). The fast kernels do not store it (it would add a tensor's worth of
    /// memory traffic to every pass); it is then recomputed here, with the forward pass's own operations.
    public var normalized: Tensor<Scalar> {
        if let storedNormalized { return storedNormalized }
        if !spec.computesExactly {
            return Tensor(uncheckedShape: input.shape, scalars: EmulatedKernels.normalized(
                spec: spec, plan: plan, x: input.scalars, means: exactMeans, rstds: exactRstds,
                format: spec.accumulate.format(storage: storage)))
        }
        // The kernels the pass ran on (eval mode keeps the layer's own).
        let (kernelSpec, kernelPlan) = mode == .train ? spec.onKernels(plan, input.shape) : (spec, plan)
        if mode == .train && ColumnKernels.applies(kernelSpec) {
            return ColumnKernels.normalized(spec: kernelSpec, plan: kernelPlan, x: input, threads: 1)
        }
        let statistics = statistics.values
        let values = [Scalar](unsafeUninitializedCapacity: input.count) { xhat, count in
            input.scalars.withUnsafeBufferPointer { x in
                FastKernels.normalized(spec: kernelSpec, plan: kernelPlan, x: x, means: statistics.exactMeans,
                                       rstds: statistics.exactRstds, into: xhat, threads: 1)
            }
            count = input.count
        }
        return Tensor(uncheckedShape: input.shape, scalars: values)
    }
    /// μ, σ², rstd: written by the pass, or made when first read (`PassStatistics`).
    let statistics: PassStatistics<Scalar>
    /// μ per statistics set (`plan.statsShape`); nil for RMSNorm, which does not centre. In BatchNorm's eval mode,
    /// the running mean.
    public var mean: Tensor<Scalar>? { statistics.mean }
    /// The variance that normalised x (biased unless the spec says unbiased); RMSNorm: the mean of x².
    /// In BatchNorm's eval mode, the running variance.
    public var variance: Tensor<Scalar> { statistics.variance }
    /// rstd = (variance + eps)^(−1/2).
    public var rstd: Tensor<Scalar> { statistics.rstd }
    /// BatchNorm in training: the unbiased batch variance that feeds the running estimate.
    public let unbiasedVariance: Tensor<Scalar>?
    /// What the user should know about the result (single-element sets, zero variance with eps = 0, non-finite values).
    public internal(set) var warnings: [NormWarning]
    /// μ and rstd as the engine used them (Float64, before rounding to the element type).
    var exactMeans: [Double] { statistics.values.exactMeans }
    var exactRstds: [Double] { statistics.values.exactRstds }
    /// x̂ when the pass stored it (the general path and BatchNorm's eval per element); nil when `normalized` recomputes it.
    let storedNormalized: Tensor<Scalar>?
    /// The format the results were rounded to for storing: the element type, or float16/bfloat16 held in Float.
    public internal(set) var storage: DType = Scalar.dtype
    /// Set when the kernel already rounded y to `storage` set by set (what it counted on the way).
    var roundedByKernel: FormatRounding.Counts? = nil
    /// y's summary numbers, when the pass was asked for them (`summarizing: true`) and its kernel could sum y set by
    /// set while each set was still in cache; nil otherwise (summarise `output` then).
    public internal(set) var outputMoments: SummaryMoments? = nil
    /// What a float32 BatchNorm forward on the column kernels (per element, `over=n,c`) kept for backward: each
    /// column's μ₀, rstd and c, made from `input` in the same pass; nil for every other layer.
    var keptColumnConstants: ColumnKernels.KeptColumnConstants<Scalar>? = nil

    init(spec: LayerSpec, plan: NormPlan, mode: Mode, input: Tensor<Scalar>, output: Tensor<Scalar>,
         statistics: PassStatistics<Scalar>, unbiasedVariance: Tensor<Scalar>?, warnings: [NormWarning],
         storedNormalized: Tensor<Scalar>?) {
        self.spec = spec
        self.plan = plan
        self.mode = mode
        self.input = input
        self.output = output
        self.statistics = statistics
        self.unbiasedVariance = unbiasedVariance
        self.warnings = warnings
        self.storedNormalized = storedNormalized
    }

    init(spec: LayerSpec, plan: NormPlan, mode: Mode, input: Tensor<Scalar>, output: Tensor<Scalar>,
         mean: Tensor<Scalar>?, variance: Tensor<Scalar>, rstd: Tensor<Scalar>, unbiasedVariance: Tensor<Scalar>?,
         warnings: [NormWarning], exactMeans: [Double], exactRstds: [Double], storedNormalized: Tensor<Scalar>?) {
        self.init(spec: spec, plan: plan, mode: mode, input: input, output: output,
                  statistics: PassStatistics(.init(mean: mean, variance: variance, rstd: rstd, exactMeans: exactMeans,
                                                   exactRstds: exactRstds)),
                  unbiasedVariance: unbiasedVariance, warnings: warnings, storedNormalized: storedNormalized)
    }

    /// x − μ, computed on demand (RMSNorm: x itself).
    public var centered: Tensor<Scalar> {
        guard mean != nil else { return input }
        var values = input.scalars
        let means = exactMeans
        let plan = plan
        values.withUnsafeMutableBufferPointer { x in
            for n in 0..<plan.batch {
                for c in 0..<plan.channels {
                    let start = (n * plan.channels + c) * plan.spatial
                    for s in 0..<plan.spatial {
                        let mu = means[plan.statIndex(sample: n, channel: c, position: s)]
                        x[start + s] = Scalar(fromDouble: x[start + s].asDouble - mu)
                    }
                }
            }
        }
        return Tensor(uncheckedShape: input.shape, scalars: values)
    }
}

/// The gradients one backward pass produced (before any accumulation).
public struct Gradients<Scalar: NormScalar>: Sendable {
    /// The gradient with respect to the input.
    public let dx: Tensor<Scalar>
    /// Reduced over the batch as `spec.paramGrad` says; nil for affine=none.
    public let dgamma: Tensor<Scalar>?
    /// Σ dy, reduced as `spec.paramGrad` says; nil for affine=none.
    public let dbeta: Tensor<Scalar>?
    /// What went wrong in low precision (results past the storage format, NaN or ±∞ from finite inputs).
    public internal(set) var warnings: [NormWarning] = []
}
