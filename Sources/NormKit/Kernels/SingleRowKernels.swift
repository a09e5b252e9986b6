import CVectorMath

/// Rows of one element per channel — LayerNorm and RMSNorm over the last dims, GroupNorm on (N, C) inputs — where a
/// statistics set is one contiguous run with γ running along it. Forward runs in `FastKernels.forward` (its
/// `singles` branch); their backward is here, fused with dγ and dβ.
extension FastKernels {
    /// Backward for rows of one element (LayerNorm and RMSNorm over the last dims, GroupNorm on (N, C)): per set —
    /// K contiguous elements, set b at offset b·K, its γ at channel (b mod G)·K — Σ γ·dy and Σ γ·dy·x̂, then dx,
    /// accumulating dy·x̂ and dy into per-chunk dγ, dβ in the same pass (float32: through stages of at most eight
    /// sets' terms). The sets are split into 16 fixed chunks (not per thread), summed in chunk order: the same bits for
    /// any thread count.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func singleRowsBackward<S: NormScalar>(
        plan: NormPlan, centre: Bool, m: Double, divisor: Double, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>,
        means: [Double], rstds: [Double], gamma elementGamma: [S]?, dx: UnsafeMutableBufferPointer<S>,
        dgamma: inout [Double], dbeta: inout [Double], threads: Int
    ) {
        let sets = plan.batch * plan.groups, width = plan.channelsPerGroup, groups = plan.groups
        let channels = plan.channels
        let chunks = min(sets, 16)
        guard chunks > 0 else { return }
        // γ as the loops read it (ones when none was given): Float in the float32 lanes (ElementLanes), else Float64.
        let floatGamma = UnsafeMutablePointer<Float>.allocate(capacity: S.self == Float.self ? channels : 1)
        defer { floatGamma.deallocate() }
        if S.self == Float.self { FloatParameters.fill(floatGamma, from: elementGamma, count: channels, missing: 1) }
        nonisolated(unsafe) let floatGammaBase = UnsafePointer(floatGamma)
        let parameters = Parameters(gamma: elementGamma, beta: nil as [S]?, count: S.self == Float.self ? 0 : channels)
        defer { parameters.deallocate() }
        let gamma = parameters.gamma
        nonisolated(unsafe) let gammaBase = gamma
        if width > rowsInCache {
            longSetsBackward(sets: sets, width: width, groups: groups, chunks: chunks, centre: centre, m: m,
                             divisor: divisor, dy: dy, x: x, means: means, rstds: rstds, gamma: gamma,
                             floatGamma: floatGamma, dx: dx, dgamma: &dgamma, dbeta: &dbeta, threads: threads)
            return
        }
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: 2 * chunks * channels)
        defer { partial.deallocate() }
        partial.initialize(repeating: 0, count: 2 * chunks * channels)
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!, pp = partial
        // float32: each element's dy·x̂ and dy go into float32 stages for at most eight sets of a chunk, then into the
        // chunk's Float64 sums (as element-wise γ over a batch does): a Float64 load, add and store per term made
        // about half of this backward's time.
        let stageSize = S.self == Float.self ? 2 * chunks * channels : 0
        let stages = UnsafeMutablePointer<Float>.allocate(capacity: max(stageSize, 1))
        defer { stages.deallocate() }
        stages.initialize(repeating: 0, count: max(stageSize, 1))
        nonisolated(unsafe) let stageBase = stages
        means.withUnsafeBufferPointer { meanBuffer in
        rstds.withUnsafeBufferPointer { rstdBuffer in
            nonisolated(unsafe) let meanOf = meanBuffer.baseAddress!, rstdOf = rstdBuffer.baseAddress!
            WorkerPool.shared.run(chunks: chunks, threads: threads) { chunk in
                let range = (sets * chunk / chunks)..<(sets * (chunk + 1) / chunks)
                // float32: the next set's sums, made while this set's dx was (the same bits as made alone).
                var pending: (dy: Double, dyXhat: Double)? = nil
                let stageGamma = stageBase + 2 * chunk * channels, stageBeta = stageGamma + channels
                // Each group's stages hold the terms of the chunk's sets of that group since its last fold.
                func fold(group: Int) {
                    let c0 = group * width
                    let pg = pp + 2 * chunk * channels + c0, pb = pp + (2 * chunk + 1) * channels + c0
                    normlab_fold_float_sums(pg, pg, stageGamma + c0, width)
                    normlab_fold_float_sums(pb, pb, stageBeta + c0, width)
                }
                if S.self == Float.self && width <= rowsInCache {
                    // Batches of eight sets of every group (where the stages fold), each in one lane call, then every
                    // group's stages folded (one with no terms in the batch adds 0, which changes no sum: none is −0).
                    // Each set's sums, then its dx from cache, beat the loop below (dx with the next set's sums) for
                    // sets of any length that stay in cache: LayerNorm shape=768 on (4096, 768) 1.87 → 1.58 ms.
                    let pg = pp + 2 * chunk * channels, pb = pp + (2 * chunk + 1) * channels
                    var start = range.lowerBound
                    while start < range.upperBound {
                        let batch = min(8 * groups, range.upperBound - start), at = start * width
                        FloatKernel.gradientSets(Lanes.cast(gp + at), Lanes.cast(xp + at), Lanes.cast(dxp + at), count: width,
                                                 sets: batch, means: meanOf + start, rstds: rstdOf + start,
                                                 gamma: floatGammaBase, stageGamma: stageGamma, stageBeta: stageBeta,
                                                 firstGroup: start % groups, groups: groups, m: m, divisor: divisor,
                                                 centre: centre)
                        normlab_fold_float_sums(pg, pg, stageGamma, channels)
                        normlab_fold_float_sums(pb, pb, stageBeta, channels)
                        start += batch
                    }
                    return
                }
                for set in range {
                    let c0 = (set % groups) * width
                    let pg = pp + 2 * chunk * channels + c0, pb = pp + (2 * chunk + 1) * channels + c0, gc = gammaBase + c0
                    let mean = meanOf[set], rstd = rstdOf[set]
                    let dyRun = gp + set * width, xRun = xp + set * width, dxRun = dxp + set * width
                    if S.self == Float.self {
                        let dyF = UnsafeRawPointer(dyRun).assumingMemoryBound(to: Float.self)
                        let xF = UnsafeRawPointer(xRun).assumingMemoryBound(to: Float.self)
                        let gF = floatGammaBase + c0
                        let sums = pending
                            ?? FloatKernel.elementwiseGradientSums(dyF, xF, gamma: gF, count: width, mean: mean, rstd: rstd)
                        let dxF = UnsafeMutableRawPointer(dxRun).assumingMemoryBound(to: Float.self)
                        let meanTerm = centre ? sums.dy / m : 0, projection = sums.dyXhat / divisor
                        let staged = (set - range.lowerBound) / groups  // sets of this group before this one in the chunk
                        if set + 1 < range.upperBound {
                            let next = set + 1
                            pending = FloatKernel.elementwiseGradientAndSumsStaged(
                                dyF, xF, dxF, gamma: gF, count: width, mean: mean, rstd: rstd, meanTerm: meanTerm,
                                projection: projection, stageGamma: stageGamma + c0, stageBeta: stageBeta + c0,
                                nextDy: UnsafeRawPointer(gp + next * width).assumingMemoryBound(to: Float.self),
                                nextX: UnsafeRawPointer(xp + next * width).assumingMemoryBound(to: Float.self),
                                nextGamma: floatGammaBase + (next % groups) * width, nextMean: meanOf[next],
                                nextRstd: rstdOf[next])
                        } else {
                            FloatKernel.elementwiseGradientStaged(dyF, xF, dxF, gamma: gF, count: width, mean: mean,
                                                                  rstd: rstd, meanTerm: meanTerm, projection: projection,
                                                                  stageGamma: stageGamma + c0, stageBeta: stageBeta + c0)
                        }
                        if staged % 8 == 7 { fold(group: set % groups) }
                        continue
                    }
                    let sums = wideSetSums(dyRun, xRun, gamma: gc, count: width, mean: mean, rstd: rstd)
                    wideSetGradient(dyRun, xRun, dxRun, gamma: gc, count: width, mean: mean, rstd: rstd,
                                    meanTerm: centre ? sums.dy / m : 0, projection: sums.dyXhat / divisor,
                                    partialGamma: pg, partialBeta: pb)
                }
                // The chunk's last sets of each group: their stages still hold fewer than eight sets' terms.
                guard S.self == Float.self else { return }
                for set in range.suffix(groups) where (set - range.lowerBound) / groups % 8 != 7 { fold(group: set % groups) }
            }
        }}
        for c in 0..<channels {
            var totalG = 0.0, totalB = 0.0
            for chunk in 0..<chunks {
                totalG += partial[2 * chunk * channels + c]
                totalB += partial[(2 * chunk + 1) * channels + c]
            }
            dgamma[c] = totalG
            dbeta[c] = totalB
        }
    }

    /// Sets longer than `rowsInCache` (LayerNorm shape=(C, H, W): a few sets, each a sample's size): each set's sums
    /// first, in parallel over the sets; then dx, dγ and dβ in parallel over spans of the sets' width, each span running
    /// every set. A span repeats the arithmetic of `singleRowsBackward`'s chunks — the same chunks of sets, float32
    /// stages folded after every eighth set of a group within a chunk, each chunk's Float64 partial sums added in chunk
    /// order — so every value has the same bits, without Float64 partial sums of a sample's size per chunk: on
    /// (8, 64, 56, 56) those were 25.7 MB to clear, fold into and add up again, 6.7 ms of backward against 1.2 for
    /// the same layer as `layernorm affine=element`.
    static func longSetsBackward<S: NormScalar>(
        sets: Int, width: Int, groups: Int, chunks: Int, centre: Bool, m: Double, divisor: Double,
        dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double],
        gamma: UnsafePointer<Double>, floatGamma: UnsafePointer<Float>, dx: UnsafeMutableBufferPointer<S>,
        dgamma: inout [Double], dbeta: inout [Double], threads: Int
    ) {
        let terms = UnsafeMutablePointer<(meanTerm: Double, projection: Double)>.allocate(capacity: sets)
        defer { terms.deallocate() }
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!, termsOf = terms
        nonisolated(unsafe) let gammaBase = gamma, floatGammaBase = floatGamma
        means.withUnsafeBufferPointer { meanBuffer in rstds.withUnsafeBufferPointer { rstdBuffer in
        dgamma.withUnsafeMutableBufferPointer { dgBuffer in dbeta.withUnsafeMutableBufferPointer { dbBuffer in
            nonisolated(unsafe) let meanOf = meanBuffer.baseAddress!, rstdOf = rstdBuffer.baseAddress!
            nonisolated(unsafe) let dg = dgBuffer.baseAddress!, db = dbBuffer.baseAddress!
            parallel(sets, threads: threads) { range in
                for set in range {
                    let c0 = (set % groups) * width, at = set * width
                    let sums = S.self == Float.self
                        ? FloatKernel.elementwiseGradientSums(Lanes.cast(gp + at), Lanes.cast(xp + at), gamma: floatGammaBase + c0,
                                                              count: width, mean: meanOf[set], rstd: rstdOf[set])
                        : wideSetSums(gp + at, xp + at, gamma: gammaBase + c0, count: width, mean: meanOf[set],
                                      rstd: rstdOf[set])
                    termsOf[set] = (centre ? sums.dy / m : 0, sums.dyXhat / divisor)
                }
            }
            let span = 1024, spans = (width + span - 1) / span
            parallel(spans, threads: threads) { range in
                // The span's stages (float32), chunk partials and totals (Float64), dγ's then dβ's.
                let stage = UnsafeMutablePointer<Float>.allocate(capacity: 2 * span)
                let partial = UnsafeMutablePointer<Double>.allocate(capacity: 4 * span)
                defer { stage.deallocate(); partial.deallocate() }
                stage.initialize(repeating: 0, count: 2 * span)
                let total = partial + 2 * span
                for s in range {
                    let low = s * span, count = min(span, width - low)
                    for group in 0..<groups {
                        let c = group * width + low
                        total.initialize(repeating: 0, count: 2 * span)
                        for chunk in 0..<chunks {
                            let lower = sets * chunk / chunks, upper = sets * (chunk + 1) / chunks
                            let first = lower + (group - lower % groups + groups) % groups
                            let members = first < upper ? (upper - 1 - first) / groups + 1 : 0
                            // A chunk's partial sum of one term is that term, and of one fold that fold: those add into
                            // the total directly (0 + p is p). More terms than a fold holds need the partial sums.
                            let wide = members > (S.self == Float.self ? 8 : 1)
                            let sums = wide ? partial : total
                            if wide { partial.initialize(repeating: 0, count: 2 * span) }
                            for set in stride(from: first, to: upper, by: groups) {
                                let at = set * width + low, mean = meanOf[set], rstd = rstdOf[set]
                                let (meanTerm, projection) = termsOf[set]
                                if S.self != Float.self {
                                    wideSetGradient(gp + at, xp + at, dxp + at, gamma: gammaBase + c, count: count,
                                                    mean: mean, rstd: rstd, meanTerm: meanTerm, projection: projection,
                                                    partialGamma: sums, partialBeta: sums + span)
                                } else if members == 1 {
                                    FloatKernel.elementwiseGradient(
                                        Lanes.cast(gp + at), Lanes.cast(xp + at), Lanes.cast(dxp + at),
                                        gamma: floatGammaBase + c, count: count, mean: mean, rstd: rstd,
                                        meanTerm: meanTerm, projection: projection, partialGamma: total,
                                        partialBeta: total + span)
                                } else {
                                    FloatKernel.elementwiseGradientStaged(
                                        Lanes.cast(gp + at), Lanes.cast(xp + at), Lanes.cast(dxp + at),
                                        gamma: floatGammaBase + c, count: count, mean: mean, rstd: rstd,
                                        meanTerm: meanTerm, projection: projection, stageGamma: stage,
                                        stageBeta: stage + span)
                                    // The chunked loop folds a group's stages after its eighth set in the chunk, and
                                    // after its last.
                                    let index = (set - lower) / groups
                                    if index % 8 == 7 || set + groups >= upper {
                                        normlab_fold_float_sums(sums, sums, stage, count)
                                        normlab_fold_float_sums(sums + span, sums + span, stage + span, count)
                                    }
                                }
                            }
                            if wide {
                                for i in 0..<count {
                                    total[i] += partial[i]
                                    total[span + i] += partial[span + i]
                                }
                            }
                        }
                        (dg + c).update(from: total, count: count)
                        (db + c).update(from: total + span, count: count)
                    }
                }
            }
        }}}}
    }

    /// Σ γ·dy and Σ γ·dy·x̂ over a run in Float64 lanes (float64 rows of one element; one function, so that every
    /// loop that sums a set gets the same bits).
    @inline(never)
    static func wideSetSums<S: NormScalar>(_ dyRun: UnsafePointer<S>, _ xRun: UnsafePointer<S>, gamma gc: UnsafePointer<Double>,
                                           count: Int, mean: Double, rstd: Double) -> (dy: Double, dyXhat: Double) {
        let mv = SIMD4<Double>(repeating: mean), rv = SIMD4<Double>(repeating: rstd)
        var sumDv = SIMD4<Double>(), sumDXv = SIMD4<Double>(), sumD = 0.0, sumDX = 0.0
        WideLanes.lanes(count) { i in
            let dh = WideLanes.wide4(dyRun + i) * WideLanes.get4(gc + i)
            sumDv += dh
            sumDXv += dh * ((WideLanes.wide4(xRun + i) - mv) * rv)
        } one: { i in
            let dh = dyRun[i].asDouble * gc[i]
            sumD += dh
            sumDX += dh * ((xRun[i].asDouble - mean) * rstd)
        }
        sumD += sumDv.sum()
        sumDX += sumDXv.sum()
        return (sumD, sumDX)
    }

    /// dx along a run in Float64 lanes, and dy·x̂ and dy added into Float64 partial sums of dγ and dβ.
    @inline(never)
    static func wideSetGradient<S: NormScalar>(
        _ dyRun: UnsafePointer<S>, _ xRun: UnsafePointer<S>, _ dxRun: UnsafeMutablePointer<S>, gamma gc: UnsafePointer<Double>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double,
        partialGamma pg: UnsafeMutablePointer<Double>, partialBeta pb: UnsafeMutablePointer<Double>
    ) {
        let mv = SIMD4<Double>(repeating: mean), rv = SIMD4<Double>(repeating: rstd)
        let tv = SIMD4<Double>(repeating: meanTerm), pv = SIMD4<Double>(repeating: projection)
        WideLanes.lanes(count) { i in
            let h = (WideLanes.wide4(xRun + i) - mv) * rv
            let d = WideLanes.wide4(dyRun + i)
            WideLanes.narrow4(rv * (d * WideLanes.get4(gc + i) - tv - h * pv), dxRun + i)
            WideLanes.put4(WideLanes.get4(pg + i) + d * h, pg + i)
            WideLanes.put4(WideLanes.get4(pb + i) + d, pb + i)
        } one: { i in
            let h = (xRun[i].asDouble - mean) * rstd
            let d = dyRun[i].asDouble
            dxRun[i] = S(fromDouble: rstd * (d * gc[i] - meanTerm - h * projection))
            pg[i] += d * h
            pb[i] += d
        }
    }
}
