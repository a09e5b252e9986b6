import Dispatch

extension Float {
    @inline(__always)
    public static func gradientRun(_ dy: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                   count: Int, gamma: Double, rstd: Double, meanTerm: Double, projection: Double) {
        let g = SIMD16<Float>(repeating: Float(gamma)), r = SIMD16<Float>(repeating: Float(rstd))
        let m = SIMD16<Float>(repeating: Float(meanTerm)), p = SIMD16<Float>(repeating: Float(projection))
        var s = 0
        while s + 16 <= count {
            let dh = UnsafeRawPointer(dy + s).loadUnaligned(as: SIMD16<Float>.self) * g
            let h = UnsafeRawPointer(xhat + s).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(dx + s).storeBytes(of: r * (dh - m - h * p), as: SIMD16<Float>.self)
            s += 16
        }
        while s < count {
            dx[s] = Float(rstd) * (dy[s] * Float(gamma) - Float(meanTerm) - xhat[s] * Float(projection))
            s += 1
        }
    }

    @inline(__always)
    public static func normalizeRun(_ x: UnsafePointer<Float>, _ xhat: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                    count: Int, mean: Double, rstd: Double, gamma: Double, beta: Double) {
        // μ as a Float pair: x − μ_high is exact near the mean (Sterbenz), so a 1e6 offset keeps its fraction.
        let high = Float(mean), low = Float(mean - Double(high))
        let muHigh = SIMD16<Float>(repeating: high), muLow = SIMD16<Float>(repeating: low)
        let r = SIMD16<Float>(repeating: Float(rstd))
        let g = SIMD16<Float>(repeating: Float(gamma)), b = SIMD16<Float>(repeating: Float(beta))
        var s = 0
        while s + 16 <= count {
            let h = ((UnsafeRawPointer(x + s).loadUnaligned(as: SIMD16<Float>.self) - muHigh) - muLow) * r
            UnsafeMutableRawPointer(xhat + s).storeBytes(of: h, as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(y + s).storeBytes(of: g * h + b, as: SIMD16<Float>.self)
            s += 16
        }
        while s < count {
            let h = ((x[s] - high) - low) * Float(rstd)
            xhat[s] = h
            y[s] = Float(gamma) * h + Float(beta)
            s += 1
        }
    }

    @inline(__always)
    public static func loadWide(_ pointer: UnsafePointer<Float>) -> SIMD8<Double> {
        SIMD8<Double>(UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self))
    }

    @inline(__always)
    public static func storeNarrow(_ value: SIMD8<Double>, to pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: SIMD8<Float>(value), as: SIMD8<Float>.self)
    }
}

extension Double {
    @inline(__always)
    public static func gradientRun(_ dy: UnsafePointer<Double>, _ xhat: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>,
                                   count: Int, gamma: Double, rstd: Double, meanTerm: Double, projection: Double) {
        let g = SIMD8<Double>(repeating: (gamma)), r = SIMD8<Double>(repeating: (rstd))
        let m = SIMD8<Double>(repeating: (meanTerm)), p = SIMD8<Double>(repeating: (projection))
        var s = 0
        while s + 8 <= count {
            let dh = UnsafeRawPointer(dy + s).loadUnaligned(as: SIMD8<Double>.self) * g
            let h = UnsafeRawPointer(xhat + s).loadUnaligned(as: SIMD8<Double>.self)
            UnsafeMutableRawPointer(dx + s).storeBytes(of: r * (dh - m - h * p), as: SIMD8<Double>.self)
            s += 8
        }
        while s < count {
            dx[s] = (rstd) * (dy[s] * (gamma) - (meanTerm) - xhat[s] * (projection))
            s += 1
        }
    }

    @inline(__always)
    public static func normalizeRun(_ x: UnsafePointer<Double>, _ xhat: UnsafeMutablePointer<Double>, _ y: UnsafeMutablePointer<Double>,
                                    count: Int, mean: Double, rstd: Double, gamma: Double, beta: Double) {
        let mu = SIMD8<Double>(repeating: mean), r = SIMD8<Double>(repeating: rstd)
        let g = SIMD8<Double>(repeating: gamma), b = SIMD8<Double>(repeating: beta)
        var s = 0
        while s + 8 <= count {
            let h = (UnsafeRawPointer(x + s).loadUnaligned(as: SIMD8<Double>.self) - mu) * r
            UnsafeMutableRawPointer(xhat + s).storeBytes(of: h, as: SIMD8<Double>.self)
            UnsafeMutableRawPointer(y + s).storeBytes(of: g * h + b, as: SIMD8<Double>.self)
            s += 8
        }
        while s < count {
            let h = (x[s] - mean) * rstd
            xhat[s] = h
            y[s] = gamma * h + beta
            s += 1
        }
    }

    @inline(__always)
    public static func loadWide(_ pointer: UnsafePointer<Double>) -> SIMD8<Double> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Double>.self)
    }

    @inline(__always)
    public static func storeNarrow(_ value: SIMD8<Double>, to pointer: UnsafeMutablePointer<Double>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Double>.self)
    }
}

/// The fast path for layers whose statistics sets are made of whole (sample, channel) rows of S contiguous
/// elements: every (sample, group) of GroupNorm, LayerNorm, InstanceNorm and RMSNorm under reduce=group (K rows),
/// and every channel of BatchNorm (N rows). Work is split over the sets; each set is reduced by one thread in a
/// fixed order, and per-channel parameter gradients are summed over the batch in sample order, so the results are
/// bit-identical for every thread count.
enum FastKernels {
    /// GroupNorm-like layers with reduce=group (a set is K contiguous channel rows of one sample) and BatchNorm
    /// per channel with channel-wise γ, β (a set is one channel's row in every sample).
    static func applies(_ spec: LayerSpec, _ plan: NormPlan) -> Bool {
        spec.reduce == .group && (spec.kind != .batchnorm || spec.affine != .element)
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
            batchNorm = spec.kind == .batchnorm
            count = batchNorm ? plan.batch : plan.channelsPerGroup
            channels = plan.channels
            spatial = plan.spatial
            groups = plan.groups
            channelsPerGroup = plan.channelsPerGroup
        }

        @inline(__always) func sample(_ set: Int, _ row: Int) -> Int { batchNorm ? row : set / groups }
        @inline(__always) func channel(_ set: Int, _ row: Int) -> Int { batchNorm ? set : (set % groups) * channelsPerGroup + row }
        @inline(__always) func offset(_ set: Int, _ row: Int) -> Int { (sample(set, row) * channels + channel(set, row)) * spatial }
    }

    /// Run `body` over 0..<count in up to `threads` parallel chunks.
    static func parallel(_ count: Int, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let workers = max(1, min(threads, count))
        if workers == 1 {
            body(0..<count)
            return
        }
        let chunks = min(count, workers * 4)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let lower = count * chunk / chunks, upper = count * (chunk + 1) / chunks
            if lower < upper { body(lower..<upper) }
        }
    }

    @inline(__always)
    static func sum<S: NormScalar>(_ x: UnsafePointer<S>, _ count: Int) -> Double {
        var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
        var i = 0
        while i + 16 <= count {
            acc0 += S.loadWide(x + i)
            acc1 += S.loadWide(x + i + 8)
            i += 16
        }
        var total = (acc0 + acc1).sum()
        while i < count {
            total += x[i].asDouble
            i += 1
        }
        return total
    }

    /// True when every element equals the first; stops at the first that differs (at once, for real data).
    @inline(__always)
    static func isConstant<S: NormScalar>(_ x: UnsafePointer<S>, _ count: Int) -> Bool {
        let first = x[0]
        var i = 1
        while i < count {
            if x[i] != first { return false }
            i += 1
        }
        return true
    }

    @inline(__always)
    static func squares<S: NormScalar>(_ x: UnsafePointer<S>, _ count: Int, mean: Double) -> Double {
        var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
        let mu = SIMD8<Double>(repeating: mean)
        var i = 0
        while i + 16 <= count {
            let a = S.loadWide(x + i) - mu, b = S.loadWide(x + i + 8) - mu
            acc0 += a * a
            acc1 += b * b
            i += 16
        }
        var total = (acc0 + acc1).sum()
        while i < count {
            let d = x[i].asDouble - mean
            total += d * d
            i += 1
        }
        return total
    }

    struct Statistics {
        var means: [Double]
        var variances: [Double]
        var rstds: [Double]
        var sumSquares: [Double]

        init(count: Int) {
            means = .init(repeating: 0, count: count)
            variances = means
            rstds = means
            sumSquares = means
        }

        /// Raw pointers into the four arrays for the parallel kernels, which write disjoint elements.
        struct Pointers {
            let means, variances, rstds, sumSquares: UnsafeMutablePointer<Double>
        }

        mutating func withPointers(_ body: (Pointers) -> Void) {
            means.withUnsafeMutableBufferPointer { m in
                variances.withUnsafeMutableBufferPointer { v in
                    rstds.withUnsafeMutableBufferPointer { r in
                        sumSquares.withUnsafeMutableBufferPointer { q in
                            body(Pointers(means: m.baseAddress!, variances: v.baseAddress!, rstds: r.baseAddress!,
                                          sumSquares: q.baseAddress!))
                        }
                    }
                }
            }
        }
    }

    /// Statistics, x̂ and y in three passes over each block (sum, squares, normalise + affine).
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, gamma: [Double]?, beta: [Double]?,
        xhat: UnsafeMutableBufferPointer<S>, y: UnsafeMutableBufferPointer<S>, threads: Int
    ) -> Statistics {
        let blocks = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = Double(spec.variance == .unbiased ? plan.setSize - 1 : plan.setSize)
        let centre = spec.centres
        let eps = spec.eps
        let elementAffine = spec.affine == .element
        let rows = Rows(spec, plan)
        var stats = Statistics(count: blocks)
        nonisolated(unsafe) let xp = x.baseAddress!, hp = xhat.baseAddress!, yp = y.baseAddress!
        stats.withPointers { out in
            nonisolated(unsafe) let means = out.means, vars = out.variances, rstds = out.rstds, sq = out.sumSquares
            let spatial = rows.spatial
            parallel(blocks, threads: threads) { range in
                for block in range {
                    var mean = 0.0
                    if centre {
                        // A constant set gets its value exactly, so x − μ is exactly 0 there (sum/m may round).
                        let first = xp[rows.offset(block, 0)]
                        var constant = true, total = 0.0
                        for r in 0..<rows.count {
                            let row = xp + rows.offset(block, r)
                            if constant { constant = row[0] == first && isConstant(row, spatial) }
                            total += sum(row, spatial)
                        }
                        mean = constant ? first.asDouble : total / m
                    }
                    var squares = 0.0
                    for r in 0..<rows.count { squares += Self.squares(xp + rows.offset(block, r), spatial, mean: mean) }
                    let variance = squares / divisor
                    let rstd = 1 / (variance + eps).squareRoot()
                    means[block] = mean
                    vars[block] = variance
                    rstds[block] = rstd
                    sq[block] = squares
                    for r in 0..<rows.count {
                        let c = rows.channel(block, r)
                        let base = rows.offset(block, r)
                        if elementAffine, let gamma, let beta {
                            gamma.withUnsafeBufferPointer { gp in
                                beta.withUnsafeBufferPointer { bp in
                                    for s in 0..<spatial {
                                        let h = (xp[base + s].asDouble - mean) * rstd
                                        hp[base + s] = S(fromDouble: h)
                                        yp[base + s] = S(fromDouble: gp[c * spatial + s] * h + bp[c * spatial + s])
                                    }
                                }
                            }
                            continue
                        }
                        S.normalizeRun(xp + base, hp + base, yp + base, count: spatial, mean: mean, rstd: rstd,
                                       gamma: gamma?[c] ?? 1, beta: beta?[c] ?? 0)
                    }
                }
            }
        }
        return stats
    }

    /// dx, and dγ, dβ before the batch reduction's division, in two passes over each block.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, xhat: UnsafeBufferPointer<S>, rstds: [Double],
        gamma: [Double]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double], dbeta: inout [Double], threads: Int
    ) {
        let blocks = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let centre = spec.centres
        let rows = Rows(spec, plan)
        let spatial = plan.spatial
        let channels = plan.channels, batch = plan.batch
        let channelAffine = spec.affine == .channel
        let hasAffine = spec.affine != .none
        // Per (sample, channel) partial sums for dγ and dβ, summed over the batch afterwards in sample order.
        var partialGamma = [Double](repeating: 0, count: channelAffine ? batch * channels : 0)
        var partialBeta = [Double](repeating: 0, count: channelAffine ? batch * channels : 0)
        nonisolated(unsafe) let gp = dy.baseAddress!, hp = xhat.baseAddress!, dxp = dx.baseAddress!
        partialGamma.withUnsafeMutableBufferPointer { pgBuffer in
        partialBeta.withUnsafeMutableBufferPointer { pbBuffer in
            nonisolated(unsafe) let pg = pgBuffer.baseAddress, pb = pbBuffer.baseAddress
            parallel(blocks, threads: threads) { range in
                for block in range {
                    var sumD = 0.0, sumDX = 0.0
                    for r in 0..<rows.count {
                        let c = rows.channel(block, r), n = rows.sample(block, r)
                        let base = rows.offset(block, r)
                        var accD = SIMD8<Double>(), accDX = SIMD8<Double>(), accY = SIMD8<Double>(), accYX = SIMD8<Double>()
                        var tailD = 0.0, tailDX = 0.0, tailY = 0.0, tailYX = 0.0
                        if spec.affine == .element, let gamma {
                            for s in 0..<spatial {
                                let dyv = gp[base + s].asDouble, h = hp[base + s].asDouble
                                let dh = dyv * gamma[c * spatial + s]
                                tailD += dh
                                tailDX += dh * h
                            }
                        } else {
                            let gc = gamma?[c] ?? 1
                            let gV = SIMD8<Double>(repeating: gc)
                            var s = 0
                            while s + 8 <= spatial {
                                let dyv = S.loadWide(gp + base + s), h = S.loadWide(hp + base + s)
                                let dh = dyv * gV
                                accD += dh
                                accDX += dh * h
                                accY += dyv
                                accYX += dyv * h
                                s += 8
                            }
                            while s < spatial {
                                let dyv = gp[base + s].asDouble, h = hp[base + s].asDouble
                                let dh = dyv * gc
                                tailD += dh
                                tailDX += dh * h
                                tailY += dyv
                                tailYX += dyv * h
                                s += 1
                            }
                        }
                        sumD += accD.sum() + tailD
                        sumDX += accDX.sum() + tailDX
                        if channelAffine, let pg, let pb {
                            pg[n * channels + c] = accYX.sum() + tailYX
                            pb[n * channels + c] = accY.sum() + tailY
                        }
                    }
                    let rstd = rstds[block]
                    let meanTerm = centre ? sumD / m : 0
                    let projection = sumDX / divisor
                    for r in 0..<rows.count {
                        let c = rows.channel(block, r)
                        let base = rows.offset(block, r)
                        if spec.affine == .element, let gamma {
                            for s in 0..<spatial {
                                let dh = gp[base + s].asDouble * gamma[c * spatial + s]
                                dxp[base + s] = S(fromDouble: rstd * (dh - meanTerm - hp[base + s].asDouble * projection))
                            }
                            continue
                        }
                        S.gradientRun(gp + base, hp + base, dxp + base, count: spatial, gamma: gamma?[c] ?? 1,
                                      rstd: rstd, meanTerm: meanTerm, projection: projection)
                    }
                }
            }
        }}
        reduceParameterGradients(spec: spec, plan: plan, dy: dy, xhat: xhat, partialGamma: partialGamma,
                                 partialBeta: partialBeta, dgamma: &dgamma, dbeta: &dbeta, threads: threads)
    }

    /// dγ, dβ from per (sample, channel) partial sums (channel-wise γ), or from dy and x̂ (element-wise γ); summed
    /// over the batch in sample order either way.
    static func reduceParameterGradients<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, xhat: UnsafeBufferPointer<S>,
        partialGamma: [Double], partialBeta: [Double], dgamma: inout [Double], dbeta: inout [Double], threads: Int
    ) {
        let channels = plan.channels, batch = plan.batch, spatial = plan.spatial
        guard spec.affine != .none else { return }
        nonisolated(unsafe) let gp = dy.baseAddress!, hp = xhat.baseAddress!
        if spec.affine == .channel {
            for c in 0..<channels {
                var totalG = 0.0, totalB = 0.0
                for n in 0..<batch {
                    totalG += partialGamma[n * channels + c]
                    totalB += partialBeta[n * channels + c]
                }
                dgamma[c] = totalG
                dbeta[c] = totalB
            }
        } else {
            // Element-wise γ: one sum over the batch per element, in sample order.
            let perSample = channels * spatial
            dgamma.withUnsafeMutableBufferPointer { dgBuffer in
                dbeta.withUnsafeMutableBufferPointer { dbBuffer in
                    nonisolated(unsafe) let dg = dgBuffer.baseAddress!, db = dbBuffer.baseAddress!
                    parallel(perSample, threads: threads) { range in
                        for e in range {
                            var totalG = 0.0, totalB = 0.0
                            for n in 0..<batch {
                                let dyv = gp[n * perSample + e].asDouble
                                totalG += dyv * hp[n * perSample + e].asDouble
                                totalB += dyv
                            }
                            dg[e] = totalG
                            db[e] = totalB
                        }
                    }
                }
            }
        }
    }
}
