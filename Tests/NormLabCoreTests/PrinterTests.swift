import NormKit
import Testing
@testable import NormLabCore

@Suite struct PrinterTests {
    func render(_ dims: [Int], _ values: [Double], precision: Int = 4, threshold: Int = 1000) throws -> String {
        let tensor = AnyTensor.float64(try Tensor(shape: Shape(dims), scalars: values))
        return TensorFormatter(precision: precision, threshold: threshold).render(tensor)
    }

    @Test func alignedColumnsOneStyle() throws {
        #expect(try render([2, 3], [0.5, -12.25, 3, 1, 2, 100.125]) == """
        [[  0.5000, -12.2500,   3.0000],
         [  1.0000,   2.0000, 100.1250]]
        """)
        #expect(try render([3], [1, 2, 3]) == "[1., 2., 3.]")
        #expect(try render([2], [1e-7, 2e-7]) == "[1.0000e-07, 2.0000e-07]")
        #expect(try render([2], [1e9, -1.5]) == "[ 1.0000e+09, -1.5000e+00]")
        #expect(try render([2], [1e7, -1.5]) == "[10000000.0000,       -1.5000]")
        #expect(try render([2], [1e7, -1]) == "[10000000.,       -1.]")
        #expect(try render([2], [0.123456, 1], precision: 2) == "[0.12, 1.00]")
    }

    @Test func nanAndInfinity() throws {
        #expect(try render([4], [.nan, .infinity, -.infinity, 1.5]) == "[   nan,    inf,   -inf, 1.5000]")
        #expect(try render([2], [.nan, .nan]) == "[nan, nan]")
    }

    @Test func higherRanks() throws {
        #expect(try render([2, 1, 2], [1, 2, 3, 4]) == """
        [[[1., 2.]],

         [[3., 4.]]]
        """)
        let rank5 = try render([1, 1, 1, 2, 1], [7, 8])
        #expect(rank5 == "[[[[[7.],\n    [8.]]]]]")
        #expect(try render([1], [0.25]) == "[0.2500]")
    }

    @Test func summarisesPastTheThreshold() throws {
        let text = try render([10, 10], (0..<100).map(Double.init), threshold: 50)
        #expect(text == """
        [[ 0.,  1.,  2.,   …,  7.,  8.,  9.],
         [10., 11., 12.,   …, 17., 18., 19.],
         [20., 21., 22.,   …, 27., 28., 29.],
         …,
         [70., 71., 72.,   …, 77., 78., 79.],
         [80., 81., 82.,   …, 87., 88., 89.],
         [90., 91., 92.,   …, 97., 98., 99.]]
        """)
    }

    /// A 6.4M-element tensor prints 7 × 7 × 7 × 7 numbers at most.
    @Test func bigTensorsFormatOnlyWhatTheyShow() throws {
        let tensor = AnyTensor.float32(.randn(try Shape([8, 64, 112, 112]), seed: 0))
        let text = TensorFormatter().render(tensor)
        #expect(text.split(separator: "\n").count < 400)
        #expect(text.contains("…"))
    }

    @Test func longRowsWrap() throws {
        let text = try render([30], (0..<30).map { Double($0) + 0.5 })
        for line in text.split(separator: "\n") { #expect(line.count <= 80) }
        #expect(text.split(separator: "\n").count > 1)
    }
}
