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

/// A python3 child process spoken to in lines (`check` runs the user's module in one, never in NormLab's own
/// process). Its standard input and output are socket pairs, so writing to a child that died is an error, not
/// a SIGPIPE; its standard error goes to a file; it runs in its own process group, so Ctrl-C at the terminal
/// reaches NormLab (which then ends the child) rather than the user's code.
final class PythonChild {
    enum Reply: Equatable {
        case line(String)
        /// No line within the time limit.
        case timedOut
        /// The child closed its output (it exited or crashed).
        case closed
        case cancelled
    }

    struct StartFailure: Error { let message: String }

    let pid: pid_t
    private let input: Int32
    private let output: Int32
    private var pending: [UInt8] = []
    private var stopped = false

    private init(pid: pid_t, input: Int32, output: Int32) {
        self.pid = pid
        self.input = input
        self.output = output
    }

    /// Start `python3 arguments…` with its standard error written to `errorLog`.
    static func start(_ arguments: [String], errorLog: String) throws(StartFailure) -> PythonChild {
        var inputPair: [Int32] = [-1, -1], outputPair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM_VALUE), 0, &inputPair) == 0 else {
            throw StartFailure(message: "cannot make a socket pair: \(FileSystem.lastError)")
        }
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM_VALUE), 0, &outputPair) == 0 else {
            close(inputPair[0]); close(inputPair[1])
            throw StartFailure(message: "cannot make a socket pair: \(FileSystem.lastError)")
        }
        #if canImport(Darwin)
        var on: Int32 = 1
        setsockopt(inputPair[0], SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inputPair[1], 0)
        posix_spawn_file_actions_adddup2(&actions, outputPair[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, errorLog, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        for fd in [inputPair[0], inputPair[1], outputPair[0], outputPair[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        let argv = (["python3"] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, "python3", &actions, &attributes, argv, environ)
        close(inputPair[1])
        close(outputPair[1])
        guard status == 0 else {
            close(inputPair[0]); close(outputPair[0])
            throw StartFailure(message: status == ENOENT
                ? "python3 was not found on PATH: `check` runs your module with python3 and NumPy"
                : "cannot start python3: \(String(cString: strerror(status)))")
        }
        return PythonChild(pid: pid, input: inputPair[0], output: outputPair[0])
    }

    /// Send one line; false when the child is gone.
    @discardableResult
    func send(_ line: String) -> Bool {
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                #if canImport(Darwin)
                Darwin.send(input, buffer.baseAddress! + offset, buffer.count - offset, 0)
                #else
                Glibc.send(input, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                #endif
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// The next line from the child, waiting at most `timeout` seconds and asking `cancelled` every 50 ms.
    func readLine(timeout: Double, cancelled: () -> Bool) -> Reply {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int64(timeout * 1000))
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return .line(line)
            }
            if cancelled() { return .cancelled }
            guard clock.now < deadline else { return .timedOut }
            var descriptor = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 50)
            if ready < 0 && errno != EINTR { return .closed }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let count = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return .closed }
            pending += chunk[..<count]
        }
    }

    /// End the child (SIGKILL to its process group) and reap it.
    func stop() {
        guard !stopped else { return }
        stopped = true
        close(input)
        close(output)
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    deinit { stop() }
}

#if canImport(Glibc)
private let SOCK_STREAM_VALUE = SOCK_STREAM.rawValue
#else
private let SOCK_STREAM_VALUE = SOCK_STREAM
#endif
