import Foundation
import Testing

/// The built `normlab` executable in script mode: exit codes, `FILE:LINE:` messages, piped input.
@Suite struct BinaryTests {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// `swift test` builds the executable beside the test bundle.
    static let binary: URL? = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = directory.appendingPathComponent("normlab")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }()

    func normlab(_ arguments: [String], stdin: String? = nil) throws -> Result {
        let binary = try #require(Self.binary, "the normlab executable was not found beside the tests")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = Repository.root
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: stdoutData, as: UTF8.self),
                      stderr: String(decoding: stderrData, as: UTF8.self))
    }

    func script(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-\(UUID().uuidString).nl")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func commandsFromTheCommandLine() throws {
        let ok = try normlab(["-c", "tensor x = arange 3; show x"])
        #expect(ok.status == 0)
        #expect(ok.stdout == "x: (3) float64\nx: (3) float64\n[0., 1., 2.]\n")
        #expect(ok.stderr.isEmpty)
        let failed = try normlab(["-c", "show x"])
        #expect(failed.status == 1)
        #expect(failed.stderr.hasPrefix("-c:1: error: no tensor named 'x'"))
    }

    @Test func scriptFilesStopAtTheFirstError() throws {
        let file = try script("tensor x = ones 2\nshow x\nshow nope\ntensor y = ones 1\n")
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try normlab([file.path])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("\(file.path):3: error: no tensor named 'nope'"))
        #expect(result.stdout.contains("[1., 1.]"))
        #expect(!result.stdout.contains("y: (1)"))

        let keepGoing = try normlab(["--keep-going", file.path])
        #expect(keepGoing.status == 1)
        #expect(keepGoing.stdout.contains("y: (1) float64"))
    }

    @Test func pipedInput() throws {
        let result = try normlab([], stdin: "tensor x = [[1, 2],\n [3, 4]]\nshow x\nshow q\n")
        #expect(result.status == 1)
        #expect(result.stdout == "x: (2, 2) float64\nx: (2, 2) float64\n[[1., 2.],\n [3., 4.]]\n")
        #expect(!result.stdout.contains("normlab>"))
        #expect(result.stderr.hasPrefix("<stdin>:4: error: no tensor named 'q'; did you mean 'x'?"))
        #expect(!result.stderr.contains("\u{1B}["))
        let clean = try normlab([], stdin: "tensor x = ones 1\nquit\nshow nothing\n")
        #expect(clean.status == 0)
    }

    @Test func flags() throws {
        let bad = try normlab(["--bogus"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("Unknown option '--bogus'"))
        #expect(try normlab(["--precision", "40", "-c", "set"]).status == 2)
        #expect(try normlab(["--dtype", "float8", "-c", "set"]).status == 2)
        #expect(try normlab(["--dtype", "bfloat16", "-c", "set"]).stdout.contains("dtype      bfloat16"))
        let version = try normlab(["--version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("0."))
        let help = try normlab(["--help"])
        #expect(help.status == 0 && help.stdout.contains("--keep-going"))
        let precise = try normlab(["--precision", "2", "--dtype", "float32", "-c", "tensor x = full 0.3 2; show x"])
        #expect(precise.stdout.hasSuffix("x: (2) float32\n[0.30, 0.30]\n"))
        // The flags set the session: nothing printed for them, nothing in the history, nothing echoed.
        #expect(precise.stdout == "x: (2) float32\nx: (2) float32\n[0.30, 0.30]\n")
        let echoed = try normlab(["--dtype", "float32", "--echo", "-c", "history"])
        #expect(echoed.stdout == "normlab> history\n   1  history\n")
    }

    /// Run through sh, for ulimit and pipes.
    func shell(_ script: String) -> (Int32, String) {
        let binary = Self.binary?.path ?? "normlab"
        return runProcess("/bin/sh", ["-c", script.replacingOccurrences(of: "NORMLAB", with: "'\(binary)'")], in: Repository.root)
    }

    /// Under a memory limit a command too big is refused with a message, not ended by the allocator (exit 134).
    @Test func memoryLimitRefusesInsteadOfAborting() {
        let (status, output) = shell("ulimit -v 1000000; NORMLAB -c 'tensor x = zeros 1 30000000; layer layernorm; forward'; echo status=$?")
        #expect(status == 0)
        #expect(output.contains("error: forward on x (1, 30000000) needs about") && output.contains("(ulimit -v)") && output.contains("status=1"), "\(output)")
        let (_, creation) = shell("ulimit -v 1000000; NORMLAB -c 'set maxelems 268435456; tensor big = zeros 1 268435456'; echo status=$?")
        #expect(creation.contains("error: a tensor of shape (1, 268435456) needs about 2.0 GiB") && creation.contains("status=1"), "\(creation)")
    }

    /// A closed pipe ends quietly with 141; a full device is reported and ends with 1.
    @Test func outputErrors() {
        let (_, piped) = shell("( NORMLAB -c 'tensor x = randn 5000 seed 0; set threshold 100000; show x; show x; show x'; echo status=$? >&2 ) | head -c 10 > /dev/null")
        #expect(piped == "status=141\n", "\(piped)")
        let (_, full) = shell("NORMLAB -c 'tensor x = randn 10' > /dev/full; echo status=$?")
        #expect(full.contains("normlab: cannot write to standard output: No space left on device") && full.contains("status=1"), "\(full)")
    }

    /// `check` without python3 on PATH names what is missing (and exits 1 in a script).
    @Test func checkWithoutPython() {
        let (_, output) = shell("PATH=/nonexistent NORMLAB -c 'layer groupnorm 2; check Tests/NormLabCoreTests/Fixtures/check/correct.py' 2>&1; echo status=$?")
        #expect(output.contains("python3 was not found on PATH") && output.contains("status=1"), "\(output)")
        // Without NumPy (a numpy package that cannot be imported stands in for a missing one, in this process only).
        guard PythonWithNumPy.available else { return }
        let (_, numpy) = shell("""
            d=$(mktemp -d); mkdir "$d/numpy"; echo "raise ImportError('no numpy here')" > "$d/numpy/__init__.py"
            PYTHONPATH="$d" NORMLAB -c 'layer groupnorm 2; check Tests/NormLabCoreTests/Fixtures/check/correct.py' 2>&1; echo status=$?; rm -rf "$d"
            """)
        #expect(numpy.contains("NumPy is not installed for this python3 (pip install numpy)") && numpy.contains("status=1"), "\(numpy)")
    }

    @Test func echoMakesATranscript() throws {
        let result = try normlab(["--echo", "-c", "# note\ntensor x = ones 1"])
        #expect(result.stdout == "# note\nnormlab> tensor x = ones 1\nx: (1) float64\n")
    }

    @Test func everySessionRunsCleanly() throws {
        let sessions = try FileManager.default.contentsOfDirectory(atPath: Repository.sessions.path).filter { $0.hasSuffix(".nl") }
        for session in sessions {
            let contents = try String(contentsOf: Repository.sessions.appendingPathComponent(session), encoding: .utf8)
            if contents.contains("\ncheck ") && !PythonWithNumPy.available { continue }  // needs python3 with NumPy
            // A session with errors on purpose ("#! keep-going") runs with --keep-going and still exits 1.
            if contents.hasPrefix("#! keep-going") {
                let result = try normlab(["--keep-going", "sessions/" + session])
                #expect(result.status == 1 && result.stderr.contains("[fail]"), "\(session): \(result.stderr)")
                continue
            }
            let result = try normlab(["sessions/" + session])
            #expect(result.status == 0, "\(session): \(result.stderr)")
        }
    }
}
