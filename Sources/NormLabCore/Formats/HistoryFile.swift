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

/// The interactive history: $NORMLAB_HISTORY, else $XDG_STATE_HOME/normlab/history, else
/// ~/.local/state/normlab/history, one statement a line.
///
/// Nothing is lost or replaced: /dev/null (or any character device) turns history off; a device, FIFO or
/// directory there is never written; an unreadable file is left alone (with a warning) rather than overwritten;
/// several sessions sharing the file each append their own lines under a lock (the last writer keeps the
/// others' lines); a symbolic link is written through; the file keeps its mode.
public struct HistoryFile: Sendable {
    public static let limit = 2000
    /// The path as configured.
    public let path: String
    /// What load found that stops saving (unreadable, not a regular file): the warning, given once.
    public private(set) var problem: String?
    /// History is off (/dev/null): nothing to load or save, nothing to say.
    public private(set) var off = false

    public init(environment: [String: String]) {
        if let explicit = environment["NORMLAB_HISTORY"], !explicit.isEmpty {
            path = explicit
        } else {
            let state = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? PathText.appending(".local/state", to: PathText.home())
            path = PathText.appending("normlab/history", to: state)
        }
    }

    public init(path: String) { self.path = path }

    var destination: String { AtomicFile.destination(URL(fileURLWithPath: path)).path }

    /// The saved lines, oldest first (the last `limit`). Sets `problem` when the file is there but must not be
    /// written, and `off` for a character device.
    public mutating func load() -> [String] {
        let target = destination
        guard let type = AtomicFile.fileType(target) else { return [] }
        if type == S_IFCHR { off = true; return [] }
        guard type == S_IFREG else {
            problem = "the history file \(Escaping.quoted(path)) is not a regular file: history is not loaded or saved"
            return []
        }
        guard let data = FileSystem.contents(of: target) else {
            problem = "cannot read the history file \(Escaping.quoted(path)) (\(String(cString: strerror(errno)))): this session's history will not be saved there"
            return []
        }
        return Array(Self.lines(data).suffix(Self.limit))
    }

    static func lines(_ data: Data) -> [String] {
        String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// Append `newLines` to what the file holds now (other sessions may have added theirs), keep the last
    /// `limit`, and replace the file atomically. Returns a warning when it could not.
    public func save(newLines: [String]) -> String? {
        if off { return nil }
        if let problem { return problem }
        guard !newLines.isEmpty else { return nil }
        let target = destination
        let directory = PathText.parent(of: target)
        if mkdirs(directory) != 0 {
            return "cannot save the history in \(Escaping.quoted(directory)): \(String(cString: strerror(errno)))"
        }
        for _ in 0..<5 {
            let fd = open(target, O_RDWR | O_CREAT, 0o600)
            guard fd >= 0 else { return "cannot save the history to \(Escaping.quoted(path)): \(String(cString: strerror(errno)))" }
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { return "cannot lock the history file \(Escaping.quoted(path)): \(String(cString: strerror(errno)))" }
            // Another session may have replaced the file while this one waited for the lock: lock the new one.
            var held = stat(), current = stat()
            guard fstat(fd, &held) == 0, stat(target, &current) == 0, held.st_ino == current.st_ino, held.st_dev == current.st_dev else {
                continue
            }
            guard held.st_mode & S_IFMT == S_IFREG else { return "the history file \(Escaping.quoted(path)) is not a regular file: not saved" }
            let existing = Self.lines(FileSystem.contents(ofOpen: fd) ?? Data())
            let merged = (existing + newLines).suffix(Self.limit)
            do {
                try AtomicFile.write(Data((merged.joined(separator: "\n") + "\n").utf8), to: URL(fileURLWithPath: target))
            } catch {
                return "cannot save the history to \(Escaping.quoted(path)): \(error.message)"
            }
            return nil
        }
        return "cannot save the history to \(Escaping.quoted(path)): it keeps being replaced"
    }

    /// mkdir -p, with errno set on failure.
    private func mkdirs(_ directory: String) -> Int32 {
        if FileSystem.status(of: directory) != nil {
            if FileSystem.isDirectory(directory) { return 0 }
            errno = ENOTDIR
            return -1
        }
        let parent = PathText.parent(of: directory)
        if parent != directory, !parent.isEmpty, mkdirs(parent) != 0 { return -1 }
        return mkdir(directory, 0o700) == 0 || errno == EEXIST ? 0 : -1
    }
}
