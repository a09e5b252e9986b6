import CVectorMath

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
                    evalElementsGradient(dy: dyRow, x: xRow, dx: dxRow, count: high - low, scale: s, mean: m, rstd: r,
                                         sumDy: sd.map { $0 + low }, sumDyXhat: sd.map { $0 + channels + low })
                }
            }
        }}}
        guard let sums else { return }
        for c in 0..<channels {
            dgamma[c] = sums[channels + c]
            dbeta[c] = sums[c]
        }
    }

    /// dx = dy·scale rounded once, and with `sumDy`, dy and dy·x̂ (x̂ = (x − mean)·rstd) added into the sums, element by
    /// element in Float64: C for float32 and float64 (AVX2 where the CPU has it), the same operations as this loop.
    @inline(__always)
    static func evalElementsGradient<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, count: Int,
        scale: UnsafePointer<Double>, mean: UnsafePointer<Double>, rstd: UnsafePointer<Double>,
        sumDy: UnsafeMutablePointer<Double>?, sumDyXhat: UnsafeMutablePointer<Double>?
    ) {
        if S.self == Float.self {
            normlab_eval_elements_gradient_f32(UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self),
                                               UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
                                               UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self), count,
                                               scale, mean, rstd, sumDy, sumDyXhat)
        } else if S.self == Double.self {
            normlab_eval_elements_gradient_f64(UnsafeRawPointer(dy).assumingMemoryBound(to: Double.self),
                                               UnsafeRawPointer(x).assumingMemoryBound(to: Double.self),
                                               UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Double.self), count,
                                               scale, mean, rstd, sumDy, sumDyXhat)
        } else {
            for i in 0..<count {
                let d = dy[i].asDouble
                dx[i] = S(fromDouble: d * scale[i])
                if let sumDy, let sumDyXhat {
                    sumDy[i] += d
                    sumDyXhat[i] += d * ((x[i].asDouble - mean[i]) * rstd[i])
                }
            }
        }
    }
}
