import ArgumentParser
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
import CMemoryTuning
import NormKitAVX2
import NormLabCore
import NormKit

/// The `normlab` command line: flags, where lines come from, and exit codes. All the work is NormLabCore's.
struct NormLabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normlab",
        abstract: "Explore normalisation layers: every statistic, every step of forward and backward.",
        discussion: """
        With no FILE and no -c, normlab reads commands: interactively on a terminal, silently from a pipe. A \
        terminal session first runs the startup file, $NORMLAB_INIT or $XDG_CONFIG_HOME/normlab/init.nl \
        (default ~/.config/normlab/init.nl), if there is one.
        Exit status: 0 when every command succeeded, 1 when one failed or output could not be written, 2 for bad \
        command-line flags, 141 when standard output was closed, 128 + N after signal N.
        Type `help` inside NormLab for the command language.
        """,
        version: NormLabVersion.current)

    @Argument(help: "Script files to run, in order.")
    var files: [String] = []

    @Option(name: .customShort("c"), help: ArgumentHelp("Run these commands (separate several with ';').", valueName: "commands"))
    var commands: String?

    @Flag(help: "In scripts, go on after an error (the exit status is still 1).")
    var keepGoing = false

    @Flag(help: "Print each command before its output, as a transcript.")
    var echo = false

    @Flag(help: "No colour, even on a terminal.")
    var noColor = false

    @Flag(name: [.customShort("i"), .long], help: "After the files and -c commands, go on reading commands (at the prompt, on a terminal).")
    var interactive = false

    @Flag(help: ArgumentHelp("Print the manual page (roff) and exit: normlab --man > normlab.1", visibility: .hidden))
    var man = false

    @Flag(help: "Do not run the startup file ($NORMLAB_INIT, else ~/.config/normlab/init.nl) before a terminal session.")
    var noInit = false

    @Option(help: "Digits after the point when printing (0–16).")
    var precision: Int?

    @Option(help: "Element type of new tensors: float32 or float64.")
    var dtype: String?

    func validate() throws {
        if let precision, !(0...16).contains(precision) {
            throw ValidationError("--precision must be from 0 to 16, got \(precision)")
        }
        if let dtype, DType(rawValue: dtype) == nil {
            throw ValidationError("--dtype must be float32, float64, float16 or bfloat16, got '\(dtype)'")
        }
    }
}

/// Unbuffered writes to the two file descriptors, so output and errors stay in the order they happened. Output
/// that cannot be written is not lost silently: a closed pipe (`normlab s.nl | head -1`) ends NormLab quietly
/// with status 141, as a shell reports any process a closed pipe stops; any other failure (a full device) is
/// reported on standard error and ends it with status 1.
final class StandardSink: OutputSink {
    func write(_ text: String, to channel: OutputChannel) {
        let fd = channel == .standard ? STDOUT_FILENO : STDERR_FILENO
        let error = writeAll(fd, text)
        guard error != 0, channel == .standard else { return }
        if error == EPIPE { exit(141) }
        _ = writeAll(STDERR_FILENO, "normlab: cannot write to standard output: \(String(cString: strerror(error)))\n")
        exit(1)
    }
}

/// write(2) (a bare `write` here would mean the method of the same name in scope).
func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, bytes, count)
    #else
    return Darwin.write(fd, bytes, count)
    #endif
}

/// Write all of `text`; 0, or the errno of the write that failed.
@discardableResult
func writeAll(_ fd: Int32, _ text: String) -> Int32 {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { systemWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
        if written <= 0 {
            if written < 0 && errno == EINTR { continue }
            return written < 0 ? errno : EIO
        }
        offset += written
    }
    bytes.removeAll()
    return 0
}

func main() -> Int32 {
    normlab_keep_large_blocks()
    NormKitAVX2.install()
    let command: NormLabCommand
    do {
        command = try NormLabCommand.parse(Array(CommandLine.arguments.dropFirst()))
    } catch {
        let code = NormLabCommand.exitCode(for: error)
        if code == .success {
            writeAll(STDOUT_FILENO, NormLabCommand.fullMessage(for: error) + "\n")
            return 0
        }
        writeAll(STDERR_FILENO, NormLabCommand.fullMessage(for: error) + "\n")
        return 2
    }

    if command.man {
        writeAll(STDOUT_FILENO, ManPage.render(usage: NormLabCommand.helpMessage(columns: 100)))
        return 0
    }
    let environment = ProcessInfo.processInfo.environment
    let stdinIsTerminal = isatty(STDIN_FILENO) == 1
    let stdoutIsTerminal = isatty(STDOUT_FILENO) == 1
    let colorWanted = !command.noColor && (environment["NO_COLOR"] ?? "").isEmpty && environment["TERM"] != "dumb"
    let colorAllowed = stdoutIsTerminal && colorWanted

    Signals.installTermination()
    let interpreter = Interpreter(sink: StandardSink())
    // A handout being recorded is written however the session ends (input ended, `quit`, SIGTERM, an error).
    defer { interpreter.finishRecording() }
    interpreter.isCancelled = { Signals.terminating }
    interpreter.shouldStop = { Signals.terminating }
    interpreter.colorAllowed = colorAllowed
    interpreter.errorColorAllowed = isatty(STDERR_FILENO) == 1 && colorWanted
    interpreter.session.settings.color = colorAllowed || interpreter.errorColorAllowed
    interpreter.keepGoing = command.keepGoing
    interpreter.echo = command.echo
    // μ, σ², x̂ and block characters need a UTF-8 locale; elsewhere they are spelled in ASCII.
    let locale = environment["LC_ALL"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["LC_CTYPE"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["LANG"] ?? ""
    let lowered = locale.lowercased()
    interpreter.session.settings.unicode = lowered.contains("utf-8") || lowered.contains("utf8")
    // The flags set the session directly, through the settings table (validate() checked their values).
    for (name, value) in [("dtype", command.dtype), ("precision", command.precision.map(String.init))] {
        if let value, let setting = Settings.setting(named: name) {
            _ = setting.assign(value, to: &interpreter.session.settings)
        }
    }

    let scripted = command.commands != nil || !command.files.isEmpty
    // The startup file belongs to terminal sessions: scripts and pipes stay reproducible.
    if stdinIsTerminal && (!scripted || command.interactive) && !command.noInit, let startup = StartupFile.path(environment) {
        if let data = FileManager.default.contents(atPath: startup) {
            interpreter.runScript(RawBytes.decode(data), source: startup)
        } else {
            writeAll(STDERR_FILENO, "warning: cannot read the startup file \(startup) (NORMLAB_INIT)\n")
        }
    }
    var failed = false
    // With -i an error does not end the run: the prompt follows, as after an error typed at it.
    let stopOnError = !command.keepGoing && !command.interactive
    if let commands = command.commands {
        failed = !interpreter.runScript(commands, source: "-c") || failed
        if failed && stopOnError { return 1 }
    }
    for file in command.files {
        if interpreter.quitRequested { break }
        guard let data = FileManager.default.contents(atPath: file) else {
            writeAll(STDERR_FILENO, "normlab: cannot read \(file)\n")
            failed = true
            if stopOnError { return 1 } else { continue }
        }
        if !interpreter.runScript(RawBytes.decode(data), source: file) {
            failed = true
            if stopOnError { return 1 }
        }
    }
    if scripted && (!command.interactive || interpreter.quitRequested) {
        return terminationStatus() ?? (failed ? 1 : 0)
    }
    if stdinIsTerminal {
        InteractiveShell(interpreter: interpreter, color: colorAllowed).run()
        return terminationStatus() ?? 0
    }
    // Commands from a pipe or a redirected file: no prompts, errors as `<stdin>:LINE:`.
    let succeeded = interpreter.run(StandardInputLines(), source: "<stdin>")
    return terminationStatus() ?? (succeeded ? 0 : 1)
}

/// $NORMLAB_INIT, else $XDG_CONFIG_HOME/normlab/init.nl, else ~/.config/normlab/init.nl; nil when none is there
/// (NORMLAB_INIT set to an empty string turns it off).
enum StartupFile {
    static func path(_ environment: [String: String]) -> String? {
        if let explicit = environment["NORMLAB_INIT"] { return explicit.isEmpty ? nil : explicit }
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? PathText.appending(".config", to: PathText.home())
        let path = PathText.appending("normlab/init.nl", to: config)
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// 128 + the signal's number after SIGTERM or SIGHUP, as a shell reports a process the signal ended.
func terminationStatus() -> Int32? {
    let signal = terminationSignal.load(ordering: .relaxed)
    return signal == 0 ? nil : 128 + signal
}

/// Lines from a pipe or a redirected file, as bytes (a file name that is not UTF-8 stays as it is: `RawBytes`);
/// LF, CRLF or CR ends; a leading byte-order mark is dropped.
final class StandardInputLines: LineReader {
    private var buffer: [UInt8] = []
    private var start = 0
    private var ended = false
    private var first = true

    func nextLine(continuing: Bool) -> InputLine? {
        while true {
            if let end = buffer[start...].firstIndex(where: { $0 == 10 || $0 == 13 }) {
                // A CR at the end of the buffer may be the first half of CRLF: read on before deciding.
                if buffer[end] == 13 && end + 1 == buffer.count && !ended { if fill() { continue } }
                var line = Array(buffer[start..<end])
                start = end + 1
                if buffer[end] == 13 && start < buffer.count && buffer[start] == 10 { start += 1 }
                if first && line.starts(with: [0xEF, 0xBB, 0xBF]) { line.removeFirst(3) }
                first = false
                return InputLine(RawBytes.decode(line))
            }
            if !fill() {
                guard start < buffer.count else { return nil }
                var line = Array(buffer[start...])
                start = buffer.count
                if first && line.starts(with: [0xEF, 0xBB, 0xBF]) { line.removeFirst(3) }
                first = false
                return InputLine(RawBytes.decode(line))
            }
        }
    }

    /// Read more; false at the end of the input.
    private func fill() -> Bool {
        if start > 1 << 16 { buffer.removeFirst(start); start = 0 }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { if Signals.terminating { ended = true; return false }; continue }
            guard count > 0 else { ended = true; return false }
            buffer += chunk[0..<count]
            return true
        }
    }
}

exit(main())
