@testable import NormKit
import Testing

/// The float32 emulation's fused passes: y and dx rounded to their storage format in the row loops (counted there),
/// and `TwoPassBound`, which lets the fused forward skip the exact sums the cancellation check would compare with.
@Suite struct EmulatedFusionTests {
    /// Values from a linear congruential generator, uniform in [−1, 1).
    static func uniform(_ count: Int, seed: UInt64) -> [Double] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 52) - 1
        }
    }

    /// A set's float32 two-pass statistics in the order the lanes make them, and whether the cancellation check flags
    /// the σ² (≤ 0, NaN, or more than 10 % from the exact value).
    static func twoPass(_ x: [Float]) -> (flagged: Bool, ruledOut: Bool) {
        let m = x.count
        var sum: Float = 0, magnitudes: Float = 0
        for v in x { sum += v; magnitudes += abs(v) }
        let mean = Float(Double(sum) / Double(m))
        var squares: Float = 0
        for v in x { let d = v - mean; squares += d * d }
        let variance = Float(Double(squares) / Double(m))
        let exactMean = x.reduce(0.0) { $0 + Double($1) } / Double(m)
        let exact = x.reduce(0.0) { $0 + (Double($1) - exactMean) * (Double($1) - exactMean) } / Double(m)
        let computed = Double(variance)
        let flagged = exact > 0 && (computed.isNaN || computed <= 0 || abs(computed - exact) > 0.1 * exact)
        let ruledOut = TwoPassBound.rulesOutCancellation(setSize: m, magnitudeSum: Double(magnitudes),
                                                         squares: Double(squares))
        return (flagged, ruledOut)
    }

    /// Sets far from zero next to their spread (the float32 mean's error then swamps σ²), tiny ones (squares
    /// underflow), constant ones and plain ones: no set the check flags is ever ruled out, and plain sets are.
    @Test func theBoundNeverRulesOutAFlaggedSet() {
        var flagged = 0, wrong = 0, seed: UInt64 = 1
        for m in [2, 7, 64, 1000, 6272, 200_704] {  // up to a (64, 56, 56) sample: LayerNorm's set
            for offset in [0.0, 1, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e7] {
                for spread in [1.0, 1e-3, 1e-30, 1e20, 0] {
                    seed += 1
                    let x = Self.uniform(m, seed: seed).map { Float(offset + spread * $0) }
                    let verdict = Self.twoPass(x)
                    if verdict.flagged { flagged += 1 }
                    if verdict.flagged && verdict.ruledOut {
                        wrong += 1
                        Issue.record("m = \(m), x = \(offset) + \(spread)·u: flagged, yet ruled out")
                    }
                    // Sets with σ near |μ| and squares far from underflow: the fused forward must not need exact sums.
                    if spread == 1 && offset <= 1 && m > 2 {
                        #expect(verdict.ruledOut, "m = \(m), x = \(offset) + u: a plain set is not ruled out")
                    }
                }
            }
        }
        #expect(wrong == 0)
        #expect(flagged >= 10, "the cases must include sets the check flags (\(flagged))")
    }

    /// y and dx rounded to float16 or bfloat16 in the row loops are the unrounded float32 values rounded once, and
    /// the values that overflowed are counted (γ large enough to send some of y and dx past 65504).
    @Test(arguments: [DType.float16, .bfloat16])
    func rowsRoundToStorageAndCountOverflow(_ storage: DType) throws {
        for (shape, groups) in [([2, 16, 3, 5], 8), ([3, 6, 7, 11], 3)] {  // blocks of eight sets (fused), and not
            var spec = try LayerSpec(kind: .groupnorm, groups: groups)
            spec.accumulate = .float32
            let plan = try NormPlan(spec: spec, inputShape: try Shape(shape))
            let count = plan.inputShape.count, channels = shape[1]
            let x = Self.uniform(count, seed: 7).map { Float(storage.round(3 * $0 + 1)) }
            let dy = Self.uniform(count, seed: 8).map { Float(storage.round($0)) }
            let gammaValues = (0..<channels).map { Float(storage.round($0 % 3 == 0 ? 40_000 : 1.5)) }
            let input = Tensor(uncheckedShape: plan.inputShape, scalars: x)
            let gamma = Tensor(uncheckedShape: try Shape([channels]), scalars: gammaValues)
            for threads in [1, 3] {
                let name = "\(storage) \(shape) on \(threads) threads"
                let forward = try Normalization.forward(spec: spec, input: input, gamma: gamma, beta: nil,
                                                        threads: threads, storage: storage)
                let unrounded = EmulatedKernels.forward(spec: spec, plan: plan, x: x, gamma: gammaValues.map(Double.init),
                                                        beta: nil, running: nil, format: .float32, threads: threads,
                                                        keepNormalized: false)
                let wantY = unrounded.output.map { Float(storage.round(Double($0))) }
                let overflowed = zip(unrounded.output, wantY).filter { $0.isFinite && !$1.isFinite }.count
                #expect(forward.output.scalars.map(\.bitPattern) == wantY.map(\.bitPattern), "\(name): y")
                if storage == .float16 { #expect(overflowed > 0, "\(name): the case must overflow y") }
                let reported = forward.warnings.compactMap { warning -> Int? in
                    if case .storageOverflow("y", let n, _) = warning { n } else { nil }
                }
                #expect(reported == (overflowed > 0 ? [overflowed] : []), "\(name): y's overflow")

                let outputGradient = Tensor(uncheckedShape: plan.inputShape, scalars: dy)
                let gradients = try Normalization.backward(forward: forward, gamma: gamma, outputGradient: outputGradient,
                                                           threads: threads)
                let plain = EmulatedKernels.backward(spec: spec, plan: plan, x: x, dy: dy, means: forward.exactMeans,
                                                     rstds: forward.exactRstds, gamma: gammaValues.map(Double.init),
                                                     constantStatistics: false, format: .float32, threads: threads)
                let wantDx = plain.dx.map { Float(storage.round(Double($0))) }
                let dxOverflowed = zip(plain.dx, wantDx).filter { $0.isFinite && !$1.isFinite }.count
                #expect(gradients.dx.scalars.map(\.bitPattern) == wantDx.map(\.bitPattern), "\(name): dx")
                let dxReported = gradients.warnings.compactMap { warning -> Int? in
                    if case .storageOverflow("dx", let n, _) = warning { n } else { nil }
                }
                #expect(dxReported == (dxOverflowed > 0 ? [dxOverflowed] : []), "\(name): dx's overflow")
            }
        }
    }
}
