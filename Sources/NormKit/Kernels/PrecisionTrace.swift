#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One statistics set's forward steps as a kernel with `method=` and `accumulate=` computes them, beside the exact
/// (float64, two-pass) values: what `explain forward` shows so a learner sees the digit where it goes wrong.
/// It repeats `EmulatedKernels.forward`'s operations for a single set, in the same order, so its values are the
/// pass's own (a test holds them to that).
public struct PrecisionTrace: Sendable, Equatable {
    /// One step's value, computed and exact.
    public struct Step: Sendable, Equatable {
        /// "Σx", "μ = Σx / m", "σ² = E[x²] − μ²", …
        public let name: String
        /// As the chosen format and method produced it.
        public let computed: Double
        /// In float64, the two-pass way.
        public let exact: Double
    }

    /// The format the steps were rounded to.
    public let format: DType
    /// How the variance was formed.
    public let method: VarianceMethod
    /// The statistics steps in the order the kernel takes them.
    public let steps: [Step]
    /// x̂ of the set as computed and exactly.
    public let normalized: [(computed: Double, exact: Double)]

    /// Equal when every computed value is (the exact ones follow from the input).
    public static func == (a: PrecisionTrace, b: PrecisionTrace) -> Bool {
        a.format == b.format && a.method == b.method && a.steps == b.steps
            && a.normalized.map(\.computed) == b.normalized.map(\.computed)
    }

    /// The steps for the set whose elements are `x` (in row-major order), for a layer that computes with `spec`
    /// on tensors stored as `storage`.
    public init(x: [Double], spec: LayerSpec, storage: DType) {
        let a = spec.accumulate.format(storage: storage)
        format = a
        method = spec.method
        let m = Double(x.count)
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let centre = spec.centres
        let xs = x.map(a.round)
        var steps: [Step] = []
        func step(_ name: String, _ computed: Double, _ exact: Double) { steps.append(Step(name: name, computed: computed, exact: exact)) }

        let exactMean = centre ? x.reduce(0, +) / m : 0
        let exactSquares = x.reduce(0) { $0 + ($1 - exactMean) * ($1 - exactMean) }
        let exactVariance = exactSquares / divisor
        var mean = 0.0, variance = 0.0
        let spread = centre ? "σ²" : "ms"
        switch (spec.method, centre) {
        case (.twopass, true):
            let sum = xs.reduce(0) { a.round($0 + $1) }
            mean = a.round(sum / m)
            step("Σx", sum, x.reduce(0, +))
            step("μ = Σx / m", mean, exactMean)
            let squares = xs.reduce(0) { total, v in let d = a.round(v - mean); return a.round(total + a.round(d * d)) }
            step("Σ(x − μ)²", squares, exactSquares)
            variance = a.round(squares / divisor)
        case (.onepass, true):
            let sum = xs.reduce(0) { a.round($0 + $1) }
            let squares = xs.reduce(0) { a.round($0 + a.round($1 * $1)) }
            mean = a.round(sum / m)
            let meanSquare = a.round(squares / m)
            let meanSquared = a.round(mean * mean)
            step("Σx", sum, x.reduce(0, +))
            step("Σx²", squares, x.reduce(0) { $0 + $1 * $1 })
            step("μ = Σx / m", mean, exactMean)
            step("E[x²] = Σx² / m", meanSquare, x.reduce(0) { $0 + $1 * $1 } / m)
            step("μ²", meanSquared, exactMean * exactMean)
            variance = a.round(meanSquare - meanSquared)
            if spec.variance == .unbiased { variance = a.round(variance * a.round(m / (m - 1))) }
        case (.welford, true):
            var k = 0.0, squares = 0.0
            for v in xs {
                k += 1
                let delta = a.round(v - mean)
                mean = a.round(mean + a.round(delta / k))
                squares = a.round(squares + a.round(delta * a.round(v - mean)))
            }
            step("μ (Welford's running mean)", mean, exactMean)
            step("M₂ (running Σ(x − μ)²)", squares, exactSquares)
            variance = a.round(squares / divisor)
        case (_, false):
            let squares = xs.reduce(0) { a.round($0 + a.round($1 * $1)) }
            step("Σx²", squares, exactSquares)
            variance = a.round(squares / m)
        }
        step(spec.method == .onepass && centre ? "σ² = E[x²] − μ²" : "\(spread) = \(centre ? "Σ(x − μ)²" : "Σx²") / \(divisor == m ? "m" : "(m − 1)")",
             variance, exactVariance)
        let eps = a.round(spec.eps)
        let shifted = a.round(variance + eps)
        step("\(spread) + eps", shifted, exactVariance + spec.eps)
        let rstd = a.round(1 / a.round(shifted.squareRoot()))
        let exactRstd = 1 / (exactVariance + spec.eps).squareRoot()
        step("rstd = 1 / √(\(spread) + eps)", rstd, exactRstd)
        self.steps = steps
        normalized = zip(xs, x).map { v, exactV in
            let centred = centre ? a.round(v - mean) : v
            return (a.round(centred * rstd), (exactV - exactMean) * exactRstd)
        }
    }

    /// How many leading decimal digits `computed` shares with `exact`: −log10 of the relative error, at most the
    /// format's own digits; nil when both are equal (all digits).
    public static func agreeingDigits(_ computed: Double, _ exact: Double, format: DType) -> Double? {
        if computed == exact { return nil }
        guard computed.isFinite, exact.isFinite, exact != 0 else { return 0 }
        let relative = abs(computed - exact) / abs(exact)
        return max(0, min(format.decimalDigits, -log10(relative)))
    }
}
