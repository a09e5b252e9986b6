import Foundation
import NormKit
import Testing

/// NormKit against the NumPy reference, in Float64 (1e-12 relative or 1e-14 absolute) and Float32 (1e-5).
@Suite struct ReferenceTests {
    static let float64Floor = 1e-2  // |a − e| ≤ 1e-12·max(|e|, 1e-2) = max(1e-12·|e|, 1e-14)
    static let float64Tolerance = 1e-12
    static let float32Tolerance = 1e-5

    @Test func thereAreEnoughCases() {
        #expect(ReferenceData.cases.count >= 12)
        #expect(Set(ReferenceData.cases.map(\.kind)) == Set(LayerKind.allCases))
        #expect(Set(ReferenceData.cases.map(\.preset)) == Set(Preset.allCases))
    }

    @Test(arguments: ReferenceData.cases)
    func float64(_ reference: ReferenceCase) throws {
        let errors = try Self.errors(reference, as: Double.self, floor: Self.float64Floor)
        Self.log(reference, errors, "float64")
        for (what, error) in errors {
            #expect(error <= Self.float64Tolerance, "\(reference.name) \(what): error \(error)")
        }
    }

    @Test(arguments: ReferenceData.cases)
    func float32(_ reference: ReferenceCase) throws {
        let errors = try Self.errors(reference, as: Float.self, floor: 1)
        Self.log(reference, errors, "float32")
        for (what, error) in errors {
            #expect(error <= Self.float32Tolerance, "\(reference.name) \(what): error \(error)")
        }
    }

    /// NORMLAB_REFERENCE_REPORT=1 prints every case's worst error (the figures quoted in closing notes).
    static func log(_ reference: ReferenceCase, _ errors: [String: Double], _ dtype: String) {
        guard ProcessInfo.processInfo.environment["NORMLAB_REFERENCE_REPORT"] != nil else { return }
        let worst = errors.max { $0.value < $1.value }!
        print("reference \(dtype) \(reference.name): max error \(worst.value) (\(worst.key)) over \(errors.count) outputs")
    }

    static func errors<S: NormScalar>(_ reference: ReferenceCase, as _: S.Type, floor: Double) throws -> [String: Double] {
        var layer = try NormLayer<S>(spec: reference.spec())
        if let gamma = reference.gamma { try layer.setGamma(gamma.converted()) }
        if let beta = reference.beta { try layer.setBeta(beta.converted()) }
        if let mean = reference.runningMean, let variance = reference.runningVariance {
            try layer.setRunningStatistics(mean: mean.converted(), variance: variance.converted())
        }
        layer.mode = reference.mode
        let forward = try layer.forward(reference.x.converted())
        let gradients = try layer.backward(reference.dy.converted())

        var actual: [String: Tensor<S>] = [
            "y": forward.output, "xhat": forward.normalized, "xc": forward.centered,
            "var": forward.variance, "rstd": forward.rstd, "dx": gradients.dx,
        ]
        actual["mean"] = forward.mean
        actual["dgamma"] = gradients.dgamma
        actual["dbeta"] = gradients.dbeta
        actual["running_mean_after"] = reference.mode == .train ? layer.runningMean : nil
        actual["running_var_after"] = reference.mode == .train ? layer.runningVariance : nil

        // dx is a difference of terms of size rstd·|dy·γ|, which cancel where a set's variance is small against eps
        // (pydllib's sets of 2 channels): there the absolute error any Float64 evaluation can reach scales with
        // rstd, so dx's absolute floor does too (the extended-precision reference shows Float64 NumPy at 1e-12).
        let largestRstd = reference.expected["rstd"]?.scalars.max() ?? 1
        var errors: [String: Double] = [:]
        for (name, expected) in reference.expected {
            let got = try #require(actual[name], "\(reference.name): NormKit produced no \(name)")
            errors[name] = maxError(got, expected, floor: name == "dx" ? floor * max(1, largestRstd) : floor)
        }
        #expect(Set(actual.keys) == Set(reference.expected.keys), "\(reference.name): outputs differ")
        return errors
    }
}
