/// The element loops of the fast kernels, one implementation per element type, over `count` contiguous elements.
///
/// μ enters Float32 lanes as its nearest Float, μ_high, with the remainder μ_low = μ − μ_high kept in Float64 and
/// folded into per-row constants: x − μ_high is exact near the mean (Sterbenz), so a Float32 input of 1e6 + noise
/// keeps its fraction, and each element costs one subtraction. For Double, μ_high = μ and μ_low = 0.
///
/// Sums are returned in Float64. Float32 sums are formed in Float32 lanes over chunks of at most 256 elements (each
/// lane adds at most 8 terms, then the lanes are folded pairwise), and the chunks' partial sums are added in
/// Float64: a relative error of a few Float32 roundings at worst, while the lanes run at full SIMD width. Double sums
/// accumulate in Double lanes throughout.
enum Lanes {
    // Each entry point dispatches on the element type; under specialisation the test folds away.

    /// Σ(x − shift); for a set whose elements all equal `shift` this is exactly 0.
    @inline(__always)
    static func shiftedSum<S: NormScalar>(_ x: UnsafePointer<S>, count: Int, shift: S) -> Double {
        if S.self == Float.self {
            let total = FloatLanes.shiftedSum(cast(x), count: count, shift: unsafeBitCast(shift, to: Float.self))
            return total.isFinite ? total : wideShiftedSum(x, count: count, shift: shift)
        }
        return DoubleLanes.shiftedSum(cast(x), count: count, shift: unsafeBitCast(shift, to: Double.self))
    }

    /// `apply(map, x, y)`, and `shiftedSum(next, shift)` with the same bits, in one pass where that is faster.
    @inline(__always)
    static func applyAndShiftedSum<S: NormScalar>(_ map: AffineMap<S>, _ x: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>,
                                                  count: Int, next: UnsafePointer<S>, shift: S) -> Double {
        if S.self == Float.self {
            let total = FloatLanes.applyAndShiftedSum(unsafeBitCast(map, to: AffineMap<Float>.self), cast(x), cast(y),
                                                      count: count, next: cast(next),
                                                      shift: unsafeBitCast(shift, to: Float.self))
            return total.isFinite ? total : wideShiftedSum(next, count: count, shift: shift)
        }
        apply(map, x, y, count: count)
        return shiftedSum(next, count: count, shift: shift)
    }

    /// Σ(x − μ)².
    @inline(__always)
    static func centredSquares<S: NormScalar>(_ x: UnsafePointer<S>, count: Int, mean: Double) -> Double {
        if S.self == Float.self {
            let total = FloatLanes.centredSquares(cast(x), count: count, mean: mean)
            return total.isFinite ? total : wideSquares(x, count: count, mean: mean)
        }
        return DoubleLanes.centredSquares(cast(x), count: count, mean: mean)
    }

    /// y = (x − μ_high)·scale + offset over the run (`AffineMap`).
    @inline(__always)
    static func apply<S: NormScalar>(_ map: AffineMap<S>, _ x: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>, count: Int) {
        if S.self == Float.self {
            FloatLanes.apply(unsafeBitCast(map, to: AffineMap<Float>.self), cast(x), cast(y), count: count)
        } else {
            DoubleLanes.apply(unsafeBitCast(map, to: AffineMap<Double>.self), cast(x), cast(y), count: count)
        }
    }

    /// (Σ dy, Σ dy·(x − μ)): with Σ dy·x̂ = rstd·Σ dy·(x − μ), the two sums backward needs per row.
    @inline(__always)
    static func gradientSums<S: NormScalar>(_ dy: UnsafePointer<S>, _ x: UnsafePointer<S>, count: Int,
                                            mean: Double) -> (dy: Double, dyCentred: Double) {
        if S.self == Float.self {
            let sums = FloatLanes.gradientSums(cast(dy), cast(x), count: count, mean: mean)
            return sums.dy.isFinite && sums.dyCentred.isFinite ? sums : wideGradientSums(dy, x, count: count, mean: mean)
        }
        return DoubleLanes.gradientSums(cast(dy), cast(x), count: count, mean: mean)
    }

    /// `gradient` for this row and `gradientSums` for the next set's row, with the same bits as the two apart.
    @inline(__always)
    static func gradientAndSums<S: NormScalar>(
        _ dy: UnsafePointer<S>, _ x: UnsafePointer<S>, _ dx: UnsafeMutablePointer<S>, count: Int, mean: Double,
        rstd: Double, gamma: Double, meanTerm: Double, projection: Double, nextDy: UnsafePointer<S>,
        nextX: UnsafePointer<S>, nextMean: Double
    ) -> (dy: Double, dyCentred: Double) {
        if S.self == Float.self {
            let sums = FloatLanes.gradientAndSums(cast(dy), cast(x), cast(dx), count: count, mean: mean, rstd: rstd,
                                                  gamma: gamma, meanTerm: meanTerm, projection: projection,
                                                  nextDy: cast(nextDy), nextX: cast(nextX), nextMean: nextMean)
            return sums.dy.isFinite && sums.dyCentred.isFinite
                ? sums : wideGradientSums(nextDy, nextX, count: count, mean: nextMean)
        }
        gradient(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma, meanTerm: meanTerm, projection: projection)
        return gradientSums(nextDy, nextX, count: count, mean: nextMean)
    }

    /// dx = rstd·((γ·dy − meanTerm) − x̂·projection), per row.
    @inline(__always)
    static func gradient<S: NormScalar>(_ dy: UnsafePointer<S>, _ x: UnsafePointer<S>, _ dx: UnsafeMutablePointer<S>,
                                        count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double,
                                        projection: Double) {
        if S.self == Float.self {
            FloatLanes.gradient(cast(dy), cast(x), cast(dx), count: count, mean: mean, rstd: rstd, gamma: gamma,
                                meanTerm: meanTerm, projection: projection)
        } else {
            DoubleLanes.gradient(cast(dy), cast(x), cast(dx), count: count, mean: mean, rstd: rstd, gamma: gamma,
                                 meanTerm: meanTerm, projection: projection)
        }
    }

    // Float32 lanes overflow where Float64 would not (|x| near 1e19 squares past Float.greatestFiniteMagnitude):
    // a row whose lane sum is not finite is summed again element by element in Float64. Non-finite input gives a
    // non-finite sum either way.

    static func wideShiftedSum<S: NormScalar>(_ x: UnsafePointer<S>, count: Int, shift: S) -> Double {
        var total = 0.0
        for i in 0..<count { total += x[i].asDouble - shift.asDouble }
        return total
    }

    static func wideSquares<S: NormScalar>(_ x: UnsafePointer<S>, count: Int, mean: Double) -> Double {
        var total = 0.0
        for i in 0..<count {
            let d = x[i].asDouble - mean
            total += d * d
        }
        return total
    }

    static func wideGradientSums<S: NormScalar>(_ dy: UnsafePointer<S>, _ x: UnsafePointer<S>, count: Int,
                                                mean: Double) -> (dy: Double, dyCentred: Double) {
        var sumY = 0.0, sumYD = 0.0
        for i in 0..<count {
            sumY += dy[i].asDouble
            sumYD += dy[i].asDouble * (x[i].asDouble - mean)
        }
        return (sumY, sumYD)
    }

    @inline(__always)
    private static func cast<S, T>(_ pointer: UnsafePointer<S>) -> UnsafePointer<T> {
        UnsafeRawPointer(pointer).assumingMemoryBound(to: T.self)
    }

    @inline(__always)
    private static func cast<S, T>(_ pointer: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<T> {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: T.self)
    }
}

/// γ·(x − μ)·rstd + β as (x − μ_high)·scale + offset, with scale = γ·rstd and offset = β − γ·rstd·μ_low rounded
/// once each: what the forward pass writes to y (γ, β of the row) and what `normalized` shows as x̂ (γ = 1, β = 0).
/// The lane loops and the scalar loops (element-wise γ) both use it, so their bits agree.
struct AffineMap<S: NormScalar> {
    let high: S
    let scale: S
    let offset: S

    @inline(__always)
    init(mean: Double, rstd: Double, gamma: Double = 1, beta: Double = 0) {
        high = S(fromDouble: mean)
        let low = mean - high.asDouble
        scale = S(fromDouble: gamma * rstd)
        offset = S(fromDouble: beta - gamma * rstd * low)
    }

    @inline(__always)
    func apply(_ x: S) -> S { (x - high) * scale + offset }
}

enum FloatLanes {
    typealias V = SIMD16<Float>
    /// 32 elements per step (two vectors), eight steps per chunk: each lane adds at most 8 terms in Float32 before
    /// the chunk's partial sums are folded and added in Float64.
    static let chunk = 256

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    @inline(__always)
    static func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self) }

    @inline(__always)
    static func widen(_ q: SIMD4<Float>) -> SIMD4<Double> { SIMD4<Double>(Double(q[0]), Double(q[1]), Double(q[2]), Double(q[3])) }

    /// Folds 16 Float lanes pairwise to 4 and adds them to Float64 lanes.
    @inline(__always)
    static func fold(_ v: V, into wide: inout SIMD4<Double>) {
        let q = (v.lowHalf.lowHalf + v.lowHalf.highHalf) + (v.highHalf.lowHalf + v.highHalf.highHalf)
        wide += SIMD4<Double>(Double(q[0]), Double(q[1]), Double(q[2]), Double(q[3]))
    }

    /// μ = high + low with high the nearest Float; low stays in Float64 and enters only per-row constants.
    @inline(__always)
    static func split(_ mean: Double) -> (high: Float, low: Double) {
        let high = Float(mean)
        return (high, mean - Double(high))
    }

    /// The element index where the chunk starting at i ends: whole 32-element steps only.
    @inline(__always)
    static func chunkEnd(_ i: Int, _ count: Int) -> Int { i + min(chunk, (count - i) & ~31) }

    /// Σ(x − shift) over a row: 16-element steps into one vector, eight steps per chunk. `applyAndShiftedSum`
    /// repeats this structure exactly, so a row's sum has the same bits whichever of the two computed it.
    @inline(__always)
    static func shiftedSum(_ x: UnsafePointer<Float>, count: Int, shift: Float) -> Double {
        let k = V(repeating: shift)
        var wide = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var a = V()
            while i < end {
                a += load(x + i) - k
                i &+= 16
            }
            fold(a, into: &wide)
        }
        // Rows of 14×14 or 7×7 leave a few elements: four at a time, then one.
        var a4 = SIMD4<Float>()
        while i + 4 <= count {
            a4 += load4(x + i) - k.lowHalf.lowHalf
            i &+= 4
        }
        wide += widen(a4)
        var total = wide.sum()
        while i < count {
            total += Double(x[i] - shift)
            i += 1
        }
        return total
    }

    /// `apply(map, x, y)` and `shiftedSum(next, shift)` in one loop: the next set's row streams in from memory
    /// while this one is normalised and written.
    @inline(__always)
    static func applyAndShiftedSum(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                   count: Int, next: UnsafePointer<Float>, shift: Float) -> Double {
        let hi = V(repeating: map.high), s = V(repeating: map.scale), t = V(repeating: map.offset)
        let k = V(repeating: shift)
        var wide = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var a = V()
            while i < end {
                store((load(x + i) - hi) * s + t, y + i)
                a += load(next + i) - k
                i &+= 16
            }
            fold(a, into: &wide)
        }
        var a4 = SIMD4<Float>()
        while i + 4 <= count {
            let v = (load4(x + i) - hi.lowHalf.lowHalf) * s.lowHalf.lowHalf + t.lowHalf.lowHalf
            UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD4<Float>.self)
            a4 += load4(next + i) - k.lowHalf.lowHalf
            i &+= 4
        }
        wide += widen(a4)
        var total = wide.sum()
        while i < count {
            y[i] = map.apply(x[i])
            total += Double(next[i] - shift)
            i += 1
        }
        return total
    }

    /// Σ(x − μ)² as Σ(x − high)² − m·low² (equal when μ is the mean of x, since then Σ(x − high) = m·low), so the
    /// lanes subtract once.
    @inline(__always)
    static func centredSquares(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        let (high, low) = split(mean)
        let hi = V(repeating: high)
        var wide = SIMD4<Double>()
        var i = 0
        while i + 32 <= count {
            let end = chunkEnd(i, count)
            var a = V(), b = V()
            while i < end {
                let d = load(x + i) - hi, e = load(x + i + 16) - hi
                a += d * d
                b += e * e
                i &+= 32
            }
            fold(a + b, into: &wide)
        }
        var total = wide.sum()
        while i < count {
            let d = x[i] - high
            total += Double(d * d)
            i += 1
        }
        return max(0, total - Double(count) * low * low)
    }

    @inline(__always)
    static func apply(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let hi = V(repeating: map.high), s = V(repeating: map.scale), t = V(repeating: map.offset)
        var i = 0
        while i + 16 <= count {
            store((load(x + i) - hi) * s + t, y + i)
            i += 16
        }
        // Rows of 7×7 or 14×14 leave 1 or 4 elements: four at a time, then one.
        while i + 4 <= count {
            let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self) - hi.lowHalf.lowHalf)
                * s.lowHalf.lowHalf + t.lowHalf.lowHalf
            UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            y[i] = map.apply(x[i])
            i += 1
        }
    }

    /// (Σ dy, Σ dy·(x − μ)), the second as Σ dy·(x − high) − low·Σ dy.
    @inline(__always)
    static func gradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                             mean: Double) -> (dy: Double, dyCentred: Double) {
        // Eight-wide vectors here: two accumulators of each sum and their operands fit the 16 SSE registers.
        typealias H = SIMD8<Float>
        let (high, low) = split(mean)
        let hi = H(repeating: high)
        @inline(__always) func load8(_ p: UnsafePointer<Float>) -> H { UnsafeRawPointer(p).loadUnaligned(as: H.self) }
        @inline(__always) func fold8(_ v: H, into wide: inout SIMD4<Double>) {
            let q = v.lowHalf + v.highHalf
            wide += SIMD4<Double>(Double(q[0]), Double(q[1]), Double(q[2]), Double(q[3]))
        }
        var wideY = SIMD4<Double>(), wideYD = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)  // 8 steps of 16: at most 8 terms per lane
            var y0 = H(), y1 = H(), yd0 = H(), yd1 = H()
            while i < end {
                let g0 = load8(dy + i), g1 = load8(dy + i + 8)
                y0 += g0
                y1 += g1
                yd0 += g0 * (load8(x + i) - hi)
                yd1 += g1 * (load8(x + i + 8) - hi)
                i &+= 16
            }
            fold8(y0 + y1, into: &wideY)
            fold8(yd0 + yd1, into: &wideYD)
        }
        var y4 = SIMD4<Float>(), yd4 = SIMD4<Float>()
        while i + 4 <= count {
            let g4 = load4(dy + i)
            y4 += g4
            yd4 += g4 * (load4(x + i) - hi.lowHalf)
            i &+= 4
        }
        wideY += widen(y4)
        wideYD += widen(yd4)
        var sumY = wideY.sum(), sumYD = wideYD.sum()
        while i < count {
            sumY += Double(dy[i])
            sumYD += Double(dy[i] * (x[i] - high))
            i += 1
        }
        return (sumY, sumYD - low * sumY)
    }

    /// `gradient(dy, x, dx, …)` for this row and `gradientSums(nextDy, nextX, nextMean)` for the next set's row in one
    /// loop; the sums repeat `gradientSums`'s structure exactly (same bits), so the next set's memory streams in while
    /// this row's dx is computed and written.
    @inline(__always)
    static func gradientAndSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double,
                                projection: Double, nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>,
                                nextMean: Double) -> (dy: Double, dyCentred: Double) {
        typealias H = SIMD8<Float>
        let (high, low) = split(mean)
        let r = Float(rstd), g = Float(gamma), rp = Float(rstd * projection)
        let mt = Float(meanTerm - low * rstd * projection)
        let hi = H(repeating: high), rv = H(repeating: r), gv = H(repeating: g), mv = H(repeating: mt)
        let pv = H(repeating: rp)
        let (nextHigh, nextLow) = split(nextMean)
        let nhi = H(repeating: nextHigh)
        @inline(__always) func load8(_ p: UnsafePointer<Float>) -> H { UnsafeRawPointer(p).loadUnaligned(as: H.self) }
        @inline(__always) func store8(_ v: H, _ p: UnsafeMutablePointer<Float>) {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: H.self)
        }
        @inline(__always) func fold8(_ v: H, into wide: inout SIMD4<Double>) {
            let q = v.lowHalf + v.highHalf
            wide += SIMD4<Double>(Double(q[0]), Double(q[1]), Double(q[2]), Double(q[3]))
        }
        var wideY = SIMD4<Double>(), wideYD = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var y0 = H(), y1 = H(), yd0 = H(), yd1 = H()
            while i < end {
                store8(rv * ((gv * load8(dy + i) - mv) - (load8(x + i) - hi) * pv), dx + i)
                store8(rv * ((gv * load8(dy + i + 8) - mv) - (load8(x + i + 8) - hi) * pv), dx + i + 8)
                let g0 = load8(nextDy + i), g1 = load8(nextDy + i + 8)
                y0 += g0
                y1 += g1
                yd0 += g0 * (load8(nextX + i) - nhi)
                yd1 += g1 * (load8(nextX + i + 8) - nhi)
                i &+= 16
            }
            fold8(y0 + y1, into: &wideY)
            fold8(yd0 + yd1, into: &wideYD)
        }
        var y4 = SIMD4<Float>(), yd4 = SIMD4<Float>()
        while i + 4 <= count {
            let v = rv.lowHalf * ((gv.lowHalf * load4(dy + i) - mv.lowHalf) - (load4(x + i) - hi.lowHalf) * pv.lowHalf)
            UnsafeMutableRawPointer(dx + i).storeBytes(of: v, as: SIMD4<Float>.self)
            let g4 = load4(nextDy + i)
            y4 += g4
            yd4 += g4 * (load4(nextX + i) - nhi.lowHalf)
            i &+= 4
        }
        wideY += widen(y4)
        wideYD += widen(yd4)
        var sumY = wideY.sum(), sumYD = wideYD.sum()
        while i < count {
            dx[i] = r * ((g * dy[i] - mt) - (x[i] - high) * rp)
            sumY += Double(nextDy[i])
            sumYD += Double(nextDy[i] * (nextX[i] - nextHigh))
            i += 1
        }
        return (sumY, sumYD - nextLow * sumY)
    }

    /// dx = rstd·((γ·dy − meanTerm′) − (x − high)·rstd·projection) with meanTerm′ = meanTerm − low·rstd·projection:
    /// the formula's order, so a set of one element (γ·dy − meanTerm = 0) gets dx = 0 exactly.
    @inline(__always)
    static func gradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double, projection: Double) {
        let (high, low) = split(mean)
        let r = Float(rstd), g = Float(gamma), rp = Float(rstd * projection)
        let mt = Float(meanTerm - low * rstd * projection)
        let hi = V(repeating: high), rv = V(repeating: r), gv = V(repeating: g), mv = V(repeating: mt)
        let pv = V(repeating: rp)
        var i = 0
        while i + 16 <= count {
            store(rv * ((gv * load(dy + i) - mv) - (load(x + i) - hi) * pv), dx + i)
            i += 16
        }
        while i + 4 <= count {
            let g4 = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD4<Float>.self)
            let x4 = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self)
            let v = rv.lowHalf.lowHalf * ((gv.lowHalf.lowHalf * g4 - mv.lowHalf.lowHalf)
                - (x4 - hi.lowHalf.lowHalf) * pv.lowHalf.lowHalf)
            UnsafeMutableRawPointer(dx + i).storeBytes(of: v, as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            dx[i] = r * ((g * dy[i] - mt) - (x[i] - high) * rp)
            i += 1
        }
    }
}

enum DoubleLanes {
    typealias V = SIMD4<Double>

    @inline(__always)
    static func load(_ p: UnsafePointer<Double>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Double>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    @inline(__always)
    static func shiftedSum(_ x: UnsafePointer<Double>, count: Int, shift: Double) -> Double {
        let k = V(repeating: shift)
        var a = V(), b = V(), c = V(), d = V()
        var i = 0
        while i + 16 <= count {
            a += load(x + i) - k
            b += load(x + i + 4) - k
            c += load(x + i + 8) - k
            d += load(x + i + 12) - k
            i += 16
        }
        var total = ((a + b) + (c + d)).sum()
        while i < count {
            total += x[i] - shift
            i += 1
        }
        return total
    }

    @inline(__always)
    static func centredSquares(_ x: UnsafePointer<Double>, count: Int, mean: Double) -> Double {
        let mu = V(repeating: mean)
        var a = V(), b = V(), c = V(), d = V()
        var i = 0
        while i + 16 <= count {
            let p = load(x + i) - mu, q = load(x + i + 4) - mu, r = load(x + i + 8) - mu, s = load(x + i + 12) - mu
            a += p * p
            b += q * q
            c += r * r
            d += s * s
            i += 16
        }
        var total = ((a + b) + (c + d)).sum()
        while i < count {
            let e = x[i] - mean
            total += e * e
            i += 1
        }
        return total
    }

    @inline(__always)
    static func apply(_ map: AffineMap<Double>, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, count: Int) {
        let hi = V(repeating: map.high), s = V(repeating: map.scale), t = V(repeating: map.offset)
        var i = 0
        while i + 8 <= count {
            store((load(x + i) - hi) * s + t, y + i)
            store((load(x + i + 4) - hi) * s + t, y + i + 4)
            i += 8
        }
        while i < count {
            y[i] = map.apply(x[i])
            i += 1
        }
    }

    @inline(__always)
    static func gradientSums(_ dy: UnsafePointer<Double>, _ x: UnsafePointer<Double>, count: Int,
                             mean: Double) -> (dy: Double, dyCentred: Double) {
        let mu = V(repeating: mean)
        var y0 = V(), y1 = V(), yd0 = V(), yd1 = V()
        var i = 0
        while i + 8 <= count {
            let g0 = load(dy + i), g1 = load(dy + i + 4)
            y0 += g0
            y1 += g1
            yd0 += g0 * (load(x + i) - mu)
            yd1 += g1 * (load(x + i + 4) - mu)
            i += 8
        }
        var sumY = (y0 + y1).sum(), sumYD = (yd0 + yd1).sum()
        while i < count {
            sumY += dy[i]
            sumYD += dy[i] * (x[i] - mean)
            i += 1
        }
        return (sumY, sumYD)
    }

    @inline(__always)
    static func gradient(_ dy: UnsafePointer<Double>, _ x: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>,
                         count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double, projection: Double) {
        let rp = rstd * projection
        let mu = V(repeating: mean), r = V(repeating: rstd), g = V(repeating: gamma), mt = V(repeating: meanTerm)
        let pv = V(repeating: rp)
        var i = 0
        while i + 4 <= count {
            store(r * ((g * load(dy + i) - mt) - (load(x + i) - mu) * pv), dx + i)
            i += 4
        }
        while i < count {
            dx[i] = rstd * ((gamma * dy[i] - meanTerm) - (x[i] - mean) * rp)
            i += 1
        }
    }
}
