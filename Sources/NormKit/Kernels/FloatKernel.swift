import NormLanes
import CPUFeatures
import CVectorMath
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The float32 lane loops built for AVX2 (`NormLanesAVX2`, compiled with `-target-cpu haswell`), as a table of
/// functions. NormKit itself links only the baseline build, so no target its library product reaches needs an
/// unsafe compiler flag (SwiftPM refuses those in versioned dependencies); the `NormKitAVX2` target installs this
/// table, and the normlab executable and benchmark call it at start-up. Both builds give the same bits
/// (LaneBuildTests), so installing it changes speed only.
package struct FloatLaneTable: Sendable {
    // C function pointers, not closures: no context to retain on every call (the calls are per row, and ARC on a
    // closure table made the AVX2 build slower than the baseline). Pairs come back through `out`.
    package typealias ShiftedSum = @convention(c) (UnsafePointer<Float>, Int, Float) -> Double
    package typealias ApplyAndShiftedSum = @convention(c) (Float, Float, Float, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                                                           Int, UnsafePointer<Float>, Float) -> Double
    /// `ApplyAndShiftedSum` plus y's summary sums: summary = (shift, Σ(y − shift), Σ(y − shift)², min, max).
    package typealias ApplyAndShiftedSumSummarizing = @convention(c) (Float, Float, Float, UnsafePointer<Float>,
                                                                      UnsafeMutablePointer<Float>, Int, UnsafePointer<Float>,
                                                                      Float, UnsafeMutablePointer<Double>) -> Double
    package typealias CentredSquares = @convention(c) (UnsafePointer<Float>, Int, Double) -> Double
    package typealias Apply = @convention(c) (Float, Float, Float, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    package typealias GradientSums = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, Int, Double,
                                                     UnsafeMutablePointer<Double>) -> Void
    package typealias GradientAndSums = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int,
                                                        Double, Double, Double, Double, Double, UnsafePointer<Float>,
                                                        UnsafePointer<Float>, Double, UnsafeMutablePointer<Double>) -> Void
    package typealias Gradient = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int,
                                                 Double, Double, Double, Double, Double) -> Void
    /// The summary line's moments (`SummaryLanes.swift`): out = (Σ(x − shift), Σ(x − shift)², min, max).
    package typealias Moments = @convention(c) (UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Double>) -> Void
    /// Runs with γ, β per element (`ElementLanes.swift`).
    package typealias ApplyElementwise = @convention(c) (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Double, Double,
                                                         UnsafePointer<Float>, UnsafePointer<Float>) -> Void
    package typealias ApplyElementwiseAndShiftedSum = @convention(c) (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Double,
                                                                      Double, UnsafePointer<Float>, UnsafePointer<Float>,
                                                                      UnsafePointer<Float>, Float) -> Double
    package typealias ApplyElementwiseAndShiftedSumSummarizing = @convention(c) (
        UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Double, Double, UnsafePointer<Float>, UnsafePointer<Float>,
        UnsafePointer<Float>, Float, UnsafeMutablePointer<Double>) -> Double
    package typealias ElementwiseGradientSums = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                                                Int, Double, Double, UnsafeMutablePointer<Double>) -> Void
    package typealias ElementwiseGradient = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                                                            UnsafePointer<Float>, Int, Double, Double, Double, Double,
                                                            UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) -> Void
    package typealias ElementwiseGradientAndSums = @convention(c) (
        UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Double, Double,
        Double, Double, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafePointer<Float>, UnsafePointer<Float>,
        UnsafePointer<Float>, Double, Double, UnsafeMutablePointer<Double>) -> Void
    /// The two above with dγ's, dβ's terms added into float32 stages.
    package typealias ElementwiseGradientStaged = @convention(c) (
        UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Double, Double,
        Double, Double, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    /// Many short sets in one call (`SetLanes.swift`).
    package typealias SetStatistics = @convention(c) (UnsafePointer<Float>, Int, Int, Int, Double, Bool,
                                                      UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>,
                                                      UnsafeMutablePointer<Double>) -> Void
    package typealias GradientSumsRows = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int,
                                                         UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void
    package typealias RowShiftedSums = @convention(c) (UnsafePointer<Float>, Int, Int, UnsafePointer<Float>,
                                                       UnsafeMutablePointer<Double>) -> Void
    package typealias RowCentredSquares = @convention(c) (UnsafePointer<Float>, Int, Int, UnsafePointer<Double>,
                                                          UnsafeMutablePointer<Double>) -> Void
    package typealias GradientRows = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                                                     Int, Int, UnsafePointer<Double>) -> Void
    package typealias ApplyRows = @convention(c) (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int,
                                                  UnsafePointer<Float>) -> Void
    package typealias ApplySets = @convention(c) (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int,
                                                  UnsafePointer<Double>, UnsafePointer<Double>, UnsafePointer<Float>,
                                                  UnsafePointer<Float>, Int, Int) -> Void
    package typealias GradientSets = @convention(c) (
        UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, UnsafePointer<Double>,
        UnsafePointer<Double>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int, Int,
        Double, Double, Bool) -> Void

    package let shiftedSum: ShiftedSum
    package let applyAndShiftedSum: ApplyAndShiftedSum
    package let applyAndShiftedSumSummarizing: ApplyAndShiftedSumSummarizing
    package let centredSquares: CentredSquares
    package let apply: Apply
    package let gradientSums: GradientSums
    package let gradientAndSums: GradientAndSums
    package let gradient: Gradient
    package let applyElementwise: ApplyElementwise
    package let applyElementwiseAndShiftedSum: ApplyElementwiseAndShiftedSum
    package let applyElementwiseAndShiftedSumSummarizing: ApplyElementwiseAndShiftedSumSummarizing
    package let elementwiseGradientSums: ElementwiseGradientSums
    package let elementwiseGradient: ElementwiseGradient
    package let elementwiseGradientAndSums: ElementwiseGradientAndSums
    package let elementwiseGradientStaged: ElementwiseGradientStaged
    package let setStatistics: SetStatistics
    package let applySets: ApplySets
    package let applyRows: ApplyRows
    package let gradientSumsRows: GradientSumsRows
    package let gradientRows: GradientRows
    package let rowShiftedSums: RowShiftedSums
    package let rowCentredSquares: RowCentredSquares
    package let gradientSets: GradientSets
    package let moments: Moments

    package init(shiftedSum: ShiftedSum, applyAndShiftedSum: ApplyAndShiftedSum,
                 applyAndShiftedSumSummarizing: ApplyAndShiftedSumSummarizing, centredSquares: CentredSquares, apply: Apply,
                 gradientSums: GradientSums, gradientAndSums: GradientAndSums, gradient: Gradient,
                 applyElementwise: ApplyElementwise, applyElementwiseAndShiftedSum: ApplyElementwiseAndShiftedSum,
                 applyElementwiseAndShiftedSumSummarizing: ApplyElementwiseAndShiftedSumSummarizing,
                 elementwiseGradientSums: ElementwiseGradientSums,
                 elementwiseGradient: ElementwiseGradient, elementwiseGradientAndSums: ElementwiseGradientAndSums,
                 elementwiseGradientStaged: ElementwiseGradientStaged, setStatistics: SetStatistics,
                 applySets: ApplySets, applyRows: ApplyRows, gradientSumsRows: GradientSumsRows, gradientRows: GradientRows,
                 rowShiftedSums: RowShiftedSums, rowCentredSquares: RowCentredSquares,
                 gradientSets: GradientSets, moments: Moments) {
        self.shiftedSum = shiftedSum
        self.applyAndShiftedSum = applyAndShiftedSum
        self.applyAndShiftedSumSummarizing = applyAndShiftedSumSummarizing
        self.centredSquares = centredSquares
        self.apply = apply
        self.gradientSums = gradientSums
        self.gradientAndSums = gradientAndSums
        self.gradient = gradient
        self.applyElementwise = applyElementwise
        self.applyElementwiseAndShiftedSum = applyElementwiseAndShiftedSum
        self.applyElementwiseAndShiftedSumSummarizing = applyElementwiseAndShiftedSumSummarizing
        self.elementwiseGradientSums = elementwiseGradientSums
        self.elementwiseGradient = elementwiseGradient
        self.elementwiseGradientAndSums = elementwiseGradientAndSums
        self.elementwiseGradientStaged = elementwiseGradientStaged
        self.setStatistics = setStatistics
        self.applySets = applySets
        self.applyRows = applyRows
        self.gradientSumsRows = gradientSumsRows
        self.gradientRows = gradientRows
        self.rowShiftedSums = rowShiftedSums
        self.rowCentredSquares = rowCentredSquares
        self.gradientSets = gradientSets
        self.moments = moments
    }
}

/// Chooses the build of the float32 lane loops: the installed AVX2 table when this CPU has every feature
/// `-target-cpu haswell` may use, the baseline NormLanes otherwise. `NORMLAB_KERNELS=baseline` in the environment
/// forces the baseline build.
package enum FloatKernel {
    /// Set once, at start-up, before any pass runs (`install`); read by the kernels' threads afterwards. A pointer to
    /// the table, not the table: `if let` on an optional table copied its 200 bytes before every lane call, and the
    /// call's function pointer was then read back from the fresh copy — a stall per call that took a third of
    /// GroupNorm 32's backward on rows of 49 ((32, 512, 7, 7)).
    nonisolated(unsafe) static var wide: UnsafePointer<FloatLaneTable>? = nil

    /// Use `table` from now on, if this CPU can run it. Call before the first pass.
    package static func install(_ table: FloatLaneTable) {
        guard cpuHasAVX2 else { return }
        let stored = UnsafeMutablePointer<FloatLaneTable>.allocate(capacity: 1)  // for the life of the process
        stored.initialize(to: table)
        wide = UnsafePointer(stored)
    }

    package static var usesAVX2: Bool { wide != nil }

    static let cpuHasAVX2: Bool = detectAVX2()

    /// Asks the CPU (cpuid), unless `NORMLAB_KERNELS=baseline`.
    package static func detectAVX2() -> Bool {
        if let choice = getenv("NORMLAB_KERNELS"), String(cString: choice) == "baseline" { return false }
        return normlab_cpu_runs_haswell_code() != 0
    }

    @inline(__always)
    static func shiftedSum(_ x: UnsafePointer<Float>, count: Int, shift: Float) -> Double {
        if let wide { return wide.pointee.shiftedSum(x, count, shift) }
        return NormLanes.FloatLanes.shiftedSum(x, count: count, shift: shift)
    }

    @inline(__always)
    static func applyAndShiftedSum(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                   count: Int, next: UnsafePointer<Float>, shift: Float) -> Double {
        if let wide { return wide.pointee.applyAndShiftedSum(map.high, map.scale, map.offset, x, y, count, next, shift) }
        let m = NormLanes.FloatMap(high: map.high, scale: map.scale, offset: map.offset)
        return NormLanes.FloatLanes.applyAndShiftedSum(m, x, y, count: count, next: next, shift: shift)
    }

    @inline(__always)
    static func applyAndShiftedSumSummarizing(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                              count: Int, next: UnsafePointer<Float>, shift: Float,
                                              summary: UnsafeMutablePointer<Double>) -> Double {
        if let wide { return wide.pointee.applyAndShiftedSumSummarizing(map.high, map.scale, map.offset, x, y, count, next, shift, summary) }
        let m = NormLanes.FloatMap(high: map.high, scale: map.scale, offset: map.offset)
        return NormLanes.FloatLanes.applyAndShiftedSumSummarizing(m, x, y, count: count, next: next, shift: shift, summary: summary)
    }

    @inline(__always)
    static func centredSquares(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        if let wide { return wide.pointee.centredSquares(x, count, mean) }
        return NormLanes.FloatLanes.centredSquares(x, count: count, mean: mean)
    }

    @inline(__always)
    static func apply(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        if let wide { return wide.pointee.apply(map.high, map.scale, map.offset, x, y, count) }
        NormLanes.FloatLanes.apply(NormLanes.FloatMap(high: map.high, scale: map.scale, offset: map.offset), x, y, count: count)
    }

    @inline(__always)
    static func gradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                             mean: Double) -> (dy: Double, dyCentred: Double) {
        if let wide {
            var out = (0.0, 0.0)
            withUnsafeMutablePointer(to: &out) { $0.withMemoryRebound(to: Double.self, capacity: 2) { wide.pointee.gradientSums(dy, x, count, mean, $0) } }
            return (out.0, out.1)
        }
        return NormLanes.FloatLanes.gradientSums(dy, x, count: count, mean: mean)
    }

    @inline(__always)
    static func gradientAndSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double,
                                projection: Double, nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>,
                                nextMean: Double) -> (dy: Double, dyCentred: Double) {
        if let wide {
            var out = (0.0, 0.0)
            withUnsafeMutablePointer(to: &out) {
                $0.withMemoryRebound(to: Double.self, capacity: 2) {
                    wide.pointee.gradientAndSums(dy, x, dx, count, mean, rstd, gamma, meanTerm, projection, nextDy, nextX, nextMean, $0)
                }
            }
            return (out.0, out.1)
        }
        return NormLanes.FloatLanes.gradientAndSums(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                                    meanTerm: meanTerm, projection: projection, nextDy: nextDy,
                                                    nextX: nextX, nextMean: nextMean)
    }

    @inline(__always)
    static func gradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double, projection: Double) {
        if let wide { return wide.pointee.gradient(dy, x, dx, count, mean, rstd, gamma, meanTerm, projection) }
        NormLanes.FloatLanes.gradient(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                      meanTerm: meanTerm, projection: projection)
    }

    @inline(__always)
    static func applyElementwise(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, mean: Double,
                                 rstd: Double, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) {
        if let wide { return wide.pointee.applyElementwise(x, y, count, mean, rstd, gamma, beta) }
        NormLanes.FloatLanes.applyElementwise(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
    }

    @inline(__always)
    static func applyElementwiseAndShiftedSum(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                              mean: Double, rstd: Double, gamma: UnsafePointer<Float>,
                                              beta: UnsafePointer<Float>, next: UnsafePointer<Float>, shift: Float) -> Double {
        if let wide { return wide.pointee.applyElementwiseAndShiftedSum(x, y, count, mean, rstd, gamma, beta, next, shift) }
        return NormLanes.FloatLanes.applyElementwiseAndShiftedSum(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                                                  beta: beta, next: next, shift: shift)
    }

    @inline(__always)
    static func applyElementwiseAndShiftedSumSummarizing(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, mean: Double, rstd: Double,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, next: UnsafePointer<Float>, shift: Float,
        summary: UnsafeMutablePointer<Double>
    ) -> Double {
        if let wide { return wide.pointee.applyElementwiseAndShiftedSumSummarizing(x, y, count, mean, rstd, gamma, beta, next, shift, summary) }
        return NormLanes.FloatLanes.applyElementwiseAndShiftedSumSummarizing(
            x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta, next: next, shift: shift, summary: summary)
    }

    /// `elementwiseGradient` on this run and `elementwiseGradientSums` on the next, in one pass.
    @inline(__always)
    static func elementwiseGradientAndSums(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double,
        partialGamma: UnsafeMutablePointer<Double>, partialBeta: UnsafeMutablePointer<Double>,
        nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>, nextGamma: UnsafePointer<Float>, nextMean: Double,
        nextRstd: Double
    ) -> (dy: Double, dyXhat: Double) {
        if let wide {
            var out = (0.0, 0.0)
            withUnsafeMutableBytes(of: &out) { raw in
                wide.pointee.elementwiseGradientAndSums(dy, x, dx, gamma, count, mean, rstd, meanTerm, projection, partialGamma,
                                                partialBeta, nextDy, nextX, nextGamma, nextMean, nextRstd,
                                                raw.baseAddress!.assumingMemoryBound(to: Double.self))
            }
            return out
        }
        return NormLanes.FloatLanes.elementwiseGradientAndSums(
            dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd, meanTerm: meanTerm, projection: projection,
            partialGamma: partialGamma, partialBeta: partialBeta, nextDy: nextDy, nextX: nextX, nextGamma: nextGamma,
            nextMean: nextMean, nextRstd: nextRstd)
    }

    @inline(__always)
    static func elementwiseGradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                        count: Int, mean: Double, rstd: Double) -> (dy: Double, dyXhat: Double) {
        if let wide {
            var out = (0.0, 0.0)
            withUnsafeMutablePointer(to: &out) {
                $0.withMemoryRebound(to: Double.self, capacity: 2) { wide.pointee.elementwiseGradientSums(dy, x, gamma, count, mean, rstd, $0) }
            }
            return (out.0, out.1)
        }
        return NormLanes.FloatLanes.elementwiseGradientSums(dy, x, gamma: gamma, count: count, mean: mean, rstd: rstd)
    }

    @inline(__always)
    static func elementwiseGradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    gamma: UnsafePointer<Float>, count: Int, mean: Double, rstd: Double, meanTerm: Double,
                                    projection: Double, partialGamma: UnsafeMutablePointer<Double>,
                                    partialBeta: UnsafeMutablePointer<Double>) {
        if let wide {
            return wide.pointee.elementwiseGradient(dy, x, dx, gamma, count, mean, rstd, meanTerm, projection, partialGamma, partialBeta)
        }
        NormLanes.FloatLanes.elementwiseGradient(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd,
                                                 meanTerm: meanTerm, projection: projection, partialGamma: partialGamma,
                                                 partialBeta: partialBeta)
    }

    /// `elementwiseGradient` with dy·x̂ and dy added into float32 stages.
    @inline(__always)
    static func elementwiseGradientStaged(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double,
        stageGamma: UnsafeMutablePointer<Float>, stageBeta: UnsafeMutablePointer<Float>
    ) {
        if let wide {
            return wide.pointee.elementwiseGradientStaged(dy, x, dx, gamma, count, mean, rstd, meanTerm, projection, stageGamma, stageBeta)
        }
        NormLanes.FloatLanes.elementwiseGradientStaged(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd,
                                                       meanTerm: meanTerm, projection: projection, stageGamma: stageGamma,
                                                       stageBeta: stageBeta)
    }

    /// `elementwiseGradientAndSums` with dy·x̂ and dy added into float32 stages: in C (element_staged_f32.c), which
    /// can prefetch the next run; the same bits as `elementwiseGradientStaged` on this run and
    /// `elementwiseGradientSums` on the next (LaneBuildTests).
    @inline(__always)
    static func elementwiseGradientAndSumsStaged(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double,
        stageGamma: UnsafeMutablePointer<Float>, stageBeta: UnsafeMutablePointer<Float>,
        nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>, nextGamma: UnsafePointer<Float>, nextMean: Double,
        nextRstd: Double
    ) -> (dy: Double, dyXhat: Double) {
        // Its constants rounded to float32 as the lane loops round them.
        let (high, low) = (Float(mean), mean - Double(Float(mean)))
        let (nextHigh, nextLow) = (Float(nextMean), nextMean - Double(Float(nextMean)))
        let constants = (high, Float(rstd), Float(low * rstd), Float(meanTerm), Float(projection))
        let nextConstants = (nextHigh, Float(nextRstd), Float(nextLow * nextRstd))
        var out = (0.0, 0.0)
        withUnsafeBytes(of: constants) { c in
            withUnsafeBytes(of: nextConstants) { n in
                withUnsafeMutableBytes(of: &out) { o in
                    normlab_element_gradient_and_sums_staged_f32(
                        dy, x, dx, gamma, count, c.baseAddress!.assumingMemoryBound(to: Float.self), stageGamma,
                        stageBeta, nextDy, nextX, nextGamma, n.baseAddress!.assumingMemoryBound(to: Float.self),
                        o.baseAddress!.assumingMemoryBound(to: Double.self))
                }
            }
        }
        return out
    }

    /// Statistics of `sets` consecutive short sets (`FloatLanes.setStatistics`).
    @inline(__always)
    static func setStatistics(_ x: UnsafePointer<Float>, count: Int, rows: Int, sets: Int, m: Double, centre: Bool,
                              totals: UnsafeMutablePointer<Double>, means: UnsafeMutablePointer<Double>,
                              squares: UnsafeMutablePointer<Double>) {
        if let wide { return wide.pointee.setStatistics(x, count, rows, sets, m, centre, totals, means, squares) }
        NormLanes.FloatLanes.setStatistics(x, count: count, rows: rows, sets: sets, m: m, centre: centre, totals: totals,
                                           means: means, squares: squares)
    }

    /// y of `rows` consecutive short rows, each with its own map (`FloatLanes.applyRows`).
    @inline(__always)
    static func applyRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, rows: Int,
                          maps: UnsafePointer<Float>) {
        if let wide { return wide.pointee.applyRows(x, y, count, rows, maps) }
        NormLanes.FloatLanes.applyRows(x, y, count: count, rows: rows, maps: maps)
    }

    /// y of `sets` consecutive short sets (`FloatLanes.applySets`).
    @inline(__always)
    static func applySets(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, sets: Int,
                          means: UnsafePointer<Double>, rstds: UnsafePointer<Double>, gamma: UnsafePointer<Float>,
                          beta: UnsafePointer<Float>, firstGroup: Int, groups: Int) {
        if let wide { return wide.pointee.applySets(x, y, count, sets, means, rstds, gamma, beta, firstGroup, groups) }
        NormLanes.FloatLanes.applySets(x, y, count: count, sets: sets, means: means, rstds: rstds, gamma: gamma, beta: beta,
                                       firstGroup: firstGroup, groups: groups)
    }

    /// (Σ dy, Σ dy·(x − μ)) of consecutive short rows (`FloatLanes.gradientSumsRows`).
    @inline(__always)
    static func gradientSumsRows(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int, rows: Int, rowsPerSet: Int,
                                 means: UnsafePointer<Double>, sums: UnsafeMutablePointer<Double>) {
        if let wide { return wide.pointee.gradientSumsRows(dy, x, count, rows, rowsPerSet, means, sums) }
        NormLanes.FloatLanes.gradientSumsRows(dy, x, count: count, rows: rows, rowsPerSet: rowsPerSet, means: means, sums: sums)
    }

    /// Each consecutive row's shifted sum with its own shift (`FloatLanes.rowShiftedSums`).
    @inline(__always)
    static func rowShiftedSums(_ x: UnsafePointer<Float>, count: Int, rows: Int, shifts: UnsafePointer<Float>,
                               sums: UnsafeMutablePointer<Double>) {
        if let wide { return wide.pointee.rowShiftedSums(x, count, rows, shifts, sums) }
        NormLanes.FloatLanes.rowShiftedSums(x, count: count, rows: rows, shifts: shifts, sums: sums)
    }

    /// Each consecutive row's Σ(x − μ)² about its own μ (`FloatLanes.rowCentredSquares`).
    @inline(__always)
    static func rowCentredSquares(_ x: UnsafePointer<Float>, count: Int, rows: Int, means: UnsafePointer<Double>,
                                  squares: UnsafeMutablePointer<Double>) {
        if let wide { return wide.pointee.rowCentredSquares(x, count, rows, means, squares) }
        NormLanes.FloatLanes.rowCentredSquares(x, count: count, rows: rows, means: means, squares: squares)
    }

    /// dx of consecutive short rows (`FloatLanes.gradientRows`).
    @inline(__always)
    static func gradientRows(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                             count: Int, rows: Int, constants: UnsafePointer<Double>) {
        if let wide { return wide.pointee.gradientRows(dy, x, dx, count, rows, constants) }
        NormLanes.FloatLanes.gradientRows(dy, x, dx, count: count, rows: rows, constants: constants)
    }

    /// Backward of `sets` consecutive short sets (`FloatLanes.gradientSets`).
    @inline(__always)
    static func gradientSets(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                             count: Int, sets: Int, means: UnsafePointer<Double>, rstds: UnsafePointer<Double>,
                             gamma: UnsafePointer<Float>, stageGamma: UnsafeMutablePointer<Float>,
                             stageBeta: UnsafeMutablePointer<Float>, firstGroup: Int, groups: Int, m: Double, divisor: Double,
                             centre: Bool) {
        if let wide {
            return wide.pointee.gradientSets(dy, x, dx, count, sets, means, rstds, gamma, stageGamma, stageBeta, firstGroup, groups, m,
                                     divisor, centre)
        }
        NormLanes.FloatLanes.gradientSets(dy, x, dx, count: count, sets: sets, means: means, rstds: rstds, gamma: gamma,
                                          stageGamma: stageGamma, stageBeta: stageBeta, firstGroup: firstGroup,
                                          groups: groups, m: m, divisor: divisor, centre: centre)
    }

    /// (Σ(x − shift), Σ(x − shift)², min, max) of a float32 run, for summaries.
    package static func moments(_ x: UnsafePointer<Float>, count: Int, shift: Float) -> (sum: Double, squares: Double, low: Double, high: Double) {
        if let wide {
            var out = (0.0, 0.0, 0.0, 0.0)
            withUnsafeMutablePointer(to: &out) { $0.withMemoryRebound(to: Double.self, capacity: 4) { wide.pointee.moments(x, count, shift, $0) } }
            return out
        }
        return NormLanes.FloatLanes.moments(x, count: count, shift: shift)
    }
}
