import NormKit

/// Tab completion from the command table: command names, sub-words, option keys and values, setting names and
/// values, tensor names where a tensor is expected; file paths are left to the line editor.
public enum Completion {
    public struct Result: Equatable, Sendable {
        /// Whole words that replace the word being typed (after the last space, `=` or `;`).
        public var candidates: [String]
        /// The word is a file path: let the line editor complete file names.
        public var wantsPaths: Bool

        static let nothing = Result(candidates: [], wantsPaths: false)
        static let paths = Result(candidates: [], wantsPaths: true)
    }

    static let optionValues: [String: [String]] = [
        "preset": Preset.allCases.map(\.rawValue),
        "reduce": Reduce.allCases.map(\.rawValue),
        "affine": Affine.allCases.map(\.rawValue),
        "paramgrad": ParamGrad.allCases.map(\.rawValue),
        "variance": VarianceEstimator.allCases.map(\.rawValue),
    ]

    static let settingValues: [String: [String]] = [
        "dtype": DType.allCases.map(\.rawValue), "color": ["on", "off"], "unicode": ["on", "off"],
    ]

    /// Candidates for the word that ends `line` (the text before the cursor).
    public static func complete(_ line: String, tensorNames: [String]) -> Result {
        let statement = line.split(separator: ";", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let endsWithSpace = statement.last.map { $0 == " " || $0 == "\t" } ?? true
        var words = statement.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let current = endsWithSpace ? "" : (words.popLast() ?? "")
        func matching(_ options: [String]) -> Result {
            var seen = Set<String>()
            let found = options.filter { $0.hasPrefix(current) && seen.insert($0).inserted }
            return Result(candidates: found, wantsPaths: false)
        }

        guard let command = words.first else {
            return matching(CommandTable.allNames)
        }
        let position = words.count  // 1 = first argument
        let names = tensorNames

        // key=value: complete the value after '='.
        if let equals = current.firstIndex(of: "=") {
            let key = String(current[..<equals])
            let prefix = String(current[current.index(after: equals)...])
            let values = (command == "layer" ? optionValues[key] : nil) ?? []
            return Result(candidates: values.filter { $0.hasPrefix(prefix) }, wantsPaths: false)
        }

        switch command {
        case "layer":
            if position == 1 { return matching(LayerKind.allCases.map(\.rawValue)) }
            let used = Set(words.compactMap { $0.split(separator: "=").first.map(String.init) })
            return matching(LayerOption.Key.allCases.map(\.rawValue).filter { !used.contains($0) }.map { $0 + "=" })
        case "set":
            if position == 1 { return matching(Settings.keys) }
            if position == 2 { return matching(settingValues[words[1]] ?? []) }
            return .nothing
        case "help", "?":
            return position == 1 ? matching(CommandTable.allNames + HelpTopics.names + LayerKind.allCases.map(\.rawValue)) : .nothing
        case "tensor", "param":
            if let equals = words.firstIndex(of: "=") {
                let sources = ["randn", "rand", "zeros", "ones", "arange", "full"]
                return equals == words.count - 1 ? matching(sources + names) : .nothing
            }
            if command == "param" && position == 1 { return matching(["gamma", "beta"]) }
            return .nothing
        case "stats":
            if position == 1 { return matching(names) }
            if position == 2 { return matching(["by"]) }
            if position == 3 { return matching(StatsAxis.allCases.map(\.rawValue)) }
            return .nothing
        case "export":
            return position == 1 ? matching(ExportTarget.allCases.map(\.rawValue)) : (position == 2 ? .paths : .nothing)
        case "gradcheck":
            if words.last == "against" { return matching(names) }
            return matching(GradTarget.allCases.map(\.rawValue) + ["all", "against", "full", "eps=", "atol=", "rtol=", "sample=", "seed="])
        default:
            break
        }
        guard let spec = CommandTable.lookup(command) else { return .nothing }
        switch spec.argumentKind {
        case .none: return .nothing
        case .path: return position == 1 ? .paths : .nothing
        case .tensorThenPath:
            if position == 1 { return command == "load" ? .nothing : matching(names) }
            return position == 2 ? .paths : .nothing
        case .tensorName:
            return matching(spec.subwords + names)
        }
    }
}
