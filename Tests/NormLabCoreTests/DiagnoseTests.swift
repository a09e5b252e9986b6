import Foundation
import NormKit
import Testing
@testable import NormLabCore

/// `diagnose` against hand-written NumPy passes, each with one real mistake or none
/// (scripts/make_diagnose_fixtures.py): every cause is named where it was made, and a correct pass — float64,
/// float32, float32 on x ≈ 1000 — is never accused.
@Suite struct DiagnoseTests {
    struct Case: Decodable, CustomStringConvertible {
        let name: String
        let kind: String
        let shape: [Int]
        let groups: Int
        let preset: String
        let dtype: String
        let expect: [String: String]
        let eps: Double?
        var description: String { name }
    }

    static let folder = Repository.fixtures.appendingPathComponent("diagnose")

    static let cases: [Case] = {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("cases.json")) else { return [] }
        return (try? JSONDecoder().decode([Case].self, from: data)) ?? []
    }()

    static func load(_ c: Case, _ name: String) throws -> AnyTensor {
        let data = try Data(contentsOf: folder.appendingPathComponent(c.name).appendingPathComponent(name + ".npy"))
        return try NPY.decode(data).tensor
    }

    @Test func thereAreCases() {
        #expect(Self.cases.count >= 60)
        let named = Set(Self.cases.flatMap { $0.expect.values }).subtracting(["", "follows", "differs"])
        // Every cause the fixtures make is one NormKit knows, and every cause NormKit knows is made by one.
        #expect(named == Set(DiagnosisCause.allCases.map(\.rawValue)), "\(named.symmetricDifference(DiagnosisCause.allCases.map(\.rawValue)))")
    }

    @Test(arguments: cases)
    func diagnosis(_ c: Case) throws {
        let kind = LayerKind(rawValue: c.kind)!
        var spec = try LayerSpec(kind: kind, groups: kind.takesGroupCount ? c.groups : nil, preset: Preset(rawValue: c.preset)!)
        if let eps = c.eps { spec.eps = eps }
        let x = try Self.load(c, "x")
        var user: [DiagnosisRole: [Double]] = [:]
        for role in DiagnosisRole.allCases { user[role] = try Self.load(c, role.rawValue).doubles }
        let float32 = Dictionary(uniqueKeysWithValues: DiagnosisRole.allCases.map { ($0, c.dtype == "float32") })
        let report = try Diagnosis.run(spec: spec, shape: x.shape, x: x.doubles, gamma: try Self.load(c, "gamma").doubles,
                                       beta: try Self.load(c, "beta").doubles, dy: try Self.load(c, "dy").doubles,
                                       user: user, float32: float32,
                                       formats: Dictionary(uniqueKeysWithValues: DiagnosisRole.allCases.map { ($0, DType(rawValue: c.dtype)!) }))
        #expect(report.findings.map(\.role) == DiagnosisRole.allCases)
        if ProcessInfo.processInfo.environment["NORMLAB_RATIOS"] != nil {
            for f in report.findings where f.verdict != .differs { print("RATIO \(c.name) \(f.role) \(f.worstRatio)") }
        }
        for finding in report.findings {
            let expected = c.expect[finding.role.rawValue] ?? ""
            let got = finding.cause?.rawValue ?? (finding.followsForward != nil ? "follows" : (finding.verdict == .differs ? "differs" : ""))
            #expect(got == expected, "\(c.name) \(finding.role): expected '\(expected)', got '\(got)' (\(finding.verdict), max |Δ| \(finding.maxAbsDifference), estimate \(finding.conditionedEstimate), fit \(String(describing: finding.termFit)))")
        }
    }
}

/// gradcheck on a float32 layer checks the float32 gradient the session holds, and says so.
@Suite struct Float32GradcheckTests {
    @Test func checksTheSessionsFloat32Gradient() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "set dtype float32", "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward", "backward", "gradcheck dx full")
        #expect(out.contains("dx (the engine's float32 backward): PASS"), "\(out)")
        // Its errors are float32's (about 1e-7), not a float64 recomputation's (about 1e-11).
        let line = out.split(separator: "\n").first { $0.hasPrefix("dx (") } ?? ""
        let error = Double(line.components(separatedBy: "max abs err ").last?.components(separatedBy: ",").first ?? "") ?? 0
        #expect(error > 1e-9 && error < 1e-5, "\(line)")
    }
}
