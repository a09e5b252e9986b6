import NormKit
import Testing

/// Facts about normalisation that hold for any input: they test the engine without a reference.
@Suite struct IdentityTests {
    static let inputs: [(LayerKind, Int?, Preset, [Int])] = [
        (.groupnorm, 2, .torch, [2, 4, 3, 3]),
        (.groupnorm, 2, .pydllib, [2, 4, 3, 3]),
        (.groupnorm, 3, .torch, [3, 6]),
        (.layernorm, nil, .torch, [2, 5, 7]),
        (.instancenorm, nil, .torch, [2, 3, 2, 2, 2]),
        (.batchnorm, nil, .torch, [4, 3, 5]),
        (.batchnorm, nil, .pydllib, [4, 3, 5]),
    ]

    /// Per statistics set, Σx̂ = 0 and mean(x̂²) = var/(var + eps) (with the biased variance).
    @Test(arguments: 0..<inputs.count)
    func normalizedHasZeroMeanAndKnownSquare(_ i: Int) throws {
        let (kind, groups, preset, dims) = Self.inputs[i]
        let spec = try LayerSpec(kind: kind, groups: groups, preset: preset)
        let x = Tensor<Double>.randn(try Shape(dims), seed: UInt64(i))
        let result = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil)
        let plan = result.plan
        let m = Double(plan.setSize)
        let d = spec.variance == .unbiased ? m - 1 : m
        for stat in 0..<plan.statsShape.count {
            let members = plan.memberOffsets(ofStat: stat)
            #expect(members.count == plan.setSize)
            let xhat = members.map { result.normalized.scalars[$0] }
            #expect(abs(xhat.reduce(0, +)) < 1e-12)
            let variance = result.variance.scalars[stat]
            let meanSquare = xhat.map { $0 * $0 }.reduce(0, +) / m
            // Σx̂² = Σ(x − μ)²·rstd² = d·var/(var + eps)
            #expect(abs(meanSquare - d / m * variance / (variance + spec.eps)) < 1e-12)
        }
    }

    @Test func everyElementBelongsToExactlyOneSet() throws {
        for (kind, groups, preset, dims) in Self.inputs {
            let spec = try LayerSpec(kind: kind, groups: groups, preset: preset)
            let plan = try NormPlan(spec: spec, inputShape: Shape(dims))
            var seen = [Int](repeating: 0, count: plan.inputShape.count)
            for stat in 0..<plan.statsShape.count {
                for offset in plan.memberOffsets(ofStat: stat) { seen[offset] += 1 }
            }
            #expect(seen.allSatisfy { $0 == 1 }, "\(kind) \(preset)")
        }
    }

    /// LayerNorm is GroupNorm with G = 1 and InstanceNorm is GroupNorm with G = C, in both conventions.
    @Test(arguments: Preset.allCases)
    func layerAndInstanceNormAreGroupNorm(_ preset: Preset) throws {
        let dims = [3, 6, 4, 2]
        let x = Tensor<Double>.randn(try Shape(dims), seed: 11)
        let dy = Tensor<Double>.randn(try Shape(dims), seed: 12)
        for (special, groups) in [(LayerKind.layernorm, 1), (.instancenorm, 6)] {
            var a = try NormLayer<Double>(spec: LayerSpec(kind: special, preset: preset))
            var b = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: groups, preset: preset))
            let affineShape = try Shape(preset == .torch ? [6] : [6, 4, 2])
            let gamma = Tensor<Double>.randn(affineShape, seed: 13)
            let beta = Tensor<Double>.randn(affineShape, seed: 14)
            try a.setGamma(gamma); try b.setGamma(gamma)
            try a.setBeta(beta); try b.setBeta(beta)
            let fa = try a.forward(x), fb = try b.forward(x)
            let ga = try a.backward(dy), gb = try b.backward(dy)
            #expect(fa.output == fb.output, "\(special) y")
            #expect(fa.mean == fb.mean && fa.variance == fb.variance && fa.rstd == fb.rstd)
            #expect(ga.dx == gb.dx, "\(special) dx")
            #expect(ga.dgamma == gb.dgamma && ga.dbeta == gb.dbeta)
        }
    }

    /// paramgrad=mean is paramgrad=sum divided by N; dx does not change.
    @Test func paramgradMeanIsSumOverN() throws {
        let dims = [5, 4, 3]
        let x = Tensor<Double>.randn(try Shape(dims), seed: 21)
        let dy = Tensor<Double>.randn(try Shape(dims), seed: 22)
        var summed = try LayerSpec(kind: .groupnorm, groups: 2)
        summed.paramGrad = .sum
        var averaged = summed
        averaged.paramGrad = .mean
        let fs = try Normalization.forward(spec: summed, input: x, gamma: nil, beta: nil)
        let fm = try Normalization.forward(spec: averaged, input: x, gamma: nil, beta: nil)
        let gs = try Normalization.backward(forward: fs, gamma: nil, outputGradient: dy)
        let gm = try Normalization.backward(forward: fm, gamma: nil, outputGradient: dy)
        #expect(gs.dx == gm.dx)
        for (s, m) in zip(gs.dgamma!.scalars + gs.dbeta!.scalars, gm.dgamma!.scalars + gm.dbeta!.scalars) {
            #expect(abs(s / 5 - m) <= 1e-15 * max(1, abs(m)))
        }
    }

    /// Without spatial dims the two conventions share their statistics; they differ only in eps and dγ, dβ.
    @Test func conventionsAgreeWithoutSpatialDims() throws {
        let x = Tensor<Double>.randn(try Shape([3, 6]), seed: 31)
        var torch = try LayerSpec(kind: .groupnorm, groups: 3, preset: .torch)
        torch.eps = 1e-6
        let pydllib = try LayerSpec(kind: .groupnorm, groups: 3, preset: .pydllib)
        let a = try Normalization.forward(spec: torch, input: x, gamma: nil, beta: nil)
        let b = try Normalization.forward(spec: pydllib, input: x, gamma: nil, beta: nil)
        // Different kernels (whole-set runs vs per-position rows) sum in different orders: equal to rounding.
        for (u, v) in zip(a.output.scalars + a.variance.scalars, b.output.scalars + b.variance.scalars) {
            #expect(abs(u - v) <= 1e-15 * max(1, abs(v)))
        }
        #expect(a.output.shape == b.output.shape && a.variance.shape == b.variance.shape)
    }

    /// ... and with spatial dims they differ.
    @Test func conventionsDifferWithSpatialDims() throws {
        let x = Tensor<Double>.randn(try Shape([2, 4, 3, 3]), seed: 32)
        let a = try Normalization.forward(spec: LayerSpec(kind: .groupnorm, groups: 2, preset: .torch), input: x, gamma: nil, beta: nil)
        let b = try Normalization.forward(spec: LayerSpec(kind: .groupnorm, groups: 2, preset: .pydllib), input: x, gamma: nil, beta: nil)
        #expect(a.variance.dims == [2, 2])
        #expect(b.variance.dims == [2, 2, 3, 3])
        #expect(a.output != b.output)
    }

    /// 1e6 + N(0, 1) in Float32: E[x²] − E[x]² would lose every digit; the two-pass statistics keep them.
    @Test func float32StatisticsAreStable() throws {
        let noise = Tensor<Double>.randn(try Shape([2, 4, 16, 16]), seed: 41)
        let x32: Tensor<Float> = noise.map { 1e6 + $0 }.converted()
        let x64: Tensor<Double> = x32.converted()  // the same Float32-representable values
        let spec = try LayerSpec(kind: .groupnorm, groups: 2)
        let f32 = try Normalization.forward(spec: spec, input: x32, gamma: nil, beta: nil)
        let f64 = try Normalization.forward(spec: spec, input: x64, gamma: nil, beta: nil)
        for (a, b) in zip(f32.variance.scalars, f64.variance.scalars) {
            #expect(abs(Double(a) - b) <= 1e-6 * b)
            #expect(b > 0.8 && b < 1.2)
        }
        for (a, b) in zip(f32.output.scalars, f64.output.scalars) {
            #expect(abs(Double(a) - b) <= 1e-5 * max(1, abs(b)))
        }
    }

    /// A constant group has var 0 and x̂ = 0 exactly (not NaN, not 1e-17), in both element types.
    @Test func constantGroupNormalisesToZero() throws {
        let x = Tensor<Float>.full(0.1, shape: try Shape([2, 4, 3]))
        let spec = try LayerSpec(kind: .groupnorm, groups: 2)
        let result = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil)
        #expect(result.variance.scalars.allSatisfy { $0 == 0 })
        #expect(result.normalized.scalars.allSatisfy { $0 == 0 })
        #expect(result.warnings.isEmpty)
        let y = try Normalization.forward(spec: spec, input: Tensor<Double>.full(0.1, shape: try Shape([2, 4, 3])),
                                          gamma: nil, beta: Tensor<Double>.full(0.5, shape: try Shape([4])))
        #expect(y.output.scalars.allSatisfy { $0 == 0.5 })
    }
}
