import CVectorMath

/// The fast path for statistics sets that are columns of rows (the C kernels: `CVectorMath/column_sets.c` in Float64
/// lanes for float64; `column_sets_f32.c` and the `column_tiles` files in float32 lanes for float32):
///
/// | layer                                     | block of rows             | rows (m)  | row stride | columns  |
/// |-------------------------------------------|---------------------------|-----------|------------|----------|
/// | reduce=channels within a sample (PyDLLib's GroupNorm, LayerNorm, InstanceNorm, RMSNorm): `positions` | (sample, group) | K = C/G channel rows | S | S positions |
/// | BatchNorm per element (PyDLLib's BatchNorm): `strided` | the whole input | N sample rows | C·S | C·S elements |
/// | BatchNorm with grouped channels per position (`layer norm over=n,c`): `batchGroupColumns` | group | N·K channel rows (K of each sample) | S within a sample, C·S between samples | S positions |
///
/// A block's columns run in tiles (`Layout.width`: 256 for float64, up to 4096 for float32); statistics set (block
/// b, column j) is `b·columns + j` in the statistics tensor. Every loop runs along a row; a column is reduced over its
/// rows in row order, so the results are the same bits for every thread count (the tile width depends on the shape
/// and the element type only).
///
/// Per-position statistics are half as many values as the input: forward writes only y, and the statistics (and
/// x̂) are made again from x by the same code when something reads them — backward recomputes them per tile.
enum ColumnKernels {
    static func applies(_ spec: LayerSpec) -> Bool {
        switch spec.fastKernel {
        case .positions, .strided, .batchGroupColumns: true
        default: false
        }
    }

    static let tile = Int(NORMLAB_COLUMN_TILE)

    /// What a float32 BatchNorm forward on the column kernels keeps for its backward (per element, PyDLLib's, and
    /// with grouped channels, `over=n,c`): each column's μ₀, rstd and c, so backward makes x̂ = (x − μ₀)·rstd + c from
    /// x without making the statistics again (`normlab_columns_backward_f32_kept`, `…_from_constants`). A column the
    /// kernels made in Float64 lanes has a NaN shift, and backward makes its statistics again. Only `columnForward`
    /// makes them, with the input they belong to, in the same `ForwardResult`.
    struct KeptColumnConstants<S: NormScalar>: Sendable {
        let firstMean, rstd, shift: [S]

        /// body(pointers to `kept`'s arrays), or body(nil) when there are none or they are not `count` long.
        static func withPointers<R>(_ kept: Self?, count: Int, _ body: (KeptPointers<S>?) -> R) -> R {
            guard let kept, kept.firstMean.count == count else { return body(nil) }
            return kept.firstMean.withUnsafeBufferPointer { mean in
                kept.rstd.withUnsafeBufferPointer { rstd in
                    kept.shift.withUnsafeBufferPointer { shift in
                        body(KeptPointers(firstMean: mean.baseAddress!, rstd: rstd.baseAddress!, shift: shift.baseAddress!))
                    }
                }
            }
        }
    }

    /// Whether forward keeps `KeptColumnConstants` for this layer: float32 BatchNorm whose backward reads them — sets
    /// of more than eight rows (the general loops), or of at most eight with element-wise γ per element (dγ and dβ
    /// whole per block) or γ per channel row (sums per row: the general loops); not sets of two (a backward of their
    /// own).
    static func keepsConstants<S: NormScalar>(_ spec: LayerSpec, _ plan: NormPlan, scalar: S.Type) -> Bool {
        guard S.self == Float.self, spec.computesExactly, spec.centres, spec.kind.hasRunningStatistics else { return false }
        switch spec.fastKernel {
        case .strided: return plan.batch > 8 || (spec.affine == .element && plan.batch != 2)
        case .batchGroupColumns:
            let rows = plan.batch * plan.channelsPerGroup
            return rows != 2 && (rows > 8 || spec.affine == .channel)
        default: return false
        }
    }

    /// How a plan's statistics sets lie in memory.
    struct Layout: @unchecked Sendable {
        let sets: normlab_column_sets
        /// Independent blocks of rows: (sample, group) for per-position sets, one for BatchNorm per element.
        let blocks: Int
        /// Sets per block: S positions, or the C·S elements of a sample.
        let columns: Int
        /// True where a set's rows are channel rows with γ, β per row (per-position sets within a sample, and
        /// BatchNorm with grouped channels); false for BatchNorm per element.
        let positions: Bool
        /// BatchNorm with grouped channels per position: a block is a group, its rows K channel rows of every sample.
        let batchGroups: Bool
        /// Channel rows per block: K (the rows of one sample for `batchGroups`).
        let channelRows: Int
        let groups, channels, spatial, rows: Int
        /// Where `batchGroups`' rows are (`sets.row_offsets`, `sets.row_index` point into it).
        private let rowTable: RowTable?

        final class RowTable: @unchecked Sendable {
            let offsets: UnsafeMutablePointer<Int>, index: UnsafeMutablePointer<Int>
            init(plan: NormPlan) {
                let k = plan.channelsPerGroup, count = plan.batch * k
                offsets = .allocate(capacity: count)
                index = .allocate(capacity: count)
                for n in 0..<plan.batch {
                    for r in 0..<k {
                        (offsets + n * k + r).initialize(to: (n * plan.channels + r) * plan.spatial)
                        (index + n * k + r).initialize(to: r)
                    }
                }
            }
            deinit { offsets.deallocate(); index.deallocate() }
        }

        init(_ spec: LayerSpec, _ plan: NormPlan, floatLanes: Bool, threads: Int = 1) {
            batchGroups = spec.fastKernel == .batchGroupColumns
            positions = spec.fastKernel == .positions || batchGroups
            channelRows = positions ? plan.channelsPerGroup : 1
            rows = batchGroups ? plan.batch * plan.channelsPerGroup : positions ? plan.channelsPerGroup : plan.batch
            columns = positions ? plan.spatial : plan.channels * plan.spatial
            rowTable = batchGroups ? RowTable(plan: plan) : nil
            let m = Double(rows)
            sets = normlab_column_sets(rows: rows, row_stride: columns,
                                       row_offsets: rowTable.map { UnsafePointer($0.offsets) },
                                       row_index: rowTable.map { UnsafePointer($0.index) }, m: m,
                                       divisor: spec.variance == .unbiased ? m - 1 : m, eps: spec.eps,
                                       centre: spec.centres ? 1 : 0,
                                       mean_from_sum: positions && !batchGroups ? 1 : 0)
            blocks = batchGroups ? plan.groups : positions ? plan.batch * plan.groups : 1
            if !positions {
                // With many samples (BatchNorm on (N, C)) and more than one thread, at least two tiles a thread: on
                // (4096, 768) one tile of 768 columns ran on one thread of two (forward 1.5 ms; in tiles of 128,
                // 1.1 ms — on one thread the whole rows are faster, 1.4 against 2.2).
                let share = threads > 1 && rows >= 64 ? max(64, columns / (2 * threads)) : 8 * ColumnKernels.tile
                width = min(8 * ColumnKernels.tile, 1 << (Int.bitWidth - 1 - share.leadingZeroBitCount))
            } else if floatLanes {
                let fitting = max(ColumnKernels.tile, (32768 / rows))
                let most = min(Int(NORMLAB_COLUMN_TILE_F32), 1 << (Int.bitWidth - 1 - fitting.leadingZeroBitCount))
                width = Layout.evenTiles(columns: columns, most: most)
            } else {
                width = ColumnKernels.tile
            }
            groups = plan.groups
            channels = plan.channels
            spatial = plan.spatial
            let parameterBytes = 2 * channelRows * spatial * (floatLanes ? 4 : 8)
            let elementParameters = positions && !batchGroups && spec.affine == .element
            let fitting = elementParameters ? min(8, 262_144 / max(parameterBytes, 1)) : 1
            groupsTogether = (1...max(1, fitting)).last { plan.groups % $0 == 0 } ?? 1
        }

        /// Groups whose blocks forward runs together sample after sample: per-position sets with γ and β per element
        /// go a few groups at a time over every sample, as many as keep those groups' γ and β (a sample's size in all)
        /// within about 256 KB, so they stay in L2 across the samples rather than coming from L3 for each (PyDLLib's
        /// GroupNorm forward 0.43 → 0.39 ms at (8, 64, 56, 56)); others one, sample after sample.
        let groupsTogether: Int

        /// The block forward runs i-th: sample after sample within a chunk of `groupsTogether` groups.
        func forwardBlock(_ i: Int) -> Int {
            guard groupsTogether > 1 else { return i }
            let samples = blocks / groups
            let inChunk = i % groupsTogether, rest = i / groupsTogether
            let n = rest % samples, chunk = rest / samples
            return n * groups + chunk * groupsTogether + inChunk
        }

        /// Row r's offset from its block's first element.
        func rowOffset(_ r: Int) -> Int { rowTable.map { $0.offsets[r] } ?? r * sets.row_stride }

        /// Columns per call. Per-position sets make their statistics again per call (kept on the stack): float64 a
        /// tile of 256; float32 at most as many as keep the call's rows within about 128 KB (in L2 while they are
        /// read again), up to 4096, in an even number of tiles (`evenTiles`) — the rows are then read and written in
        /// long runs (over=n,c's 16 rows in runs of about 6 KB, PyDLLib's GroupNorm's two in whole rows) rather than
        /// 1 KB. BatchNorm per element, whose statistics are arrays: 2048 — runs of 8 KB (float32), which the
        /// prefetchers follow.
        let width: Int

        var tilesPerBlock: Int { (columns + width - 1) / width }

        /// A tile width of at most `most` columns: a multiple of 16 (whole cache lines) that cuts `columns` into an
        /// even number of tiles, the fewest of the next few even counts that allows it; else `most` (one tile holds
        /// them all, or none of those counts works). Backward's units are a group's tiles: PyDLLib's LayerNorm at
        /// (8, 64, 56, 56) in tiles of 512 columns had seven (six of 512 and one of 64), split 4 : 3 over two
        /// threads, 2,048 columns on one and 1,088 on the other; now eight, seven of 400 and one of 336. The width
        /// depends on the shape only, never on the thread count: the tiles decide which columns run in Float64 lanes
        /// together, and per-channel sums are added tile by tile.
        static func evenTiles(columns: Int, most: Int) -> Int {
            let fewest = (columns + most - 1) / most
            guard fewest > 1 else { return most }
            for tiles in stride(from: (fewest + 1) / 2 * 2, through: fewest + 5, by: 2) {
                let width = ((columns + tiles - 1) / tiles + 15) / 16 * 16
                if width <= most && (columns + width - 1) / width % 2 == 0 { return width }
            }
            return most
        }

        /// The first channel of block b (its group's first channel; 0 for BatchNorm per element).
        func firstChannel(ofBlock b: Int) -> Int { positions ? (b % groups) * channelRows : 0 }

        /// The offset of block b's first element: sample n (sample 0 for `batchGroups`), first channel of group g.
        func base(ofBlock b: Int) -> Int {
            positions ? ((batchGroups ? 0 : b / groups) * channels + firstChannel(ofBlock: b)) * spatial : 0
        }

        /// The columns of tile t of a block.
        func columns(ofTile t: Int) -> Range<Int> { (t * width)..<min((t + 1) * width, columns) }
    }

    /// γ and β as the C kernels read them: per (channel, position) or per channel for the per-position sets, per
    /// element of a sample for BatchNorm per element (a channel's value repeated over its positions when γ is per
    /// channel).
    /// Borrows the caller's γ and β (valid for the caller's `withUnsafeBufferPointer`), except per-channel ones that
    /// BatchNorm per element reads per element: those are spread into buffers of its own.
    struct Parameters<S: NormScalar>: @unchecked Sendable {
        let gamma: UnsafePointer<S>?
        let beta: UnsafePointer<S>?
        let perElement: Bool
        let layout: Layout
        private let spread: Bool

        init(gamma: UnsafePointer<S>?, beta: UnsafePointer<S>?, spec: LayerSpec, plan: NormPlan, layout: Layout) {
            self.layout = layout
            spread = !layout.positions && spec.affine == .channel
            perElement = spec.affine == .element || spread
            let spread = spread
            func kept(_ values: UnsafePointer<S>?) -> UnsafePointer<S>? {
                guard let values, spec.affine != .none else { return nil }
                guard spread else { return values }
                let p = UnsafeMutablePointer<S>.allocate(capacity: plan.channels * plan.spatial)
                for c in 0..<plan.channels { (p + c * plan.spatial).initialize(repeating: values[c], count: plan.spatial) }
                return UnsafePointer(p)
            }
            self.gamma = kept(gamma)
            self.beta = kept(beta)
        }

        func deallocate() {
            guard spread else { return }
            gamma.map { UnsafeMutablePointer(mutating: $0).deallocate() }
            beta.map { UnsafeMutablePointer(mutating: $0).deallocate() }
        }

        /// γ and β for the tile of block b whose first column is `first`.
        func affine(block b: Int, first: Int) -> normlab_column_affine {
            guard let gamma else { return normlab_column_affine(gamma: nil, beta: nil, row_stride: 0, column_stride: 0) }
            let offset: Int, rowStride: Int, columnStride: Int
            if !layout.positions {
                (offset, rowStride, columnStride) = (first, 0, 1)
            } else if perElement {
                (offset, rowStride, columnStride) = (layout.firstChannel(ofBlock: b) * layout.spatial + first, layout.spatial, 1)
            } else {
                (offset, rowStride, columnStride) = (layout.firstChannel(ofBlock: b), 1, 0)
            }
            return normlab_column_affine(gamma: UnsafeRawPointer(gamma + offset),
                                         beta: beta.map { UnsafeRawPointer($0 + offset) },
                                         row_stride: rowStride, column_stride: columnStride)
        }
    }

    /// What one tile's forward writes besides y and x̂ (each may be nil), and what it found.
    struct TileOutputs {
        var mean: UnsafeMutablePointer<Double>? = nil
        var variance: UnsafeMutablePointer<Double>? = nil
        var rstd: UnsafeMutablePointer<Double>? = nil
        var sumSquares: UnsafeMutablePointer<Double>? = nil
        var zeroVariances = 0
        var finite: Int32 = 1
    }

    @inline(__always)
    static func forwardTile<S: NormScalar>(
        _ layout: Layout, x: UnsafePointer<S>, width: Int, affine: normlab_column_affine,
        xhat: UnsafeMutablePointer<S>?, y: UnsafeMutablePointer<S>?, outputs: inout TileOutputs,
        narrowed: inout normlab_narrowed_statistics?
    ) {
        var sets = layout.sets
        var zeros = 0
        if S.self == Float.self {
            func f(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
            func f(_ p: UnsafeMutablePointer<S>?) -> UnsafeMutablePointer<Float>? {
                p.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) }
            }
            if narrowed != nil {
                normlab_columns_forward_f32(&sets, f(x), width, affine, f(xhat), f(y), outputs.mean, outputs.variance,
                                            outputs.rstd, outputs.sumSquares, &zeros, &outputs.finite, &narrowed!)
            } else {
                normlab_columns_forward_f32(&sets, f(x), width, affine, f(xhat), f(y), outputs.mean, outputs.variance,
                                            outputs.rstd, outputs.sumSquares, &zeros, &outputs.finite, nil)
            }
        } else {
            func d(_ p: UnsafePointer<S>) -> UnsafePointer<Double> { UnsafeRawPointer(p).assumingMemoryBound(to: Double.self) }
            func d(_ p: UnsafeMutablePointer<S>?) -> UnsafeMutablePointer<Double>? {
                p.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Double.self) }
            }
            normlab_columns_forward_f64(&sets, d(x), width, affine, d(xhat), d(y), outputs.mean, outputs.variance,
                                        outputs.rstd, outputs.sumSquares, &zeros, &outputs.finite)
        }
        outputs.zeroVariances += zeros
    }

    /// With `kept` (float32: forward's constants from the tile's first column), the general loops take them.
    @inline(__always)
    static func backwardTile<S: NormScalar>(
        _ layout: Layout, x: UnsafePointer<S>, dy: UnsafePointer<S>, width: Int,
        mean: UnsafePointer<Double>?, rstd: UnsafePointer<Double>?, affine: normlab_column_affine,
        dx: UnsafeMutablePointer<S>, sumDy: UnsafeMutablePointer<Double>?, sumDyXhat: UnsafeMutablePointer<Double>?,
        sumsRowStride: Int, sumsColumnStride: Int, kept: KeptPointers<S>? = nil
    ) {
        var sets = layout.sets
        if S.self == Float.self {
            func f(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
            let out = UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self)
            if let kept {
                normlab_columns_backward_f32_from_constants(&sets, f(x), f(dy), width, affine, out, sumDy, sumDyXhat,
                                                            sumsRowStride, sumsColumnStride, f(kept.firstMean),
                                                            f(kept.rstd), f(kept.shift))
            } else {
                normlab_columns_backward_f32(&sets, f(x), f(dy), width, mean, rstd, affine, out, sumDy, sumDyXhat,
                                             sumsRowStride, sumsColumnStride)
            }
        } else {
            func d(_ p: UnsafePointer<S>) -> UnsafePointer<Double> { UnsafeRawPointer(p).assumingMemoryBound(to: Double.self) }
            normlab_columns_backward_f64(&sets, d(x), d(dy), width, mean, rstd, affine,
                                         UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Double.self),
                                         sumDy, sumDyXhat, sumsRowStride, sumsColumnStride)
        }
    }

    /// backwardTile for float32 sets of at most eight rows with one sum per element (BatchNorm per element): dγ and
    /// dβ written in float32 as `narrowed` says.
    @inline(__always)
    static func backwardTileNarrowedSums<S: NormScalar>(
        _ layout: Layout, x: UnsafePointer<S>, dy: UnsafePointer<S>, width: Int, affine: normlab_column_affine,
        dx: UnsafeMutablePointer<S>, narrowed: FastKernels.NarrowedParameters
    ) {
        var sets = layout.sets
        var sums = normlab_narrowed_sums(gamma: narrowed.gamma, beta: narrowed.beta, scaling: narrowed.scaling,
                                         factor: narrowed.factor)
        func f(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        normlab_columns_backward_f32_narrowed_sums(&sets, f(x), f(dy), width, affine,
                                                   UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), &sums)
    }

    /// Where `KeptColumnConstants` are, from some column on.
    struct KeptPointers<S: NormScalar>: @unchecked Sendable {
        let firstMean, rstd, shift: UnsafePointer<S>
        func advanced(by i: Int) -> KeptPointers { KeptPointers(firstMean: firstMean + i, rstd: rstd + i, shift: shift + i) }
    }

    /// backwardTileNarrowedSums from the constants forward kept (`KeptColumnConstants`, from the tile's first column).
    @inline(__always)
    static func backwardTileKept<S: NormScalar>(
        _ layout: Layout, x: UnsafePointer<S>, dy: UnsafePointer<S>, width: Int, affine: normlab_column_affine,
        dx: UnsafeMutablePointer<S>, narrowed: FastKernels.NarrowedParameters, kept: KeptPointers<S>
    ) {
        var sets = layout.sets
        var sums = normlab_narrowed_sums(gamma: narrowed.gamma, beta: narrowed.beta, scaling: narrowed.scaling,
                                         factor: narrowed.factor)
        func f(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        normlab_columns_backward_f32_kept(&sets, f(x), f(dy), width, affine,
                                          UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), &sums,
                                          f(kept.firstMean), f(kept.rstd), f(kept.shift))
    }

    /// backwardTile for float32 sets whose per-element sums are float32 arrays. Sets of more than four rows run on the
    /// general loops, which beat the blocks of eight columns from five rows on (PyDLLib's GroupNorm with 8 channels a
    /// group at (8, 64, 56, 56), one thread: 2.0–2.6 → 1.4 ms). Both make the statistics again from x: forward keeps
    /// no constants for these sets (keeping them made PyDLLib LayerNorm's backward no faster).
    @inline(__always)
    static func backwardTileFloatSums<S: NormScalar>(
        _ layout: Layout, x: UnsafePointer<S>, dy: UnsafePointer<S>, width: Int, affine: normlab_column_affine,
        dx: UnsafeMutablePointer<S>, sumDy: UnsafeMutablePointer<Float>, sumDyXhat: UnsafeMutablePointer<Float>,
        sumsRowStride: Int
    ) {
        var sets = layout.sets
        func f(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        let out = UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self)
        guard layout.rows > 4 else {
            normlab_columns_backward_f32_float_sums(&sets, f(x), f(dy), width, affine, out, sumDy, sumDyXhat, sumsRowStride)
            return
        }
        normlab_columns_backward_f32_tiles_float_sums(&sets, f(x), f(dy), width, affine, out, sumDy, sumDyXhat,
                                                      sumsRowStride)
    }
}
