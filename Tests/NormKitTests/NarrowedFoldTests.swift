import CVectorMath
@testable import NormKit
import Testing

/// The last fold of float32 element-wise dγ, dβ written in float32 (`normlab_fold_float_sums_narrowed`): each value
/// what the Float64 fold and then `FastKernels.narrowed` made of it — `Float((sums + stage) / divisor)` — and the stage
/// left at zero; end to end, the gradients of a float32 layer the same with and without it.
@Suite struct NarrowedFoldTests {
    @Test func writesWhatFoldThenNarrowWould() {
        let count = 1003
        let sums = Tensor<Double>.randn(try! Shape([count]), seed: 61).scalars.enumerated().map { i, v in
            v * [1, 1e-40, 3e38, 1e-320, 0.5][i % 5]
        }
        let terms: [Float] = Tensor<Double>.randn(try! Shape([count]), seed: 62).converted().scalars
        for divisor in [1.0, 8.0, 3.0, 11.0] {
            for withSums in [false, true] {
                var stage = terms
                var out = [Float](repeating: .nan, count: count)
                let reciprocal = FastKernels.exactReciprocal(of: divisor)
                let (scaling, factor): (Int32, Double) = divisor == 1 ? (0, 1) : reciprocal.map { (1, $0) } ?? (2, divisor)
                withSums ? normlab_fold_float_sums_narrowed(&out, sums, &stage, count, scaling, factor)
                         : normlab_fold_float_sums_narrowed(&out, nil, &stage, count, scaling, factor)
                var folded = [Double](repeating: 0, count: count), staged = terms
                withSums ? normlab_fold_float_sums(&folded, sums, &staged, count)
                         : normlab_fold_float_sums(&folded, nil, &staged, count)
                let expected: [Float] = FastKernels.narrowed(folded, shape: try! Shape([count]), threads: 1,
                                                             dividedBy: divisor).tensor.scalars
                let differing = zip(out, expected).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "divisor \(divisor), sums \(withSums): \(differing) values differ")
                #expect(stage.allSatisfy { $0 == 0 }, "the stage is cleared")
            }
        }
    }
}
