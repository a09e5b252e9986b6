/// BatchNorm in eval mode per channel on inputs with one position ((N, C), (N, C, 1, 1)): each channel's row is a
/// single element, so the per-row loops made a call per element. Here a sample's channels run side by side along
/// its row, each element with its channel's constants and the very operations of the per-row loops — the same bits.
extension StridedKernels {
    /// y = (x − μ_high)·scale + offset with channel c's `AffineMap`, sample by sample.
    static func evalColumns<S: NormScalar>(_ maps: [AffineMap<S>], batch: Int, x: UnsafeBufferPointer<S>,
                                           y: UnsafeMutableBufferPointer<S>, threads: Int) {
        let channels = maps.count
        let constants = UnsafeMutablePointer<S>.allocate(capacity: 3 * max(channels, 1))
        defer { constants.deallocate() }
        for (c, map) in maps.enumerated() {
            (constants + c).initialize(to: map.high)
            (constants + channels + c).initialize(to: map.scale)
            (constants + 2 * channels + c).initialize(to: map.offset)
        }
        nonisolated(unsafe) let xp = x.baseAddress!, yp = y.baseAddress!, high = UnsafePointer(constants)
        FastKernels.parallel(batch, threads: threads) { range in
            let scale = high + channels, offset = high + 2 * channels
            for n in range {
                let xr = xp + n * channels, yr = yp + n * channels
                for c in 0..<channels { yr[c] = (xr[c] - high[c]) * scale[c] + offset[c] }
            }
        }
    }

    /// dx = dy·(γ·rstd) and, in Float64, Σ dy and Σ dy·x̂ per channel over the samples in order (`evalRowGradient`'s
    /// tail, which a row of one element goes to whole): threads take spans of channels, each running every sample.
    static func evalColumnsBackward<S: NormScalar>(
        plan: NormPlan, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double],
        gamma: [Double]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double], dbeta: inout [Double],
        wantParameters: Bool, threads: Int
    ) {
        let channels = plan.channels, batch = plan.batch
        let scales = (0..<channels).map { c in (gamma?[c] ?? 1) * rstds[c] }
        // Σ dy, then Σ dy·x̂, per channel; none without parameters.
        let sums: UnsafeMutablePointer<Double>? = wantParameters ? .allocate(capacity: 2 * channels) : nil
        defer { sums?.deallocate() }
        sums?.initialize(repeating: 0, count: 2 * channels)
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!, sd = sums
        scales.withUnsafeBufferPointer { scaleBuffer in means.withUnsafeBufferPointer { meanBuffer in
        rstds.withUnsafeBufferPointer { rstdBuffer in
            nonisolated(unsafe) let scale = scaleBuffer.baseAddress!, mean = meanBuffer.baseAddress!
            nonisolated(unsafe) let rstd = rstdBuffer.baseAddress!
            // Spans of channels, each running every sample: whole rows on one thread, two spans a thread on more
            // (spans of 64 channels read runs of 256 bytes a row, and two threads were no faster than one).
            let span = max(64, (channels + 2 * threads - 1) / (2 * threads)), spans = (channels + span - 1) / span
            FastKernels.parallel(spans, threads: threads) { range in
                let low = range.lowerBound * span, high = min(channels, range.upperBound * span)
                for n in 0..<batch {
                    let dyRow = gp + n * channels + low, xRow = xp + n * channels + low, dxRow = dxp + n * channels + low
                    let s = scale + low, m = mean + low, r = rstd + low
                    // Four lanes at a time, each the operations of one element alone.
                    WideLanes.lanes(high - low) { i in
                        let d = WideLanes.wide4(dyRow + i)
                        WideLanes.narrow4(d * WideLanes.get4(s + i), dxRow + i)
                        if let sd {
                            let at = sd + low + i, products = sd + channels + low + i
                            WideLanes.put4(WideLanes.get4(at) + d, at)
                            WideLanes.put4(WideLanes.get4(products)
                                           + d * ((WideLanes.wide4(xRow + i) - WideLanes.get4(m + i)) * WideLanes.get4(r + i)),
                                           products)
                        }
                    } one: { i in
                        let d = dyRow[i].asDouble
                        dxRow[i] = S(fromDouble: d * s[i])
                        if let sd {
                            sd[low + i] += d
                            sd[channels + low + i] += d * ((xRow[i].asDouble - m[i]) * r[i])
                        }
                    }
                }
            }
        }}}
        guard let sums else { return }
        for c in 0..<channels {
            dgamma[c] = sums[channels + c]
            dbeta[c] = sums[c]
        }
    }
}
