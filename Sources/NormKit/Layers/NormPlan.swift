/// Which elements of an (N, C, *spatial) input share one set of statistics, for one layer and convention.
///
/// Every layer reduces over sets of elements; they differ only in which. With S the product of the spatial
/// dimensions and K = C/G channels per group, the element (n, c, s) belongs to the statistics set
///
///     index(n, c, s) = n·sampleStride + (c / K)·groupStride + s·positionStride
///
/// | layer, reduce                     | K   | statistics shape   | set size m |
/// |-----------------------------------|-----|--------------------|------------|
/// | GroupNorm/RMSNorm, group          | C/G | (N, G)             | K·S        |
/// | GroupNorm/RMSNorm, channels       | C/G | (N, G, *spatial)   | K          |
/// | BatchNorm, group (per channel)    | 1   | (C)                | N·S        |
/// | BatchNorm, channels (per element) | 1   | (C, *spatial)      | N          |
/// | BatchNorm with G groups, group    | C/G | (G)                | N·K·S      |
/// | BatchNorm with G groups, channels | C/G | (G, *spatial)      | N·K        |
///
/// LayerNorm and RMSNorm with PyTorch's `normalized_shape` (`LayerSpec.normalizedShape`, D = its product) are the
/// same model on a view of the input: every index of the leading dimensions is a "sample" of one group of D
/// channels with no spatial dimensions, so a set is D contiguous elements and γ, β span the normalised dims:
///
/// | LayerNorm/RMSNorm, shape=(D…)     | D   | the leading dims   | D          |
public struct NormPlan: Sendable, Equatable {
    /// The input's shape (N, C, *spatial).
    public let inputShape: Shape
    /// N.
    public let batch: Int
    /// C.
    public let channels: Int
    /// The spatial dimensions (none for an (N, C) input).
    public let spatialDims: [Int]
    /// The product of the spatial dimensions (1 when there are none).
    public let spatial: Int
    /// G; for BatchNorm and InstanceNorm, C.
    public let groups: Int
    /// K = C/G (1 for BatchNorm and InstanceNorm).
    public let channelsPerGroup: Int
    /// The shape of μ, σ² and rstd: one value per statistics set.
    public let statsShape: Shape
    /// m: how many elements share one mean and variance.
    public let setSize: Int
    /// (C) for affine=channel, (C, *spatial) for affine=element, nil for affine=none; the normalised shape
    /// under `shape=`.
    public let affineShape: Shape?
    /// PyTorch's normalized_shape (the last dims) when the layer was given one; then `batch` is the product of the
    /// leading dims, `channels` the product of these, and there are no spatial dims.
    public let normalizedShape: [Int]?

    let sampleStride: Int
    let groupStride: Int
    let positionStride: Int

    /// The most spatial dimensions an input may have.
    public static let maxSpatialDims = 5

    /// The sets of a layer for an input; throws when the input's rank or channels do not fit the layer.
    public init(spec: LayerSpec, inputShape: Shape) throws(NormError) {
        let dims = inputShape.dims
        if let normalized = spec.normalizedShape {
            guard dims.count >= normalized.count, Array(dims.suffix(normalized.count)) == normalized else {
                // PyTorch's own words for this mistake.
                throw NormError.mismatch("Given normalized_shape=\(Shape.format(normalized)), expected input with shape (*, \(normalized.map(String.init).joined(separator: ", "))), but got input of shape \(inputShape)")
            }
            let leading = Array(dims.dropLast(normalized.count))
            let d = normalized.reduce(1, *)
            self.inputShape = inputShape
            normalizedShape = normalized
            batch = leading.reduce(1, *)
            channels = d
            spatialDims = []
            spatial = 1
            groups = 1
            channelsPerGroup = d
            statsShape = Shape(derivedFrom: leading.isEmpty ? [1] : leading)
            setSize = d
            (sampleStride, groupStride, positionStride) = (1, 1, 0)
            affineShape = spec.affine == .none ? nil : Shape(derivedFrom: normalized)
            return
        }
        normalizedShape = nil
        guard dims.count >= 2 else {
            throw NormError.mismatch("\(spec.kind.displayName) needs an input of shape (N, C, *spatial) with rank ≥ 2; got \(inputShape)")
        }
        guard dims.count <= 2 + NormPlan.maxSpatialDims else {
            throw NormError.mismatch("\(spec.kind.displayName) takes at most \(NormPlan.maxSpatialDims) spatial dimensions; got \(dims.count - 2) in \(inputShape)")
        }
        let n = dims[0], c = dims[1]
        let spatialDims = Array(dims.dropFirst(2))
        let s = spatialDims.reduce(1, *)
        let g = try spec.resolvedGroups(channels: c)
        let k = c / g

        self.inputShape = inputShape
        batch = n
        channels = c
        self.spatialDims = spatialDims
        spatial = s
        groups = g
        channelsPerGroup = k

        switch (spec.kind.statisticsSpanBatch, spec.reduce) {
        case (false, .group):
            statsShape = Shape(derivedFrom: [n, g])
            setSize = k * s
            (sampleStride, groupStride, positionStride) = (g, 1, 0)
        case (false, .channels):
            statsShape = Shape(derivedFrom: [n, g] + spatialDims)
            setSize = k
            (sampleStride, groupStride, positionStride) = (g * s, s, 1)
        case (true, .group):
            statsShape = Shape(derivedFrom: [g])
            setSize = n * k * s
            (sampleStride, groupStride, positionStride) = (0, 1, 0)
        case (true, .channels):
            statsShape = Shape(derivedFrom: [g] + spatialDims)
            setSize = n * k
            (sampleStride, groupStride, positionStride) = (0, s, 1)
        }
        switch spec.affine {
        case .none: affineShape = nil
        case .channel: affineShape = Shape(derivedFrom: [c])
        case .element: affineShape = Shape(derivedFrom: [c] + spatialDims)
        }
    }

    /// The per-sample shape (C, *spatial) the layer is locked to once it has seen an input; the normalised
    /// shape under `shape=` (the leading dims may change from input to input, as in PyTorch).
    public var sampleShape: [Int] { normalizedShape ?? ([channels] + spatialDims) }

    /// The statistics set that the element (n, c, s) belongs to.
    @inline(__always)
    public func statIndex(sample n: Int, channel c: Int, position s: Int) -> Int {
        n * sampleStride + (c / channelsPerGroup) * groupStride + s * positionStride
    }

    /// The flat offsets of the elements that share the statistics set `stat`, in row-major order.
    public func memberOffsets(ofStat stat: Int) -> [Int] {
        var offsets: [Int] = []
        for n in 0..<batch {
            for c in 0..<channels {
                let base = statIndex(sample: n, channel: c, position: 0)
                let channelStart = (n * channels + c) * spatial
                if positionStride == 0 {
                    if base == stat { offsets.append(contentsOf: channelStart..<(channelStart + spatial)) }
                } else {
                    let s = stat - base
                    if s >= 0 && s < spatial { offsets.append(channelStart + s) }
                }
            }
        }
        return offsets
    }

    /// The channels that form group `g` (GroupNorm's view of the channel axis).
    public func channels(ofGroup g: Int) -> Range<Int> {
        (g * channelsPerGroup)..<((g + 1) * channelsPerGroup)
    }
}
