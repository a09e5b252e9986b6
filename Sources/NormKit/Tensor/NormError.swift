/// Every failure NormKit reports. Nothing reachable from the public API traps: bad input becomes one of these,
/// with a message written for the person at the prompt (what was wrong, what was expected).
public struct NormError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of error: a bad argument, shapes that do not fit, a step out of order, or an interruption.
    public enum Code: String, Sendable {
        case invalidShape
        case tooManyElements
        case invalidArgument
        case shapeMismatch
        case invalidState
        case interrupted
    }

    /// The kind of error.
    public let code: Code
    /// What went wrong and what was expected, for a person.
    public let message: String

    /// An error of this kind with this message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func argument(_ message: String) -> NormError { NormError(.invalidArgument, message) }
    static func mismatch(_ message: String) -> NormError { NormError(.shapeMismatch, message) }
    static func state(_ message: String) -> NormError { NormError(.invalidState, message) }
}
