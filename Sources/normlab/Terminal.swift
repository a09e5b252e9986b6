@preconcurrency import CReadline
import Foundation
import NormLabCore
import Synchronization

/// Set by SIGINT (Ctrl-C); read by the line editor's hook and by long computations. The handler only stores to
/// it: nothing else is safe in a signal handler.
let interruptRequested = Atomic<Bool>(false)

/// The readline line editor: history, completion from the command table, Ctrl-C that abandons the line.
/// State readline's C callbacks need lives in globals, since C function pointers cannot capture.
enum Terminal {
    nonisolated(unsafe) static var tensorNames: [String] = []
    nonisolated(unsafe) static var candidates: [String] = []
    nonisolated(unsafe) static var abandonedLine = false
    nonisolated(unsafe) static var primaryPrompt = "normlab> "

    static func installInterruptHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptRequested.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: a blocked read returns EINTR, so readline runs its event hook
        sigaction(SIGINT, &action, nil)
        // A parent may have started us with SIGINT blocked (the mask is inherited): Ctrl-C must still work.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }

    static func configureReadline() {
        rl_readline_name = UnsafePointer(strdup("normlab"))
        rl_catch_signals = 0
        rl_catch_sigwinch = 1
        rl_completer_word_break_characters = UnsafePointer(strdup(" \t=;"))
        rl_attempted_completion_function = { text, start, end in
            Terminal.complete(text: text, end: Int(end))
        }
        rl_signal_event_hook = {
            if interruptRequested.exchange(false, ordering: .relaxed) {
                // Ctrl-C at the prompt: drop the half-typed line (and any unfinished statement), fresh prompt.
                Terminal.abandonedLine = true
                fputs("^C\n", stdout)
                rl_replace_line("", 0)
                rl_set_prompt(Terminal.primaryPrompt)
                rl_on_new_line()
                rl_redisplay()
            }
            return 0
        }
    }

    static func complete(text: UnsafePointer<CChar>?, end: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        let buffer = rl_line_buffer.map { String(cString: $0) } ?? ""
        let beforeCursor = String(decoding: Array(buffer.utf8.prefix(end)), as: UTF8.self)
        let result = Completion.complete(beforeCursor, tensorNames: tensorNames)
        if result.wantsPaths {
            rl_attempted_completion_over = 0
            return nil  // readline's own file-name completion
        }
        rl_attempted_completion_over = 1
        candidates = result.candidates
        // An option key ending in '=' is not a finished word: no space after it.
        rl_completion_append_character = candidates.count == 1 && candidates[0].hasSuffix("=") ? 0 : 32
        guard !candidates.isEmpty else { return nil }
        return rl_completion_matches(text) { _, state in
            let index = Int(state)
            guard index < Terminal.candidates.count else { return nil }
            return strdup(Terminal.candidates[index])
        }
    }

    /// One line from the editor, or nil at end of input (Ctrl-D on an empty line).
    static func readLine(prompt: String) -> String? {
        interruptRequested.store(false, ordering: .relaxed)
        guard let raw = readline(prompt) else { return nil }
        defer { free(raw) }
        return String(cString: raw)
    }
}

/// Where the history file lives: $NORMLAB_HISTORY, else $XDG_STATE_HOME/normlab/history, else
/// ~/.local/state/normlab/history.
struct HistoryFile {
    static let limit: Int32 = 2000
    let path: String

    init(environment: [String: String]) {
        if let explicit = environment["NORMLAB_HISTORY"], !explicit.isEmpty {
            path = explicit
        } else {
            let state = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/state")
            path = (state as NSString).appendingPathComponent("normlab/history")
        }
    }

    func load() {
        stifle_history(Self.limit)
        if FileManager.default.fileExists(atPath: path) { _ = read_history(path) }
    }

    /// Written to a temporary file and renamed, so an interrupted write never corrupts the history.
    /// Returns a warning when the location is not writable.
    func save() -> String? {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            return "cannot save the history in \(directory): \(error.localizedDescription)"
        }
        let temporary = path + ".tmp-\(getpid())"
        let status = write_history(temporary)
        guard status == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            return "cannot save the history to \(path): \(String(cString: strerror(status != 0 ? status : errno)))"
        }
        return nil
    }
}

/// Lines from readline, with the prompts, history and completion of an interactive session.
final class ReadlineLines: LineReader {
    let interpreter: Interpreter
    let continuationPrompt: String

    init(interpreter: Interpreter, color: Bool) {
        self.interpreter = interpreter
        // \u{1}…\u{2} tell readline the escape codes take no room on the line.
        let paint = { (text: String) in color ? "\u{1}\u{1B}[1;34m\u{2}" + text + "\u{1}\u{1B}[0m\u{2}" : text }
        Terminal.primaryPrompt = paint("normlab> ")
        continuationPrompt = paint("     ... ")
    }

    func nextLine(continuing: Bool) -> InputLine? {
        Terminal.tensorNames = interpreter.session.order
        Terminal.abandonedLine = false
        guard let line = Terminal.readLine(prompt: continuing ? continuationPrompt : Terminal.primaryPrompt) else {
            writeAll(STDOUT_FILENO, "\n")
            return nil
        }
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if !trimmed.isEmpty { add_history(trimmed) }
        // A Ctrl-C that comes while the line runs stops the computation, not the next prompt.
        interruptRequested.store(false, ordering: .relaxed)
        return InputLine(line, abandonsStatement: Terminal.abandonedLine)
    }
}

/// The interactive session on a terminal: the interpreter's read–eval loop over readline.
struct InteractiveShell {
    let interpreter: Interpreter
    let color: Bool

    func run() {
        Terminal.installInterruptHandler()
        Terminal.configureReadline()
        let history = HistoryFile(environment: ProcessInfo.processInfo.environment)
        history.load()
        interpreter.isCancelled = { interruptRequested.load(ordering: .relaxed) }
        let banner = "NormLab \(NormLabVersion.current) — `help` lists the commands; `help tour` the tutorials in sessions/"
        writeAll(STDOUT_FILENO, banner + "\n")
        interpreter.run(ReadlineLines(interpreter: interpreter, color: color), source: nil)
        if let warning = history.save() {
            writeAll(STDERR_FILENO, "warning: \(warning)\n")
        }
    }
}
