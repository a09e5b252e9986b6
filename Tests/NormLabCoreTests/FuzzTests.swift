import Foundation
import Testing
@testable import NormLabCore
import NormLabFuzzing

/// A fixed seed over 20,000 hostile inputs: every one gets an answer, none traps (a trap ends this test process).
/// The long run is `swift run -c release normlab-fuzz N SEED` (README: Reliability).
@Suite struct FuzzTests {
    @Test func commandLinesAndNPYFiles() {
        var fuzzer = Fuzzer(seed: 20_261_128)
        fuzzer.runCommands(17_000)
        fuzzer.runNPY(3_000)
        #expect(fuzzer.commandsRun + fuzzer.filesDecoded == 20_000)
        #expect(fuzzer.errorsReported > 1000, "the generator should make plenty of bad input")
    }

    @Test func limits() {
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "tensor x = [" + String(repeating: "1, ", count: 30_000) + "1]")
        #expect(err.contains("the statement is 90014 characters long; the limit is 65536"))
        let (_, err2) = run(i, sink, "tensor x = " + String(repeating: "[", count: 5000) + "1" + String(repeating: "]", count: 5000))
        #expect(err2.contains("the literal is nested more than 8 deep"))
        let (_, err3) = run(i, sink, "tensor x = randn 2 2; layer layernorm; forward; time step runs=10001")
        #expect(err3.contains("runs must be a whole number from 1 to 10000"))
        let (_, err4) = run(i, sink, "gradcheck dx sample=99999999")
        #expect(err4.contains("a sample size must be at most 16777216"))
        let (out, _) = run(i, sink, "set")
        #expect(out.contains("statement") && out.contains("run depth") && out.contains("literal depth"))
        let (_, err5) = run(i, sink, "layer layernorm eps=-1")
        #expect(err5.contains("eps must be a number ≥ 0"))
    }

    /// An unclosed '[' cannot make a statement grow without end.
    @Test func unclosedBracketsAreBounded() {
        var accumulator = StatementAccumulator()
        var handedOver: StatementAccumulator.Chunk? = nil
        for line in 0..<10_000 where handedOver == nil {
            handedOver = accumulator.add("[" + String(repeating: "1,", count: 10), lineNumber: line + 1)
        }
        #expect(handedOver != nil)
    }
}

/// Hostile files and places: each a clear error, nothing half-written, nothing replaced that is not a file.
@Suite struct HostileFileTests {
    @Test func unwritableAndSpecialTargets() {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = ones 3")
        let (_, e1) = run(i, sink, "save x /proc/normlab-test.npy")
        #expect(e1.contains("cannot save to '/proc/normlab-test.npy'"), "\(e1)")
        #expect(!FileManager.default.fileExists(atPath: "/proc/normlab-test.npy"))
        let (_, e2) = run(i, sink, "save x /dev/null")
        #expect(e2.contains("it exists and is not a regular file"))
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: "/dev/null", isDirectory: &isDirectory))
        let (_, e3) = run(i, sink, "load y /dev/null")
        #expect(e3.contains("'/dev/null' is not a regular file"), "\(e3)")
        let (_, e5) = run(i, sink, "run /dev/zero")
        #expect(e5.contains("'/dev/zero' is not a regular file"))
        let (_, e4) = run(i, sink, "run /proc/self/nonexistent.nl")
        #expect(e4.contains("no such file"))
    }

    @Test func aFailedSaveKeepsTheOldFile() throws {
        let directory = try makeTemporaryDirectory("normlab-keep")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("x.npy")
        try Data("old".utf8).write(to: target)
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "save nothing \(target.path)")
        #expect(err.contains("no tensor named 'nothing'"))
        #expect(try Data(contentsOf: target) == Data("old".utf8))
    }
}

@Suite struct MemoryLimitTests {
    /// No setting lets one tensor grow past 2^28 elements (2 GiB of float64).
    @Test func maxelemsIsCapped() {
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "set maxelems 1073741824")
        #expect(err.contains("maxelems must be a whole number from 1 to 268435456"))
        let (_, err2) = run(i, sink, "tensor x = zeros 16384 16384 2")
        #expect(err2.contains("more than the limit of 134217728 (maxelems)"))
    }
}
