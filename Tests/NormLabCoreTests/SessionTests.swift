import Foundation
import Testing
@testable import NormLabCore

/// Every sessions/NN-name.nl is run as a script, with each command echoed, and must reproduce its transcript
/// sessions/NN-name.out exactly. NORMLAB_RECORD=1 rewrites the transcripts (and fails, so a person reviews the
/// diff); CI never records.
@Suite struct SessionTests {
    static let scripts: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Repository.sessions.path)) ?? []
        return names.filter { $0.hasSuffix(".nl") }.sorted()
    }()

    @Test func thereAreSessions() {
        #expect(Self.scripts.count >= 5)
    }

    @Test(arguments: scripts)
    func transcript(_ script: String) throws {
        let url = Repository.sessions.appendingPathComponent(script)
        let contents = try String(contentsOf: url, encoding: .utf8)
        // A session that runs the user's Python (`check`) needs python3 with NumPy.
        if contents.split(separator: "\n").contains(where: { $0.hasPrefix("check ") }) && !PythonWithNumPy.available {
            print("SessionTests: \(script) skipped: it runs Python code with `check`, and python3 with NumPy is not available")
            return
        }
        let sink = BufferSink()
        let interpreter = Interpreter(sink: sink, workingDirectory: Repository.root.path)
        interpreter.echo = true
        // "#! keep-going" on the first line: the session has errors on purpose and goes on past them.
        let keepsGoing = contents.hasPrefix("#! keep-going")
        interpreter.keepGoing = keepsGoing
        let succeeded = interpreter.runScript(contents, source: "sessions/" + script)
        #expect(succeeded || keepsGoing, "\(script) stopped with an error:\n\(sink.error)")

        let expectedURL = url.deletingPathExtension().appendingPathExtension("out")
        if ProcessInfo.processInfo.environment["NORMLAB_RECORD"] == "1" {
            try sink.transcript.write(to: expectedURL, atomically: true, encoding: .utf8)
            Issue.record("recorded \(expectedURL.lastPathComponent): review the diff, then run the tests without NORMLAB_RECORD")
            return
        }
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        if sink.transcript != expected {
            let got = sink.transcript.split(separator: "\n", omittingEmptySubsequences: false)
            let want = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let line = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
            Issue.record("""
            \(script): the transcript differs from \(expectedURL.lastPathComponent) at line \(line + 1):
              expected: \(line < want.count ? String(want[line]) : "<end>")
              got:      \(line < got.count ? String(got[line]) : "<end>")
            (NORMLAB_RECORD=1 swift test rewrites the transcripts)
            """)
        }
    }
}

@Suite struct TourTests {
    /// `help tour` names every session in sessions/, in order, and nothing that is not there.
    @Test func tourListsEverySession() throws {
        let files = SessionTests.scripts.map { String($0.dropLast(3)) }
        #expect(Tour.sessions.map(\.file) == files)
        let (i, sink) = makeInterpreter()
        let (text, _) = run(i, sink, "help tour")
        for file in files { #expect(text.contains(file)) }
    }
}
