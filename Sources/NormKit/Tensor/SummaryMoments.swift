/// The numbers of a summary line — count, Σx, Σ(x − mean)², min and max — made in parts and combined in a fixed
/// order, so the result does not depend on how many threads made the parts.
///
/// A part is one pass of interleaved lanes: sums of x − x₀ and (x − x₀)² with x₀ the part's first value (no
/// cancellation unless the mean lies far from x₀ against the spread, which a summary's four digits would not show),
/// SIMD min and max (a compare-and-branch per element mispredicts on random data). Parts combine by Chan et al.'s
/// pairwise update. NaN makes the sums NaN (min and max may skip it): `isFinite` tells the caller to count instead.
public struct SummaryMoments: Sendable, Equatable {
    /// How many values.
    public private(set) var count: Int
    /// Σx.
    public private(set) var sum: Double
    /// Σ(x − mean)².
    public private(set) var squares: Double
    /// The smallest value.
    public private(set) var low: Double
    /// The largest value.
    public private(set) var high: Double

    /// No values: merging it changes nothing.
    public static let empty = SummaryMoments(count: 0, sum: 0, squares: 0, low: .infinity, high: -.infinity)

    init(count: Int, sum: Double, squares: Double, low: Double, high: Double) {
        (self.count, self.sum, self.squares, self.low, self.high) = (count, sum, squares, low, high)
    }

    /// One part: the values in one pass.
    public init<S: NormScalar>(_ values: UnsafeBufferPointer<S>) {
        guard let base = values.baseAddress, values.count > 0 else { self = .empty; return }
        let shift: Double, shifted: Double, shiftedSquares: Double, low: Double, high: Double
        if S.self == Float.self {
            let p = UnsafeRawPointer(base).assumingMemoryBound(to: Float.self)
            let m = FloatKernel.moments(p, count: values.count, shift: p[0])
            (shift, shifted, shiftedSquares, low, high) = (Double(p[0]), m.sum, m.squares, m.low, m.high)
        } else {
            shift = values[0].asDouble
            var sums = SIMD4<Double>(repeating: 0), squares = SIMD4<Double>(repeating: 0)
            var lows = SIMD4<Double>(repeating: .infinity), highs = SIMD4<Double>(repeating: -.infinity)
            let whole = values.count & ~3
            var i = 0
            while i < whole {
                let v = SIMD4(values[i].asDouble, values[i + 1].asDouble, values[i + 2].asDouble, values[i + 3].asDouble)
                let d = v - shift
                sums += d
                squares += d * d
                lows.replace(with: v, where: v .< lows)
                highs.replace(with: v, where: v .> highs)
                i += 4
            }
            var tailSum = 0.0, tailSquares = 0.0, runLow = lows.min(), runHigh = highs.max()
            while i < values.count {
                let v = values[i].asDouble, d = v - shift
                tailSum += d
                tailSquares += d * d
                runLow = Swift.min(runLow, v)
                runHigh = Swift.max(runHigh, v)
                i += 1
            }
            (shifted, shiftedSquares, low, high) = (sums.sum() + tailSum, squares.sum() + tailSquares, runLow, runHigh)
        }
        self.init(count: values.count, shift: shift, shifted: shifted, shiftedSquares: shiftedSquares, low: low, high: high)
    }

    /// From sums about a shift, Σ(x − shift) and Σ(x − shift)² (a kernel's, made as it wrote the values).
    init(count: Int, shift: Double, shifted: Double, shiftedSquares: Double, low: Double, high: Double) {
        let n = Double(count), raw = shiftedSquares - shifted * shifted / n
        self.init(count: count, sum: shift * n + shifted, squares: raw.isNaN ? .nan : Swift.max(0, raw), low: low, high: high)
    }

    /// Over a million values: 8 fixed parts on up to `threads` threads, combined in part order.
    public static func of<S: NormScalar>(_ values: UnsafeBufferPointer<S>, threads: Int) -> SummaryMoments {
        let parts = values.count >= 1 << 20 ? 8 : 1
        guard parts > 1 else { return SummaryMoments(values) }
        let made = UnsafeMutablePointer<SummaryMoments>.allocate(capacity: parts)
        defer { made.deallocate() }
        nonisolated(unsafe) let base = values.baseAddress!, out = made
        let count = values.count
        KernelThreads.run(chunks: parts, threads: threads) { part in
            let lower = count * part / parts, upper = count * (part + 1) / parts
            (out + part).initialize(to: SummaryMoments(UnsafeBufferPointer(start: base + lower, count: upper - lower)))
        }
        var total = SummaryMoments.empty
        for part in 0..<parts { total.merge(made[part]) }
        return total
    }

    /// Chan et al.'s update: the moments of both parts' values together.
    public mutating func merge(_ other: SummaryMoments) {
        guard other.count > 0 else { return }
        guard count > 0 else { self = other; return }
        let n = Double(count), m = Double(other.count)
        let delta = other.sum / m - sum / n
        squares += other.squares + delta * delta * n * m / (n + m)
        sum += other.sum
        count += other.count
        low = Swift.min(low, other.low)
        high = Swift.max(high, other.high)
    }

    /// Every total is finite: no value was NaN or ±∞ (or the sums overflowed).
    public var isFinite: Bool { sum.isFinite && squares.isFinite && low.isFinite && high.isFinite }
}

/// One `SummaryMoments` per part of a kernel's output (a statistics set, a tile), written by whichever thread made
/// the part and combined in part order: the same total for any thread count.
struct SummaryParts: @unchecked Sendable {
    /// Sets shorter than this are not summed by the kernel (a call per set would cost more than the pass after it).
    static let shortestSet = 256

    /// nil when no summary was asked for.
    let pointer: UnsafeMutablePointer<SummaryMoments>?
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = count > 0 ? .allocate(capacity: count) : nil
    }

    func deallocate() { pointer?.deallocate() }

    /// Every part combined in order; nil when there are no parts. Every part must have been written.
    var total: SummaryMoments? {
        guard let pointer else { return nil }
        var total = SummaryMoments.empty
        for part in 0..<count { total.merge(pointer[part]) }
        return total
    }

    /// `part` merged with the moments of a run that `write` summed as it wrote it: `write` fills (shift, Σ(y − shift),
    /// Σ(y − shift)², min, max) (`RunningSummary`) and returns what it returns.
    @inline(__always)
    static func adding<R>(to part: inout SummaryMoments?, count: Int, _ write: (UnsafeMutablePointer<Double>) -> R) -> R {
        var sums = (0.0, 0.0, 0.0, 0.0, 0.0)
        let result = withUnsafeMutablePointer(to: &sums) { $0.withMemoryRebound(to: Double.self, capacity: 5, write) }
        part?.merge(SummaryMoments(count: count, shift: sums.0, shifted: sums.1, shiftedSquares: sums.2, low: sums.3, high: sums.4))
        return result
    }

    /// The moments of `runs` (offset, count) of `values`, combined in run order.
    @inline(__always)
    static func moments<S: NormScalar>(of values: UnsafePointer<S>, runs: (_ body: (Int, Int) -> Void) -> Void) -> SummaryMoments {
        var part = SummaryMoments.empty
        runs { offset, count in part.merge(SummaryMoments(UnsafeBufferPointer(start: values + offset, count: count))) }
        return part
    }
}
