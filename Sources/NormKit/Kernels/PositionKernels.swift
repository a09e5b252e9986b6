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

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func forward<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: UnsafeBufferPointer<S>, gamma: [Double]?, beta: [Double]?,
        xhat: UnsafeMutableBufferPointer<S>, y: UnsafeMutableBufferPointer<S>, threads: Int
    ) -> FastKernels.Statistics {
        let count = plan.statsShape.count
        let k = plan.channelsPerGroup, spatial = plan.spatial, groups = plan.groups, channels = plan.channels
        let m = Double(k)
        let divisor = Double(spec.variance == .unbiased ? k - 1 : k)
        let centre = spec.centres, eps = spec.eps, elementAffine = spec.affine == .element
        var stats = FastKernels.Statistics(count: count)
        nonisolated(unsafe) let xp = x.baseAddress!, hp = xhat.baseAddress!, yp = y.baseAddress!
        // γ and β as plain pointers (ones and zeros when absent): no optionals or ARC in the element loops.
        let parameterCount = elementAffine ? channels * spatial : channels
        let gammaValues = gamma ?? [Double](repeating: 1, count: parameterCount)
        let betaValues = beta ?? [Double](repeating: 0, count: parameterCount)
        let parameters = UnsafeMutablePointer<Double>.allocate(capacity: 2 * parameterCount)
        defer { parameters.deallocate() }
        for i in 0..<parameterCount {
            parameters[i] = gammaValues[i]
            parameters[parameterCount + i] = betaValues[i]
        }
        nonisolated(unsafe) let gp = UnsafePointer(parameters), bp = UnsafePointer(parameters + parameterCount)
        stats.withPointers { out in
            nonisolated(unsafe) let means = out.means, vars = out.variances, rstds = out.rstds, sq = out.sumSquares
            FastKernels.parallel(plan.batch * groups, threads: threads) { range in
                let stride = elementAffine ? 1 : 0
                let spread = UnsafeMutablePointer<Double>.allocate(capacity: spatial)
                defer { spread.deallocate() }
                for block in range {
                    let g = block % groups, n = block / groups
                    let first = (n * channels + g * k) * spatial
                    let mu = means + block * spatial, v = vars + block * spatial
                    let r = rstds + block * spatial, q = sq + block * spatial
                    mu.update(repeating: 0, count: spatial)
                    q.update(repeating: 0, count: spatial)
                    let x0 = xp + first
                    if centre {
                        // μ = Σx / m in row order (as NumPy's sum over the axis of two or three rows), except that a
                        // constant set gets its value exactly, so x − μ is exactly 0 there (sum/m may round):
                        // Σ|x − x₀| is 0 exactly when every row equals the first (and NaN when one is NaN).
                        spread.update(repeating: 0, count: spatial)
                        for row in 0..<k {
                            let xr = xp + first + row * spatial
                            Self.lanes(spatial) { s in
                                let value = wide4(xr + s)
                                put4(get4(mu + s) + value, mu + s)
                                let d = value - wide4(x0 + s)
                                put4(get4(spread + s) + pointwiseMax(d, -d), spread + s)
                            } one: { s in
                                mu[s] += xr[s].asDouble
                                spread[s] += abs(xr[s].asDouble - x0[s].asDouble)
                            }
                        }
                        let mv = SIMD4<Double>(repeating: m)
                        Self.lanes(spatial) { s in
                            let mean = (get4(mu + s) / mv).replacing(with: wide4(x0 + s), where: get4(spread + s) .== 0)
                            put4(mean, mu + s)
                        } one: { s in
                            mu[s] = spread[s] == 0 ? x0[s].asDouble : mu[s] / m
                        }
                    }
                    for row in 0..<k {
                        let xr = xp + first + row * spatial
                        Self.lanes(spatial) { s in
                            let d = wide4(xr + s) - get4(mu + s)
                            put4(get4(q + s) + d * d, q + s)
                        } one: { s in
                            let d = xr[s].asDouble - mu[s]
                            q[s] += d * d
                        }
                    }
                    let dv = SIMD4<Double>(repeating: divisor), ev = SIMD4<Double>(repeating: eps)
                    Self.lanes(spatial) { s in
                        let variance = get4(q + s) / dv
                        put4(variance, v + s)
                        put4(1 / (variance + ev).squareRoot(), r + s)
                    } one: { s in
                        v[s] = q[s] / divisor
                        r[s] = 1 / (v[s] + eps).squareRoot()
                    }
                    for row in 0..<k {
                        let c = g * k + row
                        let base = first + row * spatial
                        let g0 = gp + (elementAffine ? c * spatial : c), b0 = bp + (elementAffine ? c * spatial : c)
                        Self.lanes(spatial) { s in
                            let h = (wide4(xp + base + s) - get4(mu + s)) * get4(r + s)
                            let gv = elementAffine ? get4(g0 + s) : SIMD4<Double>(repeating: g0[0])
                            let bv = elementAffine ? get4(b0 + s) : SIMD4<Double>(repeating: b0[0])
                            narrow4(h, hp + base + s)
                            narrow4(gv * h + bv, yp + base + s)
                        } one: { s in
                            let h = (xp[base + s].asDouble - mu[s]) * r[s]
                            hp[base + s] = S(fromDouble: h)
                            yp[base + s] = S(fromDouble: g0[s * stride] * h + b0[s * stride])
                        }
                    }
                }
            }
        }
        return stats
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
                let sumD = UnsafeMutablePointer<Double>.allocate(capacity: spatial)
                let sumDX = UnsafeMutablePointer<Double>.allocate(capacity: spatial)
                defer { sumD.deallocate(); sumDX.deallocate() }
                let stride = elementAffine ? 1 : 0
                for block in range {
                    let g = block % groups, n = block / groups
                    let first = (n * channels + g * k) * spatial
                    sumD.update(repeating: 0, count: spatial)
                    sumDX.update(repeating: 0, count: spatial)
                    for row in 0..<k {
                        let c = g * k + row
                        let base = first + row * spatial
                        var rowY4 = SIMD4<Double>(), rowYX4 = SIMD4<Double>()
                        var rowY = 0.0, rowYX = 0.0
                        let g0 = gammaBase + (elementAffine ? c * spatial : c)
                        Self.lanes(spatial) { s in
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
                        if channelAffine, let pg, let pb {
                            pg[n * channels + c] = ((rowYX4[0] + rowYX4[1]) + (rowYX4[2] + rowYX4[3])) + rowYX
                            pb[n * channels + c] = ((rowY4[0] + rowY4[1]) + (rowY4[2] + rowY4[3])) + rowY
                        }
                    }
                    let r0 = rstdBase + block * spatial
                    let mv = SIMD4<Double>(repeating: m), dv = SIMD4<Double>(repeating: divisor)
                    for row in 0..<k {
                        let c = g * k + row
                        let base = first + row * spatial
                        let g0 = gammaBase + (elementAffine ? c * spatial : c)
                        Self.lanes(spatial) { s in
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
