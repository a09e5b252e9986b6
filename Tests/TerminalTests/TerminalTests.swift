import Foundation
import Testing

/// The release `normlab` on a real terminal: tmux types keys and reads the screen, as a person would.
/// `.ci/run` installs tmux; the binary is built once, in release mode, in a scratch folder of its own.
@Suite(.serialized) struct TerminalTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Built once for the whole suite; nil with the build's output when it fails.
    static let release: Result<URL, BuildFailure> = {
        let scratch = root.appendingPathComponent(".build-terminal-tests")
        let (status, output) = Shell.run("/usr/bin/env", ["swift", "build", "-c", "release", "--product", "normlab",
                                                          "--scratch-path", scratch.path], in: root)
        guard status == 0 else { return .failure(BuildFailure(output: output)) }
        let (_, binPath) = Shell.run("/usr/bin/env", ["swift", "build", "-c", "release", "--scratch-path", scratch.path, "--show-bin-path"], in: root)
        return .success(URL(fileURLWithPath: binPath.trimmingCharacters(in: .whitespacesAndNewlines)).appendingPathComponent("normlab"))
    }()

    struct BuildFailure: Error, CustomStringConvertible {
        let output: String
        var description: String { "swift build -c release failed:\n\(output)" }
    }

    func start(history: String? = nil, environment: [String: String] = [:], arguments: [String] = []) throws -> Tmux {
        #expect(Shell.run("/usr/bin/env", ["which", "tmux"], in: Self.root).0 == 0, "tmux is not installed (.ci/run installs it)")
        let binary = try Self.release.get()
        let historyPath = history ?? FileManager.default.temporaryDirectory.appendingPathComponent("normlab-history-\(UUID().uuidString)").path
        var env = ["NORMLAB_HISTORY": historyPath, "TERM": "xterm-256color", "NORMLAB_INIT": ""]
        env.merge(environment) { $1 }
        let tmux = try Tmux(command: binary.path, arguments: arguments, environment: env, directory: Self.root)
        try #require(tmux.waitFor { $0.contains("normlab> ") } != nil, "no prompt:\n\(tmux.screen())")
        return tmux
    }

    @Test func typingACommandShowsItsOutput() throws {
        let t = try start()
        defer { t.close() }
        t.type("tensor x = arange 2 3")
        t.keys("Enter")
        t.type("show x")
        t.keys("Enter")
        let screen = try #require(t.waitFor { $0.contains("[3., 4., 5.]]") }, "\(t.screen())")
        #expect(screen.contains("normlab> show x\nx: (2, 3) float64\n[[0., 1., 2.],\n [3., 4., 5.]]"))
    }

    @Test func tabCompletesCommandsSubwordsAndTensorNames() throws {
        let t = try start()
        defer { t.close() }
        t.type("layer gro")
        t.keys("Tab")
        #expect(t.waitFor { $0.hasSuffix("normlab> layer groupnorm") } != nil, "\(t.screen())")
        // The completion ended the word with a space: typing goes on after it.
        t.type("2 pre")
        t.keys("Tab")
        #expect(t.waitFor { $0.contains("normlab> layer groupnorm 2 preset=") } != nil, "\(t.screen())")
        t.type("py")
        t.keys("Tab")
        #expect(t.waitFor { $0.hasSuffix("normlab> layer groupnorm 2 preset=pydllib") } != nil, "\(t.screen())")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("GroupNorm, G = 2, preset=pydllib") } != nil, "\(t.screen())")
        t.type("tensor activations = ones 2 4")
        t.keys("Enter")
        t.type("show act")
        t.keys("Tab")
        #expect(t.waitFor { $0.hasSuffix("normlab> show activations") } != nil, "\(t.screen())")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("activations: (2, 4) float64\n[[1., 1., 1., 1.],") } != nil, "\(t.screen())")
    }

    @Test func upRecallsTheLastLineAndHistorySurvivesARestart() throws {
        let history = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-history-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: history) }
        do {
            let t = try start(history: history)
            defer { t.close() }
            t.type("tensor remembered = ones 3")
            t.keys("Enter")
            _ = t.waitFor { $0.contains("remembered: (3) float64") }
            t.keys("Up")
            #expect(t.waitFor { $0.hasSuffix("normlab> tensor remembered = ones 3") } != nil, "\(t.screen())")
            t.keys("C-u")
            t.keys("C-d")
            #expect(t.waitFor { $0.contains("EXIT=0") } != nil, "\(t.screen())")
        }
        let contents = try String(contentsOfFile: history, encoding: .utf8)
        #expect(contents.contains("tensor remembered = ones 3"))
        let again = try start(history: history)
        defer { again.close() }
        again.keys("Up")
        #expect(again.waitFor { $0.hasSuffix("normlab> tensor remembered = ones 3") } != nil, "\(again.screen())")
    }

    @Test func ctrlCAbandonsAHalfTypedLine() throws {
        let t = try start()
        defer { t.close() }
        t.type("tensor half = [1, 2")
        // As a person would: Ctrl-C once the text is on the screen. (Sent at once, it can reach the terminal before
        // the program has read the text, and the terminal then discards the unread input with the interrupt.)
        #expect(t.waitFor { $0.hasSuffix("normlab> tensor half = [1, 2") } != nil, "\(t.screen())")
        t.keys("C-c")
        #expect(t.waitFor { $0.contains("normlab> tensor half = [1, 2^C\nnormlab> ") } != nil, "\(t.screen())")
        t.type("tensors")
        t.keys("Enter")
        let screen = try #require(t.waitFor { $0.contains("no tensors yet") }, "\(t.screen())")
        #expect(!screen.contains("half:"))
        // A statement continued over lines is abandoned too.
        t.type("tensor y = [1,")
        t.keys("Enter")
        #expect(t.waitFor { $0.hasSuffix("     ... ") } != nil, "\(t.screen())")
        t.keys("C-c")
        #expect(t.waitFor { $0.hasSuffix("     ... ^C\nnormlab> ") } != nil, "\(t.screen())")
        t.type("tensor z = ones 1")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("z: (1) float64") } != nil, "\(t.screen())")
    }

    @Test func ctrlCInterruptsALongCommand() throws {
        let t = try start()
        defer { t.close() }
        t.type("tensor x = randn 4 64 16 16; layer groupnorm 8; forward")
        t.keys("Enter")
        _ = t.waitFor { $0.contains("made: y mean var rstd xhat xc") }
        t.type("gradcheck dx full")
        t.keys("Enter")
        Thread.sleep(forTimeInterval: 1.5)
        t.keys("C-c")
        let screen = try #require(t.waitFor { $0.contains("interrupted: gradcheck stopped after") }, "\(t.screen())")
        #expect(screen.contains("of 65536 elements; the session is as it was before"))
        t.type("stats rstd")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("stats of rstd (4, 8)") } != nil, "\(t.screen())")
    }

    /// Ctrl-C during `check` ends the Python child (a module that never returns) and the prompt comes back.
    @Test func ctrlCEndsTheChildOfCheck() throws {
        guard Shell.run("/usr/bin/env", ["python3", "-c", "import numpy"], in: Self.root).0 == 0 else {
            print("TerminalTests: python3 with NumPy is not available; skipped Ctrl-C during check")
            return
        }
        // A copy under a name of its own: CheckTests, running alongside, starts never_returns.py too.
        let module = FileManager.default.temporaryDirectory.appendingPathComponent("never_returns_\(UUID().uuidString.prefix(8)).py")
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("Tests/NormLabCoreTests/Fixtures/check/never_returns.py"),
                                         to: module)
        defer { try? FileManager.default.removeItem(at: module) }
        let t = try start()
        defer { t.close() }
        t.type("layer groupnorm 2; check \(module.path) timeout=600")
        t.keys("Enter")
        _ = t.waitFor { $0.contains("40 cases (seed 0)") }
        Thread.sleep(forTimeInterval: 1.0)
        t.keys("C-c")
        let screen = try #require(t.waitFor { $0.contains("interrupted: check stopped") }, "\(t.screen())")
        #expect(screen.replacingOccurrences(of: "\n", with: "").contains("the Python process was ended"))
        // No python3 is left running the module.
        let (_, processes) = Shell.run("/usr/bin/env", ["ps", "-eo", "args"], in: Self.root)
        #expect(!processes.contains(module.lastPathComponent), "\(processes)")
        t.type("tensor z = ones 2")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("z: (2) float64") } != nil, "\(t.screen())")
    }

    @Test func ctrlDExitsWithStatusZero() throws {
        let t = try start()
        defer { t.close() }
        t.keys("C-d")
        #expect(t.waitFor { $0.contains("EXIT=0") } != nil, "\(t.screen())")
    }

    /// Ctrl-C and the next keys in one burst: what follows Ctrl-C starts a new line.
    @Test func ctrlCInABurstAbandonsTheLine() throws {
        let t = try start()
        defer { t.close() }
        t.type("tensor q = randn 3")
        t.keys("C-c", " 4", "Enter")
        #expect(t.waitFor { $0.contains("unknown command '4'") } != nil, "\(t.screen())")
        t.type("tensors")
        t.keys("Enter")
        let screen = try #require(t.waitFor { $0.contains("no tensors yet") }, "\(t.screen())")
        #expect(!screen.contains("q: (3, 4)"))
    }

    @Test func ctrlDOnAContinuationLineSaysWhatIsNotRun() throws {
        let t = try start()
        defer { t.close() }
        t.type("tensor y = [1,")
        t.keys("Enter")
        #expect(t.waitFor { $0.hasSuffix("     ... ") } != nil, "\(t.screen())")
        t.keys("C-d")
        let screen = try #require(t.waitFor { $0.contains("EXIT=0") }, "\(t.screen())")
        #expect(screen.contains("note: the unfinished statement (a '[' is still open) was not run"))
    }

    /// SIGTERM (and SIGHUP) end the session cleanly: the history is saved, the status is 128 + 15.
    @Test func sigtermSavesTheHistory() throws {
        let history = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-history-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: history) }
        let t = try start(history: history)
        defer { t.close() }
        t.type("tensor kept = ones 1")
        t.keys("Enter")
        _ = t.waitFor { $0.contains("kept: (1) float64") }
        t.signalProgram("TERM")
        #expect(t.waitFor { $0.contains("EXIT=143") } != nil, "\(t.screen())")
        #expect((try? String(contentsOfFile: history, encoding: .utf8))?.contains("tensor kept = ones 1") == true)
    }

    /// NORMLAB_HISTORY=/dev/null turns history off: the device is never replaced.
    @Test func devNullHistoryIsLeftAlone() throws {
        let t = try start(history: "/dev/null")
        defer { t.close() }
        t.type("tensor a = ones 1")
        t.keys("Enter")
        _ = t.waitFor { $0.contains("a: (1) float64") }
        t.keys("C-d")
        let screen = try #require(t.waitFor { $0.contains("EXIT=0") }, "\(t.screen())")
        #expect(!screen.contains("warning"))
        var info = stat()
        #expect(stat("/dev/null", &info) == 0 && info.st_mode & S_IFMT == S_IFCHR)
    }

    /// Two sessions sharing a history file: the second to quit keeps the first one's lines.
    @Test func sessionsSharingAHistoryFileKeepBothLines() throws {
        let history = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-history-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: history) }
        let first = try start(history: history)
        defer { first.close() }
        let second = try start(history: history)
        defer { second.close() }
        first.type("tensor from_first = ones 1")
        first.keys("Enter")
        second.type("tensor from_second = ones 1")
        second.keys("Enter")
        _ = first.waitFor { $0.contains("from_first: (1)") }
        _ = second.waitFor { $0.contains("from_second: (1)") }
        first.keys("C-d")
        _ = first.waitFor { $0.contains("EXIT=0") }
        second.keys("C-d")
        _ = second.waitFor { $0.contains("EXIT=0") }
        let contents = (try? String(contentsOfFile: history, encoding: .utf8)) ?? ""
        #expect(contents.contains("tensor from_first = ones 1") && contents.contains("tensor from_second = ones 1"), "\(contents)")
    }

    /// A terminal session runs the startup file first; `-i` goes on at the prompt after a script.
    @Test func startupFileAndInteractiveAfterAScript() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-init-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let startup = directory.appendingPathComponent("init.nl"), script = directory.appendingPathComponent("s.nl")
        try "set precision 2\ntensor from_init = ones 2\n".write(to: startup, atomically: true, encoding: .utf8)
        try "tensor from_script = full 0.5 2\n".write(to: script, atomically: true, encoding: .utf8)
        let t = try start(environment: ["NORMLAB_INIT": startup.path], arguments: ["-i", script.path])
        defer { t.close() }
        t.type("show from_script")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("from_script: (2) float64\n[0.50, 0.50]") } != nil, "\(t.screen())")
        t.type("tensors")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("from_init") && $0.contains("from_script") } != nil, "\(t.screen())")
    }

    @Test func quitExitsWithStatusZero() throws {
        let t = try start()
        defer { t.close() }
        t.type("quit")
        t.keys("Enter")
        #expect(t.waitFor { $0.contains("EXIT=0") } != nil, "\(t.screen())")
    }

    @Test func colourOnATerminalAndNoneWithNoColor() throws {
        let coloured = try start()
        defer { coloured.close() }
        coloured.type("show nothing")
        coloured.keys("Enter")
        _ = coloured.waitFor { $0.contains("no tensor named") }
        let withEscapes = coloured.screen(escapes: true)
        // capture-pane -e writes each attribute as its own escape: bold, then the colour.
        #expect(withEscapes.contains("\u{1B}[34mnormlab>"), "the prompt is not coloured")
        #expect(withEscapes.contains("\u{1B}[31merror:"), "the error is not coloured")

        let plain = try start(environment: ["NO_COLOR": "1"])
        defer { plain.close() }
        plain.type("show nothing")
        plain.keys("Enter")
        _ = plain.waitFor { $0.contains("no tensor named") }
        #expect(!plain.screen(escapes: true).contains("\u{1B}["))
    }
}

/// One tmux server of its own (a private socket) running one program.
final class Tmux {
    let socket = "normlab-test-\(UUID().uuidString.prefix(8))"

    init(command: String, arguments: [String] = [], environment: [String: String], directory: URL, width: Int = 120, height: Int = 40) throws {
        let exports = environment.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
        let quoted = ([command] + arguments).map { "'\($0)'" }.joined(separator: " ")
        // After the program ends, its exit status stays on the screen.
        let script = "cd '\(directory.path)' && env -u NO_COLOR \(exports) \(quoted); echo EXIT=$?; sleep 60"
        // The tmux server started here outlives the command: give it no pipe to hold open.
        let status = Shell.run("/usr/bin/env", ["tmux", "-L", socket, "new-session", "-d", "-s", "t", "-x", "\(width)",
                                                "-y", "\(height)", script], in: nil, capture: false).0
        guard status == 0 else { throw TmuxError(message: "tmux new-session failed with status \(status)") }
    }

    struct TmuxError: Error { let message: String }

    @discardableResult
    func tmux(_ arguments: [String]) -> (Int32, String) {
        Shell.run("/usr/bin/env", ["tmux", "-L", socket] + arguments, in: nil)
    }

    func type(_ text: String) { tmux(["send-keys", "-t", "t", "-l", text]) }

    /// Send a signal to the program running in the pane (the shell's child).
    func signalProgram(_ name: String) {
        let (_, pid) = tmux(["display-message", "-p", "-t", "t", "#{pane_pid}"])
        Shell.run("/usr/bin/env", ["pkill", "-\(name)", "-P", pid.trimmingCharacters(in: .whitespacesAndNewlines)], in: nil)
    }
    func keys(_ names: String...) { tmux(["send-keys", "-t", "t"] + names) }

    /// The visible screen, trailing blank lines and spaces removed.
    func screen(escapes: Bool = false) -> String {
        let (_, text) = tmux(["capture-pane", "-p", "-t", "t"] + (escapes ? ["-e"] : []))
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var l = String(line)
            while l.last == " " { l.removeLast() }
            return l
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        var joined = lines.joined(separator: "\n")
        // A prompt waiting for input ends with a space that capture-pane keeps only if something follows.
        if joined.hasSuffix("normlab>") { joined += " " }
        if joined.hasSuffix("     ...") { joined = String(joined.dropLast(8)) + "     ... " }
        return joined
    }

    /// Poll the screen until `condition` holds (at most `timeout` seconds); the screen then, or nil.
    func waitFor(timeout: TimeInterval = 30, _ condition: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = screen()
            if condition(text) { return text }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    func close() { tmux(["kill-server"]) }
}

/// Runs a command with posix_spawn and waitpid. (Foundation's Process left the tmux client unreaped here, and a
/// pipe to the daemonised tmux server never reaches end of file.) Output goes through a temporary file.
enum Shell {
    static func run(_ executable: String, _ arguments: [String], in directory: URL?, capture: Bool = true) -> (Int32, String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-shell-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        let script = "cd \"$1\" || exit 127; shift; exec \"$@\" >\"\(capture ? outputPath : "/dev/null")\" 2>&1 </dev/null"
        let argv = ["/bin/sh", "-c", script, "sh", directory?.path ?? FileManager.default.currentDirectoryPath, executable] + arguments
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        // Test threads block signals, and a spawned process inherits the mask: start tmux with a clean one.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", nil, &attributes, &cArguments, environ)
        guard spawned == 0 else { return (-1, "posix_spawn failed: \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let output = capture ? ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "") : ""
        return (exitStatus, output)
    }
}
