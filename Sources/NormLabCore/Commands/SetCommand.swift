import NormKit

/// `set KEY VALUE` and `set`: everything about a setting comes from its row in `Settings.table`.
struct SetSetting: Command, Equatable {
    static let help = CommandHelp(
        name: "set", usage: ["set KEY VALUE", "set"],
        summary: "change a setting, or list them all",
        details: {
            let heads = Settings.table.map { "  \($0.name) \($0.valueWords)" }
            let width = (heads.map(\.count).max() ?? 0) + 2
            return zip(heads, Settings.table).map { head, row in
                head + String(repeating: " ", count: width - head.count) + "\(row.meaning); default \(row.defaultWords)"
            }.joined(separator: "\n")
        }(),
        examples: ["set dtype float32", "set precision 6", "set"],
        completion: CompletionRule { request in
            switch request.position {
            case 1: request.matching(Settings.names)
            case 2: request.matching(Settings.setting(named: request.arguments[0])?.completions ?? [])
            default: .nothing
            }
        })

    /// Nil: list the settings and the fixed limits.
    let assignment: (key: Located<String>, value: Located<String>)?

    init(key: Located<String>, value: Located<String>) { assignment = (key, value) }
    init() { assignment = nil }

    static func == (a: SetSetting, b: SetSetting) -> Bool {
        a.assignment?.key == b.assignment?.key && a.assignment?.value == b.assignment?.value
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        guard !cursor.isAtEnd else { assignment = nil; return }
        let key = try cursor.keyword(Settings.names, "a setting")
        let value = try cursor.word("a value for \(key.text)")
        try cursor.finish()
        assignment = (Located(key.text, key.range), Located(value.text, value.range))
    }

    func run(in context: StatementContext) throws -> Report {
        guard let (key, value) = assignment else { return Self.list(context) }
        guard let setting = Settings.setting(named: key.value) else {
            throw context.error("unknown setting \(Escaping.quoted(key.value))", at: key.range)
        }
        var settings = context.settings
        guard setting.assign(value.value, to: &settings) else {
            throw context.error("\(key.value) must be \(setting.expected), got \(Escaping.quoted(value.value))", at: value.range)
        }
        context.session.settings = settings
        return Report([.text("\(key.value) = \(setting.value(in: settings))")])
    }

    static func list(_ context: StatementContext) -> Report {
        var table = TextTable(headers: ["setting", "value", "meaning"])
        for setting in Settings.table {
            var meaning = setting.meaning
            if setting.name == "color" && !context.interpreter.colorAllowed { meaning += "; not a colour terminal now" }
            table.rows.append([setting.name, setting.value(in: context.settings), meaning])
        }
        var limits = TextTable(headers: ["limit", "value", "what it bounds (fixed)"])
        limits.rows = [
            ["rank", String(Shape.maxRank), "dimensions of a tensor; a layer's input has at most \(NormPlan.maxSpatialDims) spatial ones"],
            ["literal depth", String(Shape.maxRank), "nesting of a [ … ] literal"],
            ["statement", String(Interpreter.maxStatementLength), "characters in one statement"],
            ["run depth", String(Interpreter.maxRunDepth), "`run` inside `run`"],
            ["time runs", String(Time.maxRuns), "runs=K of `time`"],
            ["gradcheck sample", String(Gradcheck.maxSample), "sample=K of `gradcheck`"],
            ["history", String(Interpreter.maxHistory), "statements `history` keeps"],
        ]
        return Report([.table(table), .table(limits)])
    }
}

extension Setting {
    /// "float32|float64", "on|off", "N": how `help set` writes the values.
    var valueWords: String { completions.isEmpty ? "N" : completions.joined(separator: "|") }
}
