import CVectorMath
import Dispatch

/// The fast path for layers whose statistics sets are made of whole (sample, channel) rows of S contiguous
/// elements: every (sample, group) of GroupNorm, LayerNorm, InstanceNorm and RMSNorm under reduce=group (K rows),
/// and every channel of BatchNorm (N rows). Work is split over the sets; each set is reduced by one thread in a
/// fixed order, and per-channel parameter gradients are summed over the batch in sample order, so the results are
/// bit-identical for every thread count.
enum FastKernels {
    /// GroupNorm-like layers with reduce=group (a set is K contiguous channel rows of one sample) and BatchNorm
    /// per channel with channel-wise γ, β (a set is one channel's row in every sample).
    static func applies(_ spec: LayerSpec, _ plan: NormPlan) -> Bool {
        spec.fastKernel == .rows
    }

    /// Where the rows of a statistics set lie: every row is `spatial` contiguous elements of one (sample, channel).
    struct Rows: Sendable {
        let batchNorm: Bool
        let count: Int
        let channels: Int
        let spatial: Int
        let groups: Int
        let channelsPerGroup: Int

        init(_ spec: LayerSpec, _ plan: NormPlan) {
            batchNorm = spec.kind.statisticsSpanBatch
            // BatchNorm: N rows per set, or N·K with its channels in groups (K rows of each sample, sample by sample).
            count = batchNorm ? plan.batch * plan.channelsPerGroup : plan.channelsPerGroup
            channels = plan.channels
            spatial = plan.spatial
            groups = plan.groups
            channelsPerGroup = plan.channelsPerGroup
        }

        /// The set's elements as contiguous runs: one run of K·S for a GroupNorm set, N (N·K) runs of S for BatchNorm.
        @inline(__always) func forEachRun(_ set: Int, _ body: (_ offset: Int, _ count: Int) -> Void) {
            let located = locate(set)
            if batchNorm {
                for row in 0..<count { body(located.offset(row), spatial) }
            } else {
                body(located.offset(0), count * spatial)
            }
        }

        /// Where a set's rows are (first offset, and the steps from row to row), with one division per set rather
        /// than per row — except for BatchNorm with grouped channels, whose K rows of a sample are contiguous and
        /// whose samples are a sample apart (`perSample` = K, `sampleJump` = C·S).
        struct Located {
            let first: Int, rowStride: Int
            let channel0: Int, channelStep: Int
            let sample0: Int, sampleStep: Int
            var perSample = 1, sampleJump = 0
            @inline(__always) func offset(_ row: Int) -> Int {
                perSample == 1 ? first + row * rowStride : first + (row / perSample) * sampleJump + (row % perSample) * rowStride
            }
            @inline(__always) func channel(_ row: Int) -> Int {
                perSample == 1 ? channel0 + row * channelStep : channel0 + row % perSample
            }
            @inline(__always) func sample(_ row: Int) -> Int { perSample == 1 ? sample0 + row * sampleStep : row / perSample }
        }

        @inline(__always) func locate(_ set: Int) -> Located {
            if batchNorm && channelsPerGroup > 1 {
                return Located(first: set * channelsPerGroup * spatial, rowStride: spatial, channel0: set * channelsPerGroup,
                               channelStep: 1, sample0: 0, sampleStep: 0, perSample: channelsPerGroup,
                               sampleJump: channels * spatial)
            }
            if batchNorm {
                return Located(first: set * spatial, rowStride: channels * spatial, channel0: set, channelStep: 0,
                               sample0: 0, sampleStep: 1)
            }
            let n = set / groups, c0 = (set - n * groups) * channelsPerGroup
            return Located(first: (n * channels + c0) * spatial, rowStride: spatial, channel0: c0, channelStep: 1,
                           sample0: n, sampleStep: 0)
        }
    }

    /// Run `body` over 0..<count in up to `threads` parallel threads, as four contiguous ranges per thread: long
    /// enough for the fused passes (which stream the next set of a range while computing the current one), and
    /// short enough that a worker that wakes late takes fewer of them. Results do not depend on the split.
    static func parallel(_ count: Int, threads: Int, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        let workers = max(1, min(threads, count))
        if workers == 1 {
            body(0..<count)
            return
        }
        let chunks = min(count, 4 * workers)
        WorkerPool.shared.run(chunks: chunks, threads: workers) { chunk in
            let lower = count * chunk / chunks, upper = count * (chunk + 1) / chunks
            if lower < upper { body(lower..<upper) }
        }
    }

    /// Statistics and y: Σ(x − x₀) (fused into the previous set's normalise pass, except for the first set of a
    /// thread's range), then Σ(x − μ)², then normalise + affine. x̂ is not stored (`normalized` recomputes it on
    /// demand, backward from x).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, gamma: [S]?, beta: [S]?,
        y: UnsafeMutableBufferPointer<S>, threads: Int, rounder: RunRounder? = nil,
        summary: UnsafeMutablePointer<SummaryMoments>? = nil
    ) -> Statistics {
        let blocks = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = Double(spec.variance == .unbiased ? plan.setSize - 1 : plan.setSize)
        let centre = spec.centres
        let eps = spec.eps
        let rows = Rows(spec, plan)
        // Rows of one element (no spatial dims: LayerNorm over the last dim, (N, C) inputs) go element by element:
        // with S = 1 a channel's γ is the element's, and a call into the lane loops per element costs more than
        // the element's arithmetic.
        let singles = spec.affine == .channel && rows.spatial == 1 && !rows.batchNorm
        let elementAffine = spec.affine == .element || singles
        var stats = Statistics(count: blocks)
        // float32 runs of single-element channels go through the float32 lanes, which read γ and β as Float.
        let floatSingles = singles && S.self == Float.self
        let floatParameters = FloatParameters(gamma: gamma, beta: beta, count: floatSingles ? plan.channels : 0)
        defer { floatParameters.deallocate() }
        // Element-wise γ and β (a sample's size) are read where they are; other per-channel ones in Float64 here.
        let parameters = Parameters(gamma: gamma, beta: beta,
                                    count: spec.affine == .element || floatSingles ? 0 : plan.channels)
        defer { parameters.deallocate() }
        nonisolated(unsafe) let xp = x.baseAddress!, yp = y.baseAddress!, summaryParts = summary
        withBuffer(gamma) { gammaElements in withBuffer(beta) { betaElements in
        nonisolated(unsafe) let gammaOf = gammaElements, betaOf = betaElements
        stats.withPointers { out in
            nonisolated(unsafe) let means = out.means, vars = out.variances, rstds = out.rstds, sq = out.sumSquares
            let spatial = rows.spatial
            let shortSets = floatSingles && rounder == nil && summaryParts == nil && rows.count <= shortSet
            let shortRows = S.self == Float.self && !elementAffine && !rows.batchNorm && rounder == nil
                && summaryParts == nil && (rows.count * spatial <= shortSet || spatial < 32)
            // BatchNorm per channel on small positions: a thread's channels side by side, sample by sample.
            let shortChannelRows = S.self == Float.self && !elementAffine && rows.batchNorm && rows.channelsPerGroup == 1
                && centre && rounder == nil && summaryParts == nil && spatial < 32
            nonisolated(unsafe) let statistics = out
            parallel(blocks, threads: threads) { range in
                if shortSets {
                    shortSinglesForward(range: range, width: rows.count, groups: rows.groups, centre: centre, m: m,
                                        divisor: divisor, eps: eps, x: Lanes.cast(xp), y: Lanes.cast(yp),
                                        gamma: floatParameters.gamma, beta: floatParameters.beta, statistics: statistics)
                    return
                }
                if shortChannelRows {
                    batchNormShortRowsForward(range: range, rows: rows, m: m, divisor: divisor, eps: eps, x: Lanes.cast(xp),
                                              y: Lanes.cast(yp), gamma: parameters.gamma, beta: parameters.beta,
                                              statistics: statistics)
                    return
                }
                if shortRows {
                    shortRowsForward(range: range, rows: rows, centre: centre, m: m, divisor: divisor, eps: eps,
                                     x: Lanes.cast(xp), y: Lanes.cast(yp), gamma: parameters.gamma, beta: parameters.beta,
                                     statistics: statistics)
                    return
                }
                // μ of the current set when the previous set's normalise pass already summed it.
                var pendingMean: Double? = nil
                for block in range {
                    let here = rows.locate(block), following = rows.locate(block + 1)
                    // A float16/bfloat16 y is rounded set by set, while the set is in cache, and then summed for
                    // the summary line when it was asked for — unless the rows were summed as they were written.
                    var rowMoments: SummaryMoments? = nil
                    defer {
                        if let rounder { rows.forEachRun(block) { rounder.round(yp + $0, count: $1, set: block) } }
                        if let summaryParts {
                            (summaryParts + block).initialize(
                                to: rowMoments ?? SummaryParts.moments(of: yp) { rows.forEachRun(block, $0) })
                        }
                    }
                    var mean = 0.0
                    if centre {
                        if let pendingMean {
                            mean = pendingMean
                        } else {
                            // Shifted by the set's first element: a constant set sums to exactly 0, so μ is exactly
                            // its value and x − μ is exactly 0 there; the shift also keeps Float32 partial sums small.
                            // Row by row, in row order, as the fused pass below sums the next set.
                            let shift = xp[here.offset(0)]
                            var total = 0.0
                            if elementAffine {
                                // Run by run, as the fused pass below sums the next set (where it fuses).
                                rows.forEachRun(block) { offset, count in
                                    total += Lanes.shiftedSum(xp + offset, count: count, shift: shift)
                                }
                            } else {
                                for r in 0..<rows.count {
                                    total += Lanes.shiftedSum(xp + here.offset(r), count: spatial, shift: shift)
                                }
                            }
                            mean = shift.asDouble + total / m
                        }
                    }
                    pendingMean = nil
                    var squares = 0.0
                    rows.forEachRun(block) { offset, count in
                        squares += Lanes.centredSquares(xp + offset, count: count, mean: mean)
                    }
                    let variance = squares / divisor
                    let rstd = 1 / (variance + eps).squareRoot()
                    means[block] = mean
                    vars[block] = variance
                    rstds[block] = rstd
                    sq[block] = squares
                    // Normalise this set, summing the next set of this thread's range in the same loop.
                    // (float32 rows of one element per channel too: their sets are one run, summed as one; and
                    // float32 element-wise γ, β within float32's range, run by run as their sets are summed.)
                    let floatElement = elementAffine && !singles && S.self == Float.self && gammaOf != nil
                        && betaOf != nil && normlab_element_float_lanes_fit(mean, rstd) != 0
                    let fuse = centre && (!elementAffine || floatSingles || floatElement) && block + 1 < range.upperBound
                    let nextShift = fuse ? xp[following.offset(0)] : 0
                    var nextTotal = 0.0
                    if floatSingles {
                        let base = here.offset(0), c0 = here.channel(0)
                        let xr = UnsafeRawPointer(xp + base).assumingMemoryBound(to: Float.self)
                        let yr = UnsafeMutableRawPointer(yp + base).assumingMemoryBound(to: Float.self)
                        let g = floatParameters.gamma + c0, b = floatParameters.beta + c0
                        if fuse {
                            let next = xp + following.offset(0)
                            nextTotal = FloatKernel.applyElementwiseAndShiftedSum(
                                xr, yr, count: rows.count, mean: mean, rstd: rstd, gamma: g, beta: b,
                                next: UnsafeRawPointer(next).assumingMemoryBound(to: Float.self),
                                shift: unsafeBitCast(nextShift, to: Float.self))
                            // A float32 sum past the largest Float is made again in Float64, as `shiftedSum` does.
                            if !nextTotal.isFinite { nextTotal = Lanes.wideShiftedSum(next, count: rows.count, shift: nextShift) }
                            pendingMean = nextShift.asDouble + nextTotal / m
                        } else {
                            FloatKernel.applyElementwise(xr, yr, count: rows.count, mean: mean, rstd: rstd, gamma: g, beta: b)
                        }
                        continue
                    }
                    if singles {
                        // One contiguous run with γ, β running along it, in Float64 lanes.
                        let base = here.offset(0), c0 = here.channel(0)
                        let xr = xp + base, yr = yp + base
                        let g = UnsafePointer(parameters.gamma + c0), b = UnsafePointer(parameters.beta + c0)
                        let mv = SIMD4<Double>(repeating: mean), rv = SIMD4<Double>(repeating: rstd)
                        WideLanes.lanes(rows.count) { i in
                            let h = (WideLanes.wide4(xr + i) - mv) * rv
                            WideLanes.narrow4(h * WideLanes.get4(g + i) + WideLanes.get4(b + i), yr + i)
                        } one: { i in
                            yr[i] = S(fromDouble: (xr[i].asDouble - mean) * rstd * g[i] + b[i])
                        }
                        continue
                    }
                    if floatElement, let gammaOf, let betaOf {
                        // A set's runs (its K·S, or BatchNorm's rows) with γ, β at the run's first channel, each
                        // summing the same run of the next set.
                        let runs = rows.batchNorm ? rows.count : 1, length = rows.batchNorm ? spatial : rows.count * spatial
                        // y's summary sums made as each run is written, as the rows below do.
                        let summarizeRuns = summaryParts != nil && rounder == nil
                        if summarizeRuns { rowMoments = .empty }
                        for run in 0..<runs {
                            let base = here.offset(run), at = here.channel(run) * spatial
                            let xr = UnsafeRawPointer(xp + base).assumingMemoryBound(to: Float.self)
                            let yr = UnsafeMutableRawPointer(yp + base).assumingMemoryBound(to: Float.self)
                            let g = UnsafeRawPointer(gammaOf + at).assumingMemoryBound(to: Float.self)
                            let b = UnsafeRawPointer(betaOf + at).assumingMemoryBound(to: Float.self)
                            if summarizeRuns {
                                // The last set of a range sums its own x as "next" and drops the total.
                                let next = fuse ? xp + following.offset(run) : xp + base
                                let sum = SummaryParts.adding(to: &rowMoments, count: length) { summary in
                                    FloatKernel.applyElementwiseAndShiftedSumSummarizing(
                                        xr, yr, count: length, mean: mean, rstd: rstd, gamma: g, beta: b, next: Lanes.cast(next),
                                        shift: fuse ? unsafeBitCast(nextShift, to: Float.self) : 0, summary: summary)
                                }
                                if fuse { nextTotal += sum.isFinite ? sum : Lanes.wideShiftedSum(next, count: length, shift: nextShift) }
                                continue
                            }
                            guard fuse else {
                                FloatKernel.applyElementwise(xr, yr, count: length, mean: mean, rstd: rstd, gamma: g, beta: b)
                                continue
                            }
                            let next = xp + following.offset(run)
                            var sum = FloatKernel.applyElementwiseAndShiftedSum(
                                xr, yr, count: length, mean: mean, rstd: rstd, gamma: g, beta: b,
                                next: UnsafeRawPointer(next).assumingMemoryBound(to: Float.self),
                                shift: unsafeBitCast(nextShift, to: Float.self))
                            if !sum.isFinite { sum = Lanes.wideShiftedSum(next, count: length, shift: nextShift) }
                            nextTotal += sum
                        }
                        if fuse { pendingMean = nextShift.asDouble + nextTotal / m }
                        continue
                    }
                    // A float32 y's summary sums are made as its rows are written (`RunningSummary`), not by a pass
                    // over the set afterwards.
                    let summarizeRows = summaryParts != nil && rounder == nil && !elementAffine && S.self == Float.self
                    if summarizeRows { rowMoments = .empty }
                    for r in 0..<rows.count {
                        let c = here.channel(r)
                        let base = here.offset(r)
                        if elementAffine {
                            // γ and β run along the row: y = γ·x̂ + β as the general path computes it.
                            elementAffineRow(x: xp + base, y: yp + base, count: spatial, mean: mean, rstd: rstd,
                                             gamma: gammaOf.map { $0 + c * spatial }, beta: betaOf.map { $0 + c * spatial })
                        } else {
                            let map = AffineMap<S>(mean: mean, rstd: rstd, gamma: parameters.gamma[c],
                                                   beta: parameters.beta[c])
                            if summarizeRows {
                                // The last set of a range sums its own x as "next" and drops the total.
                                let next = fuse ? xp + following.offset(r) : xp + base
                                let total = SummaryParts.adding(to: &rowMoments, count: spatial) { summary in
                                    FloatKernel.applyAndShiftedSumSummarizing(
                                        unsafeBitCast(map, to: AffineMap<Float>.self), Lanes.cast(xp + base), Lanes.cast(yp + base),
                                        count: spatial, next: Lanes.cast(next), shift: fuse ? unsafeBitCast(nextShift, to: Float.self) : 0,
                                        summary: summary)
                                }
                                if fuse { nextTotal += total.isFinite ? total : Lanes.wideShiftedSum(next, count: spatial, shift: nextShift) }
                            } else if fuse {
                                nextTotal += Lanes.applyAndShiftedSum(map, xp + base, yp + base, count: spatial,
                                                                      next: xp + following.offset(r), shift: nextShift)
                            } else {
                                Lanes.apply(map, xp + base, yp + base, count: spatial)
                            }
                        }
                    }
                    if fuse { pendingMean = nextShift.asDouble + nextTotal / m }
                }
            }
        }
        }}
        return stats
    }

    /// x̂ = (x − μ)·rstd for every element, as the forward pass's `AffineMap` with γ = 1, β = 0.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func normalized<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double],
        into xhat: UnsafeMutableBufferPointer<S>, threads: Int
    ) {
        let rows = Rows(spec, plan)
        nonisolated(unsafe) let xp = x.baseAddress!, hp = xhat.baseAddress!
        means.withUnsafeBufferPointer { meanBuffer in
            rstds.withUnsafeBufferPointer { rstdBuffer in
                nonisolated(unsafe) let mu = meanBuffer.baseAddress!, r = rstdBuffer.baseAddress!
                parallel(plan.statsShape.count, threads: threads) { range in
                    for block in range {
                        rows.forEachRun(block) { offset, count in
                            Lanes.apply(AffineMap<S>(mean: mu[block], rstd: r[block]), xp + offset, hp + offset, count: count)
                        }
                    }
                }
            }
        }
    }

    /// dx, and dγ, dβ before the batch reduction's division, in two passes over each set, from dy and x (x̂ is
    /// recomputed, never read). With `narrowed` (float32, element-wise γ), dγ and dβ go there in float32, divided as
    /// it says, and `dgamma`, `dbeta` hold nothing to read.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double],
        rstds: [Double], gamma: [S]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double],
        dbeta: inout [Double], threads: Int, rounder: RunRounder? = nil, narrowed: NarrowedParameters? = nil
    ) {
        let blocks = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let centre = spec.centres
        let rows = Rows(spec, plan)
        let spatial = plan.spatial
        let channels = plan.channels, batch = plan.batch
        let channelAffine = spec.affine == .channel
        let elementAffine = spec.affine == .element
        // The element loops read γ where it is: ones when none was given.
        let gamma = gamma ?? (elementAffine ? [S](repeating: 1, count: channels * spatial) : nil)
        // Element-wise γ: by units of sets over the batch, or, with too few groups for the threads (LayerNorm's
        // one), the sets' sums first, then spans of channels. Both make dγ and dβ (a sample's size), each unit or
        // span clearing its own elements before its first sample, so the arrays start uninitialised.
        if elementAffine, let gamma {
            if dgamma.count != channels * spatial {
                func unset() -> [Double] { [Double](unsafeUninitializedCapacity: channels * spatial) { $1 = channels * spatial } }
                dgamma = unset()
                dbeta = unset()
            }
            means.withUnsafeBufferPointer { mu in rstds.withUnsafeBufferPointer { r in gamma.withUnsafeBufferPointer { g in
            dgamma.withUnsafeMutableBufferPointer { dg in dbeta.withUnsafeMutableBufferPointer { db in
                if let units = elementAffineUnits(rows, threads: threads) {
                    elementAffineBackward(rows: rows, units: units, batch: batch, centre: centre, m: m, divisor: divisor,
                                          dy: dy.baseAddress!, x: x.baseAddress!, means: mu.baseAddress!,
                                          rstds: r.baseAddress!, gamma: g.baseAddress!, dx: dx.baseAddress!,
                                          dgamma: dg.baseAddress!, dbeta: db.baseAddress!, threads: threads,
                                          rounder: rounder, narrowed: narrowed)
                } else {
                    elementAffineBackwardBySpans(rows: rows, batch: batch, centre: centre, m: m, divisor: divisor,
                                                 dy: dy.baseAddress!, x: x.baseAddress!, means: mu.baseAddress!,
                                                 rstds: r.baseAddress!, gamma: g.baseAddress!, dx: dx.baseAddress!,
                                                 dgamma: dg.baseAddress!, dbeta: db.baseAddress!, threads: threads,
                                                 rounder: rounder, narrowed: narrowed)
                }
            }}}}}
            return
        }
        // As in forward, rows of one element are one contiguous run per set, with γ running along it.
        if channelAffine && spatial == 1 && !rows.batchNorm {
            singleRowsBackward(plan: plan, centre: centre, m: m, divisor: divisor, dy: dy, x: x, means: means, rstds: rstds,
                               gamma: gamma, dx: dx, dgamma: &dgamma, dbeta: &dbeta, threads: threads)
            if let rounder, let base = dx.baseAddress {
                // A pass over dx after the rows, split as the rows were (each chunk counted in its own slot).
                nonisolated(unsafe) let start = base
                let count = dx.count, chunks = min(blocks, 4 * max(1, threads))
                parallel(chunks, threads: threads) { range in
                    for chunk in range {
                        let lower = count * chunk / chunks, upper = count * (chunk + 1) / chunks
                        rounder.round(start + lower, count: upper - lower, set: chunk)
                    }
                }
            }
            return
        }
        // Per-channel γ in Float64.
        let parameters = Parameters(gamma: gamma, beta: nil as [S]?, count: channels)
        defer { parameters.deallocate() }
        // Per (sample, channel) partial sums for dγ and dβ, summed over the batch afterwards in sample order.
        var partialGamma = [Double](repeating: 0, count: channelAffine ? batch * channels : 0)
        var partialBeta = [Double](repeating: 0, count: channelAffine ? batch * channels : 0)
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!
        means.withUnsafeBufferPointer { meanBuffer in
        rstds.withUnsafeBufferPointer { rstdBuffer in
        partialGamma.withUnsafeMutableBufferPointer { pgBuffer in
        partialBeta.withUnsafeMutableBufferPointer { pbBuffer in
            nonisolated(unsafe) let pg = pgBuffer.baseAddress, pb = pbBuffer.baseAddress
            nonisolated(unsafe) let meanOf = meanBuffer.baseAddress!, rstdOf = rstdBuffer.baseAddress!
            // (Rows of 32 or more stream better one by one, each row's dx making the next set's sums: InstanceNorm on
            // (256, 256, 7, 7) backward 2.4 ms so against 2.7 in batches.)
            let shortRows = S.self == Float.self && !rows.batchNorm && rounder == nil && spatial < 32
            // BatchNorm per channel on small positions: a thread's channels side by side, sample by sample.
            let shortChannelRows = S.self == Float.self && rows.batchNorm && rows.channelsPerGroup == 1 && rounder == nil
                && spatial < 32
            parallel(blocks, threads: threads) { range in
                if shortChannelRows {
                    batchNormShortRowsBackward(range: range, rows: rows, centre: centre, m: m, divisor: divisor,
                                               dy: Lanes.cast(gp), x: Lanes.cast(xp), dx: Lanes.cast(dxp), means: meanOf,
                                               rstds: rstdOf, gamma: parameters.gamma,
                                               partialGamma: channelAffine ? pg : nil, partialBeta: channelAffine ? pb : nil)
                    return
                }
                if shortRows {
                    shortRowsBackward(range: range, rows: rows, centre: centre, m: m, divisor: divisor, dy: Lanes.cast(gp),
                                      x: Lanes.cast(xp), dx: Lanes.cast(dxp), means: meanOf, rstds: rstdOf,
                                      gamma: parameters.gamma, partialGamma: channelAffine ? pg : nil,
                                      partialBeta: channelAffine ? pb : nil)
                    return
                }
                // Per row (Σ dy, Σ dy·(x − μ)) of the current set, and of the next one as the fused pass makes them.
                let rowSums = UnsafeMutablePointer<(dy: Double, dyCentred: Double)>.allocate(capacity: 2 * rows.count)
                defer { rowSums.deallocate() }
                var current = rowSums, next = rowSums + rows.count
                var haveSums = false
                for block in range {
                    let here = rows.locate(block), following = rows.locate(block + 1)
                    defer { if let rounder { rows.forEachRun(block) { rounder.round(dxp + $0, count: $1, set: block) } } }
                    let mean = meanOf[block], rstd = rstdOf[block]
                    // Σ γ·dy and Σ γ·dy·x̂ over the set.
                    var sumD = 0.0, sumDX = 0.0
                    for r in 0..<rows.count {
                        let c = here.channel(r), n = here.sample(r)
                        let base = here.offset(r)
                        let sums = haveSums ? current[r] : Lanes.gradientSums(gp + base, xp + base, count: spatial, mean: mean)
                        let gc = parameters.gamma[c]
                        sumD += gc * sums.dy
                        sumDX += gc * rstd * sums.dyCentred
                        if channelAffine, let pg, let pb {
                            pg[n * channels + c] = rstd * sums.dyCentred
                            pb[n * channels + c] = sums.dy
                        }
                    }
                    let meanTerm = centre ? sumD / m : 0
                    let projection = sumDX / divisor
                    // dx for this set, summing the next set of this thread's range in the same loop.
                    let fuse = block + 1 < range.upperBound
                    for r in 0..<rows.count {
                        let c = here.channel(r)
                        let base = here.offset(r)
                        if fuse {
                            let nextBase = following.offset(r)
                            next[r] = Lanes.gradientAndSums(gp + base, xp + base, dxp + base, count: spatial, mean: mean,
                                                            rstd: rstd, gamma: parameters.gamma[c], meanTerm: meanTerm,
                                                            projection: projection, nextDy: gp + nextBase,
                                                            nextX: xp + nextBase, nextMean: meanOf[block + 1])
                        } else {
                            Lanes.gradient(gp + base, xp + base, dxp + base, count: spatial, mean: mean, rstd: rstd,
                                           gamma: parameters.gamma[c], meanTerm: meanTerm, projection: projection)
                        }
                    }
                    haveSums = fuse
                    swap(&current, &next)
                }
            }
        }}}}
        reduceParameterGradients(plan: plan, partialGamma: partialGamma, partialBeta: partialBeta, dgamma: &dgamma,
                                 dbeta: &dbeta)
    }
}
