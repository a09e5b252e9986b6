import CVectorMath

/// The fast path for per-position statistics (reduce=channels, PyDLLib's GroupNorm, LayerNorm, InstanceNorm and
/// RMSNorm): in each (sample, group) block the K channel rows of S elements are reduced row by row into one
/// accumulator per position, so every loop runs along contiguous memory. Work is split over the blocks; each block
/// is reduced in a fixed order, so the results are the same bits for every thread count.
enum PositionKernels {
    static func applies(_ spec: LayerSpec) -> Bool {
        spec.kind.fastKernel(reduce: spec.reduce, affine: spec.affine) == .positions
    }

    // Positions four at a time in Float64 lanes, then one at a time: lane-wise IEEE arithmetic, so the same bits as
    // the one-at-a-time loop would give.

    @inline(__always)
    static func lanes(_ count: Int, four: (Int) -> Void, one: (Int) -> Void) {
        var s = 0
        while s + 4 <= count {
            four(s)
            s += 4
        }
        while s < count {
            one(s)
            s += 1
        }
    }

    @inline(__always)
    static func wide4<S: NormScalar>(_ p: UnsafePointer<S>) -> SIMD4<Double> {
        if S.self == Float.self {
            let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
            return SIMD4<Double>(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]))
        }
        return UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
    }

    @inline(__always)
    static func wide4<S: NormScalar>(_ p: UnsafeMutablePointer<S>) -> SIMD4<Double> { wide4(UnsafePointer(p)) }

    @inline(__always)
    static func narrow4<S: NormScalar>(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<S>) {
        if S.self == Float.self {
            UnsafeMutableRawPointer(p).storeBytes(of: SIMD4<Float>(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3])),
                                                  as: SIMD4<Float>.self)
        } else {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Double>.self)
        }
    }

    @inline(__always)
    static func get4(_ p: UnsafePointer<Double>) -> SIMD4<Double> { UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self) }

    @inline(__always)
    static func get4(_ p: UnsafeMutablePointer<Double>) -> SIMD4<Double> { get4(UnsafePointer(p)) }

    @inline(__always)
    static func put4(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Double>.self)
    }

    /// What the forward kernel writes besides x̂ and y: the exact Float64 means and rstds (backward and `diagnose`
    /// read them) and the statistics tensors' values in the element type, written from the tile while it is in L1
    /// (the per-position statistics are half as many values as the input, so a second pass over Float64 copies of
    /// them cost more than the normalisation itself); whether every mean and variance is finite, and how many
    /// variances are exactly 0 (the warnings).
    struct Outputs<S: NormScalar> {
        var means: [Double], rstds: [Double]
        var mean: [S], variance: [S], rstd: [S]
        var finite = true
        var zeroVariances = 0
    }

    /// Positions per tile: a tile's statistics and its K rows of x stay in L1 while the four passes over them run.
    static let tile = 256

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, gamma: Tensor<S>?, beta: Tensor<S>?,
        xhat: UnsafeMutableBufferPointer<S>, y: UnsafeMutableBufferPointer<S>, threads: Int
    ) -> Outputs<S> {
        let count = plan.statsShape.count
        let k = plan.channelsPerGroup, spatial = plan.spatial, groups = plan.groups, channels = plan.channels
        let blocks = plan.batch * groups
        let m = Double(k)
        let divisor = Double(spec.variance == .unbiased ? k - 1 : k)
        let centre = spec.centres, eps = spec.eps, elementAffine = spec.affine == .element
        func array<T>(_ count: Int) -> [T] { [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count } }
        var out = Outputs<S>(means: array(count), rstds: array(count), mean: array(count), variance: array(count),
                             rstd: array(count))
        nonisolated(unsafe) let xp = x.baseAddress!, hp = xhat.baseAddress!, yp = y.baseAddress!
        let parameters = FastKernels.ScalarParameters(gamma: gamma, beta: beta,
                                                      count: elementAffine ? channels * spatial : channels)
        defer { parameters.deallocate() }
        // Per block: 1 when its means and variances are finite, and its count of zero variances.
        let finiteBlocks = UnsafeMutablePointer<Bool>.allocate(capacity: blocks)
        let zeroBlocks = UnsafeMutablePointer<Int>.allocate(capacity: blocks)
        defer { finiteBlocks.deallocate(); zeroBlocks.deallocate() }
        nonisolated(unsafe) let finiteOut = finiteBlocks, zeroOut = zeroBlocks
        withPointers(&out) { meansBase, rstdsBase, meanBase, varianceBase, rstdBase in
            nonisolated(unsafe) let means = meansBase, rstds = rstdsBase
            nonisolated(unsafe) let meanOut = meanBase, varianceOut = varianceBase, rstdOut = rstdBase
            FastKernels.parallel(blocks, threads: threads) { range in
                let stride = elementAffine ? 1 : 0
                // mu, v, r: the tile's statistics; differs: 1 where some row differs from the first (or is NaN),
                // else 0 — a constant set's mean is its value exactly, so x − μ is exactly 0 there (Σx / m may round).
                let scratch = UnsafeMutablePointer<Double>.allocate(capacity: 4 * tile)
                defer { scratch.deallocate() }
                let mu = scratch, v = scratch + tile, r = scratch + 2 * tile, differs = scratch + 3 * tile
                let one4 = SIMD4<Double>(repeating: 1), zero4 = SIMD4<Double>()
                let mv = SIMD4<Double>(repeating: m), dv = SIMD4<Double>(repeating: divisor)
                                for block in range {
                    let g = block % groups, n = block / groups
                    let first = (n * channels + g * k) * spatial
                    var check = SIMD4<Double>(), checkTail = 0.0
                    var zeros = SIMD4<Double>(), zerosTail = 0
                    var t0 = 0
                    while t0 < spatial {
                        let width = min(tile, spatial - t0)
                        let x0 = xp + first + t0
                        mu.update(repeating: 0, count: width)
                        v.update(repeating: 0, count: width)
                        if centre {
                            // μ = Σx / m in row order (as NumPy's sum over the axis of the rows).
                            differs.update(repeating: 0, count: width)
                            for row in 0..<k {
                                let xr = x0 + row * spatial
                                Self.lanes(width) { s in
                                    let value = wide4(xr + s)
                                    put4(get4(mu + s) + value, mu + s)
                                    put4(get4(differs + s).replacing(with: one4, where: .!(value .== wide4(x0 + s))),
                                         differs + s)
                                } one: { s in
                                    mu[s] += xr[s].asDouble
                                    if !(xr[s].asDouble == x0[s].asDouble) { differs[s] = 1 }
                                }
                            }
                            Self.lanes(width) { s in
                                put4((get4(mu + s) / mv).replacing(with: wide4(x0 + s), where: get4(differs + s) .== zero4),
                                     mu + s)
                            } one: { s in
                                mu[s] = differs[s] == 0 ? x0[s].asDouble : mu[s] / m
                            }
                        }
                        for row in 0..<k {
                            let xr = x0 + row * spatial
                            Self.lanes(width) { s in
                                let d = wide4(xr + s) - get4(mu + s)
                                put4(get4(v + s) + d * d, v + s)
                            } one: { s in
                                let d = xr[s].asDouble - mu[s]
                                v[s] += d * d
                            }
                        }
                        let at = block * spatial + t0
                        Self.lanes(width) { s in put4(get4(v + s) / dv, v + s) } one: { s in v[s] = v[s] / divisor }
                        normlab_reciprocal_square_roots(v, eps, r, width)
                        Self.lanes(width) { s in
                            let mean = get4(mu + s), variance = get4(v + s), rstd = get4(r + s)
                            put4(mean, means + at + s)
                            put4(rstd, rstds + at + s)
                            narrow4(mean, meanOut + at + s)
                            narrow4(variance, varianceOut + at + s)
                            narrow4(rstd, rstdOut + at + s)
                            check += (mean - mean) + (variance - variance)
                            zeros += zero4.replacing(with: one4, where: variance .== zero4)
                        } one: { s in
                            let mean = mu[s], variance = v[s]
                            means[at + s] = mean
                            rstds[at + s] = r[s]
                            meanOut[at + s] = S(fromDouble: mean)
                            varianceOut[at + s] = S(fromDouble: variance)
                            rstdOut[at + s] = S(fromDouble: r[s])
                            checkTail += (mean - mean) + (variance - variance)
                            if variance == 0 { zerosTail += 1 }
                        }
                        for row in 0..<k {
                            let c = g * k + row
                            let base = first + row * spatial + t0
                            let g0 = parameters.gamma + (elementAffine ? c * spatial + t0 : c)
                            let b0 = parameters.beta + (elementAffine ? c * spatial + t0 : c)
                            Self.lanes(width) { s in
                                let h = (wide4(xp + base + s) - get4(mu + s)) * get4(r + s)
                                let gv = elementAffine ? wide4(g0 + s) : SIMD4<Double>(repeating: g0[0].asDouble)
                                let bv = elementAffine ? wide4(b0 + s) : SIMD4<Double>(repeating: b0[0].asDouble)
                                narrow4(h, hp + base + s)
                                narrow4(gv * h + bv, yp + base + s)
                            } one: { s in
                                let h = (xp[base + s].asDouble - mu[s]) * r[s]
                                hp[base + s] = S(fromDouble: h)
                                yp[base + s] = S(fromDouble: g0[s * stride].asDouble * h + b0[s * stride].asDouble)
                            }
                        }
                        t0 += width
                    }
                    finiteOut[block] = (check.sum() + checkTail).isFinite
                    zeroOut[block] = Int(zeros.sum()) + zerosTail
                }
            }
        }
        for block in 0..<blocks {
            out.finite = out.finite && finiteBlocks[block]
            out.zeroVariances += zeroBlocks[block]
        }
        return out
    }

    private static func withPointers<S: NormScalar>(
        _ out: inout Outputs<S>,
        _ body: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<S>,
                 UnsafeMutablePointer<S>, UnsafeMutablePointer<S>) -> Void
    ) {
        out.means.withUnsafeMutableBufferPointer { means in
            out.rstds.withUnsafeMutableBufferPointer { rstds in
                out.mean.withUnsafeMutableBufferPointer { mean in
                    out.variance.withUnsafeMutableBufferPointer { variance in
                        out.rstd.withUnsafeMutableBufferPointer { rstd in
                            body(means.baseAddress!, rstds.baseAddress!, mean.baseAddress!, variance.baseAddress!,
                                 rstd.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func backward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, xhat: UnsafeBufferPointer<S>, rstds: [Double],
        gamma: [Double]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double], dbeta: inout [Double], threads: Int
    ) {
        let k = plan.channelsPerGroup, spatial = plan.spatial, groups = plan.groups, channels = plan.channels
        let batch = plan.batch
        let m = Double(k)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let centre = spec.centres, elementAffine = spec.affine == .element, channelAffine = spec.affine == .channel
        var partialGamma = [Double](repeating: 0, count: channelAffine ? batch * channels : 0)
        var partialBeta = [Double](repeating: 0, count: channelAffine ? batch * channels : 0)
        nonisolated(unsafe) let gp = dy.baseAddress!, hp = xhat.baseAddress!, dxp = dx.baseAddress!
        let parameterCount = elementAffine ? channels * spatial : channels
        let gammaValues = gamma ?? [Double](repeating: 1, count: parameterCount)
        let gammaPointer = UnsafeMutablePointer<Double>.allocate(capacity: parameterCount)
        defer { gammaPointer.deallocate() }
        for i in 0..<parameterCount { gammaPointer[i] = gammaValues[i] }
        nonisolated(unsafe) let gammaBase = UnsafePointer(gammaPointer)
        rstds.withUnsafeBufferPointer { rstdBuffer in
        nonisolated(unsafe) let rstdBase = rstdBuffer.baseAddress!
        partialGamma.withUnsafeMutableBufferPointer { pgBuffer in
        partialBeta.withUnsafeMutableBufferPointer { pbBuffer in
            nonisolated(unsafe) let pg = pgBuffer.baseAddress, pb = pbBuffer.baseAddress
            FastKernels.parallel(batch * groups, threads: threads) { range in
                // Per tile of positions: Σ γ·dy and Σ γ·dy·x̂ over the K rows (in L1 while both passes run); per row,
                // Σ dy and Σ dy·x̂ for channel-wise γ, β, carried across the tiles in the same lanes as one pass.
                let sumD = UnsafeMutablePointer<Double>.allocate(capacity: 2 * tile), sumDX = sumD + tile
                let rowSums = UnsafeMutablePointer<SIMD4<Double>>.allocate(capacity: 2 * k)
                let rowTails = UnsafeMutablePointer<Double>.allocate(capacity: 2 * k)
                defer { sumD.deallocate(); rowSums.deallocate(); rowTails.deallocate() }
                let stride = elementAffine ? 1 : 0
                let mv = SIMD4<Double>(repeating: m), dv = SIMD4<Double>(repeating: divisor)
                for block in range {
                    let g = block % groups, n = block / groups
                    let first = (n * channels + g * k) * spatial
                    rowSums.update(repeating: SIMD4<Double>(), count: 2 * k)
                    rowTails.update(repeating: 0, count: 2 * k)
                    var t0 = 0
                    while t0 < spatial {
                        let width = min(tile, spatial - t0)
                        sumD.update(repeating: 0, count: width)
                        sumDX.update(repeating: 0, count: width)
                        for row in 0..<k {
                            let c = g * k + row
                            let base = first + row * spatial + t0
                            var rowY4 = rowSums[2 * row], rowYX4 = rowSums[2 * row + 1]
                            var rowY = rowTails[2 * row], rowYX = rowTails[2 * row + 1]
                            let g0 = gammaBase + (elementAffine ? c * spatial + t0 : c)
                            Self.lanes(width) { s in
                                let dyv = wide4(gp + base + s), h = wide4(hp + base + s)
                                let dh = dyv * (elementAffine ? get4(g0 + s) : SIMD4<Double>(repeating: g0[0]))
                                put4(get4(sumD + s) + dh, sumD + s)
                                put4(get4(sumDX + s) + dh * h, sumDX + s)
                                rowY4 += dyv
                                rowYX4 += dyv * h
                            } one: { s in
                                let dyv = gp[base + s].asDouble, h = hp[base + s].asDouble
                                let dh = dyv * g0[s * stride]
                                sumD[s] += dh
                                sumDX[s] += dh * h
                                rowY += dyv
                                rowYX += dyv * h
                            }
                            rowSums[2 * row] = rowY4
                            rowSums[2 * row + 1] = rowYX4
                            rowTails[2 * row] = rowY
                            rowTails[2 * row + 1] = rowYX
                        }
                        let r0 = rstdBase + block * spatial + t0
                        for row in 0..<k {
                            let c = g * k + row
                            let base = first + row * spatial + t0
                            let g0 = gammaBase + (elementAffine ? c * spatial + t0 : c)
                            Self.lanes(width) { s in
                                let dh = wide4(gp + base + s) * (elementAffine ? get4(g0 + s) : SIMD4<Double>(repeating: g0[0]))
                                let meanTerm = centre ? get4(sumD + s) / mv : SIMD4<Double>()
                                narrow4(get4(r0 + s) * (dh - meanTerm - wide4(hp + base + s) * get4(sumDX + s) / dv), dxp + base + s)
                            } one: { s in
                                let rstd = r0[s]
                                let dh = gp[base + s].asDouble * g0[s * stride]
                                let meanTerm = centre ? sumD[s] / m : 0
                                dxp[base + s] = S(fromDouble: rstd * (dh - meanTerm - hp[base + s].asDouble * sumDX[s] / divisor))
                            }
                        }
                        t0 += width
                    }
                    if channelAffine, let pg, let pb {
                        for row in 0..<k {
                            let c = g * k + row
                            let y4 = rowSums[2 * row], yx4 = rowSums[2 * row + 1]
                            pg[n * channels + c] = ((yx4[0] + yx4[1]) + (yx4[2] + yx4[3])) + rowTails[2 * row + 1]
                            pb[n * channels + c] = ((y4[0] + y4[1]) + (y4[2] + y4[3])) + rowTails[2 * row]
                        }
                    }
                }
            }
        }}}
        let perSample = channels * spatial
        FastKernels.reduceParameterGradients(spec: spec, plan: plan, dy: dy, partialGamma: partialGamma,
                                             partialBeta: partialBeta, dgamma: &dgamma, dbeta: &dbeta,
                                             threads: threads) { n, elements, h in
            for e in elements { h[e - elements.lowerBound] = hp[n * perSample + e].asDouble }
        }
    }
}
