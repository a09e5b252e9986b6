import NormKit

/// `diagnose [y=NAME] [dx=NAME] [dgamma=NAME] [dbeta=NAME]`: the user's results for the current layer, input,
/// γ, β and the dy of its last backward, judged against NormLab's pass, with the cause named when one
/// hypothesis reproduces them.
struct Diagnose: Command, Equatable {
    static let help = CommandHelp(
        name: "diagnose", usage: ["diagnose [y=NAME] [dx=NAME] [dgamma=NAME] [dbeta=NAME]"],
        summary: "judge your y, dx, dγ, dβ against NormLab's pass and name the mistake",
        details: """
        For the current layer and its last forward and backward (same input, γ, β and dy as yours): each of your
        tensors gets [match] (equal within your dtype's rounding), [rounding] (different, but only as much as
        rounding amplified by the data's offset explains: not a bug) or [differs] (where and how much). A cause is
        named only when that mistake, recomputed, reproduces your tensor; otherwise none is. y is judged first:
        when its cause is found, your gradients are judged against the backward of your forward. For dx, the fit
        of your dx on the three terms of the closed form (a correct dx is 1, 1, 1) is shown. The causes:
        \(DiagnosisWords.catalogue)
        """,
        examples: ["diagnose dx=my_dx", "diagnose y=their_y dx=their_dx dgamma=their_dgamma dbeta=their_dbeta"],
        completion: CompletionRule { request in
            if let (key, prefix) = request.option {
                guard DiagnosisRole(rawValue: key) != nil else { return .nothing }
                return Completion.Result(candidates: request.tensorNames.filter { $0.hasPrefix(prefix) }, wantsPaths: false)
            }
            let used = Set(request.arguments.compactMap { $0.split(separator: "=").first.map(String.init) })
            return request.matching(DiagnosisRole.allCases.map(\.rawValue).filter { !used.contains($0) }.map { $0 + "=" })
        })

    let tensors: [DiagnosisRole: Located<String>]

    init(tensors: [DiagnosisRole: Located<String>]) { self.tensors = tensors }

    init(parsing cursor: inout ArgumentCursor) throws {
        var tensors: [DiagnosisRole: Located<String>] = [:]
        for (key, value) in try cursor.options() {
            guard let role = DiagnosisRole(rawValue: key.text) else {
                throw cursor.error("unknown option \(cursor.describe(key)); options are y=, dx=, dgamma=, dbeta=", at: key)
            }
            guard tensors[role] == nil else { throw cursor.error("\(key.text) is given twice", at: key) }
            try ArgumentCursor.checkName(value, cursor: cursor)
            tensors[role] = Located(value.text, value.range)
        }
        guard !tensors.isEmpty else {
            throw cursor.error("name at least one of your tensors, e.g. diagnose dx=my_dx", at: nil)
        }
        self.tensors = tensors
    }

    func run(in context: StatementContext) throws -> Report {
        let record = try context.passRecord("diagnose needs the layer's pass to compare with: run forward (and backward, for the gradients) on the same input, γ and β as yours")
        guard record.mode == .train else {
            throw Diagnostic("diagnose checks training passes; this one ran in eval mode (`train`, then forward and backward)")
        }
        // NormLab's pass and each hypothesis, element by element in Float64.
        try context.reserve(elements: record.x.count, bytesEach: 8, copies: 24, for: "diagnose")
        let needsBackward = tensors.keys.contains { $0 != .y }
        if needsBackward && record.dy == nil {
            throw Diagnostic("diagnose needs a backward pass after the last forward for dx, dgamma and dbeta: run backward with your dy (`backward dy`)")
        }
        let shape = record.plan.inputShape
        var user: [DiagnosisRole: [Double]] = [:], float32: [DiagnosisRole: Bool] = [:], names: [DiagnosisRole: String] = [:]
        var formats: [DiagnosisRole: DType] = [:]
        for (role, name) in tensors {
            let tensor = try context.lookup(name)
            let expected = role == .y || role == .dx ? shape : record.plan.affineShape
            guard let expected else {
                throw context.error("the layer has affine=none: there is no \(role)", at: name.range)
            }
            guard tensor.shape == expected else {
                throw context.error("\(name.value) has shape \(tensor.shape), but the layer's \(role) has shape \(expected)", at: name.range)
            }
            user[role] = tensor.doubles
            float32[role] = tensor.dtype == .float32
            formats[role] = tensor.dtype
            names[role] = name.value
        }
        let report = try Diagnosis.run(spec: record.spec, shape: shape, x: record.x, gamma: record.gamma, beta: record.beta,
                                       dy: record.dy ?? [Double](repeating: 0, count: record.x.count), user: user, float32: float32,
                                       formats: formats)
        var view = DiagnosisView(
            title: LayerDescription.title(record.spec, mode: record.mode), names: names, report: report, spec: record.spec,
            batch: record.plan.batch, setSize: record.plan.setSize, forwardOnly: record.dy == nil)
        view.format = DiagnosisRole.allCases.lazy.compactMap { formats[$0] }.first ?? .float64
        return Report([.diagnosis(view)])
    }
}
