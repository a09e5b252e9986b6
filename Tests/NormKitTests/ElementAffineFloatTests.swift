@testable import NormKit
import Testing

/// Element-wise γ, β on float32 rows apply in float32 lanes (`normlab_element_affine_apply_f32`): μ's remainder folded
/// into x̂'s constant, rows outside float32's range in Float64 lanes. Against the float64 pass on the same values.
@Suite struct ElementAffineFloatTests {
    static func specs() throws -> [(String, LayerSpec, [Int])] {
        var groupNorm = try LayerSpec(kind: .groupnorm, groups: 2)
        groupNorm.affine = .element
        var layerNorm = try LayerSpec(kind: .layernorm)
        layerNorm.affine = .element
        var batchNorm = try LayerSpec(kind: .batchnorm)
        batchNorm.affine = .element
        return [("GroupNorm", groupNorm, [3, 4, 5, 7]), ("LayerNorm", layerNorm, [2, 3, 29]),
                ("BatchNorm", batchNorm, [5, 3, 11])]
    }

    func check(_ spec: LayerSpec, _ x: Tensor<Float>, tolerance: Double, _ label: String) throws {
        let plan = try NormPlan(spec: spec, inputShape: x.shape)
        let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 7).map { 1 + $0 / 4 }.converted()
        let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 8).converted()
        let exact = try Normalization.computeForward(spec: spec, input: x.converted() as Tensor<Double>,
                                                     gamma: gamma.converted() as Tensor<Double>,
                                                     beta: beta.converted() as Tensor<Double>, mode: .train,
                                                     running: nil, threads: 1, allowFastPath: false)
        for threads in [1, 2] {
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
            let scale = exact.output.scalars.map { abs($0) }.max() ?? 1
            let worst = zip(fast.output.scalars, exact.output.scalars).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst <= tolerance * max(1, scale), "\(label), \(threads) threads: \(worst) against a scale of \(scale)")
        }
    }

    /// 1e4 + noise of 0.01: without μ's remainder in x̂'s constant, y is off by about 0.05·γ.
    @Test func aLargeMeanKeepsItsFraction() throws {
        for (label, spec, dims) in try Self.specs() {
            let x: Tensor<Float> = Tensor<Double>.randn(try Shape(dims), seed: 3).map { 1e4 + 0.01 * $0 }.converted()
            try check(spec, x, tolerance: 2e-4, label)
        }
    }

    /// Ordinary data, and sets of values near 1e25 (their rows run in Float64 lanes).
    @Test func ordinaryAndHugeRows() throws {
        for (label, spec, dims) in try Self.specs() {
            let shape = try Shape(dims)
            try check(spec, Tensor<Double>.randn(shape, seed: 4).map { 3 + 2 * $0 }.converted(), tolerance: 1e-5, label)
            try check(spec, Tensor<Double>.randn(shape, seed: 5).map { 1e25 * (1 + $0) }.converted(), tolerance: 1e-5, label)
        }
    }
}
