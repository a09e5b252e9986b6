/// The element loops of the fast kernels, one implementation per element type, over `count` contiguous elements:
/// float32 in NormLanes (FloatLanes.swift, whose header gives the arithmetic: μ as a Float pair, chunked Float32 sums
/// added in Float64), picked by `FloatKernel`; float64 below, in Float64 lanes throughout (μ_high = μ, μ_low = 0).
enum Lanes {
    // Each entry point dispatches on the element type; under specialisation the test folds away.

    /// Σ(x − shift); for a set whose elements all equal `shift` this is exactly 0.
    @inline(__always)
    static func shiftedSum<S: NormScalar>(_ x: UnsafePointer<S>, count: Int, shift: S) -> Double {
        if S.self == Float.self {
            let total = FloatKernel.shiftedSum(cast(x), count: count, shift: unsafeBitCast(shift, to: Float.self))
            return total.isFinite ? total : wideShiftedSum(x, count: count, shift: shift)
        }
        return DoubleLanes.shiftedSum(cast(x), count: count, shift: unsafeBitCast(shift, to: Double.self))
    }

    /// `apply(map, x, y)`, and `shiftedSum(next, shift)` with the same bits, in one pass where that is faster.
    @inline(__always)
    static func applyAndShiftedSum<S: NormScalar>(_ map: AffineMap<S>, _ x: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>,
                                                  count: Int, next: UnsafePointer<S>, shift: S) -> Double {
        if S.self == Float.self {
            let total = FloatKernel.applyAndShiftedSum(unsafeBitCast(map, to: AffineMap<Float>.self), cast(x), cast(y),
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
            let total = FloatKernel.centredSquares(cast(x), count: count, mean: mean)
            return total.isFinite ? total : wideSquares(x, count: count, mean: mean)
        }
        return DoubleLanes.centredSquares(cast(x), count: count, mean: mean)
    }

    /// y = (x − μ_high)·scale + offset over the run (`AffineMap`).
    @inline(__always)
    static func apply<S: NormScalar>(_ map: AffineMap<S>, _ x: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>, count: Int) {
        if S.self == Float.self {
            FloatKernel.apply(unsafeBitCast(map, to: AffineMap<Float>.self), cast(x), cast(y), count: count)
        } else {
            DoubleLanes.apply(unsafeBitCast(map, to: AffineMap<Double>.self), cast(x), cast(y), count: count)
        }
    }

    /// (Σ dy, Σ dy·(x − μ)): with Σ dy·x̂ = rstd·Σ dy·(x − μ), the two sums backward needs per row.
    @inline(__always)
    static func gradientSums<S: NormScalar>(_ dy: UnsafePointer<S>, _ x: UnsafePointer<S>, count: Int,
                                            mean: Double) -> (dy: Double, dyCentred: Double) {
        if S.self == Float.self {
            let sums = FloatKernel.gradientSums(cast(dy), cast(x), count: count, mean: mean)
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
            let sums = FloatKernel.gradientAndSums(cast(dy), cast(x), cast(dx), count: count, mean: mean, rstd: rstd,
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
            FloatKernel.gradient(cast(dy), cast(x), cast(dx), count: count, mean: mean, rstd: rstd, gamma: gamma,
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

    /// The same memory as another element type (where S is known to be T).
    @inline(__always)
    static func cast<S, T>(_ pointer: UnsafePointer<S>) -> UnsafePointer<T> {
        UnsafeRawPointer(pointer).assumingMemoryBound(to: T.self)
    }

    @inline(__always)
    static func cast<S, T>(_ pointer: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<T> {
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
