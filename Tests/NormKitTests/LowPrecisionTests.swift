import Foundation
@testable import NormKit
import Testing

/// float16/bfloat16 rounding and the method=/accumulate= kernels, bit for bit against
/// scripts/make_lowprecision_fixtures.py (NumPy's float16 and ml_dtypes' bfloat16 arithmetic, written without
/// NormLab's code, in the order of operations EmulatedKernels documents).
@Suite struct LowPrecisionTests {
    nonisolated(unsafe) static let fixture: [String: Any] = {
        let url = Bundle.module.url(forResource: "lowprecision", withExtension: "json", subdirectory: "Reference")!
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    static func doubles(_ object: Any?) -> [Double]? {
        (object as? [String])?.map { Double($0)! }
    }

    struct Case: CustomStringConvertible, Sendable {
        let name: String, kind: String, shape: [Int], groups: Int?
        let storage: DType, accumulate: Accumulation, method: VarianceMethod, eps: Double
        let x: [Double], gamma: [Double], beta: [Double]?, dy: [Double]
        let expected: [String: [Double]]
        var description: String { name }

        func spec() throws -> LayerSpec {
            var spec: LayerSpec
            switch kind {
            case "layernorm_shape": spec = try LayerSpec(kind: .layernorm, normalizedShape: [shape.last!])
            case "rmsnorm_shape": spec = try LayerSpec(kind: .rmsnorm, normalizedShape: [shape.last!])
            case "groupnorm": spec = try LayerSpec(kind: .groupnorm, groups: groups)
            default: spec = try LayerSpec(kind: .batchnorm)
            }
            spec.eps = eps
            spec.epsIsMachineEpsilon = false
            spec.method = method
            spec.accumulate = accumulate
            return spec
        }
    }

    static let cases: [Case] = (fixture["cases"] as! [[String: Any]]).map { object in
        Case(name: object["name"] as! String, kind: object["kind"] as! String, shape: object["shape"] as! [Int],
             groups: object["groups"] as? Int, storage: DType(rawValue: object["storage"] as! String)!,
             accumulate: Accumulation(rawValue: object["accumulate"] as! String)!,
             method: VarianceMethod(rawValue: object["method"] as! String)!, eps: object["eps"] as! Double,
             x: doubles(object["x"])!, gamma: doubles(object["gamma"])!, beta: doubles(object["beta"]),
             dy: doubles(object["dy"])!,
             expected: (object["expected"] as! [String: Any]).compactMapValues { doubles($0) })
    }

    static func float(_ values: [Double], _ shape: [Int]) -> Tensor<Float> {
        try! Tensor(shape: Shape(shape), scalars: values.map { Float($0) })
    }

    /// Bit for bit, NaN equal to NaN; the first differing index in the message.
    static func sameBits(_ got: [Float], _ want: [Double], _ what: String, _ name: String) {
        #expect(got.count == want.count, "\(name): \(what) has \(got.count) values, want \(want.count)")
        for (i, (g, w)) in zip(got, want).enumerated() where !(Double(g) == w || (g.isNaN && w.isNaN)) {
            Issue.record("\(name): \(what)[\(i)] = \(g), want \(w)")
            return
        }
    }

    @Test(arguments: cases)
    func kernelMatchesTheFixture(_ c: Case) throws {
        let spec = try c.spec()
        let affine = [c.gamma.count]
        let forward = try Normalization.forward(
            spec: spec, input: Self.float(c.x, c.shape), gamma: Self.float(c.gamma, affine),
            beta: c.beta.map { Self.float($0, affine) }, storage: c.storage)
        Self.sameBits(forward.output.scalars, c.expected["y"]!, "y", c.name)
        Self.sameBits(forward.variance.scalars, c.expected["var"]!, "var", c.name)
        Self.sameBits(forward.rstd.scalars, c.expected["rstd"]!, "rstd", c.name)
        if let mean = c.expected["mean"] { Self.sameBits(forward.mean!.scalars, mean, "mean", c.name) }
        let gradients = try Normalization.backward(forward: forward, gamma: Self.float(c.gamma, affine),
                                                   outputGradient: Self.float(c.dy, c.shape))
        Self.sameBits(gradients.dx.scalars, c.expected["dx"]!, "dx", c.name)
        Self.sameBits(gradients.dgamma!.scalars, c.expected["dgamma"]!, "dgamma", c.name)
        if let dbeta = c.expected["dbeta"] { Self.sameBits(gradients.dbeta!.scalars, dbeta, "dbeta", c.name) }
    }

    /// explain's trace repeats the kernel's steps: its σ² and rstd are the pass's own for the first set.
    @Test(arguments: cases.filter { $0.kind == "layernorm_shape" || $0.kind == "groupnorm" })
    func traceRepeatsTheKernel(_ c: Case) throws {
        let spec = try c.spec()
        let plan = try NormPlan(spec: spec, inputShape: Shape(c.shape))
        let members = plan.memberOffsets(ofStat: 0).map { c.x[$0] }
        let trace = PrecisionTrace(x: members, spec: spec, storage: c.storage)
        let rstd = trace.steps.last!.computed
        #expect(rstd == c.expected["rstd"]![0] || (rstd.isNaN && c.expected["rstd"]![0].isNaN), "\(c.name)")
        #expect(trace.normalized.count == members.count)
    }

    @Test func roundingMatchesNumPyAndMLDtypes() {
        let rounding = Self.fixture["rounding"] as! [String: Any]
        let wide = Self.doubles(rounding["float64"])!, narrow = Self.doubles(rounding["float32"])!
        let toHalf = rounding["float64_to_float16"] as! [Int]
        let narrowToHalf = rounding["float32_to_float16"] as! [Int]
        let narrowToBrain = rounding["float32_to_bfloat16"] as! [Int]
        for (format, inputs, bits) in [(DType.float16, wide, toHalf), (.float16, narrow, narrowToHalf),
                                       (.bfloat16, narrow, narrowToBrain)] {
            for (value, want) in zip(inputs, bits) {
                let rounded = Float(format.round(value))
                #expect(Int(format.bits16(of: rounded)) == want, "\(format) of \(value): got \(rounded)")
                #expect(format.value(bits16: UInt16(want)).bitPattern == rounded.bitPattern || rounded.isNaN)
            }
        }
    }

    /// `roundedOnBits` is `DType.round`, bit for bit, on Doubles: random bit patterns, values near each power of two
    /// with ties and near-ties at each format's last kept bit, subnormals and the edges of the range.
    @Test func bitRoundingIsTheScalarRounding() {
        var generator = SplitMix64(seed: 23)
        var values = (0..<200_000).map { _ in Double(bitPattern: generator.next()) }
        values += (0..<200_000).map { _ in Double(Float(bitPattern: UInt32(truncatingIfNeeded: generator.next()))) }
        for e in -140...130 {
            let base = Double(sign: .plus, exponent: e, significand: 1)
            for dropped in [42, 45] {  // float16's and bfloat16's last kept bit
                let tie = Double(bitPattern: base.bitPattern | (1 << (dropped - 1)))
                values += [base, -base, tie, tie.nextUp, tie.nextDown, Double(bitPattern: tie.bitPattern | (1 << dropped))]
            }
        }
        values += [65504, 65519.999, 65520, 65536, 0x1p-14, 0x1p-15 * 1.5, 0x1p-25, 0x1p-25.nextUp, 0x1p-24 * 2.5,
                   0x1p-126, 0x1p-134, 0x1p-133 * 1.5, 3.4e38, 3.3961e38, .greatestFiniteMagnitude,
                   .leastNonzeroMagnitude, .infinity, -.infinity, .nan, 0, -0.0]
        for format in [DType.float16, .bfloat16, .float32, .float64] {
            var wrong = 0
            for value in values {
                let got = format.roundedOnBits(value), want = format.round(value)
                if !(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN)) {
                    wrong += 1
                    if wrong <= 3 { Issue.record("\(format) of \(value): \(got), want \(want)") }
                }
            }
            #expect(wrong == 0, "\(format): \(wrong) of \(values.count) differ")
        }
    }

    /// The vectorised rounding of stored results is `DType.round`, bit for bit, on every class of float32: random bit
    /// patterns (normals, subnormals, NaN, ±∞), ties at each format's last bit, and the edges of float16's range.
    @Test func vectorRoundingIsTheScalarRounding() {
        var generator = SplitMix64(seed: 19)
        var values = (0..<200_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: generator.next())) }
        for e in -30...17 {
            for k in 0..<64 {
                let base = Float(sign: .plus, exponent: e, significand: 1 + Float(k) / 64)
                values += [base, base.nextUp, base.nextDown, -base]
                values += [Float(bitPattern: base.bitPattern | 0x1000), Float(bitPattern: base.bitPattern | 0x8000)]  // ties
            }
        }
        values += [65504, 65519.99, 65520, 65536, 6.1035156e-05, 6.097555e-05, 5.9604645e-08, 2.9802322e-08,
                   2.9802326e-08, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .infinity, -.infinity, .nan, 0, -0]
        for (format, portable) in [(DType.float16, false), (.float16, true), (.bfloat16, false)] {
            var rounded = values
            let counts = portable ? FormatRounding.roundHalfPortable(&rounded) : FormatRounding.round(&rounded, to: format, threads: 2)
            var overflowed = 0, nonFinite = 0
            for (value, got) in zip(values, rounded) {
                let want = Float(format.round(Double(value)))
                if want.isNaN {
                    #expect(got.isNaN, "\(format) of \(value)")
                } else {
                    #expect(got.bitPattern == want.bitPattern, "\(format) of \(value) (\(String(value.bitPattern, radix: 16))): \(got), want \(want)")
                }
                if !want.isFinite { nonFinite += 1; if value.isFinite { overflowed += 1 } }
            }
            #expect(counts.overflowed == overflowed && counts.nonFinite == nonFinite)
        }
    }

    @Test func formatFacts() {
        #expect(DType.float16.largestFinite == 65504)
        #expect(DType.float16.round(65519.99) == 65504 && DType.float16.round(65520) == .infinity)
        #expect(DType.float16.round(1e-12) == 0 && DType.float16.round(1e-5) == 1.0013580322265625e-05)
        #expect(DType.bfloat16.round(1.00390625) == 1 && DType.bfloat16.round(1.01171875) == 1.015625)  // ties to even
        #expect(DType.float16.machineEpsilon == 0.0009765625 && DType.bfloat16.machineEpsilon == 0.0078125)
        for format in DType.allCases { #expect(format.represents(format.largestFinite)) }
    }

    /// The breakages the issue names, each found and worded with the setting that avoids it.
    @Test func breakagesAreNamed() throws {
        let specials = Self.cases.filter { $0.name.hasPrefix("breakage") }
        #expect(specials.count == 3)
        var found: [String] = []
        for c in specials {
            let forward = try Normalization.forward(
                spec: try c.spec(), input: Self.float(c.x, c.shape), gamma: Self.float(c.gamma, [c.gamma.count]),
                beta: c.beta.map { Self.float($0, [c.gamma.count]) }, storage: c.storage)
            found += forward.warnings.map(\.description)
        }
        #expect(found.contains { $0.hasPrefix("overflow: x² went past float16's largest finite value 65504") && $0.contains("accumulate=float32") })
        #expect(found.contains { $0.hasPrefix("eps = 1e-12 is 0 in float16") })
        #expect(found.contains { $0.hasPrefix("cancellation:") && $0.contains("bfloat16") && $0.contains("method=twopass") })
        #expect(found.contains { $0.contains("values of y are NaN or ±∞ although the input is finite") })
    }

    /// Every kernel family stores the float32 pass's own results, rounded once: rounding set by set inside the row
    /// kernels and after the strided ones gives exactly `DType.round` of the float32 y and dx, on 1 and 2 threads.
    @Test func everyKernelStoresTheFloat32ResultRounded() throws {
        let specs: [(LayerSpec, [Int])] = [
            (try LayerSpec(kind: .groupnorm, groups: 4), [3, 8, 5, 7]),
            (try LayerSpec(kind: .groupnorm, groups: 4, preset: .pydllib), [3, 8, 5, 7]),
            (try LayerSpec(kind: .batchnorm), [3, 8, 5, 7]),
            (try LayerSpec(kind: .instancenorm), [3, 8, 5, 7]),
            (try LayerSpec(kind: .rmsnorm), [3, 8, 5, 7]),
            (try LayerSpec(kind: .layernorm, normalizedShape: [48]), [40, 48]),
        ]
        for (spec, dims) in specs {
            for format in [DType.float16, .bfloat16] {
                for threads in [1, 2] {
                    let shape = try Shape(dims)
                    let x = Tensor<Float>.randn(shape, seed: 5).rounded(toFormat: format)
                    let dy = Tensor<Float>.randn(shape, seed: 6).rounded(toFormat: format)
                    let wide = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: threads)
                    let narrow = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: threads,
                                                           storage: format)
                    #expect(narrow.output.scalars == wide.output.rounded(toFormat: format).scalars, "\(spec.kind) \(format) y")
                    let wideDx = try Normalization.backward(forward: wide, gamma: nil, outputGradient: dy, threads: threads).dx
                    let narrowDx = try Normalization.backward(forward: narrow, gamma: nil, outputGradient: dy, threads: threads).dx
                    #expect(narrowDx.scalars == wideDx.rounded(toFormat: format).scalars, "\(spec.kind) \(format) dx")
                }
            }
        }
    }

    /// Stored as float16 on the exact path, y is the exact y rounded once: within float16's unit roundoff.
    @Test func exactPathRoundsOnce() throws {
        let x = Tensor<Double>.randn(try Shape([4, 8, 5, 5]), seed: 3).rounded(toFormat: .float16)
        let spec = try LayerSpec(kind: .groupnorm, groups: 4)
        let exact = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil)
        let half = try Normalization.forward(spec: spec, input: x.converted(to: Float.self), gamma: nil, beta: nil,
                                             storage: .float16)
        #expect(half.storage == .float16)
        for (h, e) in zip(half.output.scalars, exact.output.scalars) {
            #expect(DType.float16.represents(Double(h)))
            #expect(abs(Double(h) - e) <= DType.float16.unitRoundoff * abs(e) + 1e-7)
        }
        #expect(half.warnings.isEmpty)
    }
}
