/// Backward in an accumulation format: Σg and Σg·x̂ per set (chains over the statistics' units), dx element by
/// element, then dγ and dβ (chains over the parameters' units: a channel's rows in sample order, or per element
/// of a sample a column over the batch). In float32 lanes with one sample's groups per set and γ per channel, both
/// kinds of chains run in one walk over x and dy (`EightLanes.fusedBackwardSums`), and each block of eight sets has
/// its dx made right after its sums, while its rows of x and dy are still in the L2 cache.
extension EmulatedRun {
    func backward<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, dy: UnsafeBufferPointer<Scalar>, statistics: Statistics,
        gamma: [Double]?, constant: Bool
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double], rounded: FormatRounding.Counts?) {
        let count = plan.statsShape.count
        let m = Double(plan.setSize)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let centre = spec.centres, layout = layout
        // Not centring, μ is 0 here: x − 0 is x, bit for bit, so the loops need no test.
        let means = centre ? statistics.means.mapFilling(F.value) : [F.Value](repeating: 0, count: count)
        let rstds = statistics.rstds.mapFilling(F.value)
        let gammaValues = gamma?.mapFilling(F.value)
        let affine = EmulatedAffine(gamma: gammaValues, beta: nil, elementwise: layout.elementwise,
                                    spatial: layout.spatial)
        defer { affine.free() }
        let terms = EmulatedTerms<F, Scalar>(x: SharedInput(x.baseAddress!), dy: SharedInput(dy.baseAddress!),
                                             layout: layout, affine: affine)
        let parameters = plan.affineShape?.count ?? 0
        let parameterSums: UnsafeMutablePointer<F.Value> = .allocate(capacity: 2 * max(parameters, 1))
        defer { parameterSums.deallocate() }
        var parametersSummed = false
        let units = EmulatedUnits(statisticsOf: layout)
        let perPosition = layout.positionStride != 0
        let statistics = EmulatedRowStatistics(means: means, rstds: rstds, perPosition: perPosition)
        // Each set's Σg/m and Σg·x̂/d, in the places of μ and rstd (0 with constant statistics, which read neither).
        let setTerms = EmulatedRowStatistics(means: [F.Value](repeating: 0, count: count),
                                             rstds: [F.Value](repeating: 0, count: count), perPosition: perPosition)
        defer { statistics.free(); setTerms.free() }
        let rounder = chunkRounder(F.self, Scalar.self, units: units)
        let sums = SharedValues<F.Value>(.allocate(capacity: 2 * max(count, 1)))
        defer { sums.base.deallocate() }
        @Sendable func makeTerms(_ sets: Range<Int>) {
            for i in sets {
                setTerms.means[i] = centre ? F.divide(sums[2 * i], by: m) : 0
                setTerms.rstds[i] = F.divide(sums[2 * i + 1], by: divisor)
            }
        }

        let dx = [Scalar](unsafeUninitializedCapacity: x.count) { out, initialized in
            let rows = GradientRows<F, Scalar>(
                statistics: statistics, terms: setTerms, affine: affine, x: SharedInput(x.baseAddress!),
                dy: SharedInput(dy.baseAddress!), dx: SharedValues(out.baseAddress!), spatial: layout.spatial,
                constant: constant, rounding: storageRounding(F.self, Scalar.self), rounder: rounder)
            initialized = x.count
            guard !constant else {
                units.forEachRow(threads: threads) { row, unit in rows.run(row, unit: unit) }
                return
            }
            if parameters > 0 && EightLanes.applies(F.self, Scalar.self) {
                func floats<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
                    UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
                }
                func floats<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
                    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
                }
                // dx of each block of eight sets right after their sums, while its x and dy are in the L2 cache.
                parametersSummed = EightLanes.fusedBackwardSums(
                    layout, x: floats(x.baseAddress!), dy: floats(dy.baseAddress!),
                    means: floats(UnsafePointer(statistics.means)), rstds: floats(UnsafePointer(statistics.rstds)),
                    gammaRow: { UnsafeRawPointer(affine.gammaRow($0).0).assumingMemoryBound(to: Float.self) },
                    setSums: floats(sums.base), parameterSums: floats(parameterSums), threads: threads
                ) { first in
                    makeTerms(first..<first + 8)
                    for unit in first..<first + 8 {
                        for r in 0..<units.rowsPerUnit { rows.run(units.row(unit: unit, r), unit: unit) }
                    }
                }
            }
            guard !parametersSummed else { return }
            units.walk(threads: threads, GradientSumsChain(
                terms: terms, means: SharedInput(statistics.means), rstds: SharedInput(statistics.rstds),
                sums: sums))
            makeTerms(0..<count)
            units.forEachRow(threads: threads) { row, unit in rows.run(row, unit: unit) }
        }
        let rounded = rounder?.finish()

        guard parameters > 0 else { return (dx, [], [], rounded) }
        if !parametersSummed {
            EmulatedUnits(parametersOf: layout).walk(threads: threads, ParameterChain(
                terms: terms, means: SharedInput(statistics.means), rstds: SharedInput(statistics.rstds),
                sums: SharedValues(parameterSums)))
        }
        return (dx, (0..<parameters).map { Double(parameterSums[2 * $0]) },
                (0..<parameters).map { Double(parameterSums[2 * $0 + 1]) }, rounded)
    }
}

/// dx = rstd·((g − Σg/m) − x̂·(Σg·x̂/d)), or rstd·g with constant statistics, element by element, a row at a time;
/// rounded to a reduced storage format on the way (`rounding`: element by element from a wider format; `rounder`:
/// Float results in place, counted per unit).
struct GradientRows<F: EmulatedFormat, Scalar: NormScalar>: @unchecked Sendable {
    let statistics: EmulatedRowStatistics<F.Value>
    /// Each set's Σg/m (as `means`) and Σg·x̂/d (as `rstds`).
    let terms: EmulatedRowStatistics<F.Value>
    let affine: EmulatedAffine<F.Value>
    let x: SharedInput<Scalar>, dy: SharedInput<Scalar>, dx: SharedValues<Scalar>
    let spatial: Int
    let constant: Bool
    let rounding: DType?
    let rounder: RunRounder?

    func run(_ row: EmulatedRow, unit: Int) {
        let first = row.firstStat
        let (mean, rstd, stride) = statistics.row(first)
        let (meanTerm, projection, _) = terms.row(first)
        let (gamma, gammaStride) = affine.gammaRow(row.channel)
        let x = x.base + row.offset, dy = dy.base + row.offset, dx = dx.base + row.offset
        let constant = constant
        @inline(__always) func value(_ s: Int) -> F.Value {
            let dh = F.multiply(F.value(scalar: dy[s]), gamma[s &* gammaStride])
            if constant { return F.multiply(rstd[s &* stride], dh) }
            let h = F.multiply(F.subtract(F.value(scalar: x[s]), mean[s &* stride]), rstd[s &* stride])
            return F.multiply(rstd[s &* stride], F.subtract(F.subtract(dh, meanTerm[s &* stride]),
                                                            F.multiply(h, projection[s &* stride])))
        }
        if let rounding {
            for s in 0..<spatial { dx[s] = Scalar(fromDouble: rounding.round(Double(value(s)))) }
            return
        }
        let rounding = rounder?.row(set: unit)
        guard constant else {
            EmulatedRows.gradient(F.self, EmulatedRowOperands(
                mean: mean, rstd: rstd, statStride: stride, gamma: gamma, gammaStride: gammaStride,
                beta: gamma, betaStride: 0, meanTerm: meanTerm, projection: projection),
                x: x, dy: dy, dx: dx, count: spatial, rounding: rounding)
            return
        }
        var start = 0
        while start < spatial {
            let count = rounding == nil ? spatial : min(RowRounding.chunk, spatial - start)
            for s in start..<start + count { dx[s] = EmulatedRun.element(F.self, value(s)) }
            rounding?.round(dx + start, count: count)
            start += count
        }
    }
}

/// What backward reads at an element, each value rounded into the format as the definition says.
struct EmulatedTerms<F: EmulatedFormat, Scalar: NormScalar>: @unchecked Sendable {
    let x: SharedInput<Scalar>
    let dy: SharedInput<Scalar>
    let layout: EmulatedLayout
    /// γ, reading 1 where the layer has none.
    let affine: EmulatedAffine<F.Value>

    /// x̂ = (x − μ)·rstd, as forward made it (μ = 0 when not centring).
    @inline(__always) func normalized(_ row: EmulatedRow, _ s: Int, mean: F.Value, rstd: F.Value) -> F.Value {
        F.multiply(F.subtract(F.value(scalar: x[row.offset &+ s]), mean), rstd)
    }
    @inline(__always) func gradient(_ row: EmulatedRow, _ s: Int) -> F.Value { F.value(scalar: dy[row.offset &+ s]) }
    /// dy·γ at the element.
    @inline(__always) func scaledGradient(_ row: EmulatedRow, _ s: Int) -> F.Value {
        let (gamma, stride) = affine.gammaRow(row.channel)
        return F.multiply(gradient(row, s), gamma[s &* stride])
    }
    @inline(__always) func statistic(_ row: EmulatedRow, _ s: Int) -> Int {
        row.firstStat &+ s &* layout.positionStride
    }
}

/// Σg and Σg·x̂ of a set, g = dy·γ; written as the pair (2i, 2i + 1).
struct GradientSumsChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain, @unchecked Sendable {
    let terms: EmulatedTerms<F, Scalar>
    let means: SharedInput<F.Value>
    let rstds: SharedInput<F.Value>
    let sums: SharedValues<F.Value>
    typealias State = (g: F.Value, gh: F.Value, mean: F.Value, rstd: F.Value)
    func start(_ index: Int) -> State { (0, 0, means[index], rstds[index]) }
    @inline(__always) func step(_ state: inout State, _ row: EmulatedRow, _ s: Int) {
        let h = terms.normalized(row, s, mean: state.mean, rstd: state.rstd)
        let dh = terms.scaledGradient(row, s)
        state.g = F.add(state.g, dh)
        state.gh = F.add(state.gh, F.multiply(dh, h))
    }
    func finish(_ state: State, _ index: Int) {
        sums[2 * index] = state.g
        sums[2 * index + 1] = state.gh
    }
}

/// dγ = Σdy·x̂ and dβ = Σdy of a parameter over the batch; written as the pair (2p, 2p + 1).
struct ParameterChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain, @unchecked Sendable {
    let terms: EmulatedTerms<F, Scalar>
    let means: SharedInput<F.Value>
    let rstds: SharedInput<F.Value>
    let sums: SharedValues<F.Value>
    func start(_ index: Int) -> (dgamma: F.Value, dbeta: F.Value) { (0, 0) }
    @inline(__always) func step(_ state: inout (dgamma: F.Value, dbeta: F.Value), _ row: EmulatedRow, _ s: Int) {
        let stat = terms.statistic(row, s)
        let h = terms.normalized(row, s, mean: means[stat], rstd: rstds[stat])
        let dy = terms.gradient(row, s)
        state.dgamma = F.add(state.dgamma, F.multiply(dy, h))
        state.dbeta = F.add(state.dbeta, dy)
    }
    func finish(_ state: (dgamma: F.Value, dbeta: F.Value), _ index: Int) {
        sums[2 * index] = state.dgamma
        sums[2 * index + 1] = state.dbeta
    }
}
