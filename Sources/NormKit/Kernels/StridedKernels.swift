import CVectorMath

/// BatchNorm in eval mode, per channel or per element: nothing is reduced, y is one affine map per statistics set,
/// made from the running statistics. (In training, BatchNorm per element runs on `ColumnKernels`.)
enum StridedKernels {
    /// Elements per unit of work: ranges are multiples of this, so every range but the last is whole lanes.
    static let tile = 256

    /// Run `body` over element ranges of 0..<elements on up to `threads` threads, one tile at a time: the loop over
    /// the samples inside `body` then keeps the tile's per-element statistics and sums in the L1 cache (a whole
    /// range streamed them from memory once per sample).
    static func parallelElements(_ elements: Int, threads: Int, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        let tiles = (elements + tile - 1) / tile
        FastKernels.parallel(tiles, threads: threads) { range in
            for t in range { body((t * tile)..<min((t + 1) * tile, elements)) }
        }
    }

    /// BatchNorm's statistics per element of a sample: as they are per element (reduce=channels), a channel's
    /// value repeated over its positions per channel — so one element loop serves both reductions.
    static func spreadToElements(_ statistics: [Double], spec: LayerSpec, plan: NormPlan) -> [Double] {
        guard spec.reduce == .group else { return statistics }
        return (0..<(plan.channels * plan.spatial)).map { statistics[$0 / plan.spatial] }
    }

    /// γ and β per element of a sample (ones and zeros when absent; a channel's value repeated over its positions
    /// for affine=channel), so the element loops index them like x.
    static func elementParameters(_ values: [Double]?, fill: Double, spec: LayerSpec, plan: NormPlan) -> [Double] {
        let elements = plan.channels * plan.spatial
        guard let values else { return [Double](repeating: fill, count: elements) }
        if spec.affine == .element { return values }
        var out = [Double](repeating: 0, count: elements)
        for c in 0..<plan.channels {
            for s in 0..<plan.spatial { out[c * plan.spatial + s] = values[c] }
        }
        return out
    }

    /// dγ, dβ from per-element sums over the samples: as they are for affine=element, summed over each channel's
    /// positions in order for affine=channel.
    static func reduceToParameters(_ perElementGamma: [Double], _ perElementBeta: [Double], spec: LayerSpec, plan: NormPlan,
                                   dgamma: inout [Double], dbeta: inout [Double]) {
        switch spec.affine {
        case .none: return
        case .element:
            dgamma = perElementGamma
            dbeta = perElementBeta
        case .channel:
            for c in 0..<plan.channels {
                var totalG = 0.0, totalB = 0.0
                for s in 0..<plan.spatial {
                    totalG += perElementGamma[c * plan.spatial + s]
                    totalB += perElementBeta[c * plan.spatial + s]
                }
                dgamma[c] = totalG
                dbeta[c] = totalB
            }
        }
    }

    /// BatchNorm in eval mode per channel with channel-wise (or no) γ, β: one affine map per channel, applied row
    /// by row on the float32 lanes; x̂ is not stored (`ForwardResult.normalized` makes it from the same map).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func evalRows<S: NormScalar>(
        plan: NormPlan, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double], gamma: [Double]?,
        beta: [Double]?, y: UnsafeMutableBufferPointer<S>, threads: Int,
        summary: UnsafeMutablePointer<SummaryMoments>? = nil, nonFiniteRows: UnsafeMutablePointer<Bool>? = nil
    ) {
        let channels = plan.channels, spatial = plan.spatial
        let maps = (0..<channels).map { c in
            AffineMap<S>(mean: means[c], rstd: rstds[c], gamma: gamma?[c] ?? 1, beta: beta?[c] ?? 0)
        }
        if spatial == 1 && summary == nil && nonFiniteRows == nil {
            evalColumns(maps, batch: plan.batch, x: x, y: y, threads: threads)
            return
        }
        nonisolated(unsafe) let xp = x.baseAddress!, yp = y.baseAddress!, summaryParts = summary
        nonisolated(unsafe) let nonFinite = nonFiniteRows
        maps.withUnsafeBufferPointer { mapBuffer in
            nonisolated(unsafe) let mp = mapBuffer.baseAddress!
            FastKernels.parallel(plan.batch * channels, threads: threads) { range in
                for row in range {
                    let offset = row * spatial
                    Lanes.apply(mp[row % channels], xp + offset, yp + offset, count: spatial)
                    // While the row is in cache.
                    if let summaryParts {
                        (summaryParts + row).initialize(to: SummaryMoments(UnsafeBufferPointer(start: yp + offset, count: spatial)))
                    }
                    nonFinite?[row] = Normalization.hasNonFinite(UnsafeBufferPointer(start: yp + offset, count: spatial))
                }
            }
        }
    }

    /// BatchNorm in eval mode per channel with element-wise γ, β: each (sample, channel) row with its channel's
    /// running μ and rstd, γ and β read along the row where they are (`FastKernels.elementAffineRow`).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func evalElementRows<S: NormScalar>(
        plan: NormPlan, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double], gamma: [S]?, beta: [S]?,
        y: UnsafeMutableBufferPointer<S>, threads: Int, summary: UnsafeMutablePointer<SummaryMoments>? = nil,
        nonFiniteRows: UnsafeMutablePointer<Bool>? = nil
    ) {
        let channels = plan.channels, spatial = plan.spatial
        nonisolated(unsafe) let xp = x.baseAddress!, yp = y.baseAddress!, summaryParts = summary
        nonisolated(unsafe) let nonFinite = nonFiniteRows
        FastKernels.withBuffer(gamma) { g in FastKernels.withBuffer(beta) { b in
        means.withUnsafeBufferPointer { mu in rstds.withUnsafeBufferPointer { r in
            nonisolated(unsafe) let gammaOf = g, betaOf = b, meanOf = mu.baseAddress!, rstdOf = r.baseAddress!
            FastKernels.parallel(plan.batch * channels, threads: threads) { range in
                for row in range {
                    let c = row % channels, offset = row * spatial, at = c * spatial
                    FastKernels.elementAffineRow(x: xp + offset, y: yp + offset, count: spatial, mean: meanOf[c],
                                                 rstd: rstdOf[c], gamma: gammaOf.map { $0 + at }, beta: betaOf.map { $0 + at })
                    // While the row is in cache.
                    if let summaryParts {
                        (summaryParts + row).initialize(to: SummaryMoments(UnsafeBufferPointer(start: yp + offset, count: spatial)))
                    }
                    nonFinite?[row] = Normalization.hasNonFinite(UnsafeBufferPointer(start: yp + offset, count: spatial))
                }
            }
        }}}}
    }

    /// Backward through BatchNorm in eval mode per channel with element-wise γ: one thread per channel takes its
    /// row in every sample in order, so each element's dγ and dβ are summed over the batch in sample order. Writes
    /// every element of dγ and dβ (they need not be cleared first) — or, with `narrowed` (float32), every element of
    /// those, each the value narrowing dγ's and dβ's Float64 sums afterwards would make.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func evalElementRowsBackward<S: NormScalar>(
        plan: NormPlan, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double],
        gamma: [S], dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double], dbeta: inout [Double], threads: Int,
        narrowed: FastKernels.NarrowedParameters? = nil
    ) {
        let channels = plan.channels, spatial = plan.spatial, batch = plan.batch
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!
        gamma.withUnsafeBufferPointer { g in means.withUnsafeBufferPointer { mu in rstds.withUnsafeBufferPointer { r in
        dgamma.withUnsafeMutableBufferPointer { dgBuffer in dbeta.withUnsafeMutableBufferPointer { dbBuffer in
            nonisolated(unsafe) let gammaOf = g.baseAddress!, meanOf = mu.baseAddress!, rstdOf = r.baseAddress!
            nonisolated(unsafe) let dg = dgBuffer.baseAddress!, db = dbBuffer.baseAddress!
            FastKernels.parallel(channels, threads: threads) { range in
                // float32: dγ's and dβ's terms summed in float32 lanes, at most eight samples deep, then added into
                // Float64 (a channel whose μ or rstd leaves float32's range runs in the Float64 loop).
                // (Zeros between channels: each fold clears what it read.)
                let partial = S.self == Float.self ? UnsafeMutablePointer<Float>.allocate(capacity: 2 * spatial) : nil
                partial?.initialize(repeating: 0, count: 2 * spatial)
                defer { partial?.deallocate() }
                for c in range {
                    let at = c * spatial
                    let narrowedHere = narrowed?.advanced(by: at)
                    if let partial, floatEvalGradient(plan: plan, channel: c, dy: gp, x: xp, dx: dxp, mean: meanOf[c],
                                                      rstd: rstdOf[c], gamma: gammaOf + at, dgamma: dg + at,
                                                      dbeta: db + at, partial: partial, narrowed: narrowedHere) {
                        continue
                    }
                    (dg + at).update(repeating: 0, count: spatial)
                    (db + at).update(repeating: 0, count: spatial)
                    for n in 0..<batch {
                        let offset = (n * channels + c) * spatial
                        FastKernels.elementAffineEvalGradient(dy: gp + offset, x: xp + offset, dx: dxp + offset,
                                                              count: spatial, mean: meanOf[c], rstd: rstdOf[c],
                                                              gamma: gammaOf + at, dgamma: dg + at, dbeta: db + at)
                    }
                    if let narrowedHere {
                        normlab_narrow_sums(narrowedHere.gamma, dg + at, spatial, narrowedHere.scaling, narrowedHere.factor)
                        normlab_narrow_sums(narrowedHere.beta, db + at, spatial, narrowedHere.scaling, narrowedHere.factor)
                    }
                }
            }
        }}}}}
    }

    /// One channel of `evalElementRowsBackward` on float32 rows in float32 lanes; false (nothing done) when its μ or
    /// rstd is outside float32's range. Sums over at most eight samples in float32, added into Float64 in order (the
    /// first addition 0 + the partial sum, so dγ and dβ need no clearing) — the last addition written to `narrowed`
    /// in float32 where given. `partial` holds zeros, and is left so.
    static func floatEvalGradient<S: NormScalar>(
        plan: NormPlan, channel c: Int, dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>,
        mean: Double, rstd: Double, gamma: UnsafePointer<S>, dgamma: UnsafeMutablePointer<Double>,
        dbeta: UnsafeMutablePointer<Double>, partial: UnsafeMutablePointer<Float>,
        narrowed: FastKernels.NarrowedParameters? = nil
    ) -> Bool {
        let spatial = plan.spatial, channels = plan.channels, batch = plan.batch
        func f32(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        let partialGamma = partial, partialBeta = partial + spatial
        // The terms' folds into dγ and dβ (every eighth sample and the last), as the train-mode element-wise paths make
        // them; the first writes 0 + the partial sums, so dγ and dβ need no clearing.
        let sums = FastKernels.ParameterSums(Float.self, gamma: dgamma, beta: dbeta, count: spatial,
                                             stageGamma: partialGamma, stageBeta: partialBeta, floatLanes: true,
                                             narrowed: narrowed)
        for n in 0..<batch {
            let offset = (n * channels + c) * spatial
            let done = normlab_element_affine_eval_gradient_f32_lanes(
                f32(dy + offset), f32(x + offset), UnsafeMutableRawPointer(dx + offset).assumingMemoryBound(to: Float.self),
                spatial, mean, rstd, f32(gamma), partialGamma, partialBeta)
            if done == 0 { return false }  // the first sample already: μ and rstd are the channel's
            sums.fold(after: n, of: batch, count: spatial)  // (the folds clear the partial sums they add)
        }
        return true
    }

    /// BatchNorm in eval mode: y = γ·(x − μ)·rstd + β with the running μ and σ², one affine map per statistics
    /// set (a channel's row, or one element), nothing reduced. x̂ is written too.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func evalForward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double],
        gamma: [Double]?, beta: [Double]?, xhat: UnsafeMutableBufferPointer<S>, y: UnsafeMutableBufferPointer<S>,
        threads: Int
    ) {
        let elements = plan.channels * plan.spatial, batch = plan.batch
        let g = elementParameters(gamma, fill: 1, spec: spec, plan: plan)
        let b = elementParameters(beta, fill: 0, spec: spec, plan: plan)
        let mu = spreadToElements(means, spec: spec, plan: plan), r = spreadToElements(rstds, spec: spec, plan: plan)
        nonisolated(unsafe) let xp = x.baseAddress!, hp = xhat.baseAddress!, yp = y.baseAddress!
        g.withUnsafeBufferPointer { gBuffer in
        b.withUnsafeBufferPointer { bBuffer in
        mu.withUnsafeBufferPointer { muBuffer in
        r.withUnsafeBufferPointer { rBuffer in
            nonisolated(unsafe) let gp = gBuffer.baseAddress!, bp = bBuffer.baseAddress!
            nonisolated(unsafe) let mp = muBuffer.baseAddress!, rp = rBuffer.baseAddress!
            parallelElements(elements, threads: threads) { range in
                let lo = range.lowerBound, count = range.count
                for n in 0..<batch {
                    let offset = n * elements + lo
                    let xr = xp + offset, hr = hp + offset, yr = yp + offset
                    let ml = mp + lo, rl = rp + lo, gl = gp + lo, bl = bp + lo
                    WideLanes.lanes(count) { e in
                        let h = (WideLanes.wide4(xr + e) - WideLanes.get4(ml + e)) * WideLanes.get4(rl + e)
                        WideLanes.narrow4(h, hr + e)
                        WideLanes.narrow4(h * WideLanes.get4(gl + e) + WideLanes.get4(bl + e), yr + e)
                    } one: { e in
                        let h = (xr[e].asDouble - ml[e]) * rl[e]
                        hr[e] = S(fromDouble: h)
                        yr[e] = S(fromDouble: h * gl[e] + bl[e])
                    }
                }
            }
        }}}}
    }

    /// Backward through BatchNorm in eval mode: the statistics are constants, so dx = rstd·γ·dy; dγ = Σ dy·x̂ and
    /// dβ = Σ dy per element over the samples in order, then (affine=channel) over the channel's positions. x̂ is
    /// made from x here, as the pass goes (the forward does not keep it).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func evalBackward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double],
        rstds: [Double], gamma: [Double]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double],
        dbeta: inout [Double], threads: Int
    ) {
        if spec.reduce == .group && (spec.affine != .element || plan.spatial == 1) {
            evalRowsBackward(spec: spec, plan: plan, dy: dy, x: x, means: means, rstds: rstds, gamma: gamma, dx: dx,
                             dgamma: &dgamma, dbeta: &dbeta, threads: threads)
            return
        }
        let elements = plan.channels * plan.spatial, batch = plan.batch
        let g = elementParameters(gamma, fill: 1, spec: spec, plan: plan)
        let r = spreadToElements(rstds, spec: spec, plan: plan), mu = spreadToElements(means, spec: spec, plan: plan)
        // rstd·γ per element: one multiplication per element of dx.
        let scale = zip(g, r).map { $0 * $1 }
        var perElementGamma = [Double](repeating: 0, count: elements)
        var perElementBeta = [Double](repeating: 0, count: elements)
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!
        let wantParameters = spec.affine != .none
        scale.withUnsafeBufferPointer { scaleBuffer in
        r.withUnsafeBufferPointer { rBuffer in
        mu.withUnsafeBufferPointer { muBuffer in
        perElementGamma.withUnsafeMutableBufferPointer { pgBuffer in
        perElementBeta.withUnsafeMutableBufferPointer { pbBuffer in
            nonisolated(unsafe) let sp = scaleBuffer.baseAddress!, pg = pgBuffer.baseAddress!, pb = pbBuffer.baseAddress!
            nonisolated(unsafe) let rp = rBuffer.baseAddress!, mp = muBuffer.baseAddress!
            parallelElements(elements, threads: threads) { range in
                let lo = range.lowerBound, count = range.count
                let sl = sp + lo, rl = rp + lo, ml = mp + lo, sumDy = pb + lo, sumDyH = pg + lo
                for n in 0..<batch {
                    let offset = n * elements + lo
                    let dyr = gp + offset, xr = xp + offset, dxr = dxp + offset
                    evalElementsGradient(dy: dyr, x: xr, dx: dxr, count: count, scale: sl, mean: ml, rstd: rl,
                                         sumDy: wantParameters ? sumDy : nil, sumDyXhat: wantParameters ? sumDyH : nil)
                }
            }
        }}}}}
        reduceToParameters(perElementGamma, perElementBeta, spec: spec, plan: plan, dgamma: &dgamma, dbeta: &dbeta)
    }

    /// `normlab_eval_row_gradient` for the element type (C, AVX2 or AVX-512F where the CPU has it).
    @inline(__always)
    static func evalRowGradient<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, count: Int, mean: Double, rstd: Double,
        scale: Double, sums: UnsafeMutablePointer<Double>?, tail: UnsafeMutablePointer<Double>
    ) {
        if S.self == Float.self {
            normlab_eval_row_gradient_f32(UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self),
                                          UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
                                          UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), count, mean,
                                          rstd, scale, sums, tail)
        } else {
            normlab_eval_row_gradient_f64(UnsafeRawPointer(dy).assumingMemoryBound(to: Double.self),
                                          UnsafeRawPointer(x).assumingMemoryBound(to: Double.self),
                                          UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Double.self), count, mean,
                                          rstd, scale, sums, tail)
        }
    }

    /// Backward through BatchNorm in eval mode per channel with channel-wise (or no) γ: row by row, each channel's
    /// constants held in registers, its Σ dy and Σ dy·x̂ in four lanes over its rows in sample order (one thread per
    /// channel, so the same bits for every thread count). No per-element copies of the statistics.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func evalRowsBackward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double],
        rstds: [Double], gamma: [Double]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double],
        dbeta: inout [Double], threads: Int
    ) {
        let channels = plan.channels, spatial = plan.spatial, batch = plan.batch
        let wantParameters = spec.affine != .none
        if spatial == 1 {
            evalColumnsBackward(plan: plan, dy: dy, x: x, means: means, rstds: rstds, gamma: gamma, dx: dx,
                                dgamma: &dgamma, dbeta: &dbeta, wantParameters: wantParameters, threads: threads)
            return
        }
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: 2 * channels)
        defer { sums.deallocate() }
        nonisolated(unsafe) let sumDy = sums, sumDyH = sums + channels
        let constants = (0..<channels).map { c in (mean: means[c], rstd: rstds[c], scale: (gamma?[c] ?? 1) * rstds[c]) }
        constants.withUnsafeBufferPointer { constantBuffer in
            nonisolated(unsafe) let cp = constantBuffer.baseAddress!
            FastKernels.parallel(channels, threads: threads) { range in
                for c in range {
                    let mean = cp[c].mean, rstd = cp[c].rstd, scale = cp[c].scale
                    // Four lanes of Σdy, four of Σdy·x̂, then the two sums of the elements past each row's last four:
                    // ten Doubles in a buffer of the thread's own (no reliance on a tuple's layout).
                    withUnsafeTemporaryAllocation(of: Double.self, capacity: 10) { buffer in
                        let sums = buffer.baseAddress!
                        sums.initialize(repeating: 0, count: 10)
                        for n in 0..<batch {
                            let offset = (n * channels + c) * spatial
                            evalRowGradient(dy: gp + offset, x: xp + offset, dx: dxp + offset, count: spatial, mean: mean,
                                            rstd: rstd, scale: scale, sums: wantParameters ? sums : nil, tail: sums + 8)
                        }
                        sumDy[c] = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + sums[8]
                        sumDyH[c] = ((sums[4] + sums[5]) + (sums[6] + sums[7])) + sums[9]
                    }
                }
            }
        }
        guard wantParameters else { return }
        for c in 0..<channels {
            dgamma[c] = sumDyH[c]
            dbeta[c] = sumDy[c]
        }
    }
}
