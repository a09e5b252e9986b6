#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

/// Every setting `set` can change. Each stored property has one row in `Settings.table`, which `set`, `help
/// set`, tab completion, the `--dtype`/`--precision` flags and README's settings table all read
/// (`SettingsTableTests` fails when a property has no row).
public struct Settings: Equatable, Sendable {
    public var dtype: DType = .float64
    public var precision = 4
    public var color = false
    public var threshold = 1000
    public var maxElements = Shape.defaultMaxElements
    /// Off: math symbols and block characters are spelled in ASCII (automatic when the locale is not UTF-8).
    public var unicode = true
    /// Threads for forward and backward; the results are the same bits for any number.
    public var threads = Settings.processors

    public init() {}

    /// Asked once: ProcessInfo reads the cgroup files on every call, and every session makes a Settings.
    static let processors = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// The settings, in the order `set` lists them.
    public static let table: [Setting] = [
        Setting("dtype", \.dtype, meaning: "element type of new tensors (float32|float64|float16|bfloat16)",
                choices: DType.allCases.map { ($0.rawValue, $0) }),
        Setting("precision", \.precision, meaning: "digits after the point when printing (0–16)", range: 0...16),
        Setting("color", \.color, meaning: "colour on a terminal (on|off)"),
        Setting("threshold", \.threshold, meaning: "tensors with more elements print summarised", range: 1...Int.max),
        // 2^28 float64 elements are 2 GiB; a forward pass holds about four tensors of its input's size.
        Setting("maxelems", \.maxElements, meaning: "the largest tensor allowed, in elements",
                range: 1...(Shape.defaultMaxElements * 2)),
        Setting("unicode", \.unicode, meaning: "μ σ² x̂ γ β Σ ∂ and block characters (on|off; off spells them in ASCII)"),
        Setting("threads", \.threads, meaning: "threads for forward and backward (the same bits for any number)", range: 1...256,
                defaultWords: "the number of cores"),
    ]

    public static var names: [String] { table.map(\.name) }

    public static func setting(named name: String) -> Setting? { table.first { $0.name == name } }
}

/// One row of the settings table: its name, what it means, which values it takes, and where it lives in
/// `Settings`. Reading and writing go through the key path, so there is no switch to forget a case in.
public struct Setting: Sendable {
    public let name: String
    public let meaning: String
    /// "float32 or float64", "a whole number from 0 to 16": what an error says was expected.
    public let expected: String
    /// The default, as `help set` and README word it.
    public let defaultWords: String
    /// Values to offer for tab completion (empty for numbers).
    public let completions: [String]
    let read: @Sendable (Settings) -> String
    let write: @Sendable (inout Settings, String) -> Bool

    /// A setting with named values.
    init<Value: Equatable & Sendable>(_ name: String, _ path: WritableKeyPath<Settings, Value> & Sendable,
                                      meaning: String, choices: [(String, Value)]) {
        self.name = name
        defaultWords = choices.first { $0.1 == Settings()[keyPath: path] }?.0 ?? ""
        self.meaning = meaning
        let words = choices.map(\.0)
        expected = words.count == 2 ? "\(words[0]) or \(words[1])" : words.joined(separator: ", ")
        completions = words
        read = { settings in choices.first { $0.1 == settings[keyPath: path] }?.0 ?? "" }
        write = { settings, text in
            guard let value = choices.first(where: { $0.0 == text })?.1 else { return false }
            settings[keyPath: path] = value
            return true
        }
    }

    /// An on/off setting.
    init(_ name: String, _ path: WritableKeyPath<Settings, Bool> & Sendable, meaning: String) {
        self.init(name, path, meaning: meaning, choices: [("on", true), ("off", false)])
    }

    /// A whole-number setting within `range`.
    init(_ name: String, _ path: WritableKeyPath<Settings, Int> & Sendable, meaning: String, range: ClosedRange<Int>,
         defaultWords: String? = nil) {
        self.name = name
        self.defaultWords = defaultWords ?? String(Settings()[keyPath: path])
        self.meaning = meaning
        expected = range.upperBound == Int.max ? "a whole number ≥ \(range.lowerBound)"
            : "a whole number from \(range.lowerBound) to \(range.upperBound)"
        completions = []
        read = { String($0[keyPath: path]) }
        write = { settings, text in
            guard let n = Int(text), range.contains(n) else { return false }
            settings[keyPath: path] = n
            return true
        }
    }

    public func value(in settings: Settings) -> String { read(settings) }

    /// Set the value from its text; false (and nothing changed) when the text is not one this setting takes.
    public func assign(_ text: String, to settings: inout Settings) -> Bool { write(&settings, text) }
}
