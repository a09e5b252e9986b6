/// The float32 lane loops of NormKit's fast kernels. This file is compiled twice: as NormLanes for the baseline
/// CPU of the build, and (through a symbolic link) as NormLanesAVX2 with `-target-cpu haswell` on x86-64 hosts.
/// NormKit calls the AVX2 build only after checking the CPU at run time. Every operation is lane-wise IEEE
/// arithmetic with no contraction into fused multiply-adds, and reductions run in a fixed order, so the two builds
/// give the same bits (tested).
///
/// μ enters the lanes as its nearest Float, μ_high, with the remainder μ_low = μ − μ_high kept in Float64 and folded
/// into per-row constants: x − μ_high is exact near the mean (Sterbenz), so an input of 1e6 + noise keeps its
/// fraction. Sums are formed in Float32 lanes over chunks of at most 8 terms per lane, folded pairwise, and the
/// chunks' partial sums are added in Float64.

/// y = (x − high)·scale + offset: normalisation with γ, β and μ_low folded into two constants.
public struct FloatMap: Sendable {
    public let high: Float
    public let scale: Float
    public let offset: Float

    @inlinable
    public init(high: Float, scale: Float, offset: Float) {
        self.high = high
        self.scale = scale
        self.offset = offset
    }

    @inlinable
    public func apply(_ x: Float) -> Float { (x - high) * scale + offset }
}

public enum FloatLanes {
    typealias V = SIMD16<Float>
    /// Elements per chunk of the two-accumulator loop (`centredSquares`: eight steps of two vectors); the
    /// one-vector loops use chunk / 2. Either way each lane adds at most 8 terms in Float32 before the chunk's
    /// partial sums are folded and added in Float64.
    static let chunk = 256

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    @inline(__always)
    static func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self) }

    @inline(__always)
    static func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
    }

    /// Eight-wide vectors for the loops that keep four accumulators: with their operands they fit 16 SSE registers.
    typealias H = SIMD8<Float>

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> H { UnsafeRawPointer(p).loadUnaligned(as: H.self) }

    @inline(__always)
    static func store8(_ v: H, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: H.self) }

    @inline(__always)
    static func widen(_ q: SIMD4<Float>) -> SIMD4<Double> { SIMD4<Double>(Double(q[0]), Double(q[1]), Double(q[2]), Double(q[3])) }

    /// The four lanes' sum in a fixed order (`sum()` leaves the order to the code generator, and the two builds of
    /// this file must agree to the bit).
    @inline(__always)
    static func total(_ w: SIMD4<Double>) -> Double { (w[0] + w[1]) + (w[2] + w[3]) }

    /// Folds 16 Float lanes pairwise to 4 and adds them to Float64 lanes.
    @inline(__always)
    static func fold(_ v: V, into wide: inout SIMD4<Double>) {
        wide += widen((v.lowHalf.lowHalf + v.lowHalf.highHalf) + (v.highHalf.lowHalf + v.highHalf.highHalf))
    }

    /// Folds 8 Float lanes pairwise to 4 and adds them to Float64 lanes.
    @inline(__always)
    static func fold8(_ v: H, into wide: inout SIMD4<Double>) { wide += widen(v.lowHalf + v.highHalf) }

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
    @inline(never)
    public static func shiftedSum(_ x: UnsafePointer<Float>, count: Int, shift: Float) -> Double {
        shiftedSumInline(x, count: count, shift: shift)
    }

    /// `shiftedSum`'s loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func shiftedSumInline(_ x: UnsafePointer<Float>, count: Int, shift: Float) -> Double {
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
        var total = total(wide)
        while i < count {
            total += Double(x[i] - shift)
            i += 1
        }
        return total
    }

    /// `apply(map, x, y)` and `shiftedSum(next, shift)` in one loop: the next set's row streams in from memory
    /// while this one is normalised and written. The loop is in SummaryLanes.swift, shared with the twin that also
    /// sums y for the summary line.
    @inline(never)
    public static func applyAndShiftedSum(_ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                   count: Int, next: UnsafePointer<Float>, shift: Float) -> Double {
        applyAndShiftedSum(map, x, y, count: count, next: next, shift: shift, summary: nil)
    }

    /// Σ(x − μ)² as Σ(x − high)² − m·low² (equal when μ is the mean of x, since then Σ(x − high) = m·low), so the
    /// lanes subtract once.
    @inline(never)
    public static func centredSquares(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        centredSquaresInline(x, count: count, mean: mean)
    }

    /// `centredSquares`' loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func centredSquaresInline(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        let (high, low) = split(mean)
        var total = centredSquaresHead(x, count: count, high: high)
        var i = squaresTail(count)
        while i < count {
            let d = x[i] - high
            total += Double(d * d)
            i += 1
        }
        return max(0, total - Double(count) * low * low)
    }

    /// Where `centredSquares`' last elements, one at a time, begin.
    @inline(__always)
    static func squaresTail(_ count: Int) -> Int { count & ~31 }

    /// `centredSquares` up to its last elements: Σ(x − high)² over the whole 32-element steps.
    @inline(__always)
    static func centredSquaresHead(_ x: UnsafePointer<Float>, count: Int, high: Float) -> Double {
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
        return total(wide)
    }

    @inline(never)
    public static func apply(_ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        applyInline(map, x, y, count: count)
    }

    /// `apply`'s loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func applyInline(_ map: FloatMap, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let hi = V(repeating: map.high), s = V(repeating: map.scale), t = V(repeating: map.offset)
        var i = 0
        while i + 16 <= count {
            store((load(x + i) - hi) * s + t, y + i)
            i += 16
        }
        // Rows of 7×7 or 14×14 leave 1 or 4 elements: four at a time, then one.
        while i + 4 <= count {
            store4((load4(x + i) - hi.lowHalf.lowHalf) * s.lowHalf.lowHalf + t.lowHalf.lowHalf, y + i)
            i += 4
        }
        while i < count {
            y[i] = map.apply(x[i])
            i += 1
        }
    }

    /// (Σ dy, Σ dy·(x − μ)), the second as Σ dy·(x − high) − low·Σ dy.
    @inline(never)
    public static func gradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                             mean: Double) -> (dy: Double, dyCentred: Double) {
        gradientSumsInline(dy, x, count: count, mean: mean)
    }

    /// `gradientSums`' loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func gradientSumsInline(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                                   mean: Double) -> (dy: Double, dyCentred: Double) {
        let (high, low) = split(mean)
        let hi = H(repeating: high)
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
        var sumY = total(wideY), sumYD = total(wideYD)
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
    @inline(never)
    public static func gradientAndSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double,
                                projection: Double, nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>,
                                nextMean: Double) -> (dy: Double, dyCentred: Double) {
        let (high, low) = split(mean)
        let r = Float(rstd), g = Float(gamma), rp = Float(rstd * projection)
        let mt = Float(meanTerm - low * rstd * projection)
        let hi = H(repeating: high), rv = H(repeating: r), gv = H(repeating: g), mv = H(repeating: mt)
        let pv = H(repeating: rp)
        let (nextHigh, nextLow) = split(nextMean)
        let nhi = H(repeating: nextHigh)
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
            store4(rv.lowHalf * ((gv.lowHalf * load4(dy + i) - mv.lowHalf) - (load4(x + i) - hi.lowHalf) * pv.lowHalf), dx + i)
            let g4 = load4(nextDy + i)
            y4 += g4
            yd4 += g4 * (load4(nextX + i) - nhi.lowHalf)
            i &+= 4
        }
        wideY += widen(y4)
        wideYD += widen(yd4)
        var sumY = total(wideY), sumYD = total(wideYD)
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
    @inline(never)
    public static func gradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double, projection: Double) {
        gradientInline(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma, meanTerm: meanTerm,
                       projection: projection)
    }

    /// `gradient`'s loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func gradientInline(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                               count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double,
                               projection: Double) {
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
            store4(rv.lowHalf.lowHalf * ((gv.lowHalf.lowHalf * load4(dy + i) - mv.lowHalf.lowHalf)
                - (load4(x + i) - hi.lowHalf.lowHalf) * pv.lowHalf.lowHalf), dx + i)
            i += 4
        }
        while i < count {
            dx[i] = r * ((g * dy[i] - mt) - (x[i] - high) * rp)
            i += 1
        }
    }
}
