/// The passes as a kernel in a given precision computes them: `method=` says how the variance is formed and
/// `accumulate=` the format every sum, square and later step is rounded to (after each operation, so float16
/// arithmetic is float16's own, bit for bit: `EmulatedFormat`).
///
/// The order of operations is part of the definition, so fixtures made elsewhere can match it bit for bit: every
/// sum runs sequentially over a set's elements in row-major order; then, with A the accumulation format,
///
///     twopass   μ = Σx / m;  σ² = Σ(x − μ)² / d
///     onepass   μ = Σx / m;  σ² = Σx² / m − μ²            (× m/(m − 1) when unbiased)
///     welford   δ = x − μ;  μ += δ / k;  M₂ += δ·(x − μ);  σ² = M₂ / d
///     rstd = 1 / √(σ² + eps)                             (eps rounded to A first; three roundings)
///     x̂ = (x − μ)·rstd;  y = x̂·γ + β                     (then rounded to the storage format)
///
/// and backward, with g = dy·γ: dx = rstd·((g − Σg/m) − x̂·(Σg·x̂/d)), each product, quotient and difference rounded;
/// dγ and dβ are each parameter's sums over the batch in row-major order. `EmulatedUnits` runs the sets' chains
/// on several threads and side by side without changing any chain's order.
enum EmulatedKernels {
    /// What the emulated forward produced: statistics in the accumulation format (as Doubles), x̂ (when asked
    /// for; empty otherwise) and y as the tensor's elements, rounded to `storage` when that is reduced (Float
    /// results in a Float tensor in place, chunk by chunk, with the counts in `rounded`).
    ///
    /// Each entry point switches on the format itself: the passes must be specialised for their format (through
    /// an `any EmulatedFormat.Type` opened at the call they ran unspecialised, about 100× slower, measured).
    struct Forward<Scalar: NormScalar> {
        var means: [Double]
        var variances: [Double]
        var unbiased: [Double]?
        var rstds: [Double]
        var normalized: [Scalar]
        var output: [Scalar]
        /// What rounding y to `storage` made infinite, when the pass counted it (Float results in a Float tensor).
        var rounded: FormatRounding.Counts? = nil
        var findings: [NormWarning]
        /// `exactStatistics`, when the pass made it on the way (float32 lanes over whole rows).
        var exact: (means: [Double], sumSquares: [Double])? = nil
        /// Every set's σ² provably within 5 % of the exact one (`TwoPassBound`): the cancellation check has nothing
        /// to find and needs no exact sums.
        var cancellationRuledOut = false
        /// Sets where a square or a sum overflowed.
        var overflowed: [Bool]
    }

    /// Forward in `format`; `running` (means, variances) for BatchNorm in eval mode.
    static func forward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: [Scalar], gamma: [Double]?, beta: [Double]?,
        running: (means: [Double], variances: [Double])?, format: DType, storage: DType? = nil, threads: Int = 1,
        keepNormalized: Bool = true
    ) -> Forward<Scalar> {
        let run = EmulatedRun(spec: spec, plan: plan, storage: storage, threads: threads)
        return x.withUnsafeBufferPointer { x in
            func pass<F: EmulatedFormat>(_: F.Type) -> Forward<Scalar> {
                run.forward(F.self, x: x, gamma: gamma, beta: beta, running: running, keepNormalized: keepNormalized)
            }
            switch format {
            case .float64: return pass(Float64Format.self)
            case .float32: return pass(Float32Format.self)
            case .float16: return pass(Float16Format.self)
            case .bfloat16: return pass(BFloat16Format.self)
            }
        }
    }

    /// x̂ as the emulated forward made it, from its statistics (`means`, `rstds`: values of `format`).
    static func normalized<Scalar: NormScalar>(spec: LayerSpec, plan: NormPlan, x: [Scalar], means: [Double],
                                               rstds: [Double], format: DType, threads: Int = 1) -> [Scalar] {
        let run = EmulatedRun(spec: spec, plan: plan, storage: nil, threads: threads)
        func values<F: EmulatedFormat>(_: F.Type) -> [Scalar] {
            x.withUnsafeBufferPointer { x in
                run.normalize(F.self, x: x, means: means.map(F.value), rstds: rstds.map(F.value), gamma: nil, beta: nil)
            }
        }
        switch format {
        case .float64: return values(Float64Format.self)
        case .float32: return values(Float32Format.self)
        case .float16: return values(Float16Format.self)
        case .bfloat16: return values(BFloat16Format.self)
        }
    }

    /// dx (as the tensor's elements, rounded to `storage` on the terms `Forward` states, with the counts in
    /// `rounded` when it counted them) and dγ, dβ summed over the batch in `format`, for the statistics the
    /// emulated forward produced.
    static func backward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: [Scalar], dy: [Scalar], means: [Double], rstds: [Double],
        gamma: [Double]?, constantStatistics: Bool, format: DType, storage: DType? = nil, threads: Int = 1
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double], rounded: FormatRounding.Counts?) {
        let run = EmulatedRun(spec: spec, plan: plan, storage: storage, threads: threads)
        let statistics = EmulatedRun.Statistics(means: means, rstds: rstds)
        return x.withUnsafeBufferPointer { x in
            dy.withUnsafeBufferPointer { dy in
                func pass<F: EmulatedFormat>(_: F.Type)
                    -> (dx: [Scalar], dgamma: [Double], dbeta: [Double], rounded: FormatRounding.Counts?) {
                    run.backward(F.self, x: x, dy: dy, statistics: statistics, gamma: gamma,
                                 constant: constantStatistics)
                }
                switch format {
                case .float64: return pass(Float64Format.self)
                case .float32: return pass(Float32Format.self)
                case .float16: return pass(Float16Format.self)
                case .bfloat16: return pass(BFloat16Format.self)
                }
            }
        }
    }

    /// Each set's μ and Σ(x − μ)² to about Float64's precision, for judging the emulated ones (any order will
    /// do): d = x − x₀ from the set's first element, Σd and Σd² in Float64 in four partial sums, then
    /// μ = x₀ + Σd/m and Σ(x − μ)² = Σd² − (Σd)²/m. A constant set gets its own value and exactly 0; what the
    /// subtraction cancels is at most Float64's rounding times (μ − x₀)²/σ² ≤ m, so at most 2⁻⁵³·m relative.
    static func exactStatistics<Scalar: NormScalar>(of x: [Scalar], plan: NormPlan, centre: Bool, threads: Int)
        -> (means: [Double], sumSquares: [Double]) {
        let units = EmulatedUnits(statisticsOf: EmulatedLayout(plan: plan, elementwiseAffine: false))
        let count = plan.statsShape.count
        let first = SharedValues(UnsafeMutablePointer<Double>.allocate(capacity: max(count, 1)))
        let sums = SharedValues(UnsafeMutablePointer<Double>.allocate(capacity: max(count, 1)))
        let squares = SharedValues(UnsafeMutablePointer<Double>.allocate(capacity: max(count, 1)))
        defer { first.base.deallocate(); sums.base.deallocate(); squares.base.deallocate() }
        x.withUnsafeBufferPointer { x in
            units.shiftedSums(SharedInput(x.baseAddress!), centre: centre, threads: threads,
                              first: first, sums: sums, squares: squares)
        }
        return exactMoments(first: first.base, sums: sums.base, squares: squares.base, count: count,
                            setSize: plan.setSize, centre: centre)
    }

    /// μ = x₀ + Σd/m and Σ(x − μ)² = Σd² − (Σd)²/m from each set's shifted sums (`exactStatistics`).
    static func exactMoments(first: UnsafePointer<Double>, sums: UnsafePointer<Double>, squares: UnsafePointer<Double>,
                             count: Int, setSize: Int, centre: Bool) -> (means: [Double], sumSquares: [Double]) {
        let m = Double(setSize)
        // Filled in place: element writes into Swift arrays (a uniqueness check each) cost 10 ms for 800,000 sets.
        let means = [Double](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0..<count { out[i] = centre ? first[i] + sums[i] / m : 0 }
            initialized = count
        }
        let sumSquares = [Double](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0..<count { out[i] = centre ? max(0, squares[i] - sums[i] * sums[i] / m) : squares[i] }
            initialized = count
        }
        return (means, sumSquares)
    }
}

/// Σx in the format.
struct SumChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain {
    let x: SharedInput<Scalar>
    let sums: SharedValues<F.Value>
    /// Where the lanes also leave the exact sums, when this is the walk's first pass over x.
    var exact: ExactSums? = nil
    func start(_ index: Int) -> F.Value { 0 }
    @inline(__always) func step(_ sum: inout F.Value, _ row: EmulatedRow, _ s: Int) {
        sum = F.add(sum, F.value(scalar: x[row.offset &+ s]))
    }
    func finish(_ sum: F.Value, _ index: Int) { sums[index] = sum }
}

/// Σ(x − μ)² in the format (μ = 0 when the layer does not centre: x − 0 is x, bit for bit).
struct SquareChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain {
    let x: SharedInput<Scalar>
    let means: SharedInput<F.Value>
    let squares: SharedValues<F.Value>
    var exact: ExactSums? = nil
    func start(_ index: Int) -> (total: F.Value, mean: F.Value) { (0, means[index]) }
    @inline(__always) func step(_ state: inout (total: F.Value, mean: F.Value), _ row: EmulatedRow, _ s: Int) {
        let d = F.subtract(F.value(scalar: x[row.offset &+ s]), state.mean)
        state.total = F.add(state.total, F.multiply(d, d))
    }
    func finish(_ state: (total: F.Value, mean: F.Value), _ index: Int) { squares[index] = state.total }
}

/// Σx and Σx² together (one pass).
struct OnePassChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain {
    let x: SharedInput<Scalar>
    let sums: SharedValues<F.Value>
    let squares: SharedValues<F.Value>
    var exact: ExactSums? = nil
    func start(_ index: Int) -> (sum: F.Value, squares: F.Value) { (0, 0) }
    @inline(__always) func step(_ state: inout (sum: F.Value, squares: F.Value), _ row: EmulatedRow, _ s: Int) {
        let v = F.value(scalar: x[row.offset &+ s])
        state.sum = F.add(state.sum, v)
        state.squares = F.add(state.squares, F.multiply(v, v))
    }
    func finish(_ state: (sum: F.Value, squares: F.Value), _ index: Int) {
        sums[index] = state.sum
        squares[index] = state.squares
    }
}

/// Welford's running mean and M₂ (not centring: Σx²).
struct WelfordChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain {
    let x: SharedInput<Scalar>
    let means: SharedValues<F.Value>
    let squares: SharedValues<F.Value>
    let centre: Bool
    func start(_ index: Int) -> (mean: F.Value, squares: F.Value, seen: Double) { (0, 0, 0) }
    @inline(__always)
    func step(_ state: inout (mean: F.Value, squares: F.Value, seen: Double), _ row: EmulatedRow, _ s: Int) {
        let v = F.value(scalar: x[row.offset &+ s])
        state.seen += 1
        if centre {
            let delta = F.subtract(v, state.mean)
            state.mean = F.add(state.mean, F.divide(delta, by: state.seen))
            state.squares = F.add(state.squares, F.multiply(delta, F.subtract(v, state.mean)))
        } else {
            state.squares = F.add(state.squares, F.multiply(v, v))
        }
    }
    func finish(_ state: (mean: F.Value, squares: F.Value, seen: Double), _ index: Int) {
        means[index] = state.mean
        squares[index] = state.squares
    }
}
