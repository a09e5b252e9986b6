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
        }
    }
}

/// Everything a forward pass computed, kept so a learner can look at it and backward can use it.
public struct ForwardResult<Scalar: NormScalar>: Sendable {
    /// The conventions the pass ran with.
    public let spec: LayerSpec
    /// Which elements shared statistics.
    public let plan: NormPlan
    /// train, or eval (BatchNorm with its running statistics).
    public let mode: Mode
    /// x, as the pass saw it.
    public let input: Tensor<Scalar>
    /// y = γ·x̂ + β.
    public let output: Tensor<Scalar>
    /// x̂ = (x − μ)·rstd (RMSNorm: x·rstd). The fast kernels do not store it (it would add a tensor's worth of
    /// memory traffic to every pass); it is then recomputed here, with the forward pass's own operations.
    public var normalized: Tensor<Scalar> {
        if let storedNormalized { return storedNormalized }
        let values = [Scalar](unsafeUninitializedCapacity: input.count) { xhat, count in
            input.scalars.withUnsafeBufferPointer { x in
                FastKernels.normalized(spec: spec, plan: plan, x: x, means: exactMeans, rstds: exactRstds, into: xhat,
                                       threads: 1)
            }
            count = input.count
        }
        return Tensor(uncheckedShape: input.shape, scalars: values)
    }
    /// μ per statistics set (`plan.statsShape`); nil for RMSNorm, which does not centre. In BatchNorm's eval mode,
    /// the running mean.
    public let mean: Tensor<Scalar>?
    /// The variance that normalised x (biased unless the spec says unbiased); RMSNorm: the mean of x².
    /// In BatchNorm's eval mode, the running variance.
    public let variance: Tensor<Scalar>
    /// rstd = (variance + eps)^(−1/2).
    public let rstd: Tensor<Scalar>
    /// BatchNorm in training: the unbiased batch variance that feeds the running estimate.
    public let unbiasedVariance: Tensor<Scalar>?
    /// What the user should know about the result (single-element sets, zero variance with eps = 0, non-finite values).
    public internal(set) var warnings: [NormWarning]
    /// μ and rstd as the engine used them (Float64, before rounding to the element type).
    let exactMeans: [Double]
    let exactRstds: [Double]
    /// x̂ when the pass stored it (the general path and the per-position kernels); nil when `normalized` recomputes it.
    let storedNormalized: Tensor<Scalar>?

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
}
