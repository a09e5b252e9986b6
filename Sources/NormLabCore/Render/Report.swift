import NormKit

/// What a command shows, as values: handlers build it, renderers word it (`TerminalRenderer` for the terminal;
/// a handout renderer can read the same blocks without the handler changing).
public struct Report: Sendable {
    public var blocks: [Block] = []

    public init(_ blocks: [Block] = []) { self.blocks = blocks }

    public static let empty = Report()

    public mutating func add(_ block: Block) { blocks.append(block) }
    /// A line of prose, already worded (numbers formatted with the session's precision).
    public mutating func line(_ text: String) { blocks.append(.text(text)) }
    public mutating func append(_ other: Report) { blocks += other.blocks }
}

/// One piece of a command's output.
public enum Block: Sendable {
    /// A statement as typed, shown after a prompt in a transcript (`--echo`, and a handout's commands).
    case echo(String)
    /// A blank line or comment of a script being echoed: narrative, shown as it is.
    case narrative(String)
    /// A line of prose.
    case text(String)
    /// An indented line about one group, coloured by the group where colour is on.
    case groupLine(String, group: Int)
    /// Aligned `key  value` lines (a layer's conventions).
    case fields([(key: String, value: String)])
    case table(TextTable)
    /// A tensor's values, NumPy-style, under its headline.
    case tensor(TensorView)
    /// `explain`: a title, lines about the chosen set, numbered steps with their numbers, and checks.
    case derivation(Derivation)
    /// One histogram, or several side by side.
    case histograms([HistogramPicture])
    /// Which elements of (N, C, positions) share one set of statistics.
    case axes(AxesPicture)
    /// A gradient check's verdict for one gradient.
    case verdict(GradcheckVerdict)
    /// `diagnose`: a verdict per tensor, with its cause when one is found.
    case diagnosis(DiagnosisView)
    case warning(String, origin: Origin)
    case note(String)
    case error(Diagnostic, origin: Origin, trace: [Origin])
    /// Ctrl-C stopped a computation; on a terminal the ^C echo ends the line it was printing on.
    case interrupted(String, newlineFirst: Bool)

    /// Diagnostics go to standard error, results to standard output.
    public var channel: OutputChannel {
        switch self {
        case .warning, .note, .error, .interrupted: .error
        default: .standard
        }
    }
}

/// A named tensor to print in full or summarised (`show`).
public struct TensorView: Sendable {
    public let headline: String
    public let tensor: AnyTensor
}

/// `explain forward|backward`: the derivation for one statistics set.
public struct Derivation: Sendable {
    public enum Line: Sendable {
        /// `  text`
        case text(String)
        /// `  N. formula = value`, numbered in order.
        case step(formula: String, value: String)
        /// `  N. text`, a numbered step whose details follow on indented lines.
        case heading(String)
        /// `     text`, under a step.
        case detail(String)
    }

    public var title: String
    public var lines: [Line] = []

    public init(title: String) { self.title = title }

    public mutating func text(_ text: String) { lines.append(.text(text)) }
    public mutating func step(_ formula: String, _ value: String) { lines.append(.step(formula: formula, value: value)) }
    public mutating func heading(_ text: String) { lines.append(.heading(text)) }
    public mutating func detail(_ text: String) { lines.append(.detail(text)) }
}

/// A histogram's counts with the edges of its bins.
public struct HistogramPicture: Sendable {
    public let title: String
    public let total: Int
    public let nonFinite: Int
    /// Nil when there is no finite value.
    public let range: (low: Double, high: Double)?
    public let edges: [Double]
    public let counts: [Int]
}

/// The (N, C, positions) block with one statistics set marked, after Figure 2 of the Group Normalization paper.
public struct AxesPicture: Sendable {
    public let title: String
    /// "N × C × positions = 2 × 4 × 9", or with shape= "rows × normalised = 6 × 4".
    public let headline: String
    public let batch: Int, channels: Int, positions: Int
    /// "(3×3 flattened)" when there are several spatial dimensions.
    public let spatialNote: String
    /// Which samples, channels and positions are shown: at most 4, 16 and 24 of them, a window that always holds
    /// the chosen set.
    public let samples: [Int], channelIndices: [Int], positionIndices: [Int]
    /// "sample" and "c", or with shape= "row" and "d".
    public let sampleWord: String, channelWord: String
    /// marked[n][c][p] for the shown part (indices into `samples`, `channelIndices`, `positionIndices`).
    public let marked: [[[Bool]]]
    /// sets[n][c][p]: which statistics set each shown element belongs to (its index among the statistics), so a
    /// picture can colour every set.
    public let sets: [[[Int]]]
    public let memberCount: Int
    public let label: String
    public let setWords: String
    public let reducedOver: String
}

/// One gradient's result in `gradcheck`.
public struct GradcheckVerdict: Sendable {
    public let what: String
    public let passed: Bool
    public let summary: String
    public let notes: [String]
    /// The worst elements: index, analytic, numeric, abs err, rel err (formatted).
    public let worst: TextTable?
}
