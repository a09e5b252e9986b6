@testable import NormKit
import Testing

/// Element-wise γ, β on float32 rows apply in float32 lanes (`normlab_element_affine_apply_f32`): μ's remainder folded
/// into x̂'s constant, rows outside float32's range in Float64 lanes; their backward likewise (`ElementLanes`), set by
/// set. Against the float64 pass on the same values.
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
    /// BatchNorm in eval with element-wise γ on float32 rows: dx and dγ's, dβ's terms in float32 lanes, the terms of at
    /// most eight samples summed in float32 before Float64 (11 samples: after the 8th and the last). Channel 1 is
    /// 1e4 + noise of 0.01 (x̂ from differences near 1e4, rstd 100); channel 2's rstd is below 2⁻⁶⁰, so it runs in the
    /// Float64 loop. Against the float64 pass on the same values; the same bits on 1, 2 and 3 threads.
    @Test func batchNormEvalBackwardInFloat32Lanes() throws {
        var spec = try LayerSpec(kind: .batchnorm)
        spec.affine = .element
        let shape = try Shape([11, 3, 13])
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let centres: [Double] = [0.5, 1e4, 1e37], spreads: [Double] = [1.5, 0.01, 1e36]
        let noise = Tensor<Double>.randn(shape, seed: 31).scalars
        let x: Tensor<Float> = Tensor(uncheckedShape: shape, scalars: noise.enumerated().map { i, v in
            centres[(i / 13) % 3] + spreads[(i / 13) % 3] * v
        }).converted()
        let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 32).converted()
        let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 33).map { 1 + $0 / 4 }.converted()
        let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 34).converted()
        let running: (Tensor<Float>, Tensor<Float>) = (Tensor(uncheckedShape: plan.statsShape, scalars: [0.4, 1e4, 1e37]),
                                                       Tensor(uncheckedShape: plan.statsShape, scalars: [2, 1e-4, 1e38]))
        let wide: (Tensor<Double>, Tensor<Double>) = (running.0.converted(), running.1.converted())
        let exact = try Normalization.computeForward(spec: spec, input: x.converted() as Tensor<Double>,
                                                     gamma: gamma.converted() as Tensor<Double>,
                                                     beta: beta.converted() as Tensor<Double>, mode: .eval,
                                                     running: wide, threads: 1, allowFastPath: false)
        let exactGrads = try Normalization.computeBackward(forward: exact, gamma: gamma.converted() as Tensor<Double>,
                                                           outputGradient: dy.converted() as Tensor<Double>, threads: 1,
                                                           allowFastPath: false)
        var first: [Tensor<Float>]? = nil
        for threads in [1, 2, 3] {
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .eval,
                                                 running: running, threads: threads)
            let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: threads)
            let got = [grads.dx, grads.dgamma!, grads.dbeta!]
            let pairs = [("dx", grads.dx, exactGrads.dx), ("dgamma", grads.dgamma!, exactGrads.dgamma!),
                         ("dbeta", grads.dbeta!, exactGrads.dbeta!)]
            for (name, a, b) in pairs {
                // Against each channel's own size: channel 2's dx is about 1e-19, the others' about 1.
                func channel(_ i: Int) -> Int { (i / 13) % 3 }
                var largest = [0.0, 0.0, 0.0]
                for (i, v) in b.scalars.enumerated() { largest[channel(i)] = max(largest[channel(i)], abs(v)) }
                let poor = b.scalars.indices.filter { i in
                    abs(Double(a.scalars[i]) - b.scalars[i]) > 1e-5 * abs(b.scalars[i]) + 1e-6 * largest[channel(i)]
                }
                #expect(poor.isEmpty, "\(name), \(threads) threads: \(poor.count) of \(a.count) elements off")
            }
            if let first { #expect(first == got, "1 and \(threads) threads differ") } else { first = got }
        }
    }

    /// Train-mode backward with element-wise γ on float32: sets in float32 lanes beside sets in Float64 lanes (μ past
    /// 2¹²⁰), so a set's dx is made apart from the next set's sums where the two run in different lanes. Each sample
    /// (GroupNorm, LayerNorm) or channel (BatchNorm) is ordinary, 1e4 + noise of 0.01, or near 1e37. Against the
    /// float64 pass, each set against its own size; the same bits on 1, 2 and 3 threads (GroupNorm's two groups run
    /// by units on 1 thread and by spans on 3; LayerNorm by spans past 1 thread; BatchNorm by channels). GroupNorm over
    /// 11 samples adds dγ's, dβ's float32 stages into Float64 after the 8th sample and the last, on both paths: with
    /// sets in both lanes (sums cleared first), and with ordinary samples only (the first fold writes the sums).
    @Test func backwardMixesFloatAndFloat64Lanes() throws {
        let centres: [Double] = [0.5, 1e4, 1e37, -2, 1e37], spreads: [Double] = [1.5, 0.01, 1e36, 3, 2e36]
        let (_, groupNorm, _) = try Self.specs()[0]
        let cases = try Self.specs().map { ($0.0, $0.1, $0.2, 5) }
            + [("GroupNorm, 11 samples", groupNorm, [11, 4, 3, 5], 5), ("GroupNorm, 11 ordinary samples", groupNorm, [11, 4, 3, 5], 2)]
        for (label, spec, dims, kinds) in cases {
            let shape = try Shape(dims)
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let sampleSize = shape.count / dims[0], rowSize = sampleSize / dims[1]
            // The part of the input a set lies in: a sample, or BatchNorm's channel.
            func part(_ i: Int) -> Int { spec.kind == .batchnorm ? (i / rowSize) % dims[1] : i / sampleSize }
            let noise = Tensor<Double>.randn(shape, seed: 41).scalars
            let x: Tensor<Float> = Tensor(uncheckedShape: shape, scalars: noise.enumerated().map { i, v in
                centres[[0, 3, 1, 4, 2][part(i) % kinds]] + spreads[[0, 3, 1, 4, 2][part(i) % kinds]] * v
            }).converted()
            let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 42).converted()
            let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 43).map { 1 + $0 / 4 }.converted()
            let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 44).converted()
            let exact = try Normalization.computeForward(spec: spec, input: x.converted() as Tensor<Double>,
                                                         gamma: gamma.converted() as Tensor<Double>,
                                                         beta: beta.converted() as Tensor<Double>, mode: .train,
                                                         running: nil, threads: 1, allowFastPath: false)
            let exactGrads = try Normalization.computeBackward(forward: exact, gamma: gamma.converted() as Tensor<Double>,
                                                               outputGradient: dy.converted() as Tensor<Double>,
                                                               threads: 1, allowFastPath: false)
            var largest = [Double](repeating: 0, count: dims[0] + dims[1])
            for (i, v) in exactGrads.dx.scalars.enumerated() { largest[part(i)] = max(largest[part(i)], abs(v)) }
            var first: [Tensor<Float>]? = nil
            for threads in [1, 2, 3] {
                let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
                let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: threads)
                let dxOff = exactGrads.dx.scalars.indices.filter { i in
                    abs(Double(grads.dx.scalars[i]) - exactGrads.dx.scalars[i]) > 1e-5 * largest[part(i)]
                }
                #expect(dxOff.isEmpty, "\(label) dx, \(threads) threads: \(dxOff.count) of \(x.count) elements off")
                for (name, a, b) in [("dgamma", grads.dgamma!, exactGrads.dgamma!), ("dbeta", grads.dbeta!, exactGrads.dbeta!)] {
                    let worst = zip(a.scalars, b.scalars).map { abs(Double($0) - $1) }.max() ?? 0
                    let scale = b.scalars.map(abs).max() ?? 1
                    #expect(worst <= 1e-5 * max(1, scale), "\(label) \(name), \(threads) threads: \(worst)")
                }
                let got = [grads.dx, grads.dgamma!, grads.dbeta!]
                if let first {
                    let same = first == got
                    #expect(same, "\(label): 1 and \(threads) threads differ")
                } else {
                    first = got
                }
            }
        }
    }
}
