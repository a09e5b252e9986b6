import CVectorMath

/// The emulating kernel's chains of float32 sums, eight units at a time in the lanes of one vector
/// (`normlab_emulated_chains8_f32`): each lane adds its unit's elements in row-major order with the operations of the
/// chain's `step`, so a unit's sums have the same bits as on the scalar walk. For float32 sums of a Float tensor
/// (accumulate=float32 on float16/bfloat16 held in Float, or float32 storage); the formats that round after each
/// operation, and Double tensors, keep the scalar walk.
struct EightLanes {
    enum Kind: Int32 { case gradientSums = 0, parameters, sum, squares, onePass, sumAndMagnitudes = 6 }

    let offsets: UnsafeMutablePointer<Int>
    let means: UnsafeMutablePointer<Float>
    let rstds: UnsafeMutablePointer<Float>
    let gammas: UnsafeMutablePointer<UnsafePointer<Float>?>
    let rows: Int

    private init(rows: Int) {
        self.rows = rows
        offsets = .allocate(capacity: 8 * rows)
        means = .allocate(capacity: 8 * rows)
        rstds = .allocate(capacity: 8 * rows)
        gammas = .allocate(capacity: 8 * rows)
        means.initialize(repeating: 0, count: 8 * rows)
        rstds.initialize(repeating: 0, count: 8 * rows)
        gammas.initialize(repeating: nil, count: 8 * rows)
    }

    private func free() { offsets.deallocate(); means.deallocate(); rstds.deallocate(); gammas.deallocate() }

    /// Whether a chain in format F over a Scalar tensor has the lanes.
    static func applies<F: EmulatedFormat, Scalar: NormScalar>(_: F.Type, _: Scalar.Type) -> Bool {
        F.self == Float32Format.self && Scalar.self == Float.self
    }

    /// Units first…first + 7: `fill(lanes, slot, row, lane)` sets each row's μ, rstd and γ (slot = 8·r + lane; the
    /// offsets are set here), then the kernel runs and `finish(lane, a, b)` takes each lane's two sums.
    /// With `exact` (kinds sum, squares, onePass: a statistics walk's first pass), each lane's exact sums too.
    static func walk<Scalar>(_ kind: Kind, _ units: EmulatedUnits, first: Int, x: SharedInput<Scalar>,
                             dy: SharedInput<Scalar>? = nil, gammaStride: Int = 0, exact: ExactSums? = nil,
                             fill: (EightLanes, _ slot: Int, EmulatedRow, _ lane: Int) -> Void = { _, _, _, _ in },
                             finish: (_ lane: Int, _ a: Float, _ b: Float) -> Void) {
        let lanes = EightLanes(rows: units.rowsPerUnit)
        defer { lanes.free() }
        for lane in 0..<8 {
            for r in 0..<lanes.rows {
                let row = units.row(unit: first + lane, r), slot = 8 * r + lane
                lanes.offsets[slot] = row.offset
                fill(lanes, slot, row, lane)
            }
        }
        var a = SIMD8<Float>(), b = SIMD8<Float>()
        let xp = UnsafeRawPointer(x.base).assumingMemoryBound(to: Float.self)
        let dyp = dy.map { UnsafeRawPointer($0.base).assumingMemoryBound(to: Float.self) } ?? xp
        withUnsafeMutableBytes(of: &a) { aOut in withUnsafeMutableBytes(of: &b) { bOut in
            let aFloats = aOut.baseAddress!.assumingMemoryBound(to: Float.self)
            let bFloats = bOut.baseAddress!.assumingMemoryBound(to: Float.self)
            if let exact {
                var shifts = [Double](repeating: 0, count: 8), sums = [Double](repeating: 0, count: 16)
                if exact.centre { for lane in 0..<8 { shifts[lane] = Double(xp[lanes.offsets[lane]]) } }
                normlab_emulated_chains8_exact_f32(kind.rawValue, xp, lanes.offsets, lanes.rows, units.spatial,
                                                   lanes.means, aFloats, bFloats, shifts, &sums)
                for lane in 0..<8 { exact.set(first + lane, first: shifts[lane], sum: sums[lane], square: sums[8 + lane]) }
                return
            }
            UnsafeRawPointer(lanes.gammas).withMemoryRebound(to: UnsafePointer<Float>?.self, capacity: 8 * lanes.rows) {
                normlab_emulated_chains8_f32(kind.rawValue, xp, dyp, lanes.offsets, lanes.rows, units.spatial, lanes.means,
                                             lanes.rstds, $0, gammaStride, aFloats, bFloats)
            }
        }}
        for lane in 0..<8 { finish(lane, a[lane], b[lane]) }
    }
}

/// Where a statistics walk's first pass over x also leaves each set's exact sums, for the cancellation check
/// (`EmulatedKernels.exactStatistics`, which would otherwise read x again): set i's first element (0 when not
/// centring), Σd and Σd² of d = x − it in Float64; `covered[i]` once the lanes made them (the sets the scalar walk
/// takes are made afterwards, `complete`).
final class ExactSums: @unchecked Sendable {
    let first, sums, squares: UnsafeMutablePointer<Double>
    let covered: UnsafeMutablePointer<Bool>
    let centre: Bool
    let count: Int

    init(count: Int, centre: Bool) {
        (self.count, self.centre) = (count, centre)
        first = .allocate(capacity: max(count, 1))
        sums = .allocate(capacity: max(count, 1))
        squares = .allocate(capacity: max(count, 1))
        covered = .allocate(capacity: max(count, 1))
        covered.initialize(repeating: false, count: max(count, 1))
    }

    deinit { first.deallocate(); sums.deallocate(); squares.deallocate(); covered.deallocate() }

    func set(_ i: Int, first x0: Double, sum: Double, square: Double) {
        (first[i], sums[i], squares[i], covered[i]) = (x0, sum, square, true)
    }

    /// The sets the lanes did not cover, from x (on `threads`); then μ and Σ(x − μ)² (`EmulatedKernels.exactMoments`).
    func complete<Scalar: NormScalar>(_ units: EmulatedUnits, x: SharedInput<Scalar>, setSize: Int, threads: Int)
        -> (means: [Double], sumSquares: [Double]) {
        FastKernels.parallel(count, threads: threads) { range in
            for i in range where !self.covered[i] {
                let (x0, sum, square) = units.shiftedSums(unit: i, x, centre: self.centre)
                self.set(i, first: x0, sum: sum, square: square)
            }
        }
        return EmulatedKernels.exactMoments(first: first, sums: sums, squares: squares, count: count, setSize: setSize,
                                            centre: centre)
    }
}

@inline(__always) private func float<V>(_ value: V) -> Float { unsafeBitCast(value, to: Float.self) }
@inline(__always) private func value<V>(_ float: Float) -> V { unsafeBitCast(float, to: V.self) }

extension GradientSumsChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        guard EightLanes.applies(F.self, Scalar.self) else { return false }
        let stride = terms.affine.gammaRow(0).1  // 0 (per channel) or 1 (per element), the same for every row
        EightLanes.walk(.gradientSums, units, first: first, x: terms.x, dy: terms.dy, gammaStride: stride) { lanes, slot, row, lane in
            lanes.means[slot] = float(means[first + lane])
            lanes.rstds[slot] = float(rstds[first + lane])
            lanes.gammas[slot] = UnsafeRawPointer(terms.affine.gammaRow(row.channel).0).assumingMemoryBound(to: Float.self)
        } finish: { lane, g, gh in
            let index = first + lane
            finish((value(g), value(gh), means[index], rstds[index]), index)
        }
        return true
    }
}

extension ParameterChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        // Each row's μ and rstd the same along it (not per-position statistics).
        guard EightLanes.applies(F.self, Scalar.self), terms.layout.positionStride == 0 else { return false }
        EightLanes.walk(.parameters, units, first: first, x: terms.x, dy: terms.dy) { lanes, slot, row, _ in
            lanes.means[slot] = float(means[row.firstStat])
            lanes.rstds[slot] = float(rstds[row.firstStat])
        } finish: { lane, dgamma, dbeta in
            finish((value(dgamma), value(dbeta)), first + lane)
        }
        return true
    }
}

extension ParameterChain {
    /// dγ and dβ of a unit's columns (γ per element: a channel's positions, or a row of the `shape=` forms), each
    /// column's sums over the unit's rows in row order, the columns side by side in the lanes
    /// (`normlab_emulated_column_parameters_f32`) where the scalar walk took one element at a time.
    func walkColumnLanes(_ units: EmulatedUnits, unit: Int) -> Bool {
        guard EightLanes.applies(F.self, Scalar.self) else { return false }
        let rows = units.rowsPerUnit, count = units.spatial, positionStride = terms.layout.positionStride
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: 2 * rows)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * count)
        defer { offsets.deallocate(); sums.deallocate() }
        for r in 0..<rows {
            let row = units.row(unit: unit, r)
            (offsets[r], offsets[rows + r]) = (row.offset, row.firstStat)
        }
        func floats<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        normlab_emulated_column_parameters_f32(floats(terms.x.base), floats(terms.dy.base), offsets, offsets + rows,
                                               rows, count, floats(means.base), floats(rstds.base), positionStride,
                                               sums, sums + count)
        for s in 0..<count { finish((value(sums[s]), value(sums[count + s])), units.index(unit: unit, column: s)) }
        return true
    }
}

extension SumChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        guard EightLanes.applies(F.self, Scalar.self) else { return false }
        EightLanes.walk(.sum, units, first: first, x: x, exact: exact) { lane, sum, _ in finish(value(sum), first + lane) }
        return true
    }
}

extension SquareChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        guard EightLanes.applies(F.self, Scalar.self) else { return false }
        EightLanes.walk(.squares, units, first: first, x: x, exact: exact) { lanes, slot, _, lane in
            lanes.means[slot] = float(means[first + lane])
        } finish: { lane, total, _ in
            finish((value(total), means[first + lane]), first + lane)
        }
        return true
    }
}

extension OnePassChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        guard EightLanes.applies(F.self, Scalar.self) else { return false }
        EightLanes.walk(.onePass, units, first: first, x: x, exact: exact) { lane, sum, squares in
            finish((value(sum), value(squares)), first + lane)
        }
        return true
    }
}

extension EightLanes {
    /// Backward's two walks of float32 sums — each set's Σg, Σg·x̂ (`GradientSumsChain`) and each channel's Σdy·x̂, Σdy
    /// (`ParameterChain`) — in one pass over x and dy (`normlab_emulated_fused_sums8_f32`), where the sets are one
    /// sample's groups, at least eight a sample in blocks of eight, and γ is per channel (GroupNorm, InstanceNorm).
    /// A block of eight groups owns its channels, and walks the samples in order: each channel's chain adds its rows
    /// sample after sample, as `ParameterChain` does. Set i's sums go to setSums[2i], [2i + 1], channel c's to
    /// parameterSums[2c], [2c + 1]; `afterBlock(first)` runs once sets first…first + 7 have theirs (on the same
    /// thread, while their rows are still in cache). False, doing nothing, for any other layout.
    static func fusedBackwardSums(_ layout: EmulatedLayout, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  means: UnsafePointer<Float>, rstds: UnsafePointer<Float>,
                                  gammaRow: @escaping @Sendable (_ channel: Int) -> UnsafePointer<Float>,
                                  setSums: UnsafeMutablePointer<Float>, parameterSums: UnsafeMutablePointer<Float>,
                                  threads: Int,
                                  afterBlock: @escaping @Sendable (_ first: Int) -> Void = { _ in }) -> Bool {
        let units = EmulatedUnits(statisticsOf: layout)
        guard !layout.elementwise, layout.positionStride == 0, layout.sampleStride != 0, units.outer == 1,
              layout.groups % 8 == 0 else { return false }
        let groups = layout.groups, k = layout.channelsPerGroup, batch = layout.batch
        nonisolated(unsafe) let (x, dy, means, rstds) = (x, dy, means, rstds)
        nonisolated(unsafe) let (setSums, parameterSums) = (setSums, parameterSums)
        FastKernels.parallel(groups / 8, threads: threads) { blocks in
            let lanes = EightLanes(rows: k)
            let carried = UnsafeMutablePointer<Float>.allocate(capacity: 2 * 8 * k)
            defer { lanes.free(); carried.deallocate() }
            var a = SIMD8<Float>(), b = SIMD8<Float>()
            for block in blocks {
                carried.initialize(repeating: 0, count: 2 * 8 * k)
                for n in 0..<batch {
                    let first = n * groups + block * 8  // the unit (set) of lane 0
                    for lane in 0..<8 {
                        for r in 0..<k {
                            let row = units.row(unit: first + lane, r), slot = 8 * r + lane
                            lanes.offsets[slot] = row.offset
                            lanes.means[slot] = means[first + lane]
                            lanes.rstds[slot] = rstds[first + lane]
                            lanes.gammas[slot] = gammaRow(row.channel)
                        }
                    }
                    withUnsafeMutableBytes(of: &a) { aOut in withUnsafeMutableBytes(of: &b) { bOut in
                        UnsafeRawPointer(lanes.gammas).withMemoryRebound(to: UnsafePointer<Float>?.self, capacity: 8 * k) {
                            normlab_emulated_fused_sums8_f32(x, dy, lanes.offsets, k, units.spatial, lanes.means,
                                                             lanes.rstds, $0,
                                                             aOut.baseAddress!.assumingMemoryBound(to: Float.self),
                                                             bOut.baseAddress!.assumingMemoryBound(to: Float.self),
                                                             carried, carried + 8 * k)
                        }
                    }}
                    for lane in 0..<8 { (setSums[2 * (first + lane)], setSums[2 * (first + lane) + 1]) = (a[lane], b[lane]) }
                    afterBlock(first)
                }
                for lane in 0..<8 {
                    for r in 0..<k {
                        let channel = units.row(unit: block * 8 + lane, r).channel, slot = 8 * r + lane
                        (parameterSums[2 * channel], parameterSums[2 * channel + 1]) = (carried[slot], carried[8 * k + slot])
                    }
                }
            }
        }
        return true
    }
}
