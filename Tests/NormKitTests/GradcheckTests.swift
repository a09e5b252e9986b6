import NormKit
import Testing

@Suite struct GradcheckTests {
    struct Setup: CustomStringConvertible, Sendable {
        let kind: LayerKind
        let groups: Int?
        let preset: Preset
        let dims: [Int]
        var mode: Mode = .train
        var description: String { "\(kind) \(preset) \(mode) \(dims)" }
    }

    static let setups: [Setup] = [
        Setup(kind: .groupnorm, groups: 2, preset: .torch, dims: [2, 4, 3, 2]),
        Setup(kind: .groupnorm, groups: 2, preset: .pydllib, dims: [2, 4, 3, 2]),
        Setup(kind: .groupnorm, groups: 3, preset: .torch, dims: [3, 6]),
        Setup(kind: .layernorm, groups: nil, preset: .torch, dims: [2, 3, 4]),
        Setup(kind: .layernorm, groups: nil, preset: .pydllib, dims: [2, 3, 4]),
        Setup(kind: .instancenorm, groups: nil, preset: .torch, dims: [2, 3, 5]),
        Setup(kind: .instancenorm, groups: nil, preset: .pydllib, dims: [2, 3, 5]),
        Setup(kind: .batchnorm, groups: nil, preset: .torch, dims: [4, 3, 2]),
        Setup(kind: .batchnorm, groups: nil, preset: .torch, dims: [4, 3, 2], mode: .eval),
        Setup(kind: .batchnorm, groups: nil, preset: .pydllib, dims: [3, 2, 3]),
        Setup(kind: .batchnorm, groups: nil, preset: .pydllib, dims: [3, 2, 3], mode: .eval),
        Setup(kind: .rmsnorm, groups: 2, preset: .torch, dims: [2, 4, 3]),
        Setup(kind: .rmsnorm, groups: 2, preset: .pydllib, dims: [2, 4, 3]),
    ]

    static func layer(_ setup: Setup) throws -> (NormLayer<Double>, Tensor<Double>) {
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: setup.kind, groups: setup.groups, preset: setup.preset))
        let shape = try Shape(setup.dims)
        let x = Tensor<Double>.randn(shape, seed: 1)
        // Warm the running statistics so eval mode has something non-trivial to use.
        if setup.kind == .batchnorm {
            try layer.forward(Tensor<Double>.randn(shape, seed: 9))
            layer.mode = setup.mode
        }
        try layer.forward(x)
        if let affine = try NormPlan(spec: layer.spec, inputShape: shape).affineShape {
            try layer.setGamma(Tensor<Double>.randn(affine, seed: 2).map { 1 + 0.3 * $0 })
            try layer.setBeta(Tensor<Double>.randn(affine, seed: 3))
            try layer.forward(x)
        }
        return (layer, Tensor<Double>.randn(shape, seed: 4))
    }

    @Test(arguments: setups)
    func engineBackwardPasses(_ setup: Setup) throws {
        let (layer, dy) = try Self.layer(setup)
        let reports = try layer.gradcheck(outputGradient: dy)
        #expect(reports.map(\.target) == [.dx, .dgamma, .dbeta])
        for report in reports {
            #expect(report.passed, "\(setup) \(report.target): max abs \(report.maxAbsError), worst \(report.worst.first.map { "\($0.index) \($0.analytic) vs \($0.numeric)" } ?? "")")
            #expect(report.checked == report.total)
            #expect(report.maxAbsError < 1e-7)
        }
        let mentionsMean = reports.contains { $0.notes.contains { $0.contains("divided by N") } }
        #expect(mentionsMean == (setup.preset == .pydllib))
    }

    @Test func float32LayerIsCheckedInFloat64() throws {
        var layer = try NormLayer<Float>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        let shape = try Shape([2, 4, 3])
        try layer.forward(Tensor<Float>.randn(shape, seed: 5))
        let reports = try layer.gradcheck(outputGradient: Tensor<Float>.randn(shape, seed: 6))
        #expect(reports.allSatisfy { $0.passed })
    }

    /// The classic mistake: dx without the −Σdx̂/m term. Gradcheck must catch it.
    @Test func brokenBackwardWithoutTheMeanTermFails() throws {
        let (layer, dy) = try Self.layer(Self.setups[0])
        let forward = try #require(layer.lastForward)
        let plan = forward.plan
        let gamma = try #require(layer.gamma)
        var broken = [Double](repeating: 0, count: dy.count)
        for stat in 0..<plan.statsShape.count {
            let members = plan.memberOffsets(ofStat: stat)
            let dxhat = members.map { dy.scalars[$0] * gamma.scalars[plan.inputShape.multiIndex(ofOffset: $0)[1]] }
            let xhat = members.map { forward.normalized.scalars[$0] }
            let projection = zip(dxhat, xhat).map(*).reduce(0, +) / Double(plan.setSize)
            for (k, offset) in members.enumerated() {
                broken[offset] = forward.rstd.scalars[stat] * (dxhat[k] - xhat[k] * projection)
            }
        }
        let supplied = try Tensor<Double>(shape: dy.shape, scalars: broken)
        let reports = try layer.gradcheck(outputGradient: dy, targets: [.dx], supplied: [.dx: supplied])
        let report = try #require(reports.first)
        #expect(report.supplied)
        #expect(!report.passed)
        #expect(report.failures > 0)
        #expect(report.worst.count == 5)
        #expect(report.worst[0].absError >= report.worst[1].absError * (1 - 0x1p-9))  // ties within 10 bits keep index order

        // The engine's own dx, supplied from outside, passes.
        let good = try layer.backwardOnce(dy)
        let again = try layer.gradcheck(outputGradient: dy, targets: [.dx], supplied: [.dx: good])
        #expect(again.first?.passed == true)
    }

    @Test func samplingChecksAStatedNumberOfElements() throws {
        let (layer, dy) = try Self.layer(Setup(kind: .groupnorm, groups: 2, preset: .torch, dims: [2, 4, 5, 5]))
        var options = GradcheckOptions()
        options.sampleSize = 17
        options.seed = 3
        let report = try #require(try layer.gradcheck(outputGradient: dy, targets: [.dx], options: options).first)
        #expect(report.checked == 17 && report.total == 200 && report.sampled)
        #expect(report.passed)
        #expect(report.notes.contains { $0.contains("random sample of 17 of 200") })
        let offsets = report.worst.map(\.offset)
        #expect(Set(offsets).count == offsets.count)
    }

    @Test func interruptionStopsTheCheck() throws {
        let (layer, dy) = try Self.layer(Self.setups[0])
        var calls = 0
        let error = #expect(throws: NormError.self) {
            try layer.gradcheck(outputGradient: dy, isCancelled: { calls += 1; return calls > 3 })
        }
        #expect(error?.code == .interrupted)
        #expect(error?.message == "gradcheck stopped after 3 of 48 elements")
    }

    @Test func errors() throws {
        let (layer, dy) = try Self.layer(Self.setups[0])
        let wrongShape = Tensor<Double>.zeros(try Shape([3]))
        let e1 = #expect(throws: NormError.self) {
            try layer.gradcheck(outputGradient: dy, targets: [.dgamma], supplied: [.dgamma: wrongShape])
        }
        #expect(e1?.message == "the supplied dgamma has shape (3) but dgamma must have shape (4)")
        var options = GradcheckOptions()
        options.step = 0
        #expect(throws: NormError.self) { try layer.gradcheck(outputGradient: dy, options: options) }
        let fresh = try NormLayer<Double>(spec: LayerSpec(kind: .layernorm))
        let e2 = #expect(throws: NormError.self) { try fresh.gradcheck(outputGradient: dy) }
        #expect(e2?.code == .invalidState)

        var plain = try LayerSpec(kind: .groupnorm, groups: 2)
        plain.affine = .none
        var noAffine = try NormLayer<Double>(spec: plain)
        try noAffine.forward(Tensor<Double>.randn(dy.shape, seed: 1))
        #expect(try noAffine.gradcheck(outputGradient: dy).map(\.target) == [.dx])
        let e3 = #expect(throws: NormError.self) { try noAffine.gradcheck(outputGradient: dy, targets: [.dgamma]) }
        #expect(e3?.message == "this layer has affine=none: there is no dgamma to check")
    }
}

extension NormLayer {
    func backwardOnce(_ dy: Tensor<Scalar>) throws -> Tensor<Scalar> {
        var copy = self
        return try copy.backward(dy).dx
    }
}
