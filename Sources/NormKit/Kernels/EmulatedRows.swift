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
}

enum EmulatedRows {
    /// y = x̂·γ + β, x̂ = (x − μ)·rstd, over `count` elements.
    static func normalize<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, _ o: EmulatedRowOperands<F.Value>, x: UnsafePointer<Scalar>,
        y: UnsafeMutablePointer<Scalar>, count: Int
    ) {
        switch (o.statStride, o.gammaStride, o.betaStride) {
        case (0, 0, 0): normalize(F.self, SameInRow.self, SameInRow.self, SameInRow.self, o, x, y, count)
        case (0, 1, 1): normalize(F.self, SameInRow.self, AlongRow.self, AlongRow.self, o, x, y, count)
        case (0, 1, 0): normalize(F.self, SameInRow.self, AlongRow.self, SameInRow.self, o, x, y, count)
        case (1, 0, 0): normalize(F.self, AlongRow.self, SameInRow.self, SameInRow.self, o, x, y, count)
        case (1, 1, 1): normalize(F.self, AlongRow.self, AlongRow.self, AlongRow.self, o, x, y, count)
        case (1, 1, 0): normalize(F.self, AlongRow.self, AlongRow.self, SameInRow.self, o, x, y, count)
        default: preconditionFailure("β runs along a row only with γ")
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

    /// dx = rstd·((dy·γ − Σg/m) − x̂·(Σg·x̂/d)) over `count` elements.
    static func gradient<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, _ o: EmulatedRowOperands<F.Value>, x: UnsafePointer<Scalar>, dy: UnsafePointer<Scalar>,
        dx: UnsafeMutablePointer<Scalar>, count: Int
    ) {
        switch (o.statStride, o.gammaStride) {
        case (0, 0): gradient(F.self, SameInRow.self, SameInRow.self, o, x, dy, dx, count)
        case (0, _): gradient(F.self, SameInRow.self, AlongRow.self, o, x, dy, dx, count)
        case (_, 0): gradient(F.self, AlongRow.self, SameInRow.self, o, x, dy, dx, count)
        default: gradient(F.self, AlongRow.self, AlongRow.self, o, x, dy, dx, count)
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
