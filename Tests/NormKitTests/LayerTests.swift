import NormKit
import Testing

/// Every error the seed layer raises (and a few more), each with its message; none traps.
@Suite struct ValidationTests {
    func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as NormError {
            return error.message
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func groupsMustBeAPositiveInteger() {
        #expect(message { _ = try LayerSpec(kind: .groupnorm, groups: 0) } == "num_groups must be a positive integer (got 0)")
        #expect(message { _ = try LayerSpec(kind: .groupnorm, groups: -3) } == "num_groups must be a positive integer (got -3)")
        #expect(message { _ = try LayerSpec(kind: .rmsnorm, groups: 0) } == "num_groups must be a positive integer (got 0)")
        #expect(message { _ = try LayerSpec(kind: .groupnorm) } == "groupnorm needs the number of groups, e.g. `groupnorm 32`")
        #expect(message { _ = try LayerSpec(kind: .layernorm, groups: 2) } == "layernorm takes no number of groups")
        #expect(message { _ = try LayerSpec(kind: .batchnorm, groups: 2) } == "batchnorm takes no number of groups")
    }

    @Test func channelsMustDivideByGroups() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 4))
        #expect(message { try layer.forward(.zeros(Shape([2, 6, 3]))) }
                == "The number of channels must be evenly divisible by num_groups: 6 channels, 4 groups")
        #expect(!layer.isInitialised)
    }

    @Test func inputRank() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .layernorm))
        #expect(message { try layer.forward(.zeros(Shape([6]))) }
                == "LayerNorm needs an input of shape (N, C, *spatial) with rank ≥ 2; got (6)")
        #expect(message { try layer.forward(.zeros(Shape([1, 1, 1, 1, 1, 1, 1, 1]))) }
                == "LayerNorm takes at most 5 spatial dimensions; got 6 in (1, 1, 1, 1, 1, 1, 1, 1)")
        #expect(try layer.forward(.ones(Shape([1, 2, 1, 1, 1, 1, 2]))).output.count == 4)
    }

    @Test func inputMustMatchTheLockedShape() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        try layer.forward(.randn(Shape([2, 4, 3]), seed: 0))
        #expect(layer.sampleShape == [4, 3])
        try layer.forward(.randn(Shape([5, 4, 3]), seed: 0))  // another batch size is fine
        #expect(message { try layer.forward(.zeros(Shape([2, 4, 5]))) }
                == "input is not the same shape as the layer's input_shape: the layer was initialised with samples of shape (4, 3), this input's samples are (4, 5)")
        #expect(layer.lastForward?.input.dims == [5, 4, 3])
    }

    @Test func backwardNeedsForwardAndAMatchingDy() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        #expect(message { try layer.backward(.zeros(Shape([2, 4]))) }
                == "backward needs a forward pass first: run forward, then backward")
        try layer.forward(.randn(Shape([2, 4]), seed: 0))
        #expect(message { try layer.backward(.zeros(Shape([2, 2, 2]))) }
                == "dy has shape (2, 2, 2) but y has shape (2, 4); they must match")
        #expect(layer.backwardCount == 0)
    }

    @Test func affineShapes() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        // Before the first input the shape cannot be checked: accepted, then refused at forward.
        try layer.setGamma(.ones(Shape([3])))
        #expect(message { try layer.forward(.zeros(Shape([2, 4, 5]))) }
                == "gamma has shape (3) but affine=channel needs one value per channel: (4)")
        #expect(!layer.isInitialised && layer.lastForward == nil)
        try layer.setGamma(.ones(Shape([4])))
        try layer.forward(.zeros(Shape([2, 4, 5])))
        // Once initialised, checked at once.
        #expect(message { try layer.setBeta(.ones(Shape([4, 5]))) }
                == "beta has shape (4, 5) but affine=channel needs one value per channel: (4)")

        var element = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2, preset: .pydllib))
        try element.forward(.zeros(Shape([2, 4, 5])))
        #expect(element.gamma?.dims == [4, 5])
        #expect(message { try element.setGamma(.ones(Shape([4]))) }
                == "gamma has shape (4) but affine=element needs one value per element of a sample (C, *spatial): (4, 5)")

        var spec = try LayerSpec(kind: .layernorm)
        spec.affine = .none
        var none = try NormLayer<Double>(spec: spec)
        #expect(message { try none.setGamma(.ones(Shape([4]))) } == "this layer has affine=none, so it takes no gamma")
    }

    @Test func numericOptions() throws {
        var spec = try LayerSpec(kind: .groupnorm, groups: 1)
        spec.eps = -1e-5
        #expect(message { _ = try NormLayer<Double>(spec: spec) } == "eps must be a finite number ≥ 0 (got -1e-05)")
        spec.eps = .nan
        #expect(message { try spec.validate() } == "eps must be a finite number ≥ 0 (got nan)")
        spec.eps = 1e-5
        spec.momentum = 1.5
        #expect(message { try spec.validate() } == "momentum must be between 0 and 1 (got 1.5)")
        var rms = try LayerSpec(kind: .rmsnorm)
        rms.variance = .unbiased
        #expect(message { try rms.validate() } == "rmsnorm divides the sum of squares by m; it has no unbiased variant")
    }

    @Test func batchNormNeedsMoreThanOneValue() throws {
        var torch = try NormLayer<Double>(spec: LayerSpec(kind: .batchnorm))
        #expect(message { try torch.forward(.randn(Shape([1, 3]), seed: 0)) }
                == "BatchNorm needs more than 1 value per channel when training; got input (1, 3)")
        try torch.forward(.randn(Shape([1, 3, 2]), seed: 0))  // N·S = 2 is enough
        var pydllib = try NormLayer<Double>(spec: LayerSpec(kind: .batchnorm, preset: .pydllib))
        #expect(message { try pydllib.forward(.randn(Shape([1, 3, 2]), seed: 0)) }
                == "BatchNorm over the batch axis needs a batch of at least 2 in training; got N = 1")
        pydllib.mode = .eval
        try pydllib.forward(.randn(Shape([1, 3, 2]), seed: 0))  // eval uses the running statistics
    }

    @Test func unbiasedVarianceNeedsTwoElements() throws {
        var spec = try LayerSpec(kind: .instancenorm)
        spec.variance = .unbiased
        var layer = try NormLayer<Double>(spec: spec)
        #expect(message { try layer.forward(.randn(Shape([2, 3]), seed: 0)) }
                == "the unbiased variance divides by m − 1 = 0: each statistics set has a single element (input (2, 3))")
    }

    @Test func runningStatisticsShape() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .batchnorm))
        try layer.setRunningStatistics(mean: .zeros(Shape([4])), variance: .ones(Shape([4])))
        #expect(message { try layer.forward(.randn(Shape([2, 3]), seed: 0)) }
                == "running statistics have shape (4) but this input needs (3)")
        #expect(message { try layer.setRunningStatistics(mean: .zeros(Shape([4])), variance: .ones(Shape([3]))) }
                == "running mean (4) and running variance (3) must have the same shape")
        var gn = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 1))
        #expect(message { try gn.setRunningStatistics(mean: .zeros(Shape([4])), variance: .ones(Shape([4]))) }
                == "only batchnorm keeps running statistics")
    }
}

@Suite struct LayerStateTests {
    @Test func gradientsAccumulateUntilZeroed() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        let shape = try Shape([2, 4, 3])
        try layer.forward(.randn(shape, seed: 0))
        let dy = Tensor<Double>.randn(shape, seed: 1)
        let first = try layer.backward(dy)
        try layer.backward(dy)
        #expect(layer.backwardCount == 2)
        #expect(layer.gammaGrad?.scalars == first.dgamma?.scalars.map { $0 + $0 })
        #expect(layer.betaGrad?.scalars == first.dbeta?.scalars.map { $0 + $0 })
        layer.zeroGrad()
        #expect(layer.backwardCount == 0 && layer.gammaGrad == nil && layer.betaGrad == nil)
        try layer.backward(dy)
        #expect(layer.gammaGrad == first.dgamma)
    }

    /// float32 with γ per element: the running sums are added in place (C, vectorised) once the layer holds the only
    /// copy — one rounding per addition, in backward order, and the gradients a backward returned are left alone.
    @Test func float32SumsAccumulateInPlace() throws {
        var spec = try LayerSpec(kind: .groupnorm, groups: 2)
        spec.affine = .element
        var layer = try NormLayer<Float>(spec: spec)
        let shape = try Shape([3, 4, 37])
        try layer.forward(.randn(shape, seed: 0))
        let dys = (1...3).map { Tensor<Float>.randn(shape, seed: UInt64($0)) }
        let passes = try dys.map { try layer.backward($0) }
        let first = passes[0].dgamma!.scalars, second = passes[1].dgamma!.scalars, third = passes[2].dgamma!.scalars
        let expected: [Float] = (0..<first.count).map { i in (first[i] + second[i]) + third[i] }
        #expect(layer.gammaGrad!.scalars == expected)
        let betas: [[Float]] = passes.map { $0.dbeta!.scalars }
        let expectedBeta: [Float] = (0..<first.count).map { i in (betas[0][i] + betas[1][i]) + betas[2][i] }
        #expect(layer.betaGrad!.scalars == expectedBeta)
        // The first pass's dγ (whose buffer the sums started from) is as a fresh layer makes it: not summed into.
        var fresh = try NormLayer<Float>(spec: spec)
        try fresh.forward(.randn(shape, seed: 0))
        let freshFirst: [Float] = try fresh.backward(dys[0]).dgamma!.scalars
        #expect(first != expected && first == freshFirst)
    }

    @Test func batchNormRunningStatistics() throws {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .batchnorm))
        #expect(layer.mode == .train)
        let x = Tensor<Double>.randn(try Shape([4, 2, 3]), seed: 0).map { 2 + 3 * $0 }
        let result = try layer.forward(x)
        let mean = try #require(result.mean), unbiased = try #require(result.unbiasedVariance)
        for c in 0..<2 {
            #expect(abs(layer.runningMean!.scalars[c] - 0.1 * mean.scalars[c]) < 1e-15)
            #expect(abs(layer.runningVariance!.scalars[c] - (0.9 + 0.1 * unbiased.scalars[c])) < 1e-15)
            #expect(abs(unbiased.scalars[c] - result.variance.scalars[c] * 12 / 11) < 1e-12)
        }
        let before = layer.runningMean
        layer.mode = .eval
        let evaluated = try layer.forward(x)
        #expect(layer.runningMean == before)
        #expect(evaluated.mode == .eval)
        #expect(evaluated.mean == before)
    }

    @Test func parameterCounts() throws {
        var torch = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        #expect(torch.parameterCount == nil)
        try torch.forward(.zeros(Shape([2, 4, 3, 3])))
        #expect(torch.parameterCount == 8)
        #expect(torch.pydllibReportedParameterCount == nil)

        var pydllib = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2, preset: .pydllib))
        try pydllib.forward(.zeros(Shape([2, 4, 3, 3])))
        #expect(pydllib.parameterCount == 72)  // γ and β of shape (4, 3, 3)
        #expect(pydllib.pydllibReportedParameterCount == 8)  // what PyDLLib's nparams says: 2·C

        var bn = try NormLayer<Double>(spec: LayerSpec(kind: .batchnorm, preset: .pydllib))
        try bn.forward(.randn(Shape([2, 4, 3, 3]), seed: 0))
        #expect(bn.parameterCount == 72 && bn.pydllibReportedParameterCount == 72)

        var none = try LayerSpec(kind: .layernorm)
        none.affine = .none
        #expect(none.parameterCount(sampleShape: [4, 3]) == 0)
    }

    @Test func presetsSetEveryConvention() throws {
        let torch = try LayerSpec(kind: .groupnorm, groups: 32)
        #expect(torch.reduce == .group && torch.affine == .channel && torch.paramGrad == .sum && torch.eps == 1e-5)
        let pydllib = try LayerSpec(kind: .groupnorm, groups: 32, preset: .pydllib)
        #expect(pydllib.reduce == .channels && pydllib.affine == .element && pydllib.paramGrad == .mean && pydllib.eps == 1e-6)
        #expect(pydllib.variance == .biased)
        let bn = try LayerSpec(kind: .batchnorm, preset: .pydllib)
        #expect(bn.variance == .unbiased && bn.momentum == 0.1)
        #expect(try LayerSpec(kind: .instancenorm).resolvedGroups(channels: 7) == 7)
        #expect(try LayerSpec(kind: .layernorm).groups == 1)
        #expect(try LayerSpec(kind: .rmsnorm).groups == 1)
    }

    @Test func warnings() throws {
        // PyDLLib's InstanceNorm: one element per set.
        var instance = try NormLayer<Double>(spec: LayerSpec(kind: .instancenorm, preset: .pydllib))
        let x = Tensor<Double>.randn(try Shape([2, 3, 4]), seed: 0)
        let beta = Tensor<Double>.randn(try Shape([3, 4]), seed: 1)
        try instance.setBeta(beta)
        let result = try instance.forward(x)
        #expect(result.warnings == [.singleElementSets(layer: "InstanceNorm")])
        #expect(result.output.scalars == beta.scalars + beta.scalars)
        #expect(try instance.backward(.randn(x.shape, seed: 2)).dx.scalars.allSatisfy { $0 == 0 })

        // eps = 0 with a constant group.
        var spec = try LayerSpec(kind: .groupnorm, groups: 2)
        spec.eps = 0
        var layer = try NormLayer<Double>(spec: spec)
        var values = Tensor<Double>.randn(try Shape([1, 4, 2]), seed: 3).scalars
        for i in 0..<4 { values[i] = 0.25 }  // group 0 of sample 0 is constant
        let zeroEps = try layer.forward(Tensor(shape: Shape([1, 4, 2]), scalars: values))
        #expect(zeroEps.warnings == [.zeroVarianceWithZeroEps(sets: 1)])
        #expect(zeroEps.normalized.scalars[0].isNaN && !zeroEps.normalized.scalars[4].isNaN)
        #expect(zeroEps.warnings[0].description.contains("use eps > 0"))

        // NaN and Inf propagate (here one in each group, so every output is NaN) and are counted.
        values[5] = .nan
        values[0] = .infinity
        let nonFinite = try layer.forward(Tensor(shape: Shape([1, 4, 2]), scalars: values))
        #expect(nonFinite.warnings.contains(.nonFiniteInput(count: 2)))
        #expect(nonFinite.output.scalars.allSatisfy { $0.isNaN })
    }
}
