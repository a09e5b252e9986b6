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
    /// What the emulated forward produced: statistics in the accumulation format (as Doubles), x̂ and y as the
    /// tensor's elements. y is rounded to `storage` when that is reduced, except Float results in a Float tensor,
    /// which the caller rounds (`Normalization.store`: one vectorised rounding of the same values).
    struct Forward<Scalar: NormScalar> {
        var means: [Double]
        var variances: [Double]
        var unbiased: [Double]?
        var rstds: [Double]
        var normalized: [Scalar]
        var output: [Scalar]
        var findings: [NormWarning]
        /// Sets where a square or a sum overflowed.
        var overflowed: [Bool]
    }

    /// Forward in `format`; `running` (means, variances) for BatchNorm in eval mode.
    static func forward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: [Scalar], gamma: [Double]?, beta: [Double]?,
        running: (means: [Double], variances: [Double])?, format: DType, storage: DType? = nil, threads: Int = 1
    ) -> Forward<Scalar> {
        let run = EmulatedRun(spec: spec, plan: plan, storage: storage, threads: threads)
        return x.withUnsafeBufferPointer { x in
            switch format {
            case .float64: run.forward(Float64Format.self, x: x, gamma: gamma, beta: beta, running: running)
            case .float32: run.forward(Float32Format.self, x: x, gamma: gamma, beta: beta, running: running)
            case .float16: run.forward(Float16Format.self, x: x, gamma: gamma, beta: beta, running: running)
            case .bfloat16: run.forward(BFloat16Format.self, x: x, gamma: gamma, beta: beta, running: running)
            }
        }
    }

    /// dx (as the tensor's elements, rounded to `storage` on the terms `Forward` states) and dγ, dβ summed over
    /// the batch in `format`, for the statistics the emulated forward produced.
    static func backward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, x: [Scalar], dy: [Scalar], means: [Double], rstds: [Double],
        gamma: [Double]?, constantStatistics: Bool, format: DType, storage: DType? = nil, threads: Int = 1
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double]) {
        let run = EmulatedRun(spec: spec, plan: plan, storage: storage, threads: threads)
        return x.withUnsafeBufferPointer { x in
            dy.withUnsafeBufferPointer { dy in
                let statistics = EmulatedRun.Statistics(means: means, rstds: rstds)
                switch format {
                case .float64: return run.backward(Float64Format.self, x: x, dy: dy, statistics: statistics, gamma: gamma, constant: constantStatistics)
                case .float32: return run.backward(Float32Format.self, x: x, dy: dy, statistics: statistics, gamma: gamma, constant: constantStatistics)
                case .float16: return run.backward(Float16Format.self, x: x, dy: dy, statistics: statistics, gamma: gamma, constant: constantStatistics)
                case .bfloat16: return run.backward(BFloat16Format.self, x: x, dy: dy, statistics: statistics, gamma: gamma, constant: constantStatistics)
                }
            }
        }
    }

    /// Each set's Σx in Float64 in row-major order and its Σ(x − μ)², μ being a constant set's own value exactly
    /// (`Normalization.statistics`' numbers for finite input, with the walk's threads and side-by-side chains).
    static func exactStatistics<Scalar: NormScalar>(of x: [Scalar], plan: NormPlan, centre: Bool, threads: Int)
        -> (means: [Double], sumSquares: [Double]) {
        let units = EmulatedUnits(statisticsOf: plan)
        let count = plan.statsShape.count
        var means = [Double](repeating: 0, count: count), squares = [Double](repeating: 0, count: count)
        let m = Double(plan.setSize)
        x.withUnsafeBufferPointer { x in
            means.withUnsafeMutableBufferPointer { means in
                squares.withUnsafeMutableBufferPointer { squares in
                    let input = SharedInput(x.baseAddress!), meanValues = SharedValues(means.baseAddress!)
                    // A Float set's partial sums k·x₀ are exact in Double below 2²⁹ elements, so a constant set's
                    // mean is its value without the range check.
                    if centre && Scalar.self == Float.self && plan.setSize < 1 << 29 {
                        let sums = SharedValues(UnsafeMutablePointer<Double>.allocate(capacity: max(count, 1)))
                        defer { sums.base.deallocate() }
                        units.walk(threads: threads, SumChain<Float64Format, Scalar>(x: input, sums: sums))
                        for i in 0..<count { meanValues[i] = sums[i] / m }
                    } else if centre {
                        units.walk(threads: threads, RangeSumChain(x: input, means: meanValues, count: m))
                    }
                    units.walk(threads: threads, SquareChain<Float64Format, Scalar>(
                        x: input, means: SharedInput(meanValues.base), squares: SharedValues(squares.baseAddress!)))
                }
            }
        }
        return (means, squares)
    }
}

/// Σx in Float64 with the set's smallest and largest element: a constant set's mean is its value.
struct RangeSumChain<Scalar: NormScalar>: EmulatedChain {
    let x: SharedInput<Scalar>
    let means: SharedValues<Double>
    let count: Double
    func start(_ index: Int) -> (sum: Double, low: Double, high: Double) { (0, .infinity, -.infinity) }
    @inline(__always) func step(_ state: inout (sum: Double, low: Double, high: Double), _ row: EmulatedRow, _ s: Int) {
        let v = x[row.offset &+ s].asDouble
        state.sum += v
        if v < state.low { state.low = v }
        if v > state.high { state.high = v }
    }
    func finish(_ state: (sum: Double, low: Double, high: Double), _ index: Int) {
        means[index] = state.low == state.high ? state.low : state.sum / count
    }
}

/// Σx in the format.
struct SumChain<F: EmulatedFormat, Scalar: NormScalar>: EmulatedChain {
    let x: SharedInput<Scalar>
    let sums: SharedValues<F.Value>
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
