/// The summary line's moments of a float32 tensor (NormLabCore's `Wording.summaryLine`): compiled twice like the
/// other lane files, so AVX2 machines get 8-wide float compares and 4-wide Float64 sums. Min and max in float32
/// lanes (exact); the sums of x − shift and of its squares in Float64 lanes, eight elements a step: the same
/// operations in the same order in both builds, so the same bits.
extension FloatLanes {
    /// (Σ(x − shift), Σ(x − shift)², min, max) over `count` elements; NaN is skipped by min and max and makes the
    /// sums NaN.
    @inline(never)
    public static func moments(_ p: UnsafePointer<Float>, count: Int, shift: Float)
        -> (sum: Double, squares: Double, low: Double, high: Double) {
        let s = Double(shift)
        let sv = SIMD4<Double>(repeating: s)
        var lows = H(repeating: .infinity), highs = H(repeating: -.infinity)
        var s0 = SIMD4<Double>(), s1 = SIMD4<Double>(), q0 = SIMD4<Double>(), q1 = SIMD4<Double>()
        var i = 0
        while i + 8 <= count {
            let v = load8(p + i)
            lows.replace(with: v, where: v .< lows)
            highs.replace(with: v, where: v .> highs)
            let d0 = widen(v.lowHalf) - sv, d1 = widen(v.highHalf) - sv
            s0 += d0
            s1 += d1
            q0 += d0 * d0
            q1 += d1 * d1
            i &+= 8
        }
        var sum = total(s0 + s1), squares = total(q0 + q1)
        var low = Double(lows.min()), high = Double(highs.max())
        while i < count {
            let v = Double(p[i]), d = v - s
            sum += d
            squares += d * d
            low = Swift.min(low, v)
            high = Swift.max(high, v)
            i += 1
        }
        return (sum, squares, low, high)
    }
}
