import CVectorMath

/// How the emulated kernels visit a tensor: each sum is a chain of roundings in row-major order, so a set's
/// elements must be added one after another. Sets are independent of each other, so the walk runs units of sets
/// on several threads, and keeps several chains in flight on one thread: four sets of whole rows side by side,
/// or a run of S per-position sets (columns) that each row of the unit adds to. Every chain still adds its own
/// elements in row-major order, so the bits do not depend on the thread count or on how chains interleave.
///
/// A unit is `outer × inner` rows of `spatial` elements; its row r is
/// `(unit / perOuter)·C + (unit % perOuter)·inner + (r / inner)·C + r % inner` — a group's channel rows of one
/// sample (GroupNorm, per sample), of every sample (BatchNorm, over the batch), or one channel of every sample
/// (the parameter gradients, summed over the batch).
struct EmulatedUnits: Sendable {
    let count: Int
    let outer: Int
    let inner: Int
    let perOuter: Int
    let channels: Int
    let spatial: Int
    /// Each position of a unit is a set of its own (per-position statistics, element-wise γ).
    let columns: Bool
    /// The layout's statistics strides, for each row's first statistics set.
    private let statStrides: (sample: Int, group: Int, channelsPerGroup: Int)

    /// The statistics sets: units of sets that share rows.
    init(statisticsOf layout: EmulatedLayout) {
        let groups = layout.groups, k = layout.channelsPerGroup
        let perSample = layout.sampleStride != 0
        count = perSample ? layout.batch * groups : groups
        outer = perSample ? 1 : layout.batch
        inner = k
        perOuter = groups
        channels = layout.channels
        spatial = layout.spatial
        columns = layout.positionStride != 0
        statStrides = (layout.sampleStride, layout.groupStride, k)
    }

    /// The parameters: one unit per channel, its rows the channel in every sample, in sample order.
    init(parametersOf layout: EmulatedLayout) {
        count = layout.channels
        outer = layout.batch
        inner = 1
        perOuter = layout.channels
        channels = layout.channels
        spatial = layout.spatial
        columns = layout.elementwise
        statStrides = (layout.sampleStride, layout.groupStride, layout.channelsPerGroup)
    }

    var rowsPerUnit: Int { outer * inner }

    /// The index of the set (or parameter) that column `column` of `unit` adds to.
    @inline(__always) func index(unit: Int, column: Int) -> Int { columns ? unit * spatial + column : unit }

    @inline(__always) func row(unit: Int, _ r: Int) -> EmulatedRow {
        let row = (unit / perOuter) * channels + (unit % perOuter) * inner + (r / inner) * channels + r % inner
        let sample = row / channels, channel = row % channels
        return EmulatedRow(offset: row * spatial, sample: sample, channel: channel,
                           firstStat: sample * statStrides.sample + channel / statStrides.channelsPerGroup * statStrides.group)
    }
}

/// The sets as the walk visits them: the plan's own dimensions, or, for inputs without spatial dimensions (rows of
/// one element: the `shape=` forms, (N, C) inputs), the same memory seen with positions along the channels — a
/// group's K channels as one row of K positions (γ per position), or, with one channel per set, a sample's C
/// channels as one row whose every position is a set of its own. Each element keeps its set, its parameter and
/// its place in its set's order; what changes is that a row holds many elements, not one.
struct EmulatedLayout: Sendable {
    let batch, channels, spatial, groups, channelsPerGroup: Int
    let sampleStride, groupStride, positionStride: Int
    /// γ and β have a value per (channel, position).
    let elementwise: Bool

    init(plan: NormPlan, elementwiseAffine: Bool) {
        let perSample = plan.sampleStride != 0
        batch = plan.batch
        if plan.spatial == 1 && plan.channelsPerGroup > 1 {
            (channels, spatial, groups, channelsPerGroup) = (plan.groups, plan.channelsPerGroup, plan.groups, 1)
            (sampleStride, groupStride, positionStride) = (perSample ? plan.groups : 0, 1, 0)
            elementwise = true
        } else if plan.spatial == 1 && plan.channels > 1 {
            (channels, spatial, groups, channelsPerGroup) = (1, plan.channels, 1, 1)
            (sampleStride, groupStride, positionStride) = (perSample ? plan.channels : 0, plan.channels, 1)
            elementwise = true
        } else {
            (channels, spatial, groups, channelsPerGroup) = (plan.channels, plan.spatial, plan.groups, plan.channelsPerGroup)
            (sampleStride, groupStride, positionStride) = (plan.sampleStride, plan.groupStride, plan.positionStride)
            elementwise = elementwiseAffine
        }
    }
}

/// Where a row of `spatial` elements starts, whose it is, and the statistics set of its first element.
struct EmulatedRow {
    let offset: Int
    let sample: Int
    let channel: Int
    let firstStat: Int
}

/// One kind of sum: what a chain starts from, what one element adds, and where the result goes.
protocol EmulatedChain: Sendable {
    associatedtype State
    func start(_ index: Int) -> State
    func step(_ state: inout State, _ row: EmulatedRow, _ position: Int)
    func finish(_ state: State, _ index: Int)
    /// Units first…first + 7 as eight lanes of one vector (`EmulatedLanes.swift`), finished as `finish` would be;
    /// false, doing nothing, where this chain's format or layout has no such loop.
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool
    /// A unit of columns with its columns in vector lanes (each column's chain is one lane, so no transposes), finished
    /// as `finish` would be; false, doing nothing, where this chain has no such loop.
    func walkColumnLanes(_ units: EmulatedUnits, unit: Int) -> Bool
}

extension EmulatedChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool { false }
    func walkColumnLanes(_ units: EmulatedUnits, unit: Int) -> Bool { false }
}

extension EmulatedUnits {
    /// Every unit's chains, the units split over `threads` (contiguous ranges, each unit on one thread).
    func walk<Chain: EmulatedChain>(threads: Int, _ chain: Chain) {
        let units = self
        FastKernels.parallel(count, threads: threads) { range in
            if units.columns { units.walkColumns(range, chain) } else { units.walkRows(range, chain) }
        }
    }

    /// Units whose rows form one set each: eight sets in vector lanes where the chain has such a loop, else four at
    /// a time, so four chains of additions overlap.
    private func walkRows<Chain: EmulatedChain>(_ range: Range<Int>, _ chain: Chain) {
        var unit = range.lowerBound
        while unit + 8 <= range.upperBound, chain.walkEight(self, first: unit) { unit += 8 }
        while unit + 4 <= range.upperBound {
            var s0 = chain.start(unit), s1 = chain.start(unit + 1)
            var s2 = chain.start(unit + 2), s3 = chain.start(unit + 3)
            for r in 0..<rowsPerUnit {
                let r0 = row(unit: unit, r), r1 = row(unit: unit + 1, r)
                let r2 = row(unit: unit + 2, r), r3 = row(unit: unit + 3, r)
                for s in 0..<spatial {
                    chain.step(&s0, r0, s)
                    chain.step(&s1, r1, s)
                    chain.step(&s2, r2, s)
                    chain.step(&s3, r3, s)
                }
            }
            chain.finish(s0, unit)
            chain.finish(s1, unit + 1)
            chain.finish(s2, unit + 2)
            chain.finish(s3, unit + 3)
            unit += 4
        }
        while unit < range.upperBound {
            var state = chain.start(unit)
            for r in 0..<rowsPerUnit {
                let place = row(unit: unit, r)
                for s in 0..<spatial { chain.step(&state, place, s) }
            }
            chain.finish(state, unit)
            unit += 1
        }
    }

    /// Units of per-position sets: each row adds its element s to column s's chain.
    private func walkColumns<Chain: EmulatedChain>(_ range: Range<Int>, _ chain: Chain) {
        let states = UnsafeMutablePointer<Chain.State>.allocate(capacity: spatial)
        defer { states.deallocate() }
        for unit in range where !chain.walkColumnLanes(self, unit: unit) {
            for s in 0..<spatial { (states + s).initialize(to: chain.start(index(unit: unit, column: s))) }
            for r in 0..<rowsPerUnit {
                let place = row(unit: unit, r)
                for s in 0..<spatial { chain.step(&states[s], place, s) }
            }
            for s in 0..<spatial { chain.finish((states + s).move(), index(unit: unit, column: s)) }
        }
    }

    /// `body` for every row of every unit, units split over `threads`: for element-wise work with no chain.
    func forEachRow(threads: Int, _ body: @escaping @Sendable (EmulatedRow, _ unit: Int) -> Void) {
        let units = self
        FastKernels.parallel(count, threads: threads) { range in
            for unit in range {
                for r in 0..<units.rowsPerUnit { body(units.row(unit: unit, r), unit) }
            }
        }
    }
}

/// A pointer the walk's threads share; each writes only the indexes of its own units.
struct SharedValues<Value>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Value>
    init(_ base: UnsafeMutablePointer<Value>) { self.base = base }
    @inline(__always) subscript(_ i: Int) -> Value {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
}

/// A read-only pointer for the walk's threads.
struct SharedInput<Value>: @unchecked Sendable {
    let base: UnsafePointer<Value>
    init(_ base: UnsafePointer<Value>) { self.base = base }
    @inline(__always) subscript(_ i: Int) -> Value { base[i] }
}

/// μ and rstd in the format, read along a row: one value for the row (stride 0) or one per position (stride 1).
/// A layer that does not centre has μ = 0 here, and x − 0 is x bit for bit (−0 included).
struct EmulatedRowStatistics<Value: BinaryFloatingPoint>: @unchecked Sendable {
    let means: UnsafeMutablePointer<Value>
    let rstds: UnsafeMutablePointer<Value>
    let stride: Int

    init(means: [Value], rstds: [Value], perPosition: Bool) {
        self.means = .allocate(capacity: max(means.count, 1))
        self.rstds = .allocate(capacity: max(rstds.count, 1))
        self.means.initialize(from: means, count: means.count)
        self.rstds.initialize(from: rstds, count: rstds.count)
        stride = perPosition ? 1 : 0
    }

    @inline(__always) func row(_ first: Int) -> (UnsafePointer<Value>, UnsafePointer<Value>, Int) {
        (UnsafePointer(means + first), UnsafePointer(rstds + first), stride)
    }

    func free() { means.deallocate(); rstds.deallocate() }
}

/// γ and β in the format, read along a row: per channel (stride 0) or per element (stride 1). A missing γ reads 1
/// and a missing β reads −0, which leave a value exactly as it is (h·1 = h and h + (−0) = h for every h, −0 and NaN
/// included), so one loop serves every layer.
struct EmulatedAffine<Value: BinaryFloatingPoint>: @unchecked Sendable {
    private let gamma: UnsafeMutablePointer<Value>
    private let beta: UnsafeMutablePointer<Value>
    private let gammaStride: (channel: Int, element: Int)
    private let betaStride: (channel: Int, element: Int)

    init(gamma: [Value]?, beta: [Value]?, elementwise: Bool, spatial: Int) {
        func stored(_ values: [Value]?, absent: Value) -> (UnsafeMutablePointer<Value>, (channel: Int, element: Int)) {
            let base = UnsafeMutablePointer<Value>.allocate(capacity: max(values?.count ?? 1, 1))
            guard let values else {
                base.initialize(to: absent)
                return (base, (0, 0))
            }
            base.initialize(from: values, count: values.count)
            return (base, elementwise ? (spatial, 1) : (1, 0))
        }
        (self.gamma, gammaStride) = stored(gamma, absent: 1)
        (self.beta, betaStride) = stored(beta, absent: -0.0)
    }

    @inline(__always) func gammaRow(_ channel: Int) -> (UnsafePointer<Value>, Int) {
        (UnsafePointer(gamma + channel * gammaStride.channel), gammaStride.element)
    }
    @inline(__always) func betaRow(_ channel: Int) -> (UnsafePointer<Value>, Int) {
        (UnsafePointer(beta + channel * betaStride.channel), betaStride.element)
    }

    func free() { gamma.deallocate(); beta.deallocate() }
}

extension EmulatedUnits {
    /// For each set: its first element x₀ (0 when not centring), Σd and Σd² of d = x − x₀ in Float64, in no
    /// particular order (`EmulatedKernels.exactStatistics`).
    func shiftedSums<Scalar: NormScalar>(_ x: SharedInput<Scalar>, centre: Bool, threads: Int,
                                         first: SharedValues<Double>, sums: SharedValues<Double>,
                                         squares: SharedValues<Double>) {
        let units = self
        FastKernels.parallel(count, threads: threads) { range in
            if units.columns {
                units.shiftedColumnSums(range, x, centre: centre, first: first, sums: sums, squares: squares)
                return
            }
            for unit in range { (first[unit], sums[unit], squares[unit]) = units.shiftedSums(unit: unit, x, centre: centre) }
        }
    }

    /// `shiftedSums` of one unit of whole rows (not per-position sets): its first element, Σd and Σd².
    func shiftedSums<Scalar: NormScalar>(unit: Int, _ x: SharedInput<Scalar>, centre: Bool)
        -> (first: Double, sum: Double, square: Double) {
        if Scalar.self == Float.self {  // float32, or float16/bfloat16 held in Float: C, eight lanes
            let floats = UnsafeRawPointer(x.base).assumingMemoryBound(to: Float.self)
            let x0 = centre ? Double(floats[row(unit: unit, 0).offset]) : 0
            var sum = 0.0, square = 0.0
            for r in 0..<rowsPerUnit {
                normlab_add_shifted_sums_f32(floats + row(unit: unit, r).offset, spatial, x0, &sum, &square)
            }
            return (x0, sum, square)
        }
        let x0 = centre ? x[row(unit: unit, 0).offset].asDouble : 0
        let shift = SIMD4<Double>(repeating: x0)
        var sum = SIMD4<Double>(), square = SIMD4<Double>()
        var tailSum = 0.0, tailSquare = 0.0
        for r in 0..<rowsPerUnit {
            let elements = x.base + row(unit: unit, r).offset
            var s = 0
            while s &+ 4 <= spatial {
                let d = SIMD4<Double>(elements[s].asDouble, elements[s &+ 1].asDouble, elements[s &+ 2].asDouble,
                                      elements[s &+ 3].asDouble) - shift
                sum += d
                square += d * d
                s &+= 4
            }
            while s < spatial {
                let d = elements[s].asDouble - x0
                tailSum += d
                tailSquare += d * d
                s &+= 1
            }
        }
        return (x0, sum.sum() + tailSum, square.sum() + tailSquare)
    }

    /// `shiftedSums` for per-position sets: each row adds to its positions' sums.
    private func shiftedColumnSums<Scalar: NormScalar>(
        _ range: Range<Int>, _ x: SharedInput<Scalar>, centre: Bool, first: SharedValues<Double>,
        sums: SharedValues<Double>, squares: SharedValues<Double>
    ) {
        for unit in range {
            let base = unit * spatial  // the unit's first set
            let start = x.base + row(unit: unit, 0).offset
            for s in 0..<spatial {
                first[base &+ s] = centre ? start[s].asDouble : 0
                sums[base &+ s] = 0
                squares[base &+ s] = 0
            }
            let shift = first.base + base, sum = sums.base + base, square = squares.base + base
            for r in 0..<rowsPerUnit {
                let row = x.base + row(unit: unit, r).offset
                for s in 0..<spatial {
                    let d = row[s].asDouble - shift[s]
                    sum[s] += d
                    square[s] += d * d
                }
            }
        }
    }
}

extension Array {
    /// `map` into a buffer filled in place. `Array.map` appends, storing the count at every element, which kept
    /// simple conversions from vectorising; per-position statistics are half an input's size.
    @inline(__always)
    func mapFilling<T>(_ transform: (Element) -> T) -> [T] {
        [T](unsafeUninitializedCapacity: count) { out, initialized in
            withUnsafeBufferPointer { source in
                for i in source.indices { (out.baseAddress! + i).initialize(to: transform(source[i])) }
            }
            initialized = count
        }
    }
}
