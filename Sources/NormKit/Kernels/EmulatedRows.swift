import CVectorMath

/// The element-wise loops of the emulated passes, one row at a time, compiled for each way their operands run
/// along the row: a statistic, γ or β is one value for the row (a set of whole rows, γ per channel, or absent) or
/// one per position (per-position sets, γ per element). With the strides known at compile time the loops vectorise;
/// with strides read at run time they ran one element at a time.
protocol RowStride { static var step: Int { get } }
/// One value for the whole row.
enum SameInRow: RowStride { static var step: Int { 0 } }
/// One value per position.
enum AlongRow: RowStride { static var step: Int { 1 } }

/// A row's operands: where they start and whether each runs along the row (stride 1) or not (0).
struct EmulatedRowOperands<Value> {
    let mean: UnsafePointer<Value>, rstd: UnsafePointer<Value>, statStride: Int
    let gamma: UnsafePointer<Value>, gammaStride: Int
    let beta: UnsafePointer<Value>, betaStride: Int
    /// Backward's Σg/m and Σg·x̂/d, strided as the statistics.
    var meanTerm: UnsafePointer<Value>? = nil, projection: UnsafePointer<Value>? = nil

    /// The operands of the row's elements from position `start` on.
    func advanced(by start: Int) -> Self {
        let stat = start * statStride
        return EmulatedRowOperands(mean: mean + stat, rstd: rstd + stat, statStride: statStride,
                                   gamma: gamma + start * gammaStride, gammaStride: gammaStride,
                                   beta: beta + start * betaStride, betaStride: betaStride,
                                   meanTerm: meanTerm.map { $0 + stat }, projection: projection.map { $0 + stat })
    }
}

/// Where a row's loop rounds Float results to a reduced storage format as it goes (while they are in L1; the
/// separate passes over y and dx took a fifth of `accumulate=float32`'s time in perf), and the unit's two counters it
/// adds to: finite values that became ±∞, and values not finite after rounding.
struct RowRounding {
    let format: DType
    let counts: UnsafeMutablePointer<Int>

    /// Elements a Swift loop writes before they are rounded: 8 KB of Float.
    static let chunk = 2048

    var code: Int32 { Int32(format == .float16 ? NORMLAB_ROUND_FLOAT16 : NORMLAB_ROUND_BFLOAT16) }

    func round<Scalar: NormScalar>(_ start: UnsafeMutablePointer<Scalar>, count: Int) {
        var over = 0, bad = 0
        let floats = UnsafeMutableRawPointer(start).assumingMemoryBound(to: Float.self)
        if format == .float16 { normlab_round_float16(floats, count, &over, &bad) }
        else { normlab_round_bfloat16(floats, count, &over, &bad) }
        counts[0] += over
        counts[1] += bad
    }
}

enum EmulatedRows {
    /// y = x̂·γ + β, x̂ = (x − μ)·rstd, over `count` elements; rounded to storage with `rounding` (Float elements).
    static func normalize<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, _ o: EmulatedRowOperands<F.Value>, x: UnsafePointer<Scalar>,
        y: UnsafeMutablePointer<Scalar>, count: Int, rounding: RowRounding?
    ) {
        if F.self == Float32Format.self && Scalar.self == Float.self {  // the same operations, eight lanes wide in C
            normlab_emulated_normalize_f32(float(x), float(y), count, float(o.mean), float(o.rstd), o.statStride,
                                           float(o.gamma), o.gammaStride, float(o.beta), o.betaStride,
                                           rounding?.code ?? Int32(NORMLAB_ROUND_NONE), rounding?.counts)
            return
        }
        var start = 0
        while start < count {
            let n = rounding == nil ? count : min(RowRounding.chunk, count - start)
            let (o, x, y) = (o.advanced(by: start), x + start, y + start)
            switch (o.statStride, o.gammaStride, o.betaStride) {
            case (0, 0, 0): normalize(F.self, SameInRow.self, SameInRow.self, SameInRow.self, o, x, y, n)
            case (0, 1, 1): normalize(F.self, SameInRow.self, AlongRow.self, AlongRow.self, o, x, y, n)
            case (0, 1, 0): normalize(F.self, SameInRow.self, AlongRow.self, SameInRow.self, o, x, y, n)
            case (1, 0, 0): normalize(F.self, AlongRow.self, SameInRow.self, SameInRow.self, o, x, y, n)
            case (1, 1, 1): normalize(F.self, AlongRow.self, AlongRow.self, AlongRow.self, o, x, y, n)
            case (1, 1, 0): normalize(F.self, AlongRow.self, AlongRow.self, SameInRow.self, o, x, y, n)
            default: preconditionFailure("β runs along a row only with γ")
            }
            rounding?.round(y, count: n)
            start += n
        }
    }

    @inline(__always)
    private static func normalize<F: EmulatedFormat, Scalar: NormScalar, M: RowStride, G: RowStride, B: RowStride>(
        _: F.Type, _: M.Type, _: G.Type, _: B.Type, _ o: EmulatedRowOperands<F.Value>, _ x: UnsafePointer<Scalar>,
        _ y: UnsafeMutablePointer<Scalar>, _ count: Int
    ) {
        for s in 0..<count {
            let h = F.multiply(F.subtract(F.value(scalar: x[s]), o.mean[s &* M.step]), o.rstd[s &* M.step])
            y[s] = EmulatedRun.element(F.self, F.add(F.multiply(h, o.gamma[s &* G.step]), o.beta[s &* B.step]))
        }
    }

    /// dx = rstd·((dy·γ − Σg/m) − x̂·(Σg·x̂/d)) over `count` elements; rounded to storage with `rounding`.
    static func gradient<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, _ o: EmulatedRowOperands<F.Value>, x: UnsafePointer<Scalar>, dy: UnsafePointer<Scalar>,
        dx: UnsafeMutablePointer<Scalar>, count: Int, rounding: RowRounding?
    ) {
        if F.self == Float32Format.self && Scalar.self == Float.self {
            normlab_emulated_gradient_f32(float(x), float(dy), float(dx), count, float(o.mean), float(o.rstd),
                                          float(o.meanTerm!), float(o.projection!), o.statStride, float(o.gamma),
                                          o.gammaStride, rounding?.code ?? Int32(NORMLAB_ROUND_NONE), rounding?.counts)
            return
        }
        var start = 0
        while start < count {
            let n = rounding == nil ? count : min(RowRounding.chunk, count - start)
            let (o, x, dy, dx) = (o.advanced(by: start), x + start, dy + start, dx + start)
            switch (o.statStride, o.gammaStride) {
            case (0, 0): gradient(F.self, SameInRow.self, SameInRow.self, o, x, dy, dx, n)
            case (0, _): gradient(F.self, SameInRow.self, AlongRow.self, o, x, dy, dx, n)
            case (_, 0): gradient(F.self, AlongRow.self, SameInRow.self, o, x, dy, dx, n)
            default: gradient(F.self, AlongRow.self, AlongRow.self, o, x, dy, dx, n)
            }
            rounding?.round(dx, count: n)
            start += n
        }
    }

    @inline(__always)
    private static func gradient<F: EmulatedFormat, Scalar: NormScalar, M: RowStride, G: RowStride>(
        _: F.Type, _: M.Type, _: G.Type, _ o: EmulatedRowOperands<F.Value>, _ x: UnsafePointer<Scalar>,
        _ dy: UnsafePointer<Scalar>, _ dx: UnsafeMutablePointer<Scalar>, _ count: Int
    ) {
        let meanTerm = o.meanTerm!, projection = o.projection!
        for s in 0..<count {
            let dh = F.multiply(F.value(scalar: dy[s]), o.gamma[s &* G.step])
            let h = F.multiply(F.subtract(F.value(scalar: x[s]), o.mean[s &* M.step]), o.rstd[s &* M.step])
            let inner = F.subtract(F.subtract(dh, meanTerm[s &* M.step]), F.multiply(h, projection[s &* M.step]))
            dx[s] = EmulatedRun.element(F.self, F.multiply(o.rstd[s &* M.step], inner))
        }
    }
}

/// A pointer to Float values as Float (the callers check that the element type is Float).
@inline(__always) private func float<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
    UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
}
@inline(__always) private func float<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
}
