import Foundation
@testable import NormLabCore

enum Repository {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/NormLabCoreTests/Fixtures")
    static let sessions = root.appendingPathComponent("sessions")
}

/// An interpreter writing to a buffer, working in the repository root.
func makeInterpreter() -> (Interpreter, BufferSink) {
    let sink = BufferSink()
    let interpreter = Interpreter(sink: sink, workingDirectory: Repository.root.path)
    return (interpreter, sink)
}

/// Run lines; return (stdout, stderr).
@discardableResult
func run(_ interpreter: Interpreter, _ sink: BufferSink, _ lines: String...) -> (String, String) {
    let outBefore = sink.standard.count, errBefore = sink.error.count
    for line in lines { interpreter.execute(line) }
    return (String(sink.standard.dropFirst(outBefore)), String(sink.error.dropFirst(errBefore)))
}

/// The parse error for one statement, rendered as the user sees it.
func parseError(_ text: String) -> String? {
    let (interpreter, sink) = makeInterpreter()
    let ok = interpreter.execute(text)
    return ok ? nil : sink.error
}

/// Run a program to its end; its status and its standard output and error, interleaved.
func runProcess(_ executable: String, _ arguments: [String], in directory: URL? = nil) -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return (-1, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A fresh folder under the system's temporary directory; the caller removes it.
func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}
