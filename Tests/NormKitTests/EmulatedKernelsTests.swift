@testable import NormKit
import Testing

/// `EmulatedKernels` against `LiteralEmulation` (the first implementation: a Double rounded by `DType.round` after
/// every operation, one element at a time), bit for bit, on every layout of sets the walk distinguishes (inputs without spatial dims
/// included): sets of rows per sample (four side by side, and a tail), rows over the batch, per-position columns per sample and over
/// the batch, γ per element, no β, eval; every method and format; one thread and three.
@Suite struct EmulatedKernelsTests {
    struct Layout: CustomStringConvertible, Sendable {
        let name: String
        let shape: [Int]
        let spec: @Sendable () throws -> LayerSpec
        var description: String { name }
    }

    static let layouts: [Layout] = [
        Layout(name: "groupnorm 7 (rows per sample, 4 + 3 sets)", shape: [2, 14, 3, 5]) { try LayerSpec(kind: .groupnorm, groups: 7) },
        Layout(name: "layernorm (one set per sample)", shape: [5, 3, 4]) { try LayerSpec(kind: .layernorm) },
        Layout(name: "batchnorm (rows over the batch)", shape: [3, 5, 7]) { try LayerSpec(kind: .batchnorm) },
        Layout(name: "groupnorm 2 pydllib (columns per sample)", shape: [3, 4, 2, 3]) { try LayerSpec(kind: .groupnorm, groups: 2, preset: .pydllib) },
        Layout(name: "batchnorm pydllib (columns over the batch)", shape: [4, 3, 5]) { try LayerSpec(kind: .batchnorm, preset: .pydllib) },
        Layout(name: "instancenorm, γ per element", shape: [2, 3, 6]) {
            var spec = try LayerSpec(kind: .instancenorm)
            spec.affine = .element
            return spec
        },
        Layout(name: "batchnorm over=n,c groups=2", shape: [3, 4, 5]) {
            var spec = try LayerSpec(kind: .batchnorm)
            spec.groups = 2
            spec.reduce = .channels
            return spec
        },
        Layout(name: "rmsnorm shape=8 (no centring, no β)", shape: [5, 8]) { try LayerSpec(kind: .rmsnorm, normalizedShape: [8]) },
        // Sets in blocks of eight: float32 lanes make a block's statistics and y, and its sums and dx, in one visit.
        Layout(name: "groupnorm 8 (two blocks of eight sets a sample)", shape: [2, 16, 3, 5]) { try LayerSpec(kind: .groupnorm, groups: 8) },
        Layout(name: "layernorm on eight samples (one block)", shape: [8, 3, 4]) { try LayerSpec(kind: .layernorm) },
        Layout(name: "batchnorm on eight channels (one block)", shape: [3, 8, 5]) { try LayerSpec(kind: .batchnorm) },
        Layout(name: "rmsnorm on sixteen samples (no centring)", shape: [16, 2, 3]) { try LayerSpec(kind: .rmsnorm) },
        // No spatial dims: the walk sees a group's channels (or a sample's channels) as one row (EmulatedLayout).
        Layout(name: "layernorm shape=6 on (7, 6)", shape: [7, 6]) { try LayerSpec(kind: .layernorm, normalizedShape: [6]) },
        Layout(name: "batchnorm on (6, 5)", shape: [6, 5]) { try LayerSpec(kind: .batchnorm) },
        Layout(name: "groupnorm 2 pydllib on (3, 8)", shape: [3, 8]) { try LayerSpec(kind: .groupnorm, groups: 2, preset: .pydllib) },
        Layout(name: "batchnorm over=n,c groups=3 on (4, 6)", shape: [4, 6]) {
            var spec = try LayerSpec(kind: .batchnorm)
            spec.groups = 3
            spec.reduce = .channels
            return spec
        },
    ]

    struct Case: CustomStringConvertible, Sendable {
        let layout: Layout
        let method: VarianceMethod
        let format: DType
        var description: String { "\(layout.name) \(method) \(format)" }
    }

    static let cases: [Case] = layouts.flatMap { layout in
        VarianceMethod.allCases.flatMap { method in
            [DType.float16, .bfloat16, .float32, .float64].map { Case(layout: layout, method: method, format: $0) }
        }
    }

    /// Values of `format` with an offset, so one-pass variances cancel and sums round.
    static func values(_ count: Int, seed: UInt64, format: DType, offset: Double) -> [Double] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let unit = Double(state >> 11) / Double(1 << 53)
            return format.round(offset + 4 * unit - 2)
        }
    }

    static func sameBits(_ got: [Double], _ want: [Double], _ what: String, _ name: String) {
        #expect(got.count == want.count, "\(name): \(what) count")
        for (i, (g, w)) in zip(got, want).enumerated() where !(g.bitPattern == w.bitPattern || (g.isNaN && w.isNaN)) {
            Issue.record("\(name): \(what)[\(i)] = \(g), want \(w)")
            return
        }
    }

    @Test(arguments: cases)
    func sameBitsAsTheLiteralPasses(_ c: Case) throws {
        var spec = try c.layout.spec()
        spec.method = c.method
        spec.accumulate = c.format == .float64 ? .float64 : .storage
        let plan = try NormPlan(spec: spec, inputShape: try Shape(c.layout.shape))
        let count = plan.inputShape.count
        let x = Self.values(count, seed: 1, format: c.format, offset: 3)
        let dy = Self.values(count, seed: 2, format: c.format, offset: 0)
        let affine = plan.affineShape?.count ?? 0
        let gamma = affine > 0 ? Self.values(affine, seed: 3, format: c.format, offset: 1) : nil
        let beta = affine > 0 && spec.bias ? Self.values(affine, seed: 4, format: c.format, offset: 0) : nil
        let want = LiteralEmulation.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, running: nil,
                                            format: c.format)
        let wantGradients = LiteralEmulation.backward(spec: spec, plan: plan, x: x, dy: dy, means: want.means,
                                                      rstds: want.rstds, gamma: gamma, constantStatistics: false,
                                                      format: c.format)
        for threads in [1, 3] {
            let name = "\(c) on \(threads) threads"
            let got = EmulatedKernels.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, running: nil,
                                              format: c.format, threads: threads)
            Self.sameBits(got.means, want.means, "μ", name)
            Self.sameBits(got.variances, want.variances, "σ²", name)
            Self.sameBits(got.unbiased ?? [], want.unbiased ?? [], "unbiased σ²", name)
            Self.sameBits(got.rstds, want.rstds, "rstd", name)
            Self.sameBits(got.normalized, want.normalized, "x̂", name)
            Self.sameBits(got.output, want.output, "y", name)
            let gradients = EmulatedKernels.backward(spec: spec, plan: plan, x: x, dy: dy, means: got.means,
                                                     rstds: got.rstds, gamma: gamma, constantStatistics: false,
                                                     format: c.format, threads: threads)
            Self.sameBits(gradients.dx, wantGradients.dx, "dx", name)
            Self.sameBits(gradients.dgamma, wantGradients.dgamma, "dγ", name)
            Self.sameBits(gradients.dbeta, wantGradients.dbeta, "dβ", name)
            // A Float tensor (float64 values rounded to Float first): y and x̂ are the format's values as Floats.
            let floatX = x.map { Float($0) }
            let wantFloat = LiteralEmulation.forward(spec: spec, plan: plan, x: floatX.map(Double.init), gamma: gamma,
                                                     beta: beta, running: nil, format: c.format)
            let floats = EmulatedKernels.forward(spec: spec, plan: plan, x: floatX, gamma: gamma, beta: beta,
                                                 running: nil, format: c.format, threads: threads)
            Self.sameBits(floats.output.map(Double.init), wantFloat.output.map { Double(Float($0)) }, "Float y", name)
            Self.sameBits(floats.normalized.map(Double.init), wantFloat.normalized.map { Double(Float($0)) }, "Float x̂", name)
            Self.sameBits(floats.means, wantFloat.means, "Float μ", name)
            Self.sameBits(floats.rstds, wantFloat.rstds, "Float rstd", name)
            // float32 on a Float tensor runs in lanes, blocks of eight sets fused with their dx (`EightLanes`).
            let floatDy = dy.map { Float($0) }
            let wantFloatGradients = LiteralEmulation.backward(
                spec: spec, plan: plan, x: floatX.map(Double.init), dy: floatDy.map(Double.init), means: wantFloat.means,
                rstds: wantFloat.rstds, gamma: gamma, constantStatistics: false, format: c.format)
            let floatGradients = EmulatedKernels.backward(spec: spec, plan: plan, x: floatX, dy: floatDy,
                                                          means: floats.means, rstds: floats.rstds, gamma: gamma,
                                                          constantStatistics: false, format: c.format, threads: threads)
            Self.sameBits(floatGradients.dx.map(Double.init), wantFloatGradients.dx.map { Double(Float($0)) }, "Float dx", name)
            Self.sameBits(floatGradients.dgamma, wantFloatGradients.dgamma, "Float dγ", name)
            Self.sameBits(floatGradients.dbeta, wantFloatGradients.dbeta, "Float dβ", name)
        }
    }

    @Test(arguments: [DType.float16, .bfloat16])
    func evalAndOverflowMatchTheLiteralPasses(_ format: DType) throws {
        var spec = try LayerSpec(kind: .batchnorm)
        spec.accumulate = .storage
        let plan = try NormPlan(spec: spec, inputShape: try Shape([4, 6, 5]))
        // Channel 1 squares past float16's 65504 (bfloat16 sums past its range with 1e38), channel 4 sums past it.
        let big = format == .float16 ? 300.0 : 1e38
        var x = Self.values(plan.inputShape.count, seed: 5, format: format, offset: 0)
        for n in 0..<4 { for s in 0..<5 { x[(n * 6 + 1) * 5 + s] = format.round(big * Double(s % 2 == 0 ? 1 : -1)) } }
        for n in 0..<4 { for s in 0..<5 { x[(n * 6 + 4) * 5 + s] = format.round(format == .float16 ? 6e4 : 3e38) } }
        let gamma = Self.values(6, seed: 6, format: format, offset: 1), beta = Self.values(6, seed: 7, format: format, offset: 0)
        let want = LiteralEmulation.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, running: nil, format: format)
        #expect(want.overflowed.contains(true), "the case must overflow somewhere")
        let running = (means: Self.values(6, seed: 8, format: format, offset: 0), variances: Self.values(6, seed: 9, format: format, offset: 3))
        let wantEval = LiteralEmulation.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, running: running, format: format)
        let dy = Self.values(x.count, seed: 10, format: format, offset: 0)
        let wantEvalDx = LiteralEmulation.backward(spec: spec, plan: plan, x: x, dy: dy, means: wantEval.means,
                                                   rstds: wantEval.rstds, gamma: gamma, constantStatistics: true, format: format)
        for threads in [1, 2] {
            let got = EmulatedKernels.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, running: nil,
                                              format: format, threads: threads)
            #expect(got.overflowed == want.overflowed)
            #expect("\(got.findings)" == "\(want.findings)")
            Self.sameBits(got.output, want.output, "y", "\(format) overflow")
            let eval = EmulatedKernels.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: beta, running: running,
                                               format: format, threads: threads)
            Self.sameBits(eval.output, wantEval.output, "eval y", "\(format)")
            let evalDx = EmulatedKernels.backward(spec: spec, plan: plan, x: x, dy: dy, means: eval.means, rstds: eval.rstds,
                                                  gamma: gamma, constantStatistics: true, format: format, threads: threads)
            Self.sameBits(evalDx.dx, wantEvalDx.dx, "eval dx", "\(format)")
            Self.sameBits(evalDx.dgamma, wantEvalDx.dgamma, "eval dγ", "\(format)")
        }
    }
}

extension EmulatedKernelsTests {
    /// A pass keeps y only; x̂ read from it afterwards is the literal passes' x̂ (made again from x, in the format).
    @Test(arguments: [(LayerKind.groupnorm, Preset.torch, VarianceMethod.twopass, Accumulation.float32),
                      (.batchnorm, .pydllib, .onepass, .storage), (.groupnorm, .pydllib, .welford, .storage)])
    func normalizedReadLaterIsTheFormatsXhat(_ kind: LayerKind, _ preset: Preset, _ method: VarianceMethod,
                                             _ accumulate: Accumulation) throws {
        var spec = try LayerSpec(kind: kind, groups: kind == .groupnorm ? 2 : nil, preset: preset)
        spec.method = method
        spec.accumulate = accumulate
        let shape = try Shape([3, 4, 5])
        let x = Self.values(shape.count, seed: 11, format: .float16, offset: 2)
        let forward = try Normalization.forward(spec: spec, input: Tensor(shape: shape, scalars: x.map { Float($0) }),
                                                gamma: nil, beta: nil, storage: .float16)
        let plan = try NormPlan(spec: forward.spec, inputShape: shape)
        let want = LiteralEmulation.forward(spec: forward.spec, plan: plan, x: x, gamma: nil, beta: nil, running: nil,
                                            format: accumulate.format(storage: .float16))
        Self.sameBits(forward.normalized.scalars.map(Double.init), want.normalized.map { Double(Float($0)) }, "x̂",
                      "\(kind) \(preset) \(method) \(accumulate)")
    }
}

/// Each format's native arithmetic (`EmulatedFormat`) against `DType.round` of the Double operation.
@Suite struct EmulatedFormatTests {
    static func operands(_ format: DType, count: Int) -> [Float] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var values: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, Float(format.largestFinite),
                               Float(format.smallestNormal), Float(format.smallestSubnormal), 3 * Float(format.smallestSubnormal)]
        while values.count < count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let bits = UInt32(truncatingIfNeeded: state >> 32)
            values.append(Float(format.round(Double(Float(bitPattern: bits)))))
        }
        return values
    }

    static func check<F: EmulatedFormat>(_: F.Type) where F.Value == Float {
        let format = F.format
        let values = operands(format, count: 600)
        func same(_ got: Float, _ want: Double, _ what: String) -> Bool {
            let ok = Double(got) == want || (got.isNaN && want.isNaN)
            if !ok { Issue.record("\(format) \(what): got \(got), want \(want)") }
            return ok
        }
        outer: for a in values {
            for b in values.prefix(200) {
                let (x, y) = (Double(a), Double(b))
                guard same(F.add(a, b), format.round(x + y), "\(a) + \(b)"),
                      same(F.subtract(a, b), format.round(x - y), "\(a) − \(b)"),
                      same(F.multiply(a, b), format.round(x * y), "\(a) × \(b)"),
                      same(F.divide(a, b), format.round(x / y), "\(a) / \(b)") else { break outer }
            }
            guard same(F.squareRoot(a), format.round(Double(a).squareRoot()), "√\(a)") else { break }
        }
        // One rounding from Float and from Double, against DType.round, on random bit patterns.
        var state: UInt64 = 12345
        for _ in 0..<20_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let v = Float(bitPattern: UInt32(truncatingIfNeeded: state >> 29))
            guard same(F.value(float: v), format.round(Double(v)), "round(\(v))") else { break }
            let d = Double(bitPattern: state) 
            guard same(F.value(d), format.round(d), "round(\(d))") else { break }
        }
    }

    @Test func float16ArithmeticIsRoundedDoubleArithmetic() { Self.check(Float16Format.self) }
    @Test func bfloat16ArithmeticIsRoundedDoubleArithmetic() { Self.check(BFloat16Format.self) }
    @Test func float32ArithmeticIsRoundedDoubleArithmetic() { Self.check(Float32Format.self) }
}

extension EmulatedKernelsTests {
    /// float32 sums of a Float tensor run eight units at a time in vector lanes (`EmulatedLanes.swift`): the same
    /// bits as the literal passes, on layouts with units enough for the lanes on 1 and 3 threads (and a rest for
    /// the scalar walk), rows of 21 and 12 positions (steps of eight and a tail), γ per channel and per element; the
    /// statistics two-pass and one-pass (Welford keeps the scalar walk). GroupNorm 16 and InstanceNorm on 24 channels
    /// have blocks of eight groups a sample (two and three): backward's set and parameter sums in one walk
    /// (`EightLanes.fusedBackwardSums`), each channel's chain carried from sample to sample.
    @Test(arguments: [
        ("groupnorm 4", [6, 8, 3, 7]), ("instancenorm, γ per element", [3, 9, 13]), ("batchnorm", [5, 26, 11]),
        ("layernorm shape=12", [27, 12]), ("groupnorm 2 pydllib", [9, 4, 2, 3]), ("groupnorm 16", [5, 32, 3, 7]),
        ("instancenorm", [3, 24, 12]),
    ])
    func eightLanesAreTheScalarChains(_ name: String, _ dims: [Int]) throws {
        var spec: LayerSpec
        switch name {
        case "groupnorm 4": spec = try LayerSpec(kind: .groupnorm, groups: 4)
        case "groupnorm 16": spec = try LayerSpec(kind: .groupnorm, groups: 16)
        case "instancenorm": spec = try LayerSpec(kind: .instancenorm)
        case "batchnorm": spec = try LayerSpec(kind: .batchnorm)
        case "layernorm shape=12": spec = try LayerSpec(kind: .layernorm, normalizedShape: [12])
        case "groupnorm 2 pydllib": spec = try LayerSpec(kind: .groupnorm, groups: 2, preset: .pydllib)
        default:
            spec = try LayerSpec(kind: .instancenorm)
            spec.affine = .element
        }
        spec.accumulate = .storage
        for method in [VarianceMethod.twopass, .onepass] {
            spec.method = method
            try checkEightLanes("\(name) \(method)", spec, dims)
        }
    }

    func checkEightLanes(_ name: String, _ spec: LayerSpec, _ dims: [Int]) throws {
        let plan = try NormPlan(spec: spec, inputShape: try Shape(dims))
        let x = Self.values(plan.inputShape.count, seed: 21, format: .float32, offset: 3).map { Float($0) }
        let dy = Self.values(x.count, seed: 22, format: .float32, offset: 0)
        let affine = plan.affineShape?.count ?? 0
        let gamma = affine > 0 ? Self.values(affine, seed: 23, format: .float32, offset: 1) : nil
        let wide = x.map(Double.init)
        let want = LiteralEmulation.forward(spec: spec, plan: plan, x: wide, gamma: gamma, beta: nil, running: nil,
                                            format: .float32)
        let wantGradients = LiteralEmulation.backward(spec: spec, plan: plan, x: wide, dy: dy, means: want.means,
                                                      rstds: want.rstds, gamma: gamma, constantStatistics: false,
                                                      format: .float32)
        for threads in [1, 3] {
            let label = "\(name) on \(threads) threads"
            let got = EmulatedKernels.forward(spec: spec, plan: plan, x: x, gamma: gamma, beta: nil, running: nil,
                                              format: .float32, threads: threads)
            Self.sameBits(got.means, want.means, "μ", label)
            Self.sameBits(got.variances, want.variances, "σ²", label)
            Self.sameBits(got.rstds, want.rstds, "rstd", label)
            let gradients = EmulatedKernels.backward(spec: spec, plan: plan, x: x, dy: dy.map { Float($0) },
                                                     means: got.means, rstds: got.rstds, gamma: gamma,
                                                     constantStatistics: false, format: .float32, threads: threads)
            Self.sameBits(gradients.dx.map(Double.init), wantGradients.dx.map { Double(Float($0)) }, "dx", label)
            Self.sameBits(gradients.dgamma, wantGradients.dgamma, "dγ", label)
            Self.sameBits(gradients.dbeta, wantGradients.dbeta, "dβ", label)
        }
    }
}

extension EmulatedKernelsTests {
    /// The emulating pass counts non-finite inputs only when a statistic is not finite (a NaN or ±∞ in x makes its
    /// set's μ, or σ² without centring, NaN or ±∞ in every method): NaN and −∞ counted; finite x whose float16 sums
    /// overflow (two-pass, one-pass) is not called non-finite input.
    @Test(arguments: [(LayerKind.groupnorm, VarianceMethod.twopass), (.groupnorm, .onepass), (.groupnorm, .welford),
                      (.rmsnorm, .twopass)])
    func nonFiniteInputIsFoundFromTheStatistics(_ kind: LayerKind, _ method: VarianceMethod) throws {
        var spec = try LayerSpec(kind: kind, groups: 2)
        spec.method = method
        spec.accumulate = .float32
        let shape = try Shape([3, 4, 5])
        var values = Tensor<Float>.randn(shape, seed: 12).scalars
        let clean = try Normalization.forward(spec: spec, input: try Tensor(shape: shape, scalars: values), gamma: nil,
                                              beta: nil, storage: .float16)
        #expect(!clean.warnings.contains { if case .nonFiniteInput = $0 { true } else { false } })
        values[7] = .nan
        values[31] = -.infinity
        let bad = try Normalization.forward(spec: spec, input: try Tensor(shape: shape, scalars: values), gamma: nil,
                                            beta: nil, storage: .float16)
        #expect(bad.warnings.contains(.nonFiniteInput(count: 2)), "\(kind) \(method): \(bad.warnings)")
        spec.accumulate = .storage
        let big = try Tensor<Float>(shape: shape, scalars: (0..<shape.count).map { $0 % 3 == 0 ? 60000 : 1 })
        let overflowed = try Normalization.forward(spec: spec, input: big, gamma: nil, beta: nil, storage: .float16)
        if method != .welford {  // Welford's running mean and M₂ stay in range on these values
            #expect(overflowed.warnings.contains { if case .overflow = $0 { true } else { false } })
        }
        #expect(!overflowed.warnings.contains { if case .nonFiniteInput = $0 { true } else { false } })
    }
}

extension EmulatedKernelsTests {
    /// The float32 lanes' first pass over x also makes the exact statistics the cancellation check judges by
    /// (`ExactSums`): they must be the separate pass's (`exactStatistics`) to within Float64's rounding of sums in
    /// another order — on sets the lanes cover and on those the scalar walk takes (80 sets on 3 threads leave
    /// tails), centred (one-pass) and not (RMSNorm), with a mean far from 0. (Two-pass GroupNorm's 80 sets take the
    /// fused forward, which makes no exact sums: `EmulatedFusionTests`.)
    @Test func lanesMakeTheExactStatisticsOnTheirWay() throws {
        for (name, kind, groups) in [("groupnorm 16", LayerKind.groupnorm, 16), ("rmsnorm", .rmsnorm, nil)] {
            var spec = try LayerSpec(kind: kind, groups: groups)
            spec.accumulate = .storage
            let plan = try NormPlan(spec: spec, inputShape: try Shape([5, 32, 3, 7]))
            let x = Self.values(plan.inputShape.count, seed: 31, format: .float32, offset: 300).map { Float($0) }
            let want = EmulatedKernels.exactStatistics(of: x, plan: plan, centre: spec.centres, threads: 1)
            for method in kind == .rmsnorm ? [VarianceMethod.twopass] : [.twopass, .onepass] {
                spec.method = method
                for threads in [1, 3] {
                    let label = "\(name) \(method) on \(threads) threads"
                    let pass = EmulatedKernels.forward(spec: spec, plan: plan, x: x, gamma: nil, beta: nil, running: nil,
                                                       format: .float32, threads: threads)
                    if method == .twopass && kind == .groupnorm {
                        // Sets in blocks of eight: the fused forward proves instead that nothing cancels (TwoPassBound).
                        #expect(pass.exact == nil && pass.cancellationRuledOut, "\(label): fused, ruled out")
                        continue
                    }
                    guard let got = pass.exact else { Issue.record("\(label): no exact statistics"); continue }
                    for (what, g, w) in [("μ", got.means, want.means), ("Σ(x − μ)²", got.sumSquares, want.sumSquares)] {
                        #expect(g.count == w.count, "\(label): \(what) count")
                        for (i, (a, b)) in zip(g, w).enumerated() where abs(a - b) > 1e-12 * max(abs(b), 1) {
                            Issue.record("\(label): \(what)[\(i)] = \(a), want \(b)")
                        }
                    }
                }
            }
        }
    }
}
