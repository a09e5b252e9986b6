/// The normalisation layers NormKit implements. LayerNorm and InstanceNorm are GroupNorm with G = 1 and G = C;
/// all of them run on one core (`NormPlan` + `Normalization`), which differs only in which elements share
/// statistics. What a kind can do is said here, by exhaustive switches, so a new kind is a compile error in each
/// place until it says what it is, and never runs on a kernel written for another.
public enum LayerKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case groupnorm, layernorm, instancenorm, batchnorm, rmsnorm

    public var description: String { rawValue }

    /// The name as papers and PyTorch write it: "GroupNorm", "BatchNorm", ….
    public var displayName: String {
        switch self {
        case .groupnorm: "GroupNorm"
        case .layernorm: "LayerNorm"
        case .instancenorm: "InstanceNorm"
        case .batchnorm: "BatchNorm"
        case .rmsnorm: "RMSNorm"
        }
    }

    /// Statistics per channel over the batch (BatchNorm), rather than per (sample, group) within one sample.
    public var statisticsSpanBatch: Bool {
        switch self {
        case .batchnorm: true
        case .groupnorm, .layernorm, .instancenorm, .rmsnorm: false
        }
    }

    /// The channels split into groups that share statistics (every kind whose statistics stay within a sample).
    public var hasGroups: Bool { !statisticsSpanBatch }

    /// `layer KIND G`: the kind must be given its number of groups.
    public var needsGroupCount: Bool {
        switch self {
        case .groupnorm: true
        case .layernorm, .instancenorm, .batchnorm, .rmsnorm: false
        }
    }

    /// `layer KIND G` is allowed (RMSNorm's G defaults to 1).
    public var takesGroupCount: Bool {
        switch self {
        case .groupnorm, .rmsnorm: true
        case .layernorm, .instancenorm, .batchnorm: false
        }
    }

    /// Subtracts a mean before scaling (all but RMSNorm, which divides by the root mean square).
    public var centres: Bool {
        switch self {
        case .rmsnorm: false
        case .groupnorm, .layernorm, .instancenorm, .batchnorm: true
        }
    }

    /// Keeps running statistics, with train and eval modes.
    public var hasRunningStatistics: Bool {
        switch self {
        case .batchnorm: true
        case .groupnorm, .layernorm, .instancenorm, .rmsnorm: false
        }
    }

    /// The variance PyDLLib's code of this kind divides by: m − 1 for its BatchNorm, m elsewhere.
    var pydllibVariance: VarianceEstimator {
        switch self {
        case .batchnorm: .unbiased
        case .groupnorm, .layernorm, .instancenorm, .rmsnorm: .biased
        }
    }

    /// Which fast kernels may run a layer of this kind, by reduction. Listed, not inferred: a kind not listed
    /// for a kernel runs on the general path, which handles every plan.
    func fastKernel(reduce: Reduce) -> FastKernel? {
        switch (self, reduce) {
        // A set is K contiguous channel rows of one sample.
        case (.groupnorm, .group), (.layernorm, .group), (.instancenorm, .group), (.rmsnorm, .group): .rows
        // A set is one channel's row in every sample.
        case (.batchnorm, .group): .rows
        // One accumulator per position over the K channel rows of a (sample, group) block.
        case (.groupnorm, .channels), (.layernorm, .channels), (.instancenorm, .channels), (.rmsnorm, .channels): .positions
        // Per element over the batch: one accumulator per element along a sample, the samples strided.
        case (.batchnorm, .channels): .strided
        }
    }
}

/// The fast kernels: `FastKernels` (sets made of whole rows); `ColumnKernels` for the other two (sets that are
/// columns of rows: per position within a sample, per element across the batch).
enum FastKernel: Sendable {
    case rows, positions, strided
    /// BatchNorm with grouped channels per position: columns of K channel rows in every sample.
    case batchGroupColumns
}
