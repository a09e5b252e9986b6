@testable import NormKit
import Testing

/// `shape=` over several last dims on the kernels of the CNN form (`LayerSpec.onKernels`).
@Suite struct ShapeRouteTests {
    /// `shape=` over several dims with sets longer than `rowsInCache` (nn.LayerNorm([C, H, W])) runs as the CNN form
    /// with element-wise γ, β on (N, D₀, D₁·D₂…) (`LayerSpec.onKernels`): against the general path in both types, with
    /// and without γ, β, the same bits for 1, 2 and 3 threads, and the same bits as that CNN form itself.
    @Test(arguments: [(LayerKind.layernorm, [3, 6, 50, 60], [6, 50, 60]), (.rmsnorm, [2, 2, 3, 5500], [3, 5500])])
    func longLastDimsRunAsChannelRows(_ kind: LayerKind, _ dims: [Int], _ normalized: [Int]) throws {
        for affine in [Affine.channel, .none] {
            var spec = try LayerSpec(kind: kind, normalizedShape: normalized)
            spec.affine = affine
            let shape = try Shape(dims)
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let (kernelSpec, kernelPlan) = spec.onKernels(plan, shape)
            #expect(kernelSpec.normalizedShape == nil && kernelPlan.channels == normalized[0] && kernelPlan.groups == 1)
            try compare(Double.self, spec, shape, tolerance: 1e-12, seed: 21)
            try compare(Float.self, spec, shape, tolerance: 1e-5, seed: 22)
            // The CNN form on the same numbers, viewed as (N, D₀, rest): the kernels it runs, so the same bits.
            var cnn = kernelSpec
            cnn.eps = spec.resolved(for: Float.self).eps
            let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 23).map { 3 + 2 * $0 }.converted()
            let viewed = Tensor<Float>(uncheckedShape: kernelPlan.inputShape, scalars: x.scalars)
            let gamma: Tensor<Float>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 24).converted() }
            let viewedGamma = gamma.map { Tensor<Float>(uncheckedShape: kernelPlan.affineShape!, scalars: $0.scalars) }
            let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 25).converted()
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: nil, threads: 2)
            let asCNN = try Normalization.forward(spec: cnn, input: viewed, gamma: viewedGamma, beta: nil, threads: 2)
            #expect(fast.output.scalars == asCNN.output.scalars)
            let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: 2)
            let cnnGrads = try Normalization.backward(forward: asCNN, gamma: viewedGamma,
                                                      outputGradient: Tensor(uncheckedShape: viewed.shape, scalars: dy.scalars),
                                                      threads: 2)
            #expect(grads.dx.scalars == cnnGrads.dx.scalars && grads.dgamma?.scalars == cnnGrads.dgamma?.scalars)
        }
    }

    /// The fast path against the general one for `spec` on `shape`, and the same bits for 1, 2 and 3 threads.
    func compare<S: NormScalar>(_: S.Type, _ spec: LayerSpec, _ shape: Shape, tolerance: Double, seed: UInt64) throws {
        let x: Tensor<S> = Tensor<Double>.randn(shape, seed: seed).map { 3 + 2 * $0 }.converted()
        let dy: Tensor<S> = Tensor<Double>.randn(shape, seed: seed + 1).converted()
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let gamma: Tensor<S>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: seed + 2).converted() }
        let beta: Tensor<S>? = spec.bias ? plan.affineShape.map { Tensor<Double>.randn($0, seed: seed + 3).converted() } : nil
        try FastPathTests.compare(spec, x: x, dy: dy, gamma: gamma, beta: beta, tolerance: tolerance,
                                  threadCounts: [1, 2, 3], label: "\(spec.kind) \(shape)")
    }
}
