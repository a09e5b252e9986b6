import Foundation
import NormKit

/// The cases written by scripts/make_reference.py (NumPy, Float64; cross-checked there against PyTorch and the
/// seed layer's own code).
struct ReferenceCase: CustomStringConvertible, Sendable {
    let name: String
    let kind: LayerKind
    let groups: Int?
    let preset: Preset
    let overrides: [String: String]
    let mode: Mode
    let x: Tensor<Double>
    let gamma: Tensor<Double>?
    let beta: Tensor<Double>?
    let dy: Tensor<Double>
    let runningMean: Tensor<Double>?
    let runningVariance: Tensor<Double>?
    let expected: [String: Tensor<Double>]

    var description: String { name }

    /// The spec the case describes: the preset, then its overrides.
    func spec() throws -> LayerSpec {
        // BatchNorm's groups (its channels grouped, as `layer norm over=n,c,s groups=G` builds) are set after the
        // preset: `layer batchnorm` itself takes no number of groups.
        var spec = try LayerSpec(kind: kind, groups: kind == .batchnorm ? nil : groups, preset: preset)
        if kind == .batchnorm { spec.groups = groups }
        for (key, value) in overrides {
            switch key {
            case "affine": spec.affine = Affine(rawValue: value)!
            case "paramgrad": spec.paramGrad = ParamGrad(rawValue: value)!
            case "variance": spec.variance = VarianceEstimator(rawValue: value)!
            case "reduce": spec.reduce = Reduce(rawValue: value)!
            case "eps": spec.eps = Double(value)!
            default: fatalError("unknown override \(key)")
            }
        }
        return spec
    }
}

enum ReferenceData {
    static func load() -> [String: Any] {
        let url = Bundle.module.url(forResource: "cases", withExtension: "json", subdirectory: "Reference")!
        let data = try! Data(contentsOf: url)
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static let cases: [ReferenceCase] = (load()["cases"] as! [[String: Any]]).map(parseCase)
    static let generator: [String: String] = load()["generator"] as! [String: String]

    static func generatorValues(_ key: String) -> [Double] {
        generator[key]!.split(separator: " ").map { Double(String($0))! }
    }

    static func tensor(_ object: Any?) -> Tensor<Double>? {
        guard let object = object as? [String: Any] else { return nil }
        var dims = object["shape"] as! [Int]
        if dims.isEmpty { dims = [1] }
        let text = object["data"] as! String
        let values = text.split(separator: " ").map { Double(String($0))! }
        return try! Tensor(shape: Shape(dims), scalars: values)
    }

    static func parseCase(_ object: [String: Any]) -> ReferenceCase {
        let overrides = (object["overrides"] as? [String: Any] ?? [:]).mapValues { value -> String in
            if let number = value as? NSNumber, !(value is String) { return "\(number.doubleValue)" }
            return "\(value)"
        }
        let expected = (object["expected"] as! [String: Any]).mapValues { tensor($0)! }
        return ReferenceCase(
            name: object["name"] as! String,
            kind: LayerKind(rawValue: object["kind"] as! String)!,
            groups: object["groups"] as? Int,
            preset: Preset(rawValue: object["preset"] as! String)!,
            overrides: overrides,
            mode: Mode(rawValue: object["mode"] as! String)!,
            x: tensor(object["x"])!,
            gamma: tensor(object["gamma"]),
            beta: tensor(object["beta"]),
            dy: tensor(object["dy"])!,
            runningMean: tensor(object["running_mean"]),
            runningVariance: tensor(object["running_var"]),
            expected: expected)
    }
}

/// Largest error of `actual` against `expected`, measured as |a − e| / max(|e|, floor): relative for ordinary
/// values, absolute below `floor`.
func maxError<S: NormScalar>(_ actual: Tensor<S>, _ expected: Tensor<Double>, floor: Double) -> Double {
    precondition(actual.shape == expected.shape, "shape \(actual.shape) vs \(expected.shape)")
    var worst = 0.0
    for (a, e) in zip(actual.scalars, expected.scalars) {
        let err = abs(a.asDouble - e) / max(abs(e), floor)
        worst = max(worst, err.isNaN ? .infinity : err)
    }
    return worst
}
