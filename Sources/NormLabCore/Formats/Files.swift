import Foundation

/// Paths in statements: relative to the interpreter's working directory, `~` expanded, regular files only.
extension Interpreter {
    func resolve(_ path: String) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded) }
        return URL(fileURLWithPath: workingDirectory).appendingPathComponent(expanded)
    }

    /// The bytes of a regular file, or an error naming what is wrong with the path (`what`: "a .npy file").
    func readFile(_ url: URL, path: Located<String>, text: String, what: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw Diagnostic("no such file: \(Escaping.quoted(path.value))", at: path.range, in: text)
        }
        guard !isDirectory.boolValue else {
            throw Diagnostic("\(Escaping.quoted(path.value)) is a directory, not \(what)", at: path.range, in: text)
        }
        try AtomicFile.checkRegular(url, path: path, text: text)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Diagnostic("cannot read \(Escaping.quoted(path.value)) (permission denied?)", at: path.range, in: text)
        }
        return data
    }

    func readText(_ url: URL, path: Located<String>, text: String) throws -> String {
        let data = try readFile(url, path: path, text: text, what: "a file")
        guard let contents = String(data: data, encoding: .utf8) else {
            throw Diagnostic("\(Escaping.quoted(path.value)) is not UTF-8 text", at: path.range, in: text)
        }
        return contents
    }
}

/// Write to a temporary file beside the target, then rename: a failure never leaves a half-written file.
public enum AtomicFile {
    /// Devices and FIFOs are not read: /dev/zero would never end, a FIFO could block forever.
    static func checkRegular(_ url: URL, path: Located<String>, text: String) throws {
        if let type = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.type] as? FileAttributeType,
           type != .typeRegular {
            throw Diagnostic("\(Escaping.quoted(path.value)) is not a regular file", at: path.range, in: text)
        }
    }

    /// Renaming over a device or a FIFO (say /dev/null) would replace it: only regular files are replaced.
    static func checkReplaceable(_ url: URL, path: Located<String>, text: String) throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              let type = attributes[.type] as? FileAttributeType else { return }
        guard type == .typeRegular else {
            throw Diagnostic("cannot save to \(Escaping.quoted(path.value)): it exists and is not a regular file", at: path.range, in: text)
        }
    }

    public static func write(_ data: Data, to url: URL) throws {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try data.write(to: temporary)
            // rename(2) replaces the target atomically: readers see the old file or the new one, never a mix.
            guard rename(temporary.path, url.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: String(cString: strerror(errno))])
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }
}
