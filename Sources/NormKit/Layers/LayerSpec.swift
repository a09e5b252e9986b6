/// Which elements share one mean and variance.
public enum Reduce: String, Sendable, CaseIterable, CustomStringConvertible {
    /// GroupNorm paper and PyTorch: per (sample, group) over the group's C/G channels and every spatial position.
    /// For BatchNorm: per channel over the batch and every spatial position.
    case group
    /// PyDLLib's code (`.sum(2)` on the (N, G, C/G, *spatial) view): per (sample, group, spatial position), over
    /// the group's C/G channels only. For BatchNorm: per element (channel and position), over the batch only.
    case channels

    public var description: String { rawValue }
}

/// The shape of γ and β.
public enum Affine: String, Sendable, CaseIterable, CustomStringConvertible {
    /// One γ and β per channel: shape (C). Paper and PyTorch.
    case channel
    /// One γ and β per element of a sample: shape (C, *spatial). PyDLLib's code.
    case element
    /// No γ or β: y = x̂.
    case none

    public var description: String { rawValue }
}

/// How dγ and dβ are reduced over the batch.
public enum ParamGrad: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The true gradient of Σ dy·y: summed over the batch (PyTorch).
    case sum
    /// The sum divided by N (PyDLLib's `.mean(axis=0)`).
    case mean

    public var description: String { rawValue }
}

/// Which variance normalises x.
public enum VarianceEstimator: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Σ(x − μ)² / m, as the paper, PyTorch and PyDLLib's GroupNorm use.
    case biased
    /// Σ(x − μ)² / (m − 1), as PyDLLib's BatchNorm uses.
    case unbiased

    public var description: String { rawValue }
}

/// How the variance (RMSNorm: the mean square) of a set is computed.
public enum VarianceMethod: String, Sendable, CaseIterable, CustomStringConvertible {
    /// μ first, then Σ(x − μ)²: the exact way, and the default.
    case twopass
    /// E[x²] − E[x]² from one pass of Σx and Σx²: fast, and cancels catastrophically when |μ| ≫ σ.
    case onepass
    /// Welford's running update: δ = x − μₖ₋₁, μₖ = μₖ₋₁ + δ/k, M₂ += δ·(x − μₖ); one pass and stable.
    case welford

    public var description: String { rawValue }
}

/// The precision sums, squares and the steps after them are computed in.
public enum Accumulation: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Float64 whatever the storage (the default; the exact path, sums pairwise-free but to 53 bits).
    case float64
    /// float32, as PyTorch's CPU and CUDA kernels accumulate float16 and bfloat16 inputs.
    case float32
    /// The tensor's own format: float16 squares and sums in float16, as the failing kernels did.
    case storage

    public var description: String { rawValue }

    /// The format arithmetic happens in for tensors stored as `storage`.
    public func format(storage: DType) -> DType {
        switch self {
        case .float64: .float64
        case .float32: .float32
        case .storage: storage
        }
    }
}

/// Named bundles of conventions.
public enum Preset: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Group Normalization paper (Wu & He 2018) and PyTorch: reduce=group, affine=channel, paramgrad=sum, eps 1e-5.
    case torch
    /// The code of PyDLLib's layers: reduce=channels, affine=element, paramgrad=mean, eps 1e-6
    /// (and, for BatchNorm, the unbiased variance).
    case pydllib

    public var description: String { rawValue }
}

/// BatchNorm's two modes: train normalises with the batch's statistics and updates the running ones, eval uses the running ones. The other layers compute the same in both.
public enum Mode: String, Sendable, CustomStringConvertible {
    case train, eval
    public var description: String { rawValue }
}

/// A layer's kind and conventions: pure configuration, no data.
public struct LayerSpec: Sendable, Equatable {
    /// Which layer.
    public var kind: LayerKind
    /// The number of groups, for GroupNorm and RMSNorm. LayerNorm is 1, InstanceNorm is C (nil). BatchNorm: nil
    /// is per channel (G = C); a number splits the channels into G groups whose statistics span the batch
    /// (`layer norm over=n,c,s groups=G`; G = 1 is one set for the whole batch) — no named layer is that.
    public var groups: Int?
    /// Which elements share one set of statistics.
    public var reduce: Reduce
    /// The shape of γ and β.
    public var affine: Affine
    /// How dγ and dβ are reduced over the batch.
    public var paramGrad: ParamGrad
    /// Which variance normalises: Σ(x − μ)² divided by m or by m − 1.
    public var variance: VarianceEstimator
    /// Added to the variance (or mean square) inside the square root.
    public var eps: Double
    /// BatchNorm's running-statistics update: running = (1 − momentum)·running + momentum·batch.
    public var momentum: Double
    /// The preset the conventions came from; options set afterwards may have changed some of them.
    public var preset: Preset
    /// PyTorch's `normalized_shape` for LayerNorm and RMSNorm: the last dims, normalised together, with γ (and β)
    /// of this shape, whatever the leading dims (`nn.LayerNorm(768)` on (B, T, 768)). Nil: the CNN form, over
    /// (C, *spatial) with γ of shape (C).
    public var normalizedShape: [Int]? = nil
    /// Whether the layer has a β (a shift after the scale). PyTorch's `nn.RMSNorm` has a weight only.
    public var bias = true
    /// eps is the machine epsilon of the element type the layer computes in (PyTorch's RMSNorm `eps=None`:
    /// `torch.finfo(x.dtype).eps`), not `eps`.
    public var epsIsMachineEpsilon = false
    /// How the variance is computed (twopass unless asked otherwise).
    public var method: VarianceMethod = .twopass
    /// The precision of the sums and of every step after them (float64 unless asked otherwise).
    public var accumulate: Accumulation = .float64

    /// True when the layer computes the exact way (two passes in Float64), the engine's fast kernels.
    public var computesExactly: Bool { method == .twopass && accumulate == .float64 }

    /// A layer with a preset's conventions. Validates `groups` as the seed does: a positive integer.
    public init(kind: LayerKind, groups: Int? = nil, preset: Preset = .torch) throws(NormError) {
        switch kind {
        case .groupnorm:
            guard let groups else {
                throw NormError.argument("groupnorm needs the number of groups, e.g. `groupnorm 32`")
            }
            guard groups > 0 else { throw NormError.argument("num_groups must be a positive integer (got \(groups))") }
        case .rmsnorm:
            if let groups, groups <= 0 { throw NormError.argument("num_groups must be a positive integer (got \(groups))") }
        case .layernorm, .instancenorm, .batchnorm:
            if groups != nil { throw NormError.argument("\(kind) takes no number of groups") }
        }
        self.kind = kind
        switch kind {
        case .groupnorm: self.groups = groups
        case .rmsnorm: self.groups = groups ?? 1
        case .layernorm: self.groups = 1
        case .instancenorm, .batchnorm: self.groups = nil
        }
        reduce = .group
        affine = .channel
        paramGrad = .sum
        variance = .biased
        eps = 1e-5
        momentum = 0.1
        self.preset = .torch
        apply(preset)
    }

    /// A LayerNorm or RMSNorm over the last dims, as PyTorch's `nn.LayerNorm(shape)` and `nn.RMSNorm(shape)`:
    /// LayerNorm with γ and β, eps 1e-5; RMSNorm with a weight only and eps the dtype's machine epsilon.
    public init(kind: LayerKind, normalizedShape: [Int]) throws(NormError) {
        guard kind == .layernorm || kind == .rmsnorm else {
            throw NormError.argument("shape= is for layernorm and rmsnorm (PyTorch's normalized_shape); \(kind) normalises the (N, C, *spatial) way")
        }
        guard !normalizedShape.isEmpty, normalizedShape.allSatisfy({ $0 > 0 }) else {
            throw NormError.argument("normalized_shape must be one or more positive sizes (got \(Shape.format(normalizedShape)))")
        }
        try self.init(kind: kind)
        self.normalizedShape = normalizedShape
        if kind == .rmsnorm {
            bias = false
            epsIsMachineEpsilon = true
        }
    }

    /// The spec a pass in `Scalar` runs with: eps resolved when it is the machine epsilon.
    public func resolved<Scalar: NormScalar>(for _: Scalar.Type) -> LayerSpec { resolved(storage: Scalar.dtype) }

    /// The spec a pass on tensors stored as `storage` runs with: eps resolved when it is the format's machine epsilon.
    public func resolved(storage: DType) -> LayerSpec {
        guard epsIsMachineEpsilon else { return self }
        var out = self
        out.eps = storage.machineEpsilon
        out.epsIsMachineEpsilon = false
        return out
    }

    /// Set every convention a preset defines.
    public mutating func apply(_ preset: Preset) {
        self.preset = preset
        switch preset {
        case .torch:
            reduce = .group
            affine = .channel
            paramGrad = .sum
            variance = .biased
            eps = 1e-5
            momentum = 0.1
        case .pydllib:
            reduce = .channels
            affine = .element
            paramGrad = .mean
            variance = kind.pydllibVariance
            eps = 1e-6
            momentum = 0.1
        }
    }

    /// Check the numeric options; the shape-dependent checks happen when an input arrives.
    public func validate() throws(NormError) {
        guard eps.isFinite, eps >= 0 else {
            throw NormError.argument("eps must be a finite number ≥ 0 (got \(eps))")
        }
        guard momentum.isFinite, momentum >= 0, momentum <= 1 else {
            throw NormError.argument("momentum must be between 0 and 1 (got \(momentum))")
        }
        if !kind.centres && variance == .unbiased {
            throw NormError.argument("rmsnorm divides the sum of squares by m; it has no unbiased variant")
        }
        if normalizedShape != nil {
            if kind != .layernorm && kind != .rmsnorm { throw NormError.argument("shape= is for layernorm and rmsnorm") }
            if reduce != .group {
                throw NormError.argument("with shape= the statistics are over the normalised dims: reduce=channels does not apply")
            }
            if affine == .element {
                throw NormError.argument("with shape= γ already has the normalised shape: affine is that (channel) or none")
            }
        }
    }

    /// The number of groups for an input with `channels` channels, or an error in the seed's words.
    public func resolvedGroups(channels: Int) throws(NormError) -> Int {
        switch kind {
        case .instancenorm: return channels
        case .batchnorm where groups == nil: return channels
        case .groupnorm, .layernorm, .rmsnorm, .batchnorm:
            let g = groups ?? 1
            // `groups` is a public var: a value set after init is checked here, never divided by.
            guard g > 0 else { throw NormError.argument("num_groups must be a positive integer (got \(g))") }
            guard channels % g == 0 else {
                throw NormError.mismatch("The number of channels must be evenly divisible by num_groups: \(channels) channels, \(g) groups")
            }
            return g
        }
    }

    /// BatchNorm whose channels are split into groups (statistics over the batch and a group's channels).
    public var groupsSpanBatch: Bool { kind.statisticsSpanBatch && groups != nil }

    /// The fast kernel family that runs this layer in training. BatchNorm with grouped channels (only `layer norm
    /// over=` builds it): the row kernels over all positions (a set is K rows of every sample), the column kernels
    /// per position.
    var fastKernel: FastKernel? {
        guard groupsSpanBatch else { return kind.fastKernel(reduce: reduce) }
        return reduce == .group ? .rows : .batchGroupColumns
    }

    /// The layer whose kernels run this one on `plan`'s input: itself, but for inputs with one position per channel,
    /// where two reductions make the same sets and one family of kernels runs them far faster. Sets per position
    /// (`reduce=channels`, PyDLLib's GroupNorm) on (N, C) or (N, C, 1, 1) are a group's channels of one sample: the rows
    /// kernels' sets (rows of one element per channel), where the column kernels took one column per call (PyDLLib's
    /// GroupNorm 32 on (4096, 768): 58–88 ms backward, against 2.7 for GroupNorm 32). BatchNorm per channel on (N, C)
    /// (nn.BatchNorm1d; (N, C, 1, 1) as (N, C)) is a column over the batch: BatchNorm per element's sets, where the rows
    /// kernels took one element per row (on (4096, 768): 107 ms backward). γ of shape (C) is per channel and per element
    /// alike.
    func onKernels(_ plan: NormPlan, _ inputShape: Shape) -> (spec: LayerSpec, plan: NormPlan) {
        if let normalized = plan.normalizedShape {
            return onChannelRows(plan, normalized) ?? (self, plan)
        }
        guard plan.spatial == 1 else { return (self, plan) }
        var spec = self
        switch fastKernel {
        case .positions:
            spec.reduce = .group
            if spec.affine == .element { spec.affine = .channel }
        case .rows where kind.statisticsSpanBatch && !groupsSpanBatch:
            spec.reduce = .channels
            if spec.affine == .channel { spec.affine = .element }
        case .rows where groupsSpanBatch, .batchGroupColumns:
            // BatchNorm over a group's channels (`layer norm over=n,c,s groups=G`, or `over=n,c` per position — the
            // same sets on one position) as BatchNorm on (N, G, K): group g a channel, its K channels a row of K
            // positions, γ per element of (G, K) (on (4096, 768): 190 and 55 ms forward + backward).
            spec.groups = nil
            spec.reduce = .group
            if spec.affine == .channel { spec.affine = .element }
        default:
            return (self, plan)
        }
        // BatchNorm's sets as (N, C) ones, so that the statistics keep the layer's shape, (C); a group's as (N, G, K).
        let shape = groupsSpanBatch ? (try? Shape([plan.batch, plan.groups, plan.channelsPerGroup])) ?? inputShape
                  : spec.reduce == .channels ? (try? Shape([plan.batch, plan.channels])) ?? inputShape : inputShape
        guard let kernelPlan = try? NormPlan(spec: spec, inputShape: shape) else { return (self, plan) }
        return (spec, kernelPlan)
    }

    /// `shape=` over several dims with sets too long to stay in cache (nn.LayerNorm([64, 56, 56]): a sample a set) as
    /// the CNN form with element-wise γ, β on (N, D₀, D₁·D₂…): the same sets and the same γ, β element for element, on
    /// the kernels that run a set as D₀ rows — where the rows of one element per channel took a set's Float64 sums per
    /// chunk (at (8, 64, 56, 56) float32 on one thread, 2.10 ms forward + backward against 1.27).
    private func onChannelRows(_ plan: NormPlan, _ normalized: [Int]) -> (spec: LayerSpec, plan: NormPlan)? {
        guard normalized.count >= 2, normalized[0] > 1, plan.setSize > FastKernels.rowsInCache else { return nil }
        var spec = self
        spec.normalizedShape = nil
        spec.groups = 1
        if spec.affine != .none { spec.affine = .element }
        guard let shape = try? Shape([plan.batch, normalized[0], plan.setSize / normalized[0]]),
              let kernelPlan = try? NormPlan(spec: spec, inputShape: shape) else { return nil }
        return (spec, kernelPlan)
    }

    /// Whether the layer centres its input (every kind but RMSNorm).
    public var centres: Bool { kind.centres }

    /// The number of values γ and β hold for a sample of shape (C, *spatial).
    public func parameterCount(sampleShape: [Int]) -> Int {
        guard let channels = sampleShape.first else { return 0 }
        let tensors = bias ? 2 : 1
        if normalizedShape != nil { return affine == .none ? 0 : tensors * sampleShape.reduce(1, *) }
        switch affine {
        case .none: return 0
        case .channel: return tensors * channels
        case .element: return tensors * sampleShape.reduce(1, *)
        }
    }

    /// What PyDLLib's own `nparams` reports for this kind: 2·C for its GroupNorm, LayerNorm and InstanceNorm even
    /// though its γ and β are element-wise; 2·C·spatial for its BatchNorm. Nil for kinds it does not have.
    public func pydllibReportedParameterCount(sampleShape: [Int]) -> Int? {
        guard let channels = sampleShape.first else { return nil }
        switch kind {
        case .groupnorm, .layernorm, .instancenorm: return 2 * channels
        case .batchnorm: return 2 * sampleShape.reduce(1, *)
        case .rmsnorm: return nil
        }
    }
}
