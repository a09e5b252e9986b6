import CVectorMath
import NormKit
import Testing

/// Sets of two rows with γ per element into float32 stages (PyDLLib's GroupNorm, two channels a group) have a loop of
/// their own (column_pairs_f32.c): it must give the general block loops' bits — dx and both stages — on ordinary
/// numbers and on the ones that send a block to the Float64 lanes (NaN, ±inf, huge γ·dy gaps, σ² + eps out of range),
/// at every width (steps of sixteen, a block of eight after them, single columns).
struct ColumnPairTests {
    /// Uniform in ±1.7 from NormKit's own generator.
    static func normal(_ random: inout SplitMix64) -> Float { Float((random.nextUniform() * 2 - 1) * 1.7) }

    static let specials: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 3e38, -3e38, 1e-40, 1e30]

    @Test(arguments: [0, 1, 7, 8, 15, 16, 17, 33, 35, 200])
    func pairLoopGivesTheBlockLoopsBits(width: Int) {
        for (caseIndex, (eps, divisor, special)) in [(1e-5, 2.0, false), (1e-6, 1.0, false), (0.0, 2.0, true),
                                                     (1e-30, 2.0, true), (1e-5, 2.0, true)].enumerated() {
            var random = SplitMix64(seed: UInt64(width * 31 + caseIndex))
            let stride = width + 3, sumsStride = width + 5
            var x = (0..<(2 * stride)).map { _ in Self.normal(&random) }
            var dy = (0..<(2 * stride)).map { _ in Self.normal(&random) }
            var gamma = (0..<(2 * stride)).map { _ in Self.normal(&random) }
            for j in Swift.stride(from: 0, to: width, by: 5) { x[stride + j] = x[j] }  // σ² = 0: eps alone
            if special {
                for _ in 0..<max(1, width / 6) {
                    let at = random.nextInt(below: 2 * stride)
                    switch random.nextInt(below: 3) {
                    case 0: x[at] = Self.specials[random.nextInt(below: Self.specials.count)]
                    case 1: dy[at] = Self.specials[random.nextInt(below: Self.specials.count)]
                    default: gamma[at] = [1e35, -1e35, 0, .nan][random.nextInt(below: 4)]
                    }
                }
            } else {
                for j in 0..<(2 * stride) { x[j] = 1000 + 0.01 * x[j] }  // far from 0: μ₀ and c keep the fraction
            }
            let stages = (0..<(4 * sumsStride)).map { _ in Self.normal(&random) }
            func run(_ pairs: Bool) -> (dx: [Float], stages: [Float]) {
                var dx = [Float](repeating: -7, count: 2 * stride), out = stages
                var sets = normlab_column_sets(rows: 2, row_stride: stride, row_offsets: nil, row_index: nil, m: 2,
                                               divisor: divisor, eps: eps, centre: 1, mean_from_sum: 1)
                gamma.withUnsafeBufferPointer { g in
                    out.withUnsafeMutableBufferPointer { s in
                        let affine = normlab_column_affine(gamma: UnsafeRawPointer(g.baseAddress), beta: nil,
                                                           row_stride: stride, column_stride: 1)
                        let sumDy = s.baseAddress!, sumDyXhat = s.baseAddress! + 2 * sumsStride
                        if pairs {
                            #expect(normlab_pairs_backward_applies(&sets, affine, sumsStride) != 0)
                            normlab_columns_backward_f32_float_sums(&sets, x, dy, width, affine, &dx, sumDy, sumDyXhat,
                                                                    sumsStride)
                        } else {
                            normlab_columns_backward_f32_float_sums_general(&sets, x, dy, width, affine, &dx, sumDy,
                                                                            sumDyXhat, sumsStride)
                        }
                    }
                }
                return (dx, out)
            }
            let (pair, general) = (run(true), run(false))
            #expect(pair.dx.map(\.bitPattern) == general.dx.map(\.bitPattern), "dx, case \(caseIndex)")
            #expect(pair.stages.map(\.bitPattern) == general.stages.map(\.bitPattern), "stages, case \(caseIndex)")
            if width > 0 { #expect(pair.dx[0] != -7, "dx not written") }
        }
    }
}
