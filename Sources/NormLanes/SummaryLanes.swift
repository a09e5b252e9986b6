/// The summary line's moments of a float32 tensor (NormLabCore's `Wording.summaryLine`): compiled twice like the
/// other lane files, so AVX2 machines get 8-wide float compares and 4-wide Float64 sums. Min and max in float32
/// lanes (exact); the sums of x − shift and of its squares in Float64 lanes, eight elements a step: the same
/// operations in the same order in both builds, so the same bits. Below them, the same sums made by the normalise
/// loop as it writes y (`RunningSummary`), and that loop itself, shared by `applyAndShiftedSum` and its summarising
/// twin.
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
}

/// y's summary sums made by a loop as it writes y: Σ(y − shift), Σ(y − shift)², min and max in Float64 lanes (y − shift
/// exact, as `moments` makes them), with the shift the loop's first y. A pass over y after it is written re-reads it
/// from L2 or memory, and these Float64 sums cost as much as the normalisation; inside the loop they fill its waits
/// on memory.
struct RunningSummary {
    let shift: Float
    private let sv: SIMD4<Double>
    private var lows = FloatLanes.H(repeating: .infinity), highs = FloatLanes.H(repeating: -.infinity)
    private var sums = SIMD4<Double>(), squares = SIMD4<Double>()
    private var tail = (sum: 0.0, squares: 0.0, low: Double.infinity, high: -Double.infinity)

    @inline(__always)
    init(shift: Float) {
        self.shift = shift
        sv = SIMD4<Double>(repeating: Double(shift))
    }

    @_transparent
    mutating func add(_ v: FloatLanes.V) {
        let low = FloatLanes.lower(v.lowHalf, v.highHalf), high = FloatLanes.higher(v.lowHalf, v.highHalf)
        lows.replace(with: low, where: low .< lows)
        highs.replace(with: high, where: high .> highs)
        let d0 = FloatLanes.widen(v.lowHalf.lowHalf) - sv, d1 = FloatLanes.widen(v.lowHalf.highHalf) - sv
        let d2 = FloatLanes.widen(v.highHalf.lowHalf) - sv, d3 = FloatLanes.widen(v.highHalf.highHalf) - sv
        sums += (d0 + d1) + (d2 + d3)
        squares += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
    }

    /// `add` as a call: the element-wise loop, which also streams γ and β, is partly scalarised by the compiler when
    /// these sums are inlined into it (`time forward` with the summary, `layernorm affine=element` at (8, 64, 112,
    /// 112): 6.1 ms inlined, 3.7 ms called, 4.6 ms with a pass afterwards).
    @inline(never)
    mutating func addByCall(_ v: FloatLanes.V) { add(v) }

    @_transparent
    mutating func add(_ value: Float) {
        let v = Double(value), d = v - sv[0]
        tail.sum += d
        tail.squares += d * d
        tail.low = Swift.min(tail.low, v)
        tail.high = Swift.max(tail.high, v)
    }

    /// out = (shift, Σ(y − shift), Σ(y − shift)², min, max).
    @inline(__always)
    func write(_ out: UnsafeMutablePointer<Double>) {
        out[0] = Double(shift)
        out[1] = FloatLanes.total(sums) + tail.sum
        out[2] = FloatLanes.total(squares) + tail.squares
        out[3] = Swift.min(Double(FloatLanes.smallest(lows)), tail.low)
        out[4] = Swift.max(Double(FloatLanes.largest(highs)), tail.high)
    }
}

extension FloatLanes {
    /// `applyAndShiftedSum` (the same y and the same sum, bit for bit) that also writes y's summary sums to
    /// `summary` (`RunningSummary.write`).
    @inline(never)
    public static func applyAndShiftedSumSummarizing(
        _ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
        next: UnsafePointer<Float>, shift: Float, summary: UnsafeMutablePointer<Double>
    ) -> Double {
        applyAndShiftedSum(map, x, y, count: count, next: next, shift: shift, summary: summary)
    }

    /// Both: y = map(x) and Σ(next − shift), and y's summary sums when `summary` is not nil (a constant nil at the
    /// call folds them away).
    @inline(__always)
    static func applyAndShiftedSum(_ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                   next: UnsafePointer<Float>, shift: Float, summary: UnsafeMutablePointer<Double>?) -> Double {
        let hi = V(repeating: map.high), s = V(repeating: map.scale), t = V(repeating: map.offset)
        let k = V(repeating: shift)
        var running = RunningSummary(shift: count > 0 ? map.apply(x[0]) : 0)
        var wide = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var a = V()
            while i < end {
                let v = (load(x + i) - hi) * s + t
                store(v, y + i)
                a += load(next + i) - k
                if summary != nil { running.add(v) }
                i &+= 16
            }
            fold(a, into: &wide)
        }
        // Rows of 14×14 or 7×7 leave a few elements: four at a time, then one.
        var a4 = SIMD4<Float>()
        while i + 4 <= count {
            let v = (load4(x + i) - hi.lowHalf.lowHalf) * s.lowHalf.lowHalf + t.lowHalf.lowHalf
            store4(v, y + i)
            a4 += load4(next + i) - k.lowHalf.lowHalf
            if summary != nil { for lane in 0..<4 { running.add(v[lane]) } }
            i &+= 4
        }
        wide += widen(a4)
        var total = total(wide)
        while i < count {
            y[i] = map.apply(x[i])
            total += Double(next[i] - shift)
            if summary != nil { running.add(y[i]) }
            i += 1
        }
        if let summary { running.write(summary) }
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
