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

    /// dx = dy·(γ·rstd) and, in Float64, Σ dy and Σ dy·x̂ per channel: over each chunk of `sampleChunk` samples in
    /// order (`evalRowGradient`'s tail, which a row of one element goes to whole), then the chunks' sums in chunk order
    /// — fixed chunks, so the same sums on any number of threads (one chunk, up to 256 samples: the samples in order).
    /// Threads take whole chunks where there are chunks enough (whole rows: on (4096, 768), threads that split the
    /// channels each read half of every row and two were no faster than one — a C replica: 1.83 ms against 1.72 on one
    /// thread, 0.95 with the rows split), else spans of channels within each chunk.
    static func evalColumnsBackward<S: NormScalar>(
        plan: NormPlan, dy: UnsafeBufferPointer<S>, x: UnsafeBufferPointer<S>, means: [Double], rstds: [Double],
        gamma: [Double]?, dx: UnsafeMutableBufferPointer<S>, dgamma: inout [Double], dbeta: inout [Double],
        wantParameters: Bool, threads: Int
    ) {
        let channels = plan.channels, batch = plan.batch
        let scales = (0..<channels).map { c in (gamma?[c] ?? 1) * rstds[c] }
        let chunks = max(1, (batch + sampleChunk - 1) / sampleChunk)
        // Each chunk's Σ dy, then Σ dy·x̂, per channel; none without parameters.
        let sums: UnsafeMutablePointer<Double>? = wantParameters ? .allocate(capacity: 2 * channels * chunks) : nil
        defer { sums?.deallocate() }
        sums?.initialize(repeating: 0, count: 2 * channels * chunks)
        nonisolated(unsafe) let gp = dy.baseAddress!, xp = x.baseAddress!, dxp = dx.baseAddress!, sd = sums
        scales.withUnsafeBufferPointer { scaleBuffer in means.withUnsafeBufferPointer { meanBuffer in
        rstds.withUnsafeBufferPointer { rstdBuffer in
            nonisolated(unsafe) let scale = scaleBuffer.baseAddress!, mean = meanBuffer.baseAddress!
            nonisolated(unsafe) let rstd = rstdBuffer.baseAddress!
            // Whole rows when each thread gets two chunks or more; else spans of channels, two a thread (spans of
            // 64 channels read runs of 256 bytes a row).
            let span = chunks >= 2 * threads ? channels : max(64, (channels + 2 * threads - 1) / (2 * threads))
            let spans = (channels + span - 1) / span
            FastKernels.parallel(chunks * spans, threads: threads) { range in
                for unit in range {
                    let chunk = unit / spans, low = (unit % spans) * span, high = min(channels, low + span)
                    let chunkSums = sd.map { $0 + 2 * channels * chunk }
                    for n in (chunk * sampleChunk)..<min(batch, (chunk + 1) * sampleChunk) {
                        let row = n * channels + low
                        evalElementsGradient(dy: gp + row, x: xp + row, dx: dxp + row, count: high - low,
                                             scale: scale + low, mean: mean + low, rstd: rstd + low,
                                             sumDy: chunkSums.map { $0 + low },
                                             sumDyXhat: chunkSums.map { $0 + channels + low })
                    }
                }
            }
        }}}
        guard let sums else { return }
        for c in 0..<channels {
            var sumDy = sums[c], sumProducts = sums[channels + c]
            for chunk in 1..<chunks {
                sumDy += sums[2 * channels * chunk + c]
                sumProducts += sums[2 * channels * chunk + channels + c]
            }
            dgamma[c] = sumProducts
            dbeta[c] = sumDy
        }
    }

    /// Samples whose sums `evalColumnsBackward` makes on their own before adding them up.
    static let sampleChunk = 256

    /// dx = dy·scale rounded once, and with `sumDy`, dy and dy·x̂ (x̂ = (x − mean)·rstd) added into the sums, element by
    /// element in Float64: C for float32 and float64 (AVX2 or AVX-512F where the CPU has it), the same operations as
    /// this loop.
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
