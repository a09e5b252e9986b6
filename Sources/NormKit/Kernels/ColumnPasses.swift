import CVectorMath

/// Whole passes on the column kernels: the tiles of every block, split over threads.
extension ColumnKernels {
    /// What a forward pass found, and the statistics when they were asked for.
    struct ForwardFindings {
        var zeroVariances = 0
        var finite = true
        var statistics: FastKernels.Statistics? = nil
        /// y's summary numbers, summed tile by tile while each tile was in cache (`summarizing`).
        var summary: SummaryMoments? = nil
    }

    /// y and/or x̂ (either may be nil) and, with `statistics`, μ, σ², rstd and Σ(x − μ)² per set, in Float64; with
    /// `narrowing`, in the element type too (without `statistics`, only there: each tile's Float64 values go to a
    /// scratch buffer that stays in cache).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, gamma: Tensor<S>?, beta: Tensor<S>?,
        xhat: UnsafeMutablePointer<S>?, y: UnsafeMutablePointer<S>?, statistics: Bool, summarizing: Bool = false,
        narrowing: NarrowedStatistics<S>? = nil, threads: Int
    ) -> ForwardFindings {
        let layout = Layout(spec, plan, floatLanes: S.self == Float.self, threads: threads)
        return FastKernels.withBuffer(y == nil ? nil : gamma?.scalars) { g in
            FastKernels.withBuffer(y == nil ? nil : beta?.scalars) { b in
                let parameters = Parameters(gamma: g, beta: b, spec: spec, plan: plan, layout: layout)
                defer { parameters.deallocate() }
                return forwardPass(layout: layout, parameters: parameters, x: x, xhat: xhat, y: y, statistics: statistics,
                                   summarizing: summarizing, narrowing: narrowing, threads: threads)
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forwardPass<S: NormScalar>(
        layout: Layout, parameters: Parameters<S>, x: UnsafeBufferPointer<S>, xhat: UnsafeMutablePointer<S>?,
        y: UnsafeMutablePointer<S>?, statistics: Bool, summarizing: Bool, narrowing: NarrowedStatistics<S>?, threads: Int
    ) -> ForwardFindings {
        var findings = ForwardFindings()
        if statistics { findings.statistics = FastKernels.Statistics(count: layout.blocks * layout.columns) }
        let tiles = layout.tilesPerBlock, units = layout.blocks * tiles
        let zeros = UnsafeMutablePointer<Int>.allocate(capacity: units)
        let finite = UnsafeMutablePointer<Int32>.allocate(capacity: units)
        let parts = SummaryParts(count: summarizing && y != nil ? units : 0)
        defer { zeros.deallocate(); finite.deallocate(); parts.deallocate() }
        nonisolated(unsafe) let zeroOut = zeros, finiteOut = finite, summaryParts = parts.pointer
        let rows = layout.rows
        nonisolated(unsafe) let xp = x.baseAddress!, hp = xhat, yp = y
        func run(_ all: FastKernels.Statistics.Pointers?) {
            nonisolated(unsafe) let all = all
            FastKernels.parallel(units, threads: threads) { range in
                let width = all == nil && narrowing != nil ? layout.width : 0
                // float32: the kernel writes the narrowed values itself (the scratch is then only for columns it
                // runs in Float64 lanes).
                let kernelNarrowing = width == 0 ? nil : narrowing.flatMap { $0.kernelNarrows ? $0 : nil }
                let scratch = UnsafeMutablePointer<Double>.allocate(capacity: 4 * width)
                defer { scratch.deallocate() }
                let tileStatistics = width == 0 ? nil : FastKernels.Statistics.Pointers(
                    means: scratch, variances: scratch + width, rstds: scratch + 2 * width, sumSquares: scratch + 3 * width)
                for unit in range {
                    let b = layout.forwardBlock(unit / tiles), columns = layout.columns(ofTile: unit % tiles)
                    let offset = layout.base(ofBlock: b) + columns.lowerBound
                    let at = b * layout.columns + columns.lowerBound
                    // The whole pass's arrays, or the tile's scratch (its values from 0).
                    let (stats, first) = all.map { ($0, at) } ?? (tileStatistics, 0)
                    var outputs = TileOutputs(mean: stats.map { $0.means + first }, variance: stats.map { $0.variances + first },
                                              rstd: stats.map { $0.rstds + first }, sumSquares: stats.map { $0.sumSquares + first })
                    var kernelView = kernelNarrowing?.kernelView(at: at)
                    forwardTile(layout, x: xp + offset, width: columns.count,
                                affine: parameters.affine(block: b, first: columns.lowerBound),
                                xhat: hp.map { $0 + offset }, y: yp.map { $0 + offset }, outputs: &outputs,
                                narrowed: &kernelView)
                    if kernelView == nil, let narrowing, let stats {
                        narrowing.narrow(stats, from: first, at: at, count: columns.count)
                    }
                    zeroOut[unit] = outputs.zeroVariances
                    finiteOut[unit] = outputs.finite
                    if let summaryParts, let yp {
                        let moments = SummaryParts.moments(of: UnsafePointer(yp + offset)) { run in
                            for r in 0..<rows { run(layout.rowOffset(r), columns.count) }
                        }
                        // In block order, whatever order the blocks ran in: the same total.
                        (summaryParts + b * tiles + unit % tiles).initialize(to: moments)
                    }
                }
            }
        }
        if findings.statistics != nil { findings.statistics!.withPointers { run($0) } } else { run(nil) }
        for unit in 0..<units {
            findings.zeroVariances += zeros[unit]
            findings.finite = findings.finite && finite[unit] != 0
        }
        findings.summary = parts.total
        return findings
    }

    /// dx, and dγ, dβ summed over the batch (before paramgrad=mean's division). x̂ is made from x in each tile;
    /// μ and rstd are the given ones (BatchNorm per element keeps its few) or, when nil, made again per tile — or, with
    /// `kept` (float32 BatchNorm), forward's μ₀, rstd and c.
    /// With `narrowed`, a float32 pass with element-wise γ whose dγ and dβ are made whole in cache — per-position sets
    /// of at most eight rows (float32 stages, written at their last fold) or BatchNorm per element (each tile's column
    /// sums) — writes them there in float32 and says so (true); `dgamma`, `dbeta` then hold nothing to read.
    @discardableResult
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, dy: UnsafeBufferPointer<S>,
        means: [Double]?, rstds: [Double]?, gamma: Tensor<S>?, dx: UnsafeMutableBufferPointer<S>,
        dgamma: inout [Double], dbeta: inout [Double], threads: Int, narrowed: FastKernels.NarrowedParameters? = nil,
        kept: KeptColumnConstants<S>? = nil
    ) -> Bool {
        let layout = Layout(spec, plan, floatLanes: S.self == Float.self, threads: threads)
        return FastKernels.withBuffer(gamma?.scalars) { g in
            let parameters = Parameters(gamma: g, beta: nil, spec: spec, plan: plan, layout: layout)
            defer { parameters.deallocate() }
            return backwardPass(spec: spec, plan: plan, layout: layout, parameters: parameters, x: x, dy: dy,
                                means: means, rstds: rstds, dx: dx, dgamma: &dgamma, dbeta: &dbeta, threads: threads,
                                narrowed: narrowed, keptConstants: kept)
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backwardPass<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, layout: Layout, parameters: Parameters<S>, x: UnsafeBufferPointer<S>,
        dy: UnsafeBufferPointer<S>, means: [Double]?, rstds: [Double]?, dx: UnsafeMutableBufferPointer<S>,
        dgamma: inout [Double], dbeta: inout [Double], threads: Int, narrowed: FastKernels.NarrowedParameters? = nil,
        keptConstants: KeptColumnConstants<S>? = nil
    ) -> Bool {
        nonisolated(unsafe) let xp = x.baseAddress!, gp = dy.baseAddress!, dxp = dx.baseAddress!
        let tiles = layout.tilesPerBlock
        let summed = spec.affine != .none
        if !layout.positions {
            // One block: each tile's columns are summed over the samples into per-element sums — straight into
            // dγ and dβ (the caller's, cleared here tile by tile, in cache) when γ is per element, else reduced to
            // the channels afterwards.
            let direct = spec.affine == .element && dgamma.count == layout.columns
            // float32 with somewhere to put dγ and dβ: each tile's column sums (whole in one call) go to scratch in
            // cache and are narrowed there, not through a Float64 array of a sample's size.
            let narrowing = direct && summed && S.self == Float.self ? narrowed : nil
            let kept = direct && narrowing == nil
            var perElementGamma = kept ? dgamma : [Double](repeating: 0, count: narrowing == nil ? layout.columns : 0)
            var perElementBeta = kept ? dbeta : [Double](repeating: 0, count: narrowing == nil ? layout.columns : 0)
            if kept { dgamma = []; dbeta = [] }  // the sums' arrays, uniquely held, are handed back below
            let given = (means ?? [], rstds ?? [])
            given.0.withUnsafeBufferPointer { meanBuffer in
            given.1.withUnsafeBufferPointer { rstdBuffer in
            // Forward's constants, a sample's columns.
            KeptColumnConstants.withPointers(keptConstants, count: layout.columns) { keptPointers in
            perElementGamma.withUnsafeMutableBufferPointer { pgBuffer in
            perElementBeta.withUnsafeMutableBufferPointer { pbBuffer in
                // (An empty array's buffer may still have a base address.)
                nonisolated(unsafe) let mu = means == nil ? nil : meanBuffer.baseAddress
                nonisolated(unsafe) let r = rstds == nil ? nil : rstdBuffer.baseAddress
                nonisolated(unsafe) let pg = pgBuffer.baseAddress, pb = pbBuffer.baseAddress
                FastKernels.parallel(tiles, threads: threads) { range in
                    // Sets of at most eight rows run in blocks that hold each column whole: its sums go straight to
                    // float32 dγ and dβ. Larger sets sum a tile into a scratch, narrowed after.
                    let whole = narrowing != nil && layout.rows <= 8
                    let scratch = UnsafeMutablePointer<Double>.allocate(
                        capacity: narrowing == nil || whole ? 0 : 2 * layout.width)
                    defer { scratch.deallocate() }
                    for t in range {
                        let columns = layout.columns(ofTile: t), first = columns.lowerBound
                        if whole, let narrowing, let keptPointers {
                            backwardTileKept(layout, x: xp + first, dy: gp + first, width: columns.count,
                                             affine: parameters.affine(block: 0, first: first), dx: dxp + first,
                                             narrowed: narrowing.advanced(by: first), kept: keptPointers.advanced(by: first))
                            continue
                        }
                        if whole, let narrowing {
                            backwardTileNarrowedSums(layout, x: xp + first, dy: gp + first, width: columns.count,
                                                     affine: parameters.affine(block: 0, first: first),
                                                     dx: dxp + first, narrowed: narrowing.advanced(by: first))
                            continue
                        }
                        var sumDyXhat = pg.map { $0 + first }, sumDy = pb.map { $0 + first }
                        if narrowing != nil { (sumDyXhat, sumDy) = (scratch, scratch + layout.width) }
                        if summed && direct {
                            sumDyXhat!.update(repeating: 0, count: columns.count)
                            sumDy!.update(repeating: 0, count: columns.count)
                        }
                        backwardTile(layout, x: xp + first, dy: gp + first, width: columns.count,
                                     mean: mu.map { $0 + first }, rstd: r.map { $0 + first },
                                     affine: parameters.affine(block: 0, first: first), dx: dxp + first,
                                     sumDy: summed ? sumDy : nil, sumDyXhat: summed ? sumDyXhat : nil,
                                     sumsRowStride: 0, sumsColumnStride: 1, kept: keptPointers?.advanced(by: first))
                        if let narrowing {
                            normlab_narrow_sums(narrowing.gamma + first, scratch, columns.count, narrowing.scaling,
                                                narrowing.factor)
                            normlab_narrow_sums(narrowing.beta + first, scratch + layout.width, columns.count,
                                                narrowing.scaling, narrowing.factor)
                        }
                    }
                }
            }}}}}
            if narrowing != nil { return true }
            StridedKernels.reduceToParameters(perElementGamma, perElementBeta, spec: spec, plan: plan,
                                              dgamma: &dgamma, dbeta: &dbeta)
            return false
        }
        // Per-position sets: a unit is (group, span of tiles) over every sample, so γ's sums over the batch stay in
        // the unit, in sample order (for BatchNorm with grouped channels, in the C kernel's rows). A span is as many tiles as keep its sums within about 256 KB (the whole row for
        // small groups): each sample's rows are then read in long runs, which the prefetchers follow.
        // BatchNorm with grouped channels: a block is a group over every sample already (the C kernel's rows).
        let k = layout.channelRows, groups = layout.groups, spatial = layout.spatial
        let batch = layout.batchGroups ? 1 : plan.batch
        let perElement = spec.affine == .element, perChannel = spec.affine == .channel
        let tile = layout.width
        let spanTiles = max(1, min(tiles, (16384 / k) / tile))
        let spans = (tiles + spanTiles - 1) / spanTiles
        let spanColumns = spanTiles * tile
        let units = groups * spans
        // Units a thread runs side by side, sample by sample: a group's sample of PyDLLib's InstanceNorm is 12.5 KB,
        // and unit after unit (each over every sample) read x and dy in such runs, 800 KB apart; several units of
        // consecutive groups read one longer run per sample. As many as keep their stages within about 256 KB.
        let unitBytes = 2 * k * spanColumns * (S.self == Float.self ? 4 : 8)
        let unitsTogether = max(1, min(8, 262_144 / max(unitBytes, 1)))
        // float32 keeps dγ's and dβ's per-element sums in float32 between Float64 additions: at most eight samples'
        // terms (or, BatchNorm with grouped channels, a set's rows: at most eight). With a set's rows many, a Float64
        // load, addition and store per term made most of PyDLLib LayerNorm's backward at (8, 64, 56, 56).
        let floatSums = S.self == Float.self && perElement && (layout.rows <= 8 || !layout.batchGroups)
        // float32 dγ and dβ straight from the last fold, where the caller gave somewhere to put them.
        let narrowing = floatSums ? narrowed : nil
        // Per channel: one partial sum per (unit, row), summed over the spans in order afterwards.
        var partialGamma = [Double](repeating: 0, count: perChannel ? units * k : 0)
        var partialBeta = [Double](repeating: 0, count: perChannel ? units * k : 0)
        let parameterCount = dgamma.count
        dgamma.withUnsafeMutableBufferPointer { dgBuffer in
        dbeta.withUnsafeMutableBufferPointer { dbBuffer in
        partialGamma.withUnsafeMutableBufferPointer { pgBuffer in
        partialBeta.withUnsafeMutableBufferPointer { pbBuffer in
        // Forward's constants (BatchNorm with grouped channels: a group's positions per block).
        KeptColumnConstants.withPointers(keptConstants, count: layout.blocks * layout.columns) { keptPointers in
        // Statistics forward kept (BatchNorm's, for the running statistics) are read, not made again per tile.
        (means ?? []).withUnsafeBufferPointer { meanBuffer in
        (rstds ?? []).withUnsafeBufferPointer { rstdBuffer in
            nonisolated(unsafe) let givenMean = means == nil ? nil : meanBuffer.baseAddress
            nonisolated(unsafe) let givenRstd = rstds == nil ? nil : rstdBuffer.baseAddress
            nonisolated(unsafe) let dg = dgBuffer.baseAddress, db = dbBuffer.baseAddress
            nonisolated(unsafe) let pg = pgBuffer.baseAddress, pb = pbBuffer.baseAddress
            FastKernels.parallel(units, threads: threads) { range in
                // A thread's units run a few at a time, sample by sample (`unitsTogether`); each unit keeps its own
                // sums and stage, so its operations and their order are those of the unit alone.
                let together = min(unitsTogether, max(1, range.count))
                let sumsSize = perElement ? 2 * k * spanColumns : 0, stageSize = floatSums ? 2 * k * spanColumns : 0
                let allSums = UnsafeMutablePointer<Double>.allocate(capacity: together * sumsSize)
                let allStages = UnsafeMutablePointer<Float>.allocate(capacity: together * stageSize)
                defer { allSums.deallocate(); allStages.deallocate() }
                if floatSums { allStages.initialize(repeating: 0, count: together * stageSize) }
                var folded = [Bool](repeating: false, count: together)  // float sums: `sums` holds Float64 totals yet
                for chunkStart in stride(from: range.lowerBound, to: range.upperBound, by: together) {
                    let chunk = chunkStart..<min(chunkStart + together, range.upperBound)
                    for unit in chunk where perElement && !floatSums {
                        (allSums + (unit - chunkStart) * sumsSize).update(repeating: 0, count: sumsSize)
                    }
                    for i in 0..<chunk.count { folded[i] = false }
                    for n in 0..<batch { for unit in chunk {
                        let sums = allSums + (unit - chunkStart) * sumsSize
                        let stage = allStages + (unit - chunkStart) * stageSize
                        let g = unit / spans, firstTile = (unit % spans) * spanTiles
                        let lastTile = min(firstTile + spanTiles, tiles), spanStart = firstTile * tile
                        let b = layout.batchGroups ? g : n * groups + g
                        for t in firstTile..<lastTile {
                            let columns = layout.columns(ofTile: t), first = columns.lowerBound
                            let offset = layout.base(ofBlock: b) + first
                            if floatSums {
                                let at = first - spanStart
                                backwardTileFloatSums(layout, x: xp + offset, dy: gp + offset, width: columns.count,
                                                      affine: parameters.affine(block: b, first: first), dx: dxp + offset,
                                                      sumDy: stage + at, sumDyXhat: stage + k * spanColumns + at,
                                                      sumsRowStride: spanColumns)
                                continue
                            }
                            var sumDy: UnsafeMutablePointer<Double>? = nil, sumDyXhat: UnsafeMutablePointer<Double>? = nil
                            var rowStride = 0, columnStride = 0
                            if perElement {
                                let at = first - spanStart
                                (sumDy, sumDyXhat, rowStride, columnStride) = (sums + at, sums + k * spanColumns + at, spanColumns, 1)
                            } else if perChannel, let pg, let pb {
                                (sumDy, sumDyXhat, rowStride, columnStride) = (pb + unit * k, pg + unit * k, 1, 0)
                            }
                            let at = b * layout.columns + first
                            backwardTile(layout, x: xp + offset, dy: gp + offset, width: columns.count,
                                         mean: givenMean.map { $0 + at }, rstd: givenRstd.map { $0 + at },
                                         affine: parameters.affine(block: b, first: first), dx: dxp + offset,
                                         sumDy: sumDy, sumDyXhat: sumDyXhat, sumsRowStride: rowStride,
                                         sumsColumnStride: columnStride, kept: keptPointers?.advanced(by: at))
                        }
                        // float32 sums take at most eight additions (one per sample, or a set's ≤ 8 rows), then Float64:
                        // 0 + the first eight, + the next eight…, the last addition written straight to dγ and dβ.
                        guard floatSums && ((n + 1) % 8 == 0 || n == batch - 1 || layout.batchGroups) else { continue }
                        // (normlab_fold_float_sums: also clears the stage's columns it reads; the rest stay 0.)
                        if n == batch - 1, let dg, let db, parameterCount > 0 {
                            let width = min(lastTile * tile, spatial) - spanStart
                            for row in 0..<k {
                                let target = (g * k + row) * spatial + spanStart
                                let dySums = row * spanColumns, productSums = (k + row) * spanColumns
                                if let narrowing {
                                    let earlier = folded[unit - chunkStart]
                                    normlab_fold_float_sums_narrowed(narrowing.gamma + target,
                                                                     earlier ? sums + productSums : nil,
                                                                     stage + productSums, width, narrowing.scaling,
                                                                     narrowing.factor)
                                    normlab_fold_float_sums_narrowed(narrowing.beta + target, earlier ? sums + dySums : nil,
                                                                     stage + dySums, width, narrowing.scaling,
                                                                     narrowing.factor)
                                    continue
                                }
                                let earlier = folded[unit - chunkStart]
                                normlab_fold_float_sums(dg + target, earlier ? sums + productSums : nil,
                                                        stage + productSums, width)
                                normlab_fold_float_sums(db + target, earlier ? sums + dySums : nil, stage + dySums,
                                                        width)
                            }
                        } else {
                            // Only the columns that hold sums: a row shorter than a tile leaves the rest of each of the
                            // 2k rows of `stage` unused (at 2×2 positions, 4 of 4,096: the whole width made these folds
                            // 63 % of PyDLLib GroupNorm's backward on (1024, 256, 2, 2), 48 ms).
                            let width = min(lastTile * tile, spatial) - spanStart
                            for row in 0..<(2 * k) {
                                let at = row * spanColumns
                                let earlier = folded[unit - chunkStart]
                                normlab_fold_float_sums(sums + at, earlier ? sums + at : nil, stage + at, width)
                            }
                            folded[unit - chunkStart] = true
                        }
                    }}
                    for unit in chunk where perElement && !floatSums {
                        guard let dg, let db, parameterCount > 0 else { break }
                        let sums = allSums + (unit - chunkStart) * sumsSize
                        let g = unit / spans, firstTile = (unit % spans) * spanTiles
                        let lastTile = min(firstTile + spanTiles, tiles), spanStart = firstTile * tile
                        let width = min(lastTile * tile, spatial) - spanStart
                        for row in 0..<k {
                            let target = (g * k + row) * spatial + spanStart
                            (dg + target).update(from: sums + k * spanColumns + row * spanColumns, count: width)
                            (db + target).update(from: sums + row * spanColumns, count: width)
                        }
                    }
                }
            }
        }}}}}}}
        if perChannel {
            for g in 0..<groups {
                for row in 0..<k {
                    var totalGamma = 0.0, totalBeta = 0.0
                    for span in 0..<spans {
                        totalGamma += partialGamma[(g * spans + span) * k + row]
                        totalBeta += partialBeta[(g * spans + span) * k + row]
                    }
                    dgamma[g * k + row] = totalGamma
                    dbeta[g * k + row] = totalBeta
                }
            }
        }
        return narrowing != nil && parameterCount > 0
    }

    /// x̂ of a training pass, made again from x as forward made it.
    static func normalized<S: NormScalar>(spec: LayerSpec, plan: NormPlan, x: Tensor<S>, threads: Int) -> Tensor<S> {
        let values = [S](unsafeUninitializedCapacity: x.count) { xhat, count in
            x.scalars.withUnsafeBufferPointer { xp in
                _ = forward(spec: spec, plan: plan, x: xp, gamma: nil, beta: nil, xhat: xhat.baseAddress, y: nil,
                            statistics: false, threads: threads)
            }
            count = x.count
        }
        return Tensor(uncheckedShape: x.shape, scalars: values)
    }
}
