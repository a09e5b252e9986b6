import Foundation
@testable import NormKit
import Testing

/// LayerNorm and RMSNorm over the last dims (`LayerSpec(kind:normalizedShape:)`) against PyTorch's F.layer_norm
/// and F.rms_norm with autograd (scripts/make_shape_reference.py, which also checks them against its own NumPy
/// closed form). Float64 within 1e-12 relative; float32 within 1e-5 of PyTorch's float32 results.
struct ShapeCase: CustomStringConvertible, Sendable {
    let object: [String: any Sendable]
    var description: String { value("name") as! String }

    static let all: [ShapeCase] = {
        let url = Bundle.module.url(forResource: "shape_cases", withExtension: "json", subdirectory: "Reference")!
        let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (json["cases"] as! [[String: Any]]).map { ShapeCase(object: $0.mapValues { Box($0) }) }
    }()

    struct Box: @unchecked Sendable { let value: Any; init(_ value: Any) { self.value = value } }

    func value(_ key: String) -> Any? { (object[key] as? Box)?.value }
    func tensor<S: NormScalar>(_ key: String, _ object: Any? = nil) -> Tensor<S>? {
        ReferenceData.tensor(object ?? value(key)).map { $0.converted() }
    }
    var expected: [String: Any] { value("expected") as! [String: Any] }

    func spec() throws -> LayerSpec {
        var spec = try LayerSpec(kind: LayerKind(rawValue: value("kind") as! String)!,
                                 normalizedShape: value("normalized_shape") as! [Int])
        if let eps = value("eps") as? Double {
            spec.eps = eps
            spec.epsIsMachineEpsilon = false
        }
        if value("gamma") is NSNull || value("gamma") == nil { spec.affine = .none }
        return spec
    }
}

@Suite struct ShapeReferenceTests {
    func run<S: NormScalar>(_ c: ShapeCase, as _: S.Type, fast: Bool) throws -> [String: Tensor<S>] {
        let spec = try c.spec()
        let x: Tensor<S> = c.tensor("x")!, dy: Tensor<S> = c.tensor("dy")!
        let gamma: Tensor<S>? = c.tensor("gamma"), beta: Tensor<S>? = c.tensor("beta")
        let forward = try Normalization.computeForward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .train,
                                                       running: nil, threads: 2, allowFastPath: fast)
        let gradients = try Normalization.computeBackward(forward: forward, gamma: gamma, outputGradient: dy,
                                                          threads: 2, allowFastPath: fast)
        var out: [String: Tensor<S>] = ["y": forward.output, "dx": gradients.dx, "spread": forward.variance, "rstd": forward.rstd]
        if let mean = forward.mean { out["mean"] = mean }
        if let dg = gradients.dgamma { out["dgamma"] = dg }
        if let db = gradients.dbeta { out["dbeta"] = db }
        return out
    }

    @Test(arguments: ShapeCase.all)
    func agreesWithPyTorch(_ c: ShapeCase) throws {
        let float32 = c.value("dtype") as! String == "float32"
        for fast in [true, false] {
            let got: [String: Tensor<Double>] = float32
                ? try run(c, as: Float.self, fast: fast).mapValues { $0.converted() }
                : try run(c, as: Double.self, fast: fast)
            for (key, object) in c.expected {
                let want: Tensor<Double> = c.tensor(key, object)!
                guard let have = got[key] else { Issue.record("\(c): no \(key)"); continue }
                #expect(have.count == want.count, "\(c) \(key)")
                let worst = zip(have.scalars, want.scalars).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
                #expect(worst <= (float32 ? 1e-5 : 1e-12), "\(c) \(key) (fast path \(fast)): relative error \(worst)")
            }
            // Exactly the outputs PyTorch gives: no dbeta for RMSNorm, no parameters without affine.
            #expect((got["dgamma"] != nil) == (c.expected["dgamma"] != nil), "\(c)")
            #expect((got["dbeta"] != nil) == (c.expected["dbeta"] != nil), "\(c)")
        }
    }

    @Test func statisticsHaveTheLeadingShape() throws {
        let spec = try LayerSpec(kind: .layernorm, normalizedShape: [4])
        let plan = try NormPlan(spec: spec, inputShape: Shape([2, 3, 4]))
        let leading = try Shape([2, 3]), normalized = try Shape([4])
        #expect(plan.statsShape == leading && plan.setSize == 4 && plan.affineShape == normalized)
        #expect(throws: NormError.self) { try NormPlan(spec: spec, inputShape: Shape([2, 3, 5])) }
        #expect(throws: NormError.self) { try LayerSpec(kind: .groupnorm, normalizedShape: [4]) }
        var bad = spec
        bad.reduce = .channels
        #expect(throws: NormError.self) { try bad.validate() }
    }

    @Test func machineEpsilonFollowsTheElementType() throws {
        let spec = try LayerSpec(kind: .rmsnorm, normalizedShape: [3])
        #expect(spec.resolved(for: Float.self).eps == Double(Float.ulpOfOne))
        #expect(spec.resolved(for: Double.self).eps == Double.ulpOfOne)
        #expect(!spec.bias && spec.epsIsMachineEpsilon)
    }
}
