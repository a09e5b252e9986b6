/// `EmulatedKernels`' passes in one accumulation format `F`, for a tensor of `Scalar`.
struct EmulatedRun {
    let spec: LayerSpec
    let plan: NormPlan
    /// The format y and dx are stored in, when it is reduced (see `EmulatedKernels.Forward`).
    let storage: DType?
    let threads: Int

    /// The sets as the walk visits them (`EmulatedLayout`).
    var layout: EmulatedLayout { EmulatedLayout(plan: plan, elementwiseAffine: spec.affine == .element) }

    struct Statistics {
        let means: [Double]
        let rstds: [Double]
    }

    /// Zeroed scratch the walk's threads write into, freed by the caller.
    private static func scratch<Value: BinaryFloatingPoint>(_ count: Int) -> UnsafeMutablePointer<Value> {
        let base = UnsafeMutablePointer<Value>.allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        return base
    }

    /// `body` over ranges of the statistics sets, split over the threads (each set's values are its own).
    private func eachStatistic(_ count: Int, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        FastKernels.parallel(count, threads: count >= 1 << 14 ? threads : 1, body)
    }

    /// A format value as the tensor's element (exact unless the format is wider than the element type).
    @inline(__always) static func element<F: EmulatedFormat, Scalar: NormScalar>(_: F.Type, _ v: F.Value) -> Scalar {
        if Scalar.self == F.Value.self { return unsafeBitCast(v, to: Scalar.self) }
        return Scalar(fromDouble: Double(v))
    }

    /// Whether results must be rounded to `storage` element by element, straight from the format (one rounding),
    /// or go to the tensor as they are: Float results in a Float tensor, which `chunkRounder` rounds in place.
    func storageRounding<F: EmulatedFormat, Scalar: NormScalar>(_: F.Type, _: Scalar.Type) -> DType? {
        guard let storage, storage.isReduced else { return nil }
        return Scalar.self == Float.self && F.Value.self == Float.self ? nil : storage
    }

    /// Float results in a Float tensor, rounded to a reduced `storage` in place by the row loops as they go
    /// (`RowRounding`), counted per unit.
    func chunkRounder<F: EmulatedFormat, Scalar: NormScalar>(_: F.Type, _: Scalar.Type, units: EmulatedUnits)
        -> RunRounder? {
        guard F.Value.self == Float.self else { return nil }
        return RunRounder(storage, sets: units.count, scalar: Scalar.self)
    }

    func forward<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, gamma: [Double]?, beta: [Double]?,
        running: (means: [Double], variances: [Double])?, keepNormalized: Bool
    ) -> EmulatedKernels.Forward<Scalar> {
        let count = plan.statsShape.count
        let m = plan.setSize
        let centre = spec.centres, method = spec.method
        let wantsUnbiased = running == nil && (spec.kind.hasRunningStatistics || spec.variance == .unbiased)
        // Per-set values, written by the threads that own the sets (per-position sets are half an input's size).
        let sums: UnsafeMutablePointer<F.Value> = Self.scratch(count)
        let squares: UnsafeMutablePointer<F.Value> = Self.scratch(count)
        let meanValues: UnsafeMutablePointer<F.Value> = Self.scratch(count)
        let varianceValues: UnsafeMutablePointer<F.Value> = Self.scratch(count)
        let unbiasedValues: UnsafeMutablePointer<F.Value> = Self.scratch(wantsUnbiased ? count : 1)
        let rstdValues: UnsafeMutablePointer<F.Value> = Self.scratch(count)
        defer {
            for p in [sums, squares, meanValues, varianceValues, unbiasedValues, rstdValues] { p.deallocate() }
        }
        let variance = SharedValues(varianceValues)
        var overflowedSquare = [Bool](repeating: false, count: count)
        var overflowedSum = [Bool](repeating: false, count: count)
        let input = SharedInput(x.baseAddress!)
        var exact: ExactSums? = nil
        // y and its rounding counts, when the fused forward made them with the statistics.
        var fused: (y: [Scalar], rounded: FormatRounding.Counts?, cancellationRuledOut: Bool)? = nil

        if let running {
            for i in 0..<count {
                meanValues[i] = F.value(running.means[i])
                varianceValues[i] = F.value(running.variances[i])
            }
        } else {
            let units = EmulatedUnits(statisticsOf: layout)
            let values = SetValues(sums: sums, squares: squares, means: meanValues, variances: varianceValues,
                                   unbiased: unbiasedValues, rstds: rstdValues, wantsUnbiased: wantsUnbiased)
            if fusesForward(F.self, Scalar.self, units: units, method: method) {
                fused = fusedForward(F.self, x: x, units: units, values: values, gamma: gamma, beta: beta)
            } else {
                // The float32 lanes' first pass over x also makes the exact sums the cancellation check reads.
                exact = EightLanes.applies(F.self, Scalar.self) && !units.columns && method != .welford
                    ? ExactSums(count: count, centre: centre) : nil
                walkedStatistics(F.self, x: input, units: units, values: values, exact: exact)
            }
            // A sum that overflowed stays ±∞ or NaN: only such sets are walked again for where it happened.
            for i in 0..<count where !(sums[i].isFinite && squares[i].isFinite) {
                (overflowedSquare[i], overflowedSum[i]) = overflows(F.self, set: i, x: x, mean: meanValues[i])
            }
        }

        let eps = F.value(spec.eps), rstd = SharedValues(rstdValues)
        if fused == nil {
            eachStatistic(count) { range in for i in range { rstd[i] = F.divide(1, F.squareRoot(F.add(variance[i], eps))) } }
        }
        let means = Array(UnsafeBufferPointer(start: meanValues, count: count))
        let rstds = Array(UnsafeBufferPointer(start: rstdValues, count: count))
        let (output, rounded) = fused.map { ($0.y, $0.rounded) }
            ?? normalizeCounting(F.self, x: x, means: means, rstds: rstds, gamma: gamma, beta: beta)
        // x̂ is y with neither γ nor β (h·1 = h and h + (−0) = h) and no storage rounding.
        let normalized = keepNormalized
            ? EmulatedRun(spec: spec, plan: plan, storage: nil, threads: threads)
                .normalize(F.self, x: x, means: means, rstds: rstds, gamma: nil, beta: nil)
            : []

        var findings: [NormWarning] = []
        var squareSets = 0, sumSets = 0
        for i in 0..<count where overflowedSquare[i] || overflowedSum[i] {
            if overflowedSquare[i] { squareSets += 1 }
            if overflowedSum[i] { sumSets += 1 }
        }
        if squareSets > 0 { findings.append(.overflow(quantity: "x²", sets: squareSets, format: F.format)) }
        else if sumSets > 0 { findings.append(.overflow(quantity: "a sum", sets: sumSets, format: F.format)) }
        // A rounding below 1 % changes nothing a user would see; to 0 (or far off) it changes everything.
        let epsValue = Double(eps)
        if epsValue != spec.eps && (epsValue == 0 || abs(epsValue - spec.eps) > 0.01 * spec.eps) {
            findings.append(.epsRounded(eps: spec.eps, to: epsValue, format: F.format))
        }
        func doubles(_ values: UnsafeMutablePointer<F.Value>) -> [Double] {
            [Double](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out[i] = Double(values[i]) }
                initialized = count
            }
        }
        return EmulatedKernels.Forward(
            means: doubles(meanValues), variances: doubles(varianceValues),
            unbiased: wantsUnbiased ? doubles(unbiasedValues) : nil,
            rstds: doubles(rstdValues), normalized: normalized, output: output, rounded: rounded, findings: findings,
            exact: exact?.complete(EmulatedUnits(statisticsOf: layout), x: input, setSize: m, threads: threads),
            cancellationRuledOut: fused?.cancellationRuledOut ?? false,
            overflowed: overflowedSquare.withUnsafeBufferPointer { square in
                overflowedSum.withUnsafeBufferPointer { sum in
                    [Bool](unsafeUninitializedCapacity: count) { out, initialized in
                        for i in 0..<count { out[i] = square[i] || sum[i] }
                        initialized = count
                    }
                }
            })
    }

    /// Every set's statistics, walk after walk over x (each method; `fusedForward` makes twopass's in one visit).
    private func walkedStatistics<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x input: SharedInput<Scalar>, units: EmulatedUnits, values: SetValues<F.Value>,
        exact: ExactSums?
    ) {
        let count = plan.statsShape.count, m = plan.setSize
        let divisor = Double(spec.variance == .unbiased ? m - 1 : m)
        let centre = spec.centres, method = spec.method, unbiasedVariance = spec.variance == .unbiased
        let wantsUnbiased = values.wantsUnbiased
        let sum = SharedValues(values.sums), square = SharedValues(values.squares), mean = SharedValues(values.means)
        let variance = SharedValues(values.variances), unbiased = SharedValues(values.unbiased)
        switch method {
        case .twopass:
            if centre {
                units.walk(threads: threads, SumChain<F, Scalar>(x: input, sums: sum, exact: exact))
                eachStatistic(count) { range in for i in range { mean[i] = F.divide(sum[i], by: Double(m)) } }
            }
            units.walk(threads: threads, SquareChain<F, Scalar>(x: input, means: SharedInput(values.means),
                                                                squares: square, exact: centre ? nil : exact))
        case .onepass:
            units.walk(threads: threads, OnePassChain<F, Scalar>(x: input, sums: sum, squares: square,
                                                                 exact: exact))
        case .welford:
            units.walk(threads: threads, WelfordChain<F, Scalar>(x: input, means: mean, squares: square,
                                                                 centre: centre))
        }
        let factor = F.value(Double(m) / Double(m - 1))
        eachStatistic(count) { range in
            for i in range {
                if method == .onepass {
                    let meanSquare = F.divide(square[i], by: Double(m))
                    if centre { mean[i] = F.divide(sum[i], by: Double(m)) }
                    variance[i] = centre ? F.subtract(meanSquare, F.multiply(mean[i], mean[i])) : meanSquare
                    if wantsUnbiased { unbiased[i] = F.multiply(variance[i], factor) }
                    if unbiasedVariance { variance[i] = unbiased[i] }
                } else {
                    variance[i] = F.divide(square[i], by: divisor)
                    if wantsUnbiased { unbiased[i] = F.divide(square[i], by: Double(m - 1)) }
                }
            }
        }
    }

    /// y = x̂·γ + β element by element (no sums: any order, any thread); with neither γ nor β, x̂ itself.
    func normalize<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, means: [F.Value], rstds: [F.Value], gamma: [Double]?,
        beta: [Double]?
    ) -> [Scalar] {
        normalizeCounting(F.self, x: x, means: means, rstds: rstds, gamma: gamma, beta: beta).y
    }

    /// `normalize`, with the counts of what rounding to `storage` made infinite when `chunkRounder` rounded y.
    func normalizeCounting<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, means: [F.Value], rstds: [F.Value], gamma: [Double]?,
        beta: [Double]?
    ) -> (y: [Scalar], rounded: FormatRounding.Counts?) {
        var rounded: FormatRounding.Counts? = nil
        let y = [Scalar](unsafeUninitializedCapacity: x.count) { y, count in
            rounded = normalize(F.self, x: x, into: SharedValues(y.baseAddress!), means: means, rstds: rstds,
                                gamma: gamma, beta: beta)
            count = x.count
        }
        return (y, rounded)
    }

    private func normalize<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, into yOut: SharedValues<Scalar>, means: [F.Value],
        rstds: [F.Value], gamma: [Double]?, beta: [Double]?
    ) -> FormatRounding.Counts? {
        let statistics = EmulatedRowStatistics(means: means, rstds: rstds, perPosition: layout.positionStride != 0)
        let affine = EmulatedAffine<F.Value>(gamma: gamma?.mapFilling(F.value), beta: beta?.mapFilling(F.value),
                                             elementwise: layout.elementwise, spatial: layout.spatial)
        defer { statistics.free(); affine.free() }
        let input = SharedInput(x.baseAddress!)
        let layout = layout
        let rounding = storageRounding(F.self, Scalar.self)
        let units = EmulatedUnits(statisticsOf: layout)
        let rounder = chunkRounder(F.self, Scalar.self, units: units)
        units.forEachRow(threads: threads) { row, unit in
            let (mean, rstd, statStride) = statistics.row(row.firstStat)
            let (gamma, gammaStride) = affine.gammaRow(row.channel)
            let (beta, betaStride) = affine.betaRow(row.channel)
            let x = input.base + row.offset, y = yOut.base + row.offset
            if let rounding {  // Double results into a reduced storage format: one rounding, straight from Double
                for s in 0..<layout.spatial {
                    let h = F.multiply(F.subtract(F.value(scalar: x[s]), mean[s * statStride]), rstd[s * statStride])
                    let out = F.add(F.multiply(h, gamma[s * gammaStride]), beta[s * betaStride])
                    y[s] = Scalar(fromDouble: rounding.round(Double(out)))
                }
            } else {
                EmulatedRows.normalize(F.self, EmulatedRowOperands(
                    mean: mean, rstd: rstd, statStride: statStride, gamma: gamma, gammaStride: gammaStride,
                    beta: beta, betaStride: betaStride), x: x, y: y, count: layout.spatial,
                    rounding: rounder?.row(set: unit))
            }
        }
        return rounder?.finish()
    }

    /// Where set `set`'s sums left the finite range: its elements again, in order, with the checks the first
    /// implementation made at every step (a square that overflowed from a finite value, a sum that did).
    private func overflows<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, set: Int, x: UnsafeBufferPointer<Scalar>, mean: F.Value
    ) -> (square: Bool, sum: Bool) {
        var square = false, sum = false
        func squared(_ v: F.Value) -> F.Value {
            let s = F.multiply(v, v)
            if s.isInfinite && v.isFinite { square = true }
            return s
        }
        func add(_ total: inout F.Value, _ v: F.Value) {
            let before = total
            total = F.add(total, v)
            if total.isInfinite && before.isFinite && v.isFinite { sum = true }
        }
        let members = plan.memberOffsets(ofStat: set).map { F.value(scalar: x[$0]) }
        let centre = spec.centres
        switch spec.method {
        case .twopass:
            var total: F.Value = 0, squares: F.Value = 0
            if centre { for v in members { add(&total, v) } }
            for v in members { add(&squares, squared(centre ? F.subtract(v, mean) : v)) }
        case .onepass:
            var total: F.Value = 0, squares: F.Value = 0
            for v in members {
                add(&total, v)
                add(&squares, squared(v))
            }
        case .welford:
            var running: F.Value = 0, squares: F.Value = 0, seen = 0.0
            for v in members {
                seen += 1
                if centre {
                    let delta = F.subtract(v, running)
                    running = F.add(running, F.divide(delta, by: seen))
                    add(&squares, F.multiply(delta, F.subtract(v, running)))
                } else {
                    add(&squares, squared(v))
                }
            }
        }
        return (square, sum)
    }
}
