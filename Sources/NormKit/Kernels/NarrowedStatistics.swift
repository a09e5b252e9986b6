import CVectorMath

extension ColumnKernels {
    /// The statistics in the tensors' element type, made tile by tile while the tile's Float64 values are in cache
    /// (a pass over the Float64 arrays afterwards cost half the kernel's own time for BatchNorm per element): μ, σ²,
    /// rstd, and Σ(x − μ)²/(m − 1) for the running variance — each value as `FastKernels.narrowed` rounds it.
    struct NarrowedStatistics<S: NormScalar>: @unchecked Sendable {
        let mean, variance, rstd, unbiased: UnsafeMutablePointer<S>
        let unbiasedDivisor: Double
        /// Where the float32 kernels keep each column's μ₀ and c for backward (`KeptColumnConstants`), or nil.
        var firstMean: UnsafeMutablePointer<S>? = nil, shift: UnsafeMutablePointer<S>? = nil

        /// Values `source ..< source + count` of `stats` into `first ..< first + count`.
        func narrow(_ stats: FastKernels.Statistics.Pointers, from source: Int, at first: Int, count: Int) {
            let (means, variances, rstds, sumSquares) = (stats.means + source, stats.variances + source,
                                                         stats.rstds + source, stats.sumSquares + source)
            let (mean, variance, rstd, unbiased) = (mean + first, variance + first, rstd + first, unbiased + first)
            var i = 0
            let divisors = SIMD4<Double>(repeating: unbiasedDivisor)
            while i + 4 <= count {  // lane by lane the same roundings as one value alone
                WideLanes.narrow4(WideLanes.get4(means + i), mean + i)
                WideLanes.narrow4(WideLanes.get4(variances + i), variance + i)
                WideLanes.narrow4(WideLanes.get4(rstds + i), rstd + i)
                WideLanes.narrow4(WideLanes.get4(sumSquares + i) / divisors, unbiased + i)
                i += 4
            }
            for i in i..<count {
                mean[i] = S(fromDouble: means[i])
                variance[i] = S(fromDouble: variances[i])
                rstd[i] = S(fromDouble: rstds[i])
                unbiased[i] = S(fromDouble: sumSquares[i] / unbiasedDivisor)
            }
        }

        /// Whether the float32 kernels can write these values themselves (`kernelView`): float32, and m − 1 exact
        /// in float32 (they divide in float32).
        var kernelNarrows: Bool { Self.narrowsInKernel(unbiasedDivisor: unbiasedDivisor) }

        static func narrowsInKernel(unbiasedDivisor: Double) -> Bool {
            S.self == Float.self && Double(Float(unbiasedDivisor)) == unbiasedDivisor
        }

        /// Values `first…` as the float32 kernels write them (when `kernelNarrows`).
        func kernelView(at first: Int) -> normlab_narrowed_statistics {
            func float(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
                UnsafeMutableRawPointer(p + first).assumingMemoryBound(to: Float.self)
            }
            return normlab_narrowed_statistics(mean: float(mean), variance: float(variance), rstd: float(rstd),
                                               unbiased: float(unbiased), unbiased_divisor: unbiasedDivisor,
                                               first_mean: firstMean.map(float), shift: shift.map(float))
        }
    }
}
