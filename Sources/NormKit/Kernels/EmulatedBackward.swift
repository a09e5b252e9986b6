/// Backward in an accumulation format: Σg and Σg·x̂ per set (chains over the statistics' units), dx element by
/// element, then dγ and dβ (chains over the parameters' units: a channel's rows in sample order, or per element
/// of a sample a column over the batch). In float32 lanes with one sample's groups per set and γ per channel, both
/// kinds of chains run in one walk over x and dy (`EightLanes.fusedBackwardSums`).
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
        var meanTerms = [F.Value](repeating: 0, count: count), projections = meanTerms
        let parameters = plan.affineShape?.count ?? 0
        let parameterSums: UnsafeMutablePointer<F.Value> = .allocate(capacity: 2 * max(parameters, 1))
        defer { parameterSums.deallocate() }
        var parametersSummed = false

        if !constant {
            means.withUnsafeBufferPointer { means in
                rstds.withUnsafeBufferPointer { rstds in
                    let sums: UnsafeMutablePointer<F.Value> = .allocate(capacity: 2 * max(count, 1))
                    defer { sums.deallocate() }
                    if parameters > 0 && EightLanes.applies(F.self, Scalar.self) {
                        func floats<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
                            UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
                        }
                        func floats<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
                            UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
                        }
                        parametersSummed = EightLanes.fusedBackwardSums(
                            layout, x: floats(x.baseAddress!), dy: floats(dy.baseAddress!),
                            means: floats(means.baseAddress!), rstds: floats(rstds.baseAddress!),
                            gammaRow: { UnsafeRawPointer(affine.gammaRow($0).0).assumingMemoryBound(to: Float.self) },
                            setSums: floats(sums), parameterSums: floats(parameterSums), threads: threads)
                    }
                    if !parametersSummed {
                        EmulatedUnits(statisticsOf: layout).walk(threads: threads, GradientSumsChain(
                            terms: terms, means: SharedInput(means.baseAddress!),
                            rstds: SharedInput(rstds.baseAddress!), sums: SharedValues(sums)))
                    }
                    for i in 0..<count {
                        meanTerms[i] = centre ? F.divide(sums[2 * i], by: m) : 0
                        projections[i] = F.divide(sums[2 * i + 1], by: divisor)
                    }
                }
            }
        }

        var rounded: FormatRounding.Counts? = nil
        let dx = [Scalar](unsafeUninitializedCapacity: x.count) { out, initialized in
            rounded = gradient(F.self, x: x, dy: dy, into: SharedValues(out.baseAddress!), means: means, rstds: rstds,
                               affine: affine, meanTerms: meanTerms, projections: projections, constant: constant)
            initialized = x.count
        }

        guard parameters > 0 else { return (dx, [], [], rounded) }
        let sums = parameterSums
        if !parametersSummed {
            means.withUnsafeBufferPointer { means in
                rstds.withUnsafeBufferPointer { rstds in
                    EmulatedUnits(parametersOf: layout).walk(threads: threads, ParameterChain(
                        terms: terms, means: SharedInput(means.baseAddress!), rstds: SharedInput(rstds.baseAddress!),
                        sums: SharedValues(sums)))
                }
            }
        }
        return (dx, (0..<parameters).map { Double(sums[2 * $0]) }, (0..<parameters).map { Double(sums[2 * $0 + 1]) },
                rounded)
    }

    /// dx = rstd·((g − Σg/m) − x̂·(Σg·x̂/d)), or rstd·g with constant statistics, element by element; the counts
    /// of what rounding to `storage` made infinite when `chunkRounder` rounded dx.
    private func gradient<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, dy: UnsafeBufferPointer<Scalar>,
        into dxOut: SharedValues<Scalar>, means: [F.Value], rstds: [F.Value], affine: EmulatedAffine<F.Value>,
        meanTerms: [F.Value], projections: [F.Value], constant: Bool
    ) -> FormatRounding.Counts? {
        let perPosition = layout.positionStride != 0
        let statistics = EmulatedRowStatistics(means: means, rstds: rstds, perPosition: perPosition)
        let terms = EmulatedRowStatistics(means: meanTerms, rstds: projections, perPosition: perPosition)
        defer { statistics.free(); terms.free() }
        let input = SharedInput(x.baseAddress!), gradients = SharedInput(dy.baseAddress!)
        let layout = layout
        let rounding = storageRounding(F.self, Scalar.self)
        let units = EmulatedUnits(statisticsOf: layout)
        let rounder = chunkRounder(F.self, Scalar.self, units: units)
        units.forEachRow(threads: threads) { row, unit in
            let first = row.firstStat
            let (mean, rstd, stride) = statistics.row(first)
            let (meanTerm, projection, _) = terms.row(first)
            let (gamma, gammaStride) = affine.gammaRow(row.channel)
            let x = input.base + row.offset, dy = gradients.base + row.offset, dx = dxOut.base + row.offset
            @inline(__always) func value(_ s: Int) -> F.Value {
                let dh = F.multiply(F.value(scalar: dy[s]), gamma[s &* gammaStride])
                if constant { return F.multiply(rstd[s &* stride], dh) }
                let h = F.multiply(F.subtract(F.value(scalar: x[s]), mean[s &* stride]), rstd[s &* stride])
                return F.multiply(rstd[s &* stride], F.subtract(F.subtract(dh, meanTerm[s &* stride]),
                                                                F.multiply(h, projection[s &* stride])))
            }
            if let rounding {
                for s in 0..<layout.spatial { dx[s] = Scalar(fromDouble: rounding.round(Double(value(s)))) }
                return
            }
            let rounding = rounder?.row(set: unit)
            guard constant else {
                EmulatedRows.gradient(F.self, EmulatedRowOperands(
                    mean: mean, rstd: rstd, statStride: stride, gamma: gamma, gammaStride: gammaStride,
                    beta: gamma, betaStride: 0, meanTerm: meanTerm, projection: projection),
                    x: x, dy: dy, dx: dx, count: layout.spatial, rounding: rounding)
                return
            }
            var start = 0
            while start < layout.spatial {
                let count = rounding == nil ? layout.spatial : min(RowRounding.chunk, layout.spatial - start)
                for s in start..<start + count { dx[s] = Self.element(F.self, value(s)) }
                rounding?.round(dx + start, count: count)
                start += count
            }
        }
        return rounder?.finish()
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
