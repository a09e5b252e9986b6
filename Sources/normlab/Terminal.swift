@preconcurrency import CReadline
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
import NormLabCore
import Synchronization

/// Set by SIGINT (Ctrl-C); read by the line editor's hook and by long computations. The handler only stores to
/// it: nothing else is safe in a signal handler.
let interruptRequested = Atomic<Bool>(false)

/// Set by SIGTERM or SIGHUP to the signal's number: the session ends at the next safe point (the computation
/// stops, the history is saved, no temporary file is left behind) and exits with 128 + the number.
let terminationSignal = Atomic<Int32>(0)

/// Set by SIGCONT (after Ctrl-Z and `fg`): the prompt and the line are drawn again.
let continued = Atomic<Bool>(false)

/// Set by SIGWINCH: readline learns the new width and redraws (its own handler would act only inside its getc,
/// which now runs only when a key is there).
let resized = Atomic<Bool>(false)

enum Signals {
    /// SIGTERM and SIGHUP end the session cleanly instead of killing it mid-write; SIGPIPE is ignored so that a
    /// closed pipe shows up as a write error, handled where output is written.
    static func installTermination() {
        for number in [SIGTERM, SIGHUP] {
            handle(number) { number in terminationSignal.store(number, ordering: .relaxed) }
        }
        handle(SIGPIPE, with: SIG_IGN)
    }

    /// sigaction(2) with no flags — no SA_RESTART: a blocked read returns EINTR, so readline's hook sees the flag.
    /// The handler's field is a union whose name differs between glibc and Darwin.
    static func handle(_ number: Int32, with handler: @convention(c) (Int32) -> Void) {
        var action = sigaction()
        #if canImport(Glibc)
        action.__sigaction_handler.sa_handler = handler
        #else
        action.__sigaction_u.__sa_handler = handler
        #endif
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(number, &action, nil)
    }

    /// SIGCONT only sets a flag; readline's hook redraws (readline does it itself only when it catches signals,
    /// which NormLab does not let it do, to own Ctrl-C).
    static func installContinue() {
        handle(SIGCONT) { _ in continued.store(true, ordering: .relaxed) }
        handle(SIGWINCH) { _ in resized.store(true, ordering: .relaxed) }
    }

    static var terminating: Bool { terminationSignal.load(ordering: .relaxed) != 0 }
}

/// The readline line editor: history, completion from the command table, Ctrl-C that abandons the line.
/// State readline's C callbacks need lives in globals, since C function pointers cannot capture.
enum Terminal {
    nonisolated(unsafe) static var tensorNames: [String] = []
    nonisolated(unsafe) static var candidates: [String] = []
    nonisolated(unsafe) static var abandonedLine = false
    nonisolated(unsafe) static var primaryPrompt = "normlab> "
    nonisolated(unsafe) static var terminated = false

    static func installInterruptHandler() {
        Signals.handle(SIGINT) { _ in interruptRequested.store(true, ordering: .relaxed) }
        // A parent may have started us with SIGINT blocked (the mask is inherited): Ctrl-C must still work.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }

    static func configureReadline() {
        rl_readline_name = UnsafePointer(strdup("normlab"))
        rl_catch_signals = 0
        rl_catch_sigwinch = 0  // SIGWINCH is NormLab's (Signals.installContinue), handled in the getc loop
        normlab_set_word_breaks(strdup(" \t=;"))
        rl_attempted_completion_function = { text, start, end in
            Terminal.complete(text: text, end: Int(end))
        }
        normlab_set_signal_event_hook {
            if Signals.terminating {
                // SIGTERM or SIGHUP at the prompt: end readline() so the session can save its history and exit.
                Terminal.terminated = true
                rl_done = 1
                return 0
            }
            if continued.exchange(false, ordering: .relaxed) {
                rl_reset_after_signal()
                rl_forced_update_display()
            }
            Terminal.abandonIfInterrupted()
            return 0
        }
        // readline's own getc retries a read that a signal interrupts, so it would sit in read() after SIGTERM or
        // SIGHUP; waiting in poll() first lets every signal be seen at once. Keys typed in the same burst as Ctrl-C
        // can also arrive before the hook runs: the check before every key makes what follows Ctrl-C a new line.
        rl_getc_function = { stream in
            while true {
                Terminal.abandonIfInterrupted()
                if continued.exchange(false, ordering: .relaxed) {
                    rl_reset_after_signal()
                    rl_forced_update_display()
                }
                if resized.exchange(false, ordering: .relaxed) { rl_resize_terminal() }
                if Signals.terminating {
                    Terminal.terminated = true
                    return -1  // EOF: readline returns, and the session ends
                }
                var ready = pollfd(fd: fileno(stream), events: Int16(POLLIN), revents: 0)
                let count = poll(&ready, 1, -1)
                if count < 0 && errno == EINTR { continue }
                return rl_getc(stream)
            }
        }
    }

    /// Ctrl-C at the prompt: drop the half-typed line (and any unfinished statement), fresh prompt.
    static func abandonIfInterrupted() {
        guard interruptRequested.exchange(false, ordering: .relaxed) else { return }
        abandonedLine = true
        fputs("^C\n", stdout)
        rl_replace_line("", 0)
        rl_set_prompt(primaryPrompt)
        rl_on_new_line()
        rl_redisplay()
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
        return RawBytes.decode(UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw)))
    }
}

/// Lines from readline, with the prompts, history and completion of an interactive session.
final class ReadlineLines: LineReader {
    let interpreter: Interpreter
    let continuationPrompt: String

    /// The statements typed in this session, for the history file.
    private(set) var sessionLines: [String] = []

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
        guard !Signals.terminating, let line = Terminal.readLine(prompt: continuing ? continuationPrompt : Terminal.primaryPrompt),
              !Terminal.terminated else {
            writeAll(STDOUT_FILENO, "\n")
            return nil
        }
        let trimmed = line.trimmed()
        if !trimmed.isEmpty {
            add_history(trimmed)
            sessionLines.append(trimmed)
        }
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
        Signals.installContinue()
        Terminal.configureReadline()
        var history = HistoryFile(environment: ProcessInfo.processInfo.environment)
        stifle_history(Int32(HistoryFile.limit))
        for line in history.load() { add_history(line) }
        interpreter.isCancelled = { interruptRequested.load(ordering: .relaxed) || Signals.terminating }
        let banner = "NormLab \(NormLabVersion.current) — `help` lists the commands; `help tour` the tutorials in sessions/"
        writeAll(STDOUT_FILENO, banner + "\n")
        if let problem = history.problem { writeAll(STDERR_FILENO, "warning: \(Escaping.removingMarks(problem))\n") }
        let reader = ReadlineLines(interpreter: interpreter, color: color)
        interpreter.run(reader, source: nil)
        if let warning = history.save(newLines: reader.sessionLines), history.problem == nil {
            writeAll(STDERR_FILENO, "warning: \(Escaping.removingMarks(warning))\n")
        }
    }
}
