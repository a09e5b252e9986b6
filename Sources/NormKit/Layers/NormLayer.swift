import CVectorMath

/// A normalisation layer with its state: the per-sample shape it locked to on its first input, γ and β,
/// BatchNorm's running statistics and mode, the last forward pass, and the gradients accumulated over backward
/// calls (as PyTorch's `.grad` and PyDLLib's `+=` do) with their count.
///
/// Every mutating method either succeeds or throws leaving the layer exactly as it was.
public struct NormLayer<Scalar: NormScalar>: Sendable {
    /// The kind and conventions, fixed when the layer is made.
    public private(set) var spec: LayerSpec
    /// (C, *spatial), fixed by the first forward pass; later inputs must match it (the batch size may change).
    public private(set) var sampleShape: [Int]?
    /// Nil until set or until the first forward pass fills in ones.
    public private(set) var gamma: Tensor<Scalar>?
    /// Nil until set or until the first forward pass fills in zeros.
    public private(set) var beta: Tensor<Scalar>?
    /// BatchNorm: mean 0 and variance 1 until the first training pass updates them.
    public private(set) var runningMean: Tensor<Scalar>?
    /// BatchNorm's running variance (the unbiased batch variances, blended with momentum).
    public private(set) var runningVariance: Tensor<Scalar>?
    /// The format results are stored in: the element type, or float16/bfloat16 when Scalar is Float.
    public private(set) var storage: DType = Scalar.dtype
    /// BatchNorm starts in training mode; the other layers ignore the mode.
    public var mode: Mode = .train
    /// The last forward pass: what backward differentiates.
    public private(set) var lastForward: ForwardResult<Scalar>?
    /// dγ summed over the backward passes since the last `zeroGrad()`.
    public private(set) var gammaGrad: Tensor<Scalar>?
    /// dβ summed over the backward passes since the last `zeroGrad()`.
    public private(set) var betaGrad: Tensor<Scalar>?
    /// How many backward passes have added into `gammaGrad` and `betaGrad` since the last `zeroGrad()`.
    public private(set) var backwardCount = 0
    /// The gradients of the last backward pass alone (not accumulated).
    public private(set) var lastGradients: Gradients<Scalar>?
    /// The upstream gradient of the last backward pass, kept with the gradients it produced, so that a
    /// derivation, an export or a gradient check of this pass uses this dy and no other.
    public private(set) var lastOutputGradient: Tensor<Scalar>?

    /// A layer with these conventions; the sample shape, γ and β come with the first forward pass.
    public init(spec: LayerSpec) throws(NormError) {
        try spec.validate()
        self.spec = spec
    }

    /// True once a forward pass has fixed the sample shape.
    public var isInitialised: Bool { sampleShape != nil }

    /// Set γ. Before the first forward pass the shape is checked there (the channels are not known yet).
    public mutating func setGamma(_ value: Tensor<Scalar>) throws(NormError) {
        try checkParameter(value, name: "gamma")
        gamma = value
    }

    /// Set β, checked as `setGamma` checks γ.
    public mutating func setBeta(_ value: Tensor<Scalar>) throws(NormError) {
        guard spec.bias else { throw NormError.mismatch("this layer has no β (PyTorch's RMSNorm has a weight only)") }
        try checkParameter(value, name: "beta")
        beta = value
    }

    /// Set BatchNorm's running mean and variance (shape `plan.statsShape`: (C) per channel, (C, *spatial) per
    /// element). Before the first forward pass the shape is checked there.
    public mutating func setRunningStatistics(mean: Tensor<Scalar>, variance: Tensor<Scalar>) throws(NormError) {
        guard spec.kind.hasRunningStatistics else {
            throw NormError.argument("only batchnorm keeps running statistics")
        }
        guard mean.shape == variance.shape else {
            throw NormError.mismatch("running mean \(mean.shape) and running variance \(variance.shape) must have the same shape")
        }
        if let plan = try lockedPlan(), plan.statsShape != mean.shape {
            throw NormError.mismatch("running statistics must have shape \(plan.statsShape) for this layer; got \(mean.shape)")
        }
        runningMean = mean
        runningVariance = variance
    }

    private func checkParameter(_ value: Tensor<Scalar>, name: String) throws(NormError) {
        guard spec.affine != .none else {
            throw NormError.mismatch("this layer has affine=none, so it takes no \(name)")
        }
        if let plan = try lockedPlan() {
            try Normalization.checkAffine(value, name: name, plan: plan, spec: spec)
        }
    }

    /// The plan for the locked sample shape with batch size 1, or nil before the first input.
    private func lockedPlan() throws(NormError) -> NormPlan? {
        guard let sampleShape else { return nil }
        return try NormPlan(spec: spec, inputShape: Shape(derivedFrom: [1] + sampleShape))
    }

    /// Run the layer on `input`: in training mode BatchNorm also updates its running statistics. `summarizing` asks
    /// for y's summary numbers on the way (`ForwardResult.outputMoments`), where the kernel can make them.
    @discardableResult
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func forward(_ input: Tensor<Scalar>, threads: Int = 1,
                                 summarizing: Bool = false) throws(NormError) -> ForwardResult<Scalar> {
        let plan = try NormPlan(spec: spec, inputShape: input.shape)
        if let sampleShape, sampleShape != plan.sampleShape {
            throw NormError.mismatch("input is not the same shape as the layer's input_shape: the layer was initialised with samples of shape \(Shape.format(sampleShape)), this input's samples are \(Shape.format(plan.sampleShape))")
        }
        let gammaNow = gamma ?? plan.affineShape.map { Tensor<Scalar>.ones($0) }
        let betaNow = spec.bias ? beta ?? plan.affineShape.map { Tensor<Scalar>.zeros($0) } : nil
        var running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)? = nil
        if spec.kind.hasRunningStatistics {
            if let runningMean, runningMean.shape != plan.statsShape {
                throw NormError.mismatch("running statistics have shape \(runningMean.shape) but this input needs \(plan.statsShape)")
            }
            running = (runningMean ?? .zeros(plan.statsShape), runningVariance ?? .ones(plan.statsShape))
        }
        let result = try Normalization.forward(spec: spec, input: input, gamma: gammaNow, beta: betaNow,
                                               mode: mode, running: running, threads: threads, storage: storage,
                                               summarizing: summarizing)
        // Commit: nothing below can fail.
        if spec.kind.hasRunningStatistics, mode == .train, let running, let unbiased = result.unbiasedVariance,
           let batchMean = result.mean {
            let keep = 1 - spec.momentum
            // Kept in the format the layer sums in: float16 itself under accumulate=storage.
            let kept = spec.accumulate == .storage ? storage : Scalar.dtype
            runningMean = Self.blend(running.mean, keep: keep, batch: batchMean, momentum: spec.momentum).rounded(toFormat: kept)
            runningVariance = Self.blend(running.variance, keep: keep, batch: unbiased, momentum: spec.momentum)
                .rounded(toFormat: kept)
        } else if spec.kind.hasRunningStatistics, runningMean == nil, let running {
            runningMean = running.mean
            runningVariance = running.variance
        }
        sampleShape = plan.sampleShape
        gamma = gammaNow
        beta = betaNow
        lastForward = result
        lastGradients = nil
        lastOutputGradient = nil
        return result
    }

    /// float32 and float64 in C (vectorised), other types a plain indexed loop: called from outside NormKit this
    /// generic code is not specialised, and `zip(…).map` then looked up generic metadata per element (80 ms of a
    /// 200,000-element per-element BatchNorm step). The same operations either way.
    private static func blend(_ old: Tensor<Scalar>, keep: Double, batch: Tensor<Scalar>, momentum: Double) -> Tensor<Scalar> {
        let values = [Scalar](unsafeUninitializedCapacity: old.count) { out, count in
            old.scalars.withUnsafeBufferPointer { o in
                batch.scalars.withUnsafeBufferPointer { b in
                    let (op, bp, outp) = (UnsafeRawPointer(o.baseAddress), UnsafeRawPointer(b.baseAddress),
                                          UnsafeMutableRawPointer(out.baseAddress))
                    if Scalar.self == Float.self, let op, let bp, let outp {
                        normlab_blend_f32(op.assumingMemoryBound(to: Float.self), bp.assumingMemoryBound(to: Float.self),
                                          outp.assumingMemoryBound(to: Float.self), o.count, keep, momentum)
                    } else if Scalar.self == Double.self, let op, let bp, let outp {
                        normlab_blend_f64(op.assumingMemoryBound(to: Double.self), bp.assumingMemoryBound(to: Double.self),
                                          outp.assumingMemoryBound(to: Double.self), o.count, keep, momentum)
                    } else {
                        for i in 0..<o.count { out[i] = Scalar(fromDouble: keep * o[i].asDouble + momentum * b[i].asDouble) }
                    }
                }
            }
            count = old.count
        }
        return Tensor(uncheckedShape: old.shape, scalars: values)
    }

    /// Back-propagate `dy` through the last forward pass; dγ and dβ are added to `gammaGrad` and `betaGrad`.
    @discardableResult
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func backward(_ dy: Tensor<Scalar>, threads: Int = 1) throws(NormError) -> Gradients<Scalar> {
        guard let lastForward else {
            throw NormError.state("backward needs a forward pass first: run forward, then backward")
        }
        let gradients = try Normalization.backward(forward: lastForward, gamma: gamma, outputGradient: dy, threads: threads)
        // .grad accumulates in the parameters' own format, as PyTorch's does.
        if let dgamma = gradients.dgamma { Self.accumulate(&gammaGrad, dgamma, storage: storage) }
        if let dbeta = gradients.dbeta { Self.accumulate(&betaGrad, dbeta, storage: storage) }
        backwardCount += 1
        lastGradients = gradients
        lastOutputGradient = dy
        return gradients
    }

    /// `total` += `value` in the parameters' format: in place where the layer holds the only copy (γ and β per element
    /// are a sample's size: two new arrays per step, and their pages, otherwise), float32 and float64 in C.
    private static func accumulate(_ total: inout Tensor<Scalar>?, _ value: Tensor<Scalar>, storage: DType) {
        guard var sum = total, sum.count == value.count else {  // (counts agree: the sample shape is locked)
            total = value.rounded(toFormat: storage)
            return
        }
        total = nil  // `sum` the only reference, so the buffer is written in place
        sum.withUnsafeMutableBufferPointer { s in
            value.scalars.withUnsafeBufferPointer { v in
                let (sp, vp) = (UnsafeMutableRawPointer(s.baseAddress), UnsafeRawPointer(v.baseAddress))
                if Scalar.self == Float.self, let sp, let vp {
                    normlab_add_into_f32(sp.assumingMemoryBound(to: Float.self), vp.assumingMemoryBound(to: Float.self),
                                         v.count)
                } else if Scalar.self == Double.self, let sp, let vp {
                    normlab_add_into_f64(sp.assumingMemoryBound(to: Double.self),
                                         vp.assumingMemoryBound(to: Double.self), v.count)
                } else {
                    for i in 0..<v.count { s[i] = s[i] + v[i] }
                }
            }
        }
        total = sum.rounded(toFormat: storage)
    }

    /// Forget the accumulated parameter gradients (PyTorch's `zero_grad`).
    public mutating func zeroGrad() {
        gammaGrad = nil
        betaGrad = nil
        backwardCount = 0
    }

    /// The number of values γ and β hold, once the layer knows its sample shape.
    public var parameterCount: Int? {
        sampleShape.map { spec.parameterCount(sampleShape: $0) }
    }

    /// Under the pydllib preset, what PyDLLib's own `nparams` would report (see `LayerSpec`).
    public var pydllibReportedParameterCount: Int? {
        guard spec.preset == .pydllib, let sampleShape else { return nil }
        return spec.pydllibReportedParameterCount(sampleShape: sampleShape)
    }
}

extension NormLayer where Scalar == Float {
    /// The same layer with its tensors stored as `format` (float32, float16 or bfloat16): parameters, running
    /// statistics and accumulated gradients are rounded to it; the last forward pass is dropped.
    public func stored(as format: DType) -> NormLayer<Float> {
        precondition(format == .float32 || format.isReduced, "a Float layer stores float32, float16 or bfloat16")
        var other = self
        other.storage = format
        func round(_ t: Tensor<Float>?) -> Tensor<Float>? { t?.rounded(toFormat: format) }
        other.gamma = round(gamma)
        other.beta = round(beta)
        other.runningMean = round(runningMean)
        other.runningVariance = round(runningVariance)
        other.gammaGrad = round(gammaGrad)
        other.betaGrad = round(betaGrad)
        other.lastForward = nil
        other.lastGradients = nil
        other.lastOutputGradient = nil
        return other
    }
}

extension NormLayer {
    /// The same layer in another element type: parameters, running statistics and accumulated gradients are
    /// converted; the last forward pass is dropped (run forward again before backward).
    public func converted<Other: NormScalar>(to _: Other.Type = Other.self) -> NormLayer<Other> {
        if let same = self as? NormLayer<Other> { return same }
        var other = NormLayer<Other>(unvalidated: spec)
        other.sampleShape = sampleShape
        other.gamma = gamma?.converted()
        other.beta = beta?.converted()
        other.runningMean = runningMean?.converted()
        other.runningVariance = runningVariance?.converted()
        other.mode = mode
        other.gammaGrad = gammaGrad?.converted()
        other.betaGrad = betaGrad?.converted()
        other.backwardCount = backwardCount
        return other
    }

    init(unvalidated spec: LayerSpec) {
        self.spec = spec
    }
}
