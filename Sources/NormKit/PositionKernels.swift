/// The fast path for per-position statistics (reduce=channels, PyDLLib's GroupNorm, LayerNorm, InstanceNorm and
/// RMSNorm): in each (sample, group) block the K channel rows of S elements are reduced row by row into one
/// accumulator per position, so every loop runs along contiguous memory. Work is split over the blocks; each block
/// is reduced in a fixed order, so the results are the same bits for every thread count.
enum PositionKernels {
    static func applies(_ spec: LayerSpec) -> Bool {
        spec.kind != .batchnorm && spec.reduce == .channels
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
                let constant = UnsafeMutablePointer<Bool>.allocate(capacity: spatial)
                defer { constant.deallocate() }
                for block in range {
                    let g = block % groups, n = block / groups
                    let first = (n * channels + g * k) * spatial
                    let mu = means + block * spatial, v = vars + block * spatial
                    let r = rstds + block * spatial, q = sq + block * spatial
                    for s in 0..<spatial { mu[s] = 0; q[s] = 0; constant[s] = true }
                    if centre {
                        for row in 0..<k {
                            let xr = xp + first + row * spatial
                            for s in 0..<spatial {
                                mu[s] += xr[s].asDouble
                                if xr[s] != xp[first + s] { constant[s] = false }
                            }
                        }
                        // A constant set gets its value exactly, so x − μ is exactly 0 there (sum/m may round).
                        for s in 0..<spatial { mu[s] = constant[s] ? xp[first + s].asDouble : mu[s] / m }
                    }
                    for row in 0..<k {
                        let xr = xp + first + row * spatial
                        for s in 0..<spatial {
                            let d = xr[s].asDouble - mu[s]
                            q[s] += d * d
                        }
                    }
                    for s in 0..<spatial {
                        v[s] = q[s] / divisor
                        r[s] = 1 / (v[s] + eps).squareRoot()
                    }
                    for row in 0..<k {
                        let c = g * k + row
                        let base = first + row * spatial
                        let stride = elementAffine ? 1 : 0
                        let g0 = gp + (elementAffine ? c * spatial : c), b0 = bp + (elementAffine ? c * spatial : c)
                        for s in 0..<spatial {
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
        let rstdPointer = UnsafeMutablePointer<Double>.allocate(capacity: rstds.count)
        defer { rstdPointer.deallocate() }
        for i in 0..<rstds.count { rstdPointer[i] = rstds[i] }
        nonisolated(unsafe) let rstdBase = UnsafePointer(rstdPointer)
        partialGamma.withUnsafeMutableBufferPointer { pgBuffer in
        partialBeta.withUnsafeMutableBufferPointer { pbBuffer in
            nonisolated(unsafe) let pg = pgBuffer.baseAddress, pb = pbBuffer.baseAddress
            FastKernels.parallel(batch * groups, threads: threads) { range in
                let sumD = UnsafeMutablePointer<Double>.allocate(capacity: spatial)
                let sumDX = UnsafeMutablePointer<Double>.allocate(capacity: spatial)
                defer { sumD.deallocate(); sumDX.deallocate() }
                for block in range {
                    let g = block % groups, n = block / groups
                    let first = (n * channels + g * k) * spatial
                    for s in 0..<spatial { sumD[s] = 0; sumDX[s] = 0 }
                    for row in 0..<k {
                        let c = g * k + row
                        let base = first + row * spatial
                        var rowY = 0.0, rowYX = 0.0
                        let stride = elementAffine ? 1 : 0
                        let g0 = gammaBase + (elementAffine ? c * spatial : c)
                        for s in 0..<spatial {
                            let dyv = gp[base + s].asDouble, h = hp[base + s].asDouble
                            let dh = dyv * g0[s * stride]
                            sumD[s] += dh
                            sumDX[s] += dh * h
                            rowY += dyv
                            rowYX += dyv * h
                        }
                        if channelAffine, let pg, let pb {
                            pg[n * channels + c] = rowYX
                            pb[n * channels + c] = rowY
                        }
                    }
                    for row in 0..<k {
                        let c = g * k + row
                        let base = first + row * spatial
                        let stride = elementAffine ? 1 : 0
                        let g0 = gammaBase + (elementAffine ? c * spatial : c)
                        let r0 = rstdBase + block * spatial
                        for s in 0..<spatial {
                            let rstd = r0[s]
                            let dh = gp[base + s].asDouble * g0[s * stride]
                            let meanTerm = centre ? sumD[s] / m : 0
                            dxp[base + s] = S(fromDouble: rstd * (dh - meanTerm - hp[base + s].asDouble * sumDX[s] / divisor))
                        }
                    }
                }
            }
        }}
        let perSample = channels * spatial
        FastKernels.reduceParameterGradients(spec: spec, plan: plan, dy: dy, partialGamma: partialGamma,
                                             partialBeta: partialBeta, dgamma: &dgamma, dbeta: &dbeta,
                                             threads: threads) { n, elements, h in
            for e in elements { h[e - elements.lowerBound] = hp[n * perSample + e].asDouble }
        }
    }
}
