/// The summary line's moments of a float32 tensor (NormLabCore's `Wording.summaryLine`): compiled twice like the
/// other lane files, so AVX2 machines get 8-wide lanes; the same operations in the same order in both builds, so
/// the same bits.
///
/// The kernels' scheme (`FloatLanes`): d = x − shift and d² in Float32 lanes, four vectors a step added pairwise
/// and four steps a chunk (16 terms a lane), each chunk folded to four lanes and added in Float64. Float64 lanes
/// throughout cost as much as the forward pass that made y; these sums stay well inside the summary's noise floor
/// (four float32 roundings of its largest value). Min and max are exact.
extension FloatLanes {
    /// Outside 2⁻³⁰ ≤ max |x − shift| ≤ 2⁶⁰ Float32 squares could lose their low terms to underflow or overflow, so
    /// such a run is summed in Float64 lanes instead.
    static let float32Spread: ClosedRange<Double> = 0x1p-30...0x1p60

    /// (Σ(x − shift), Σ(x − shift)², min, max) over `count` elements. NaN makes the sums NaN; min and max then mean
    /// nothing (the caller counts instead).
    @inline(never)
    public static func moments(_ p: UnsafePointer<Float>, count: Int, shift: Float)
        -> (sum: Double, squares: Double, low: Double, high: Double) {
        let k = H(repeating: shift)
        var lows = H(repeating: .infinity), highs = H(repeating: -.infinity)
        var sums = SIMD4<Double>(), squares = SIMD4<Double>()
        var i = 0
        while i + 32 <= count {
            let end = i + min(chunk / 2, (count - i) & ~31)
            var s = H(), q = H()
            while i < end {
                let v0 = load8(p + i), v1 = load8(p + i + 8), v2 = load8(p + i + 16), v3 = load8(p + i + 24)
                let low = lower(lower(v0, v1), lower(v2, v3)), high = higher(higher(v0, v1), higher(v2, v3))
                lows.replace(with: low, where: low .< lows)
                highs.replace(with: high, where: high .> highs)
                let d0 = v0 - k, d1 = v1 - k, d2 = v2 - k, d3 = v3 - k
                s += (d0 + d1) + (d2 + d3)
                q += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                i &+= 32
            }
            fold8(s, into: &sums)
            fold8(q, into: &squares)
        }
        let tail = wideMoments(p + i, count: count - i, shift: shift)
        let low = min(Double(smallest(lows)), tail.low), high = max(Double(largest(highs)), tail.high)
        let spread = max(high - Double(shift), Double(shift) - low)
        guard i == 0 || spread == 0 || float32Spread.contains(spread) else { return wideMoments(p, count: count, shift: shift) }
        return (total(sums) + tail.sum, total(squares) + tail.squares, low, high)
    }

    /// `moments` in Float64 lanes: d = x − shift exact, eight elements a step.
    static func wideMoments(_ p: UnsafePointer<Float>, count: Int, shift: Float)
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
        var low = Double(smallest(lows)), high = Double(largest(highs))
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

    /// Lane-wise min and max of two vectors (a NaN lane in `a` wins): the loop's four vectors meet in a tree, so
    /// `lows` and `highs` wait on one dependent step a step, not four.
    @inline(__always)
    static func lower(_ a: H, _ b: H) -> H { a.replacing(with: b, where: b .< a) }

    @inline(__always)
    static func higher(_ a: H, _ b: H) -> H { a.replacing(with: b, where: b .> a) }

    /// The smallest lane, in halves (`min()` is a scalar loop with a branch per lane); no lane may be NaN.
    @inline(__always)
    static func smallest(_ v: H) -> Float {
        var four = v.lowHalf
        four.replace(with: v.highHalf, where: v.highHalf .< four)
        var two = four.lowHalf
        two.replace(with: four.highHalf, where: four.highHalf .< two)
        return two[1] < two[0] ? two[1] : two[0]
    }

    /// The largest lane, as `smallest`.
    @inline(__always)
    static func largest(_ v: H) -> Float {
        var four = v.lowHalf
        four.replace(with: v.highHalf, where: v.highHalf .> four)
        var two = four.lowHalf
        two.replace(with: four.highHalf, where: four.highHalf .> two)
        return two[1] > two[0] ? two[1] : two[0]
    }
}
