import CVectorMath
import Testing

/// Where the float32 column kernels add γ's and β's per-element sums: the rows their row index names, nothing else.
@Suite struct ColumnSumsBoundsTests {
    /// BatchNorm with grouped channels (`layer norm over=n,c`) with γ per element: 3 samples × 2 channels are six
    /// rows but two rows of sums. Fifteen columns are a block of eight and a tail of seven, which is summed in Float64
    /// and then added into the float32 sums — into the two rows only (a slot beyond them holding −0 would turn +0;
    /// they once took six rows' worth, past the end of the caller's array).
    @Test func groupedRowsAddIntoTheirChannelsSumsOnly() {
        let samples = 3, k = 2, channels = 4, spatial = 15, sumsStride = 32
        let rows = samples * k
        let offsets = (0..<rows).map { ($0 / k * channels + $0 % k) * spatial }
        let index = (0..<rows).map { $0 % k }
        var state: UInt64 = 12345
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
        let x = (0..<samples * channels * spatial).map { _ in next() }
        let dy = (0..<samples * channels * spatial).map { _ in next() }
        let gamma = (0..<k * spatial).map { _ in 1 + next() / 4 }
        var dx = [Float](repeating: 0, count: x.count)
        // k rows of sums, then six rows' worth of −0 that must stay as they are.
        var sumDy = [Float](repeating: -0.0, count: (k + rows) * sumsStride)
        var sumDyXhat = sumDy
        for r in 0..<k {
            for c in 0..<sumsStride { sumDy[r * sumsStride + c] = 0; sumDyXhat[r * sumsStride + c] = 0 }
        }
        offsets.withUnsafeBufferPointer { offsetBuffer in
            index.withUnsafeBufferPointer { indexBuffer in
                gamma.withUnsafeBufferPointer { gammaBuffer in
                    var sets = normlab_column_sets(rows: rows, row_stride: spatial, row_offsets: offsetBuffer.baseAddress,
                                                   row_index: indexBuffer.baseAddress, m: Double(rows),
                                                   divisor: Double(rows), eps: 1e-5, centre: 1, mean_from_sum: 0)
                    let affine = normlab_column_affine(gamma: UnsafeRawPointer(gammaBuffer.baseAddress), beta: nil,
                                                       row_stride: spatial, column_stride: 1)
                    normlab_columns_backward_f32_float_sums(&sets, x, dy, spatial, affine, &dx, &sumDy, &sumDyXhat,
                                                            sumsStride)
                }
            }
        }
        let beyond = (k * sumsStride)..<((k + rows) * sumsStride)
        #expect(beyond.allSatisfy { sumDy[$0].sign == .minus && sumDy[$0] == 0 }, "Σdy written past its rows")
        #expect(beyond.allSatisfy { sumDyXhat[$0].sign == .minus && sumDyXhat[$0] == 0 }, "Σdy·x̂ written past its rows")
        // The sums that belong there: Σ over the samples of dy at (channel r, position c).
        for r in 0..<k {
            for c in 0..<spatial {
                let expected = (0..<samples).reduce(0.0) { $0 + Double(dy[($1 * channels + r) * spatial + c]) }
                #expect(abs(Double(sumDy[r * sumsStride + c]) - expected) <= 1e-5, "Σdy at (\(r), \(c))")
            }
        }
    }
}
