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
import NormKit

/// Files that hold several named tensors: safetensors (https://huggingface.co/docs/safetensors: an 8-byte
/// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, the data) and NumPy's .npz
/// (a zip of NAME.npy members: stored, as np.savez writes them, or deflated, as np.savez_compressed does).
public enum TensorArchive {
    public struct Failure: Error, Equatable {
        public let message: String
    }

    /// The tensors of a .safetensors or .npz file, in the file's order.
    public static func decode(_ data: Data, fileExtension: String, integerTarget: DType, maxElements: Int) throws(Failure) -> [(name: String, tensor: AnyTensor, note: String?)] {
        switch fileExtension {
        case "safetensors": return try Safetensors.decode(data, integerTarget: integerTarget, maxElements: maxElements)
        case "npz": return try NPZ.decode(data, integerTarget: integerTarget, maxElements: maxElements)
        default: throw Failure(message: "not a .safetensors or .npz file")
        }
    }

    public static func encode(_ tensors: [(String, AnyTensor)], fileExtension: String) -> Data? {
        switch fileExtension {
        case "safetensors": return Safetensors.encode(tensors)
        case "npz": return NPZ.encode(tensors)
        default: return nil
        }
    }
}

enum Safetensors {
    static func decode(_ data: Data, integerTarget: DType, maxElements: Int) throws(TensorArchive.Failure) -> [(name: String, tensor: AnyTensor, note: String?)] {
        let bytes = [UInt8](data)
        func fail(_ message: String) -> TensorArchive.Failure { TensorArchive.Failure(message: message) }
        guard bytes.count >= 8 else { throw fail("not a .safetensors file: shorter than its 8-byte header length") }
        let headerLength = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) }
        guard headerLength <= UInt64(bytes.count - 8), headerLength <= 100_000_000 else {
            throw fail("corrupt .safetensors file: a header of \(headerLength) bytes in a file of \(bytes.count)")
        }
        let dataStart = 8 + Int(headerLength)
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes[8..<dataStart]))
        } catch let error as Header.BadEntry {
            throw fail("corrupt .safetensors header: the entry for \(Escaping.quoted(error.name)) lacks dtype, shape or data_offsets")
        } catch {
            throw fail("corrupt .safetensors file: its header is not a JSON object")
        }
        var out: [(name: String, tensor: AnyTensor, note: String?, offset: Int)] = []
        for (name, entry) in header.entries {
            let (dtype, shape, offsets) = (entry.dtype, entry.shape, entry.data_offsets)
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, dataStart + end <= bytes.count else {
                throw fail("corrupt .safetensors file: \(Escaping.quoted(name))'s data_offsets \(offsets) lie outside the data")
            }
            let raw = Array(bytes[(dataStart + begin)..<(dataStart + end)])
            let (tensor, note) = try decodeValues(raw, dtype: dtype, shape: shape, name: name, integerTarget: integerTarget, maxElements: maxElements)
            out.append((name, tensor, note, begin))
        }
        return out.sorted { $0.offset < $1.offset }.map { ($0.name, $0.tensor, $0.note) }
    }

    static func decodeValues(_ raw: [UInt8], dtype: String, shape: [Int], name: String, integerTarget: DType,
                             maxElements: Int) throws(TensorArchive.Failure) -> (AnyTensor, String?) {
        func fail(_ message: String) -> TensorArchive.Failure { TensorArchive.Failure(message: message) }
        let dims = shape.isEmpty ? [1] : shape
        let tensorShape: Shape
        do { tensorShape = try Shape(dims, maxElements: maxElements) } catch { throw fail("\(Escaping.quoted(name)): \(error.message)") }
        let sizes = ["F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1]
        guard let size = sizes[dtype] else {
            throw fail("\(Escaping.quoted(name)) has dtype \(dtype); NormLab reads F64, F32, F16, BF16 and (converted, with a note) I64, I32, I16, I8, U8, BOOL")
        }
        guard raw.count == tensorShape.count * size else {
            throw fail("\(Escaping.quoted(name)): shape \(tensorShape) of \(dtype) needs \(tensorShape.count * size) bytes, the file has \(raw.count)")
        }
        func word(_ i: Int) -> UInt64 { (0..<size).reduce(UInt64(0)) { $0 | UInt64(raw[i * size + $1]) << (8 * UInt64($1)) } }
        let count = tensorShape.count
        func make<S: NormScalar>(_ values: [S]) throws(TensorArchive.Failure) -> Tensor<S> {
            do { return try Tensor(shape: tensorShape, scalars: values) } catch { throw fail("\(Escaping.quoted(name)): \(error.message)") }
        }
        switch dtype {
        case "F64": return (.float64(try make((0..<count).map { Double(bitPattern: word($0)) })), nil)
        case "F32": return (.float32(try make((0..<count).map { Float(bitPattern: UInt32(word($0))) })), nil)
        case "F16", "BF16":
            let format: DType = dtype == "F16" ? .float16 : .bfloat16
            return (.reduced(try make((0..<count).map { format.value(bits16: UInt16(word($0))) }), format), nil)
        default:
            let values: [Double] = (0..<count).map { i in
                let w = word(i)
                switch dtype {
                case "I64": return Double(Int64(bitPattern: w))
                case "I32": return Double(Int32(truncatingIfNeeded: Int64(bitPattern: w << 32) >> 32))
                case "I16": return Double(Int16(truncatingIfNeeded: w))
                case "I8": return Double(Int8(truncatingIfNeeded: w))
                default: return Double(w)
                }
            }
            let tensor = AnyTensor.float64(try make(values)).converted(to: integerTarget)
            return (tensor, "\(Escaping.quoted(name)) holds \(dtype) values, converted to \(integerTarget)")
        }
    }

    static func encode(_ tensors: [(String, AnyTensor)]) -> Data {
        var header: [(name: String, entry: String)] = []
        var payload = Data()
        for (name, tensor) in tensors {
            let begin = payload.count
            switch tensor {
            case .float32(let t): for v in t.scalars { withUnsafeBytes(of: v.bitPattern.littleEndian) { payload.append(contentsOf: $0) } }
            case .float64(let t): for v in t.scalars { withUnsafeBytes(of: v.bitPattern.littleEndian) { payload.append(contentsOf: $0) } }
            case .reduced(let t, let format):
                for v in t.scalars { withUnsafeBytes(of: format.bits16(of: v).littleEndian) { payload.append(contentsOf: $0) } }
            }
            let dtype = ["float32": "F32", "float16": "F16", "bfloat16": "BF16"][tensor.dtype.rawValue] ?? "F64"
            let shape = tensor.shape.dims.map(String.init).joined(separator: ",")
            header.append((name, "{\"data_offsets\":[\(begin),\(payload.count)],\"dtype\":\"\(dtype)\",\"shape\":[\(shape)]}"))
        }
        let members = header.sorted { $0.name < $1.name }.map { "\(jsonString($0.name)):\($0.entry)" }
        var json = Data(("{" + members.joined(separator: ",") + "}").utf8)
        // The data starts 8-byte aligned, as the safetensors package writes it.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + payload
    }
}

extension Safetensors {
    /// The header: tensor entries by name; `__metadata__` (free-form strings) is skipped.
    struct Header: Decodable {
        struct Entry: Decodable {
            let dtype: String
            let shape: [Int]
            let data_offsets: [Int]
        }
        struct BadEntry: Error { let name: String }
        struct Key: CodingKey {
            let stringValue: String
            init(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }
        let entries: [(String, Entry)]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            entries = try container.allKeys.filter { $0.stringValue != "__metadata__" }.map { key in
                guard let entry = try? container.decode(Entry.self, forKey: key), entry.data_offsets.count == 2 else {
                    throw BadEntry(name: key.stringValue)
                }
                return (key.stringValue, entry)
            }
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped; anything else as UTF-8.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20: out += String(printf: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

enum NPZ {
    static func decode(_ data: Data, integerTarget: DType, maxElements: Int) throws(TensorArchive.Failure) -> [(name: String, tensor: AnyTensor, note: String?)] {
        let bytes = [UInt8](data)
        func fail(_ message: String) -> TensorArchive.Failure { TensorArchive.Failure(message: message) }
        func u16(_ i: Int) -> Int { i + 2 <= bytes.count ? Int(bytes[i]) | Int(bytes[i + 1]) << 8 : 0 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        guard bytes.count >= 4, u32(0) == 0x04034B50 || u32(0) == 0x06054B50 else { throw fail("not a .npz file (not a zip archive)") }
        var out: [(name: String, tensor: AnyTensor, note: String?)] = []
        var offset = 0
        while offset + 30 <= bytes.count && u32(offset) == 0x04034B50 {
            let method = u16(offset + 8), flags = u16(offset + 6)
            var compressed = u32(offset + 18), uncompressed = u32(offset + 22)
            let crc = u32(offset + 14)
            let nameLength = u16(offset + 26), extraLength = u16(offset + 28)
            let nameStart = offset + 30
            guard nameStart + nameLength + extraLength <= bytes.count else { throw fail("corrupt .npz file: a truncated member header") }
            let member = String(decoding: bytes[nameStart..<(nameStart + nameLength)], as: UTF8.self)
            let dataStart = nameStart + nameLength + extraLength
            // ZIP64 (NumPy uses it for members over 4 GiB, and sometimes marks sizes as 0xFFFFFFFF).
            if (compressed == 0xFFFFFFFF || uncompressed == 0xFFFFFFFF), extraLength >= 20, u16(nameStart + nameLength) == 1 {
                let extra = nameStart + nameLength
                uncompressed = u32(extra + 4) | u32(extra + 8) << 32
                compressed = u32(extra + 12) | u32(extra + 16) << 32
            }
            guard flags & 0x8 == 0 else { throw fail("\(Escaping.quoted(member)) uses a data descriptor NormLab does not read") }
            guard method == 0 || method == 8 else {
                throw fail("\(Escaping.quoted(member)) is compressed with method \(method); NormLab reads stored and deflated members (np.savez, np.savez_compressed)")
            }
            guard dataStart + compressed <= bytes.count else { throw fail("corrupt .npz file: \(Escaping.quoted(member)) is cut short") }
            guard member.hasSuffix(".npy") else { throw fail("\(Escaping.quoted(member)) in the archive is not a .npy file") }
            var content = Array(bytes[dataStart..<(dataStart + compressed)])
            if method == 8 {
                // The stated size bounds the output: a damaged or hostile stream cannot grow without limit.
                guard uncompressed <= maxElements * 8 + NPY.maxHeaderLength + 64 else {
                    throw fail("\(Escaping.quoted(member)) states \(uncompressed) bytes, more than the element limit allows")
                }
                do { content = try Inflate.decompress(content, limit: uncompressed) } catch {
                    throw fail("corrupt .npz file: \(Escaping.quoted(member)): \(error.message)")
                }
                guard content.count == uncompressed, CRC32.checksum(Data(content)) == crc else {
                    throw fail("corrupt .npz file: \(Escaping.quoted(member)) does not decompress to its stated size and checksum")
                }
            }
            do {
                let loaded = try NPY.decode(Data(content), integerTarget: integerTarget, maxElements: maxElements)
                out.append((String(member.dropLast(4)), loaded.tensor, loaded.note))
            } catch {
                throw fail("\(Escaping.quoted(member)): \(error.message)")
            }
            offset = dataStart + compressed
        }
        return out
    }

    /// A zip with one stored NAME.npy member per tensor, as np.savez writes it.
    static func encode(_ tensors: [(String, AnyTensor)]) -> Data {
        var out = Data(), central = Data()
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16 & 0xFFFF) }
        for (name, tensor) in tensors {
            let payload = NPY.encode(tensor)
            let member = Array((name + ".npy").utf8)
            let crc = CRC32.checksum(payload)
            let offset = out.count
            // Version 2.0, no flags, stored, a fixed DOS date (1980-01-01): the same bytes every time.
            let common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc) + le32(payload.count) + le32(payload.count)
                + le16(member.count)
            out += le32(0x04034B50) + common + le16(0) + member
            out += payload
            central += le32(0x02014B50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + member
        }
        let centralOffset = out.count
        out += central
        out += le32(0x06054B50) + le16(0) + le16(0) + le16(tensors.count) + le16(tensors.count) + le32(central.count) + le32(centralOffset) + le16(0)
        return out
    }
}

/// CRC-32 (IEEE 802.3), as zip needs it.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1 }
    }

    static func checksum(_ data: Data) -> Int {
        var crc: UInt32 = 0xFFFFFFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return Int(crc ^ 0xFFFFFFFF)
    }
}
