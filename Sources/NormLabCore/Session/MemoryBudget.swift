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

/// How much more memory the process can have, so that a command too big for it is refused with a message
/// instead of ending the process ("Fatal error: failed to allocate"): the least of what `ulimit -v` leaves, what
/// the cgroup's memory.max leaves, and the memory the system has available.
enum MemoryBudget {
    struct Limit {
        let bytes: Int
        /// What sets it: "ulimit -v", "the cgroup's memory.max", "the memory available".
        let source: String
    }

    static func available() -> Limit? {
        var limits: [Limit] = []
        #if os(Linux)
        let page = sysconf(Int32(_SC_PAGESIZE))
        var rlimit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &rlimit) == 0, rlimit.rlim_cur != rlim_t.max,
           let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").first.flatMap({ Int($0) }) {
            limits.append(Limit(bytes: Int(clamping: rlimit.rlim_cur) - pages * page, source: "ulimit -v"))
        }
        if let max = number(in: "/sys/fs/cgroup/memory.max"), let current = number(in: "/sys/fs/cgroup/memory.current") {
            limits.append(Limit(bytes: max - current, source: "the cgroup's memory.max"))
        }
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
            limits.append(Limit(bytes: kib * 1024, source: "the memory available"))
        }
        #endif
        return limits.min { $0.bytes < $1.bytes }
    }

    private static func number(in path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmed(newlines: true)) }
    }

    static func gib(_ bytes: Int) -> String { String(printf: "%.1f GiB", Double(bytes) / Double(1 << 30)) }

    /// Refuse `what` when it needs more than the process can have. Small requests are not checked.
    static func reserve(_ bytes: Int, for what: String) throws {
        guard bytes > 64 << 20, let limit = available(), bytes > limit.bytes else { return }
        throw Diagnostic("\(what) needs about \(gib(bytes)) more memory, but the process can have about \(gib(max(limit.bytes, 0))) more (\(limit.source)): use a smaller tensor")
    }
}

extension StatementContext {
    /// `elements` values of `bytesEach` bytes, `copies` times over.
    func reserve(elements: Int, bytesEach: Int, copies: Int, for what: String) throws {
        let (product, overflow) = elements.multipliedReportingOverflow(by: bytesEach * copies)
        try MemoryBudget.reserve(overflow ? Int.max : product, for: what)
    }
}
