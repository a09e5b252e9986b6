@testable import NormKit
import Testing

/// BatchNorm on (N, C) with many samples makes its column sums row group by row group (column_tall_f32.h) when a tile
/// is bigger than half of L2, and column block by column block when it is not. A channel's numbers must not depend on
/// which: each channel of (N, C) against the same channel in a slice of eight channels (a tile too small to go by rows)
/// — y, x̂, μ, σ², dx, dγ, dβ, bit for bit — on ordinary, shifted and zero-variance columns, with rows past the last
/// group of eight and columns past the last block of eight, on 1 and 3 threads. (A column out of float32's range sends
/// its whole tile to the Float64 lanes, so it would change its neighbours' bits: none here.)
struct TallTileTests {
    @Test(arguments: [(4099, 37, [0..<8, 32..<37]), (2053, 70, [0..<8, 56..<64, 64..<70])])
    func aChannelsNumbersDoNotDependOnItsNeighbours(_ n: Int, _ c: Int, _ slices: [Range<Int>]) throws {
        for affine in [Affine.channel, .element] {
            var spec = try LayerSpec(kind: .batchnorm)
            spec.affine = affine
            let shape = try Shape([n, c])
            var x = Tensor<Float>.randn(shape, seed: 21).scalars
            for i in 0..<n { x[i * c + 1] = 10_000 + 0.01 * x[i * c + 1]; x[i * c + 2] = 3; x[i * c + c - 1] *= 1e-3 }
            let dy = Tensor<Float>.randn(shape, seed: 22).scalars
            let gamma = Tensor<Float>.randn(try Shape([c]), seed: 23).scalars
            let beta = Tensor<Float>.randn(try Shape([c]), seed: 24).scalars
            func run(_ columns: Range<Int>, threads: Int) throws -> [String: [Float]] {
                let width = columns.count, sliceShape = try Shape([n, width])
                func slice(_ a: [Float]) -> [Float] {
                    (0..<n).flatMap { i in a[(i * c + columns.lowerBound)..<(i * c + columns.upperBound)] }
                }
                let xs = try Tensor(shape: sliceShape, scalars: slice(x))
                let dys = try Tensor(shape: sliceShape, scalars: slice(dy))
                let g = try Tensor(shape: Shape([width]), scalars: Array(gamma[columns]))
                let b = try Tensor(shape: Shape([width]), scalars: Array(beta[columns]))
                let forward = try Normalization.forward(spec: spec, input: xs, gamma: g, beta: b, threads: threads)
                let grads = try Normalization.backward(forward: forward, gamma: g, outputGradient: dys,
                                                       threads: threads)
                return ["y": forward.output.scalars, "xhat": forward.normalized.scalars,
                        "mean": forward.mean?.scalars ?? [], "var": forward.variance.scalars, "dx": grads.dx.scalars,
                        "dgamma": grads.dgamma?.scalars ?? [], "dbeta": grads.dbeta?.scalars ?? []]
            }
            for threads in [1, 3] {
                let whole = try run(0..<c, threads: threads)
                for columns in slices {
                    let part = try run(columns, threads: 1)
                    for (name, values) in part {
                        let perRow = values.count == n * columns.count
                        let all = whole[name]!
                        let expected: [Float] = perRow
                            ? (0..<n).flatMap { i in all[(i * c + columns.lowerBound)..<(i * c + columns.upperBound)] }
                            : Array(all[columns])
                        #expect(values.map(\.bitPattern) == expected.map(\.bitPattern),
                                "\(name), (\(n), \(c)) \(affine), channels \(columns), \(threads) threads")
                    }
                }
            }
        }
    }
}
