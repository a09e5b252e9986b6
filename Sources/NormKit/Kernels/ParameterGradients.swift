/// The reduction of the parameter gradients over the batch, shared by the fast kernels.
extension FastKernels {
    /// dγ, dβ from per (sample, channel) partial sums (channel-wise γ), or from dy and x̂ (element-wise γ, with
    /// `xhat(sample, elements, into)` writing x̂ of one sample's elements); summed over the batch in sample order
    /// either way.
    static func reduceParameterGradients<S: NormScalar>(
        spec: LayerSpec, plan: NormPlan, dy: UnsafeBufferPointer<S>, partialGamma: [Double], partialBeta: [Double],
        dgamma: inout [Double], dbeta: inout [Double], threads: Int,
        xhat: @escaping @Sendable (_ sample: Int, _ elements: Range<Int>, _ into: UnsafeMutablePointer<Double>) -> Void
    ) {
        let channels = plan.channels, batch = plan.batch, spatial = plan.spatial
        guard spec.affine != .none else { return }
        nonisolated(unsafe) let gp = dy.baseAddress!
        if spec.affine == .channel {
            // Sample by sample along contiguous memory; each channel still sums over n in order (the same bits).
            for c in 0..<channels {
                dgamma[c] = 0
                dbeta[c] = 0
            }
            partialGamma.withUnsafeBufferPointer { pg in
                partialBeta.withUnsafeBufferPointer { pb in
                    for n in 0..<batch {
                        let row = n * channels
                        for c in 0..<channels {
                            dgamma[c] += pg[row + c]
                            dbeta[c] += pb[row + c]
                        }
                    }
                }
            }
        } else {
            // Element-wise γ: one sum over the batch per element, in sample order.
            let perSample = channels * spatial
            dgamma.withUnsafeMutableBufferPointer { dgBuffer in
                dbeta.withUnsafeMutableBufferPointer { dbBuffer in
                    nonisolated(unsafe) let dg = dgBuffer.baseAddress!, db = dbBuffer.baseAddress!
                    parallel(perSample, threads: threads) { range in
                        // Tiles of elements whose sums stay in L1 while every sample is added, in sample order.
                        let tile = 512
                        let h = UnsafeMutablePointer<Double>.allocate(capacity: tile)
                        defer { h.deallocate() }
                        var lower = range.lowerBound
                        while lower < range.upperBound {
                            let upper = min(lower + tile, range.upperBound)
                            let g0 = dg + lower, b0 = db + lower
                            g0.update(repeating: 0, count: upper - lower)
                            b0.update(repeating: 0, count: upper - lower)
                            for n in 0..<batch {
                                xhat(n, lower..<upper, h)
                                let row = gp + n * perSample + lower
                                WideLanes.lanes(upper - lower) { e in
                                    let dyv = WideLanes.wide4(row + e)
                                    WideLanes.put4(WideLanes.get4(g0 + e) + dyv * WideLanes.get4(h + e), g0 + e)
                                    WideLanes.put4(WideLanes.get4(b0 + e) + dyv, b0 + e)
                                } one: { e in
                                    let dyv = row[e].asDouble
                                    g0[e] += dyv * h[e]
                                    b0[e] += dyv
                                }
                            }
                            lower = upper
                        }
                    }
                }
            }
        }
    }
}
