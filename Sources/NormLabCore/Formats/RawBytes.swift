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
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text that may hold bytes that are not UTF-8 (a file name in another encoding, typed or in a script), kept
/// byte for byte: each byte of an invalid sequence becomes one private-use scalar U+10FE00 + byte, which file
/// operations turn back into that byte and messages show as `\xNN`. Valid UTF-8 is read as usual.
public enum RawBytes {
    static let base: UInt32 = 0x10FE00

    /// The byte a scalar stands for, if it stands for one.
    static func byte(of scalar: Unicode.Scalar) -> UInt8? {
        scalar.value >= base && scalar.value <= base + 0xFF ? UInt8(scalar.value - base) : nil
    }

    public static func decode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        if let valid = String(validating: Array(bytes), as: UTF8.self) { return valid }
        let b = Array(bytes)
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            let lead = b[i]
            let length = lead < 0x80 ? 1 : lead >= 0xC2 && lead < 0xE0 ? 2 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xF0 && lead < 0xF5 ? 4 : 0
            if length > 0, i + length <= b.count, let text = String(validating: b[i..<(i + length)], as: UTF8.self) {
                scalars.append(contentsOf: text.unicodeScalars)
                i += length
            } else {
                scalars.append(Unicode.Scalar(base + UInt32(lead))!)
                i += 1
            }
        }
        return String(scalars)
    }

    /// The bytes `text` stands for.
    public static func encode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for scalar in text.unicodeScalars {
            if let raw = byte(of: scalar) { out.append(raw) } else { out += Array(String(scalar).utf8) }
        }
        return out
    }

    /// A path for the C library: its bytes, NUL-terminated.
    static func withPath<R>(_ path: String, _ body: (UnsafePointer<CChar>) -> R) -> R {
        let bytes = encode(path).map { CChar(bitPattern: $0) } + [0]
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// The file operations NormLab needs, on paths that may hold raw bytes (`RawBytes`), with the C library's
/// errors as their reason.
enum FileSystem {
    static var lastError: String { String(cString: strerror(errno)) }

    /// stat(2), following symbolic links; nil when nothing is there.
    static func status(of path: String) -> stat? {
        var info = stat()
        return RawBytes.withPath(path) { stat($0, &info) } == 0 ? info : nil
    }

    /// lstat(2): the link itself.
    static func linkStatus(of path: String) -> stat? {
        var info = stat()
        return RawBytes.withPath(path) { lstat($0, &info) } == 0 ? info : nil
    }

    static func linkTarget(of path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = RawBytes.withPath(path) { readlink($0, &buffer, buffer.count - 1) }
        guard count > 0 else { return nil }
        return RawBytes.decode(buffer[0..<count].map { UInt8(bitPattern: $0) })
    }

    static func isDirectory(_ path: String) -> Bool { status(of: path).map { $0.st_mode & S_IFMT == S_IFDIR } ?? false }

    /// The whole file, or nil with errno set.
    static func contents(of path: String) -> Data? {
        let fd = RawBytes.withPath(path) { open($0, O_RDONLY) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return contents(ofOpen: fd)
    }

    /// Everything left to read from an open descriptor, or nil with errno set.
    static func contents(ofOpen fd: Int32) -> Data? {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if count < 0 { if errno == EINTR { continue }; return nil }
            if count == 0 { return data }
            data.append(contentsOf: chunk[0..<count])
        }
    }

    /// getcwd(3); "/" when it cannot be read (the directory was removed).
    static var currentDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return RawBytes.decode(buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
    }

    /// A new file with these bytes (replacing any), mode 0666 less the umask.
    static func create(_ path: String, with data: Data) throws(AtomicFile.FileFailure) {
        let fd = RawBytes.withPath(path) { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o666) }
        guard fd >= 0 else { throw AtomicFile.FileFailure(path: path, reason: lastError) }
        defer { close(fd) }
        let failure: String? = data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if count < 0 { if errno == EINTR { continue }; return lastError }
                offset += count
            }
            return nil
        }
        if let failure { throw AtomicFile.FileFailure(path: path, reason: failure) }
    }
}
