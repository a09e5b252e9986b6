@testable import NormKit
import Testing

/// BatchNorm in float32 on the column kernels — per element (PyDLLib's) and with grouped channels (`over=n,c`) — keeps
/// each column's μ₀, rstd and c from forward, and backward makes x̂ from them instead of making the statistics again
/// (`normlab_columns_backward_f32_kept` for at most eight samples, `…_from_constants` for the general loops). The same
/// bits either way: backward from a forward result with the constants and from the same result without them.
@Suite struct KeptConstantsTests {
    /// Columns in every path: blocks of eight from the constants, blocks whose constants were not kept (forward ran
    /// them in Float64 lanes: σ² beyond 2¹²⁰, NaN, ∞), constant columns (σ² = 0), μ near 10⁴ (its remainder in c),
    /// and columns after the last block of eight and past the first tile (2048 columns).
    static func input(_ dims: [Int], mixed: Bool, seed: UInt64) throws -> Tensor<Float> {
        let shape = try Shape(dims)
        let columns = shape.count / dims[0]
        var values = Tensor<Double>.randn(shape, seed: seed).map { 1 + 3 * $0 }.scalars
        if mixed {
            for n in 0..<dims[0] {
                for c in stride(from: 5, to: columns / 2, by: 97) { values[n * columns + c] *= 3e18 }
                values[n * columns + columns / 2] = 7.25
                for c in 9..<min(17, columns) { values[n * columns + c] += 1e4 }
            }
            values[columns / 3] = .nan
            values[(dims[0] - 1) * columns + 2 * columns / 3] = .infinity
        }
        return Tensor<Double>(uncheckedShape: shape, scalars: values).converted()
    }

    /// How many values differ in their bits (a count: a failing #expect on whole arrays prints them all).
    static func differing(_ a: Tensor<Float>?, _ b: Tensor<Float>?) -> Int {
        guard let a, let b else { return a == nil && b == nil ? 0 : -1 }
        return zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count
    }

    /// Batches of three to eight run in blocks of eight columns from registers, nine and more in the general loops.
    @Test(arguments: [3, 4, 5, 7, 8, 11])
    func backwardFromKeptConstantsIsBackwardFromX(batch: Int) throws {
        var spec = try LayerSpec(kind: .batchnorm)
        spec.apply(.pydllib)
        var sum = spec
        sum.paramGrad = .sum
        var grouped = try LayerSpec(kind: .batchnorm)  // `layer norm over=n,c groups=2`: rows of two channels a sample
        grouped.groups = 2
        grouped.reduce = .channels
        var partlyKept = 0
        for (spec, dims) in [(spec, [batch, 3, 29]), (spec, [batch, 2, 1031 + batch]), (sum, [batch, 5, 9]),
                             (grouped, [batch, 4, 37]), (grouped, [batch, 4, 4099])] {
            let plan = try NormPlan(spec: spec, inputShape: try Shape(dims))
            let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 7).map { 1 + $0 / 4 }.converted()
            let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 8).converted()
            for mixed in [false, true] {
                let x = try Self.input(dims, mixed: mixed, seed: UInt64(batch))
                let dy: Tensor<Float> = Tensor<Double>.randn(x.shape, seed: 9).converted()
                for threads in [1, 3] {
                    let label = "batch \(batch), \(dims), mixed \(mixed), \(threads) threads"
                    let forward = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta,
                                                            threads: threads)
                    let kept = try #require(forward.keptColumnConstants, "\(label): no constants kept")
                    let notKept = kept.shift.filter { !$0.isFinite }.count
                    #expect(mixed ? notKept > 0 : notKept == 0, "\(label)")
                    if notKept > 0 && notKept < kept.shift.count { partlyKept += 1 }
                    var madeAgain = forward
                    madeAgain.keptColumnConstants = nil
                    let fromKept = try Normalization.backward(forward: forward, gamma: gamma, outputGradient: dy,
                                                              threads: threads)
                    let fromX = try Normalization.backward(forward: madeAgain, gamma: gamma, outputGradient: dy,
                                                           threads: threads)
                    #expect(Self.differing(fromKept.dx, fromX.dx) == 0, "\(label): dx")
                    #expect(Self.differing(fromKept.dgamma, fromX.dgamma) == 0, "\(label): dγ")
                    #expect(Self.differing(fromKept.dbeta, fromX.dbeta) == 0, "\(label): dβ")
                }
            }
        }
        // Mixed inputs leave some blocks and tiles kept and others not: the general loops' tiles (up to 4096 columns)
        // are kept or not as a whole.
        #expect(partlyKept >= 4, "\(partlyKept) configurations had kept and unkept columns side by side")
    }

    /// Only the layers whose backward reads them keep constants: float32 BatchNorm on the column kernels, not sets of
    /// two (a backward of their own), not BatchNorm per channel (the row kernels), not float64.
    @Test func onlyFloat32ColumnBatchNormKeepsConstants() throws {
        var perElement = try LayerSpec(kind: .batchnorm)
        perElement.apply(.pydllib)
        let channel = try LayerSpec(kind: .batchnorm)
        var grouped = try LayerSpec(kind: .batchnorm)
        grouped.groups = 2
        grouped.reduce = .channels
        for (spec, dims, keeps) in [(perElement, [8, 3, 5], true), (perElement, [2, 3, 5], false),
                                    (perElement, [9, 3, 5], true), (channel, [8, 3, 5], false),
                                    (grouped, [8, 4, 5], true), (grouped, [1, 4, 5], false)] {
            let shape = try Shape(dims)
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let gamma: Tensor<Float>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 7).converted() }
            let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 3).converted()
            let forward = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: nil)
            #expect((forward.keptColumnConstants != nil) == keeps, "\(dims) \(spec.kind)")
            let wide = try Normalization.forward(spec: spec, input: Tensor<Double>.randn(shape, seed: 3),
                                                 gamma: gamma.map { $0.converted() }, beta: nil)
            #expect(wide.keptColumnConstants == nil)
        }
    }
}
