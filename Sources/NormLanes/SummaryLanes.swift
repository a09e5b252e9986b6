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

extension FloatLanes {
    /// `applyAndShiftedSum` (the same y and the same sum, bit for bit) that also adds y's summary sums to `moments`
    /// — (Σ(y − summaryShift), Σ(y − summaryShift)², min, max), in Float64 as `moments` makes them — while y is in
    /// registers: a pass over a set's y after it is written re-reads it from L2 or memory, and its Float64 sums
    /// cost as much as the normalisation (this loop waits on memory with its arithmetic units idle).
    @inline(never)
    public static func applyAndShiftedSumSummarizing(
        _ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
        next: UnsafePointer<Float>, shift: Float, summaryShift: Float, moments: UnsafeMutablePointer<Double>
    ) -> Double {
        applyAndShiftedSum(map, x, y, count: count, next: next, shift: shift, summary: (summaryShift, moments))
    }

    /// Both: y = map(x) and Σ(next − shift), with y's summary sums added to `summary` when there is one (a constant
    /// nil at the call folds the summary away).
    @inline(__always)
    static func applyAndShiftedSum(_ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                   next: UnsafePointer<Float>, shift: Float,
                                   summary: (shift: Float, moments: UnsafeMutablePointer<Double>)?) -> Double {
        let hi = V(repeating: map.high), s = V(repeating: map.scale), t = V(repeating: map.offset)
        let k = V(repeating: shift)
        let sv = SIMD4<Double>(repeating: Double(summary?.shift ?? 0))
        var lows = H(repeating: .infinity), highs = H(repeating: -.infinity)
        var ySums = SIMD4<Double>(), ySquares = SIMD4<Double>()
        var wide = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var a = V()
            while i < end {
                let v = (load(x + i) - hi) * s + t
                store(v, y + i)
                a += load(next + i) - k
                if summary != nil {
                    let low = lower(v.lowHalf, v.highHalf), high = higher(v.lowHalf, v.highHalf)
                    lows.replace(with: low, where: low .< lows)
                    highs.replace(with: high, where: high .> highs)
                    let d0 = widen(v.lowHalf.lowHalf) - sv, d1 = widen(v.lowHalf.highHalf) - sv
                    let d2 = widen(v.highHalf.lowHalf) - sv, d3 = widen(v.highHalf.highHalf) - sv
                    ySums += (d0 + d1) + (d2 + d3)
                    ySquares += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                }
                i &+= 16
            }
            fold(a, into: &wide)
        }
        // Rows of 14×14 or 7×7 leave a few elements: four at a time, then one.
        var ySum = total(ySums), ySquare = total(ySquares)
        var yLow = Double(smallest(lows)), yHigh = Double(largest(highs))
        @inline(__always) func summarize(_ value: Float) {
            guard summary != nil else { return }
            let v = Double(value), d = v - sv[0]
            ySum += d
            ySquare += d * d
            yLow = Swift.min(yLow, v)
            yHigh = Swift.max(yHigh, v)
        }
        var a4 = SIMD4<Float>()
        while i + 4 <= count {
            let v = (load4(x + i) - hi.lowHalf.lowHalf) * s.lowHalf.lowHalf + t.lowHalf.lowHalf
            store4(v, y + i)
            a4 += load4(next + i) - k.lowHalf.lowHalf
            for lane in 0..<4 { summarize(v[lane]) }
            i &+= 4
        }
        wide += widen(a4)
        var total = total(wide)
        while i < count {
            y[i] = map.apply(x[i])
            total += Double(next[i] - shift)
            summarize(y[i])
            i += 1
        }
        if let moments = summary?.moments {
            moments[0] += ySum
            moments[1] += ySquare
            moments[2] = Swift.min(moments[2], yLow)
            moments[3] = Swift.max(moments[3], yHigh)
        }
        return total
    }

    /// Lane-wise min and max of two vectors; a NaN lane in `a` wins (the sums are NaN then, and min and max unused).
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
