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

/// Paths in statements: relative to the interpreter's working directory, `~` expanded, regular files only.
extension Interpreter {
    func resolve(_ path: String) -> URL {
        let expanded = PathText.expandingTilde(path)
        if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded) }
        return URL(fileURLWithPath: workingDirectory).appendingPathComponent(expanded)
    }

    /// The bytes of a regular file, or an error naming what is wrong with the path (`what`: "a .npy file").
    func readFile(_ url: URL, path: Located<String>, text: String, what: String) throws -> Data {
        guard let info = FileSystem.status(of: url.path) else {
            throw Diagnostic(errno == ENOENT ? "no such file: \(Escaping.quoted(path.value))"
                                             : "cannot read \(Escaping.quoted(path.value)): \(FileSystem.lastError)", at: path.range, in: text)
        }
        guard info.st_mode & S_IFMT != S_IFDIR else {
            throw Diagnostic("\(Escaping.quoted(path.value)) is a directory, not \(what)", at: path.range, in: text)
        }
        try AtomicFile.checkRegular(url, path: path, text: text)
        guard let data = FileSystem.contents(of: url.path) else {
            throw Diagnostic("cannot read \(Escaping.quoted(path.value)): \(FileSystem.lastError)", at: path.range, in: text)
        }
        return data
    }

    /// A script's text: UTF-8, with any bytes that are not kept as they are (`RawBytes`), for file names.
    func readText(_ url: URL, path: Located<String>, text: String) throws -> String {
        RawBytes.decode(try readFile(url, path: path, text: text, what: "a file"))
    }
}

/// Write to a temporary file beside the target, then rename: a failure never leaves a half-written file.
/// Through a symbolic link the link's target is replaced (the link stays); a replaced file keeps its mode, and
/// its owner where the process may set it; devices, FIFOs and directories are never replaced.
public enum AtomicFile {
    /// The file type of what `path` names, following symbolic links; nil when nothing is there.
    static func fileType(_ path: String) -> mode_t? {
        FileSystem.status(of: path).map { $0.st_mode & S_IFMT }
    }

    /// Devices and FIFOs are not read: /dev/zero would never end, a FIFO could block forever.
    static func checkRegular(_ url: URL, path: Located<String>, text: String) throws {
        if let type = fileType(url.path), type != S_IFREG {
            throw Diagnostic("\(Escaping.quoted(path.value)) is not a regular file", at: path.range, in: text)
        }
    }

    /// Renaming over a device or a FIFO (say /dev/null) would replace it: only regular files are replaced.
    static func checkReplaceable(_ url: URL, path: Located<String>, text: String) throws {
        if let type = fileType(url.path), type != S_IFREG {
            throw Diagnostic("cannot save to \(Escaping.quoted(path.value)): it exists and is not a regular file", at: path.range, in: text)
        }
    }

    /// The path a write to `url` must replace: symbolic links followed to their final target (which need not
    /// exist yet), at most 40 deep.
    public static func destination(_ url: URL) -> URL {
        var path = url.path
        for _ in 0..<40 {
            guard let info = FileSystem.linkStatus(of: path), info.st_mode & S_IFMT == S_IFLNK,
                  let target = FileSystem.linkTarget(of: path) else { break }
            path = target.hasPrefix("/") ? target : PathText.appending(target, to: PathText.parent(of: path))
        }
        return URL(fileURLWithPath: path)
    }

    public static func write(_ data: Data, to url: URL) throws(FileFailure) {
        try write([(data, url)])
    }

    /// Several files, all or nothing as far as the file system allows: every target is checked and every
    /// temporary written first; only when all are written are they renamed into place. A failure names the
    /// file and leaves every earlier file as it was.
    public static func write(_ files: [(Data, URL)]) throws(FileFailure) {
        let targets = files.map { destination($0.1) }
        for target in targets {
            if let type = fileType(target.path), type != S_IFREG {
                throw FileFailure(path: target.path, reason: "it exists and is not a regular file")
            }
        }
        var temporaries: [URL] = []
        defer { for t in temporaries { RawBytes.withPath(t.path) { _ = unlink($0) } } }
        for ((data, _), target) in zip(files, targets) {
            let temporary = target.deletingLastPathComponent()
                .appendingPathComponent(".\(target.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
            temporaries.append(temporary)
            do {
                try FileSystem.create(temporary.path, with: data)
            } catch {
                throw FileFailure(path: target.path, reason: error.reason)
            }
            if let info = FileSystem.status(of: target.path) {
                RawBytes.withPath(temporary.path) { path in
                    _ = chmod(path, info.st_mode & 0o7777)
                    _ = chown(path, info.st_uid, info.st_gid)  // allowed for root; otherwise the file becomes ours
                }
            }
        }
        for (temporary, target) in zip(temporaries, targets) {
            // rename(2) replaces the target atomically: readers see the old file or the new one, never a mix.
            let renamed = RawBytes.withPath(temporary.path) { from in RawBytes.withPath(target.path) { rename(from, $0) } }
            guard renamed == 0 else { throw FileFailure(path: target.path, reason: FileSystem.lastError) }
        }
        temporaries = []
    }

    /// Which file a write failed on, and why.
    public struct FileFailure: Error {
        public let path: String
        public let reason: String
        /// "name.npy: Permission denied": the file's name and the reason.
        public var message: String { "\(Escaping.visible(PathText.lastComponent(path))): \(reason)" }
    }
}
