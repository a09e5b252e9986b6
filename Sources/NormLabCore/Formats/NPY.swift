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

/// NumPy's .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html): a magic string,
/// a version, a header length, a Python-literal header dict, then the raw data.
///
/// Reads versions 1–3; little-endian (or byte-order-free) float16, float32 and float64 as they are; integers and bools
/// converted to Float64 or Float32 with a note. Refuses, with the reason: Fortran order, big-endian data,
/// complex, object, string and other dtypes, 0-d arrays and zero-length dimensions, corrupt or truncated
/// headers, and payloads shorter or longer than the shape says.
public enum NPY {
    public struct Loaded {
        public let tensor: AnyTensor
        /// Set when the values were converted (integer or bool arrays).
        public let note: String?
    }

    public struct Failure: Error, Equatable {
        public let message: String
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    public static let maxHeaderLength = 1 << 20

    public static func decode(_ data: Data, integerTarget: DType = .float64, maxElements: Int = Shape.defaultMaxElements) throws(Failure) -> Loaded {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw Failure(message: "not a .npy file (it does not start with \\x93NUMPY)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw Failure(message: "truncated .npy header (the file ends inside the header length)") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw Failure(message: ".npy format version \(major).\(bytes[7]) is not supported (versions 1, 2 and 3 are)")
        }
        guard headerLength <= maxHeaderLength else {
            throw Failure(message: "the .npy header claims \(headerLength) bytes, more than the \(maxHeaderLength) a header may have")
        }
        guard bytes.count >= headerStart + headerLength else {
            throw Failure(message: "truncated .npy file: the header should be \(headerLength) bytes but the file ends after \(bytes.count - headerStart)")
        }
        let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
        let encoding: String.Encoding = major == 3 ? .utf8 : .isoLatin1
        guard let header = String(bytes: headerBytes, encoding: encoding) else {
            throw Failure(message: "the .npy header is not valid text")
        }
        let fields = try parseHeader(header)
        guard !fields.fortranOrder else {
            throw Failure(message: "the array is stored in Fortran order (fortran_order: True); save it in C order, e.g. np.save(path, np.ascontiguousarray(a))")
        }
        guard !fields.shape.isEmpty else {
            throw Failure(message: "the array is 0-dimensional (shape ()); NormLab tensors have at least one dimension: save a.reshape(1)")
        }
        if let zero = fields.shape.firstIndex(where: { $0 == 0 }) {
            throw Failure(message: "dimension \(zero) of shape \(Shape.format(fields.shape)) is 0; every dimension must be at least 1")
        }
        let shape: Shape
        do {
            shape = try Shape(fields.shape, maxElements: maxElements)
        } catch {
            throw Failure(message: error.message)
        }
        let kind = try ElementKind(descr: fields.descr)
        let payload = bytes.count - headerStart - headerLength
        let (expected, overflow) = shape.count.multipliedReportingOverflow(by: kind.size)
        guard !overflow, payload == expected else {
            let verb = payload < expected ? "is shorter than" : "is longer than"
            throw Failure(message: "the data (\(payload) bytes) \(verb) the shape says: \(shape) of \(fields.descr) needs \(expected) bytes")
        }
        let start = headerStart + headerLength
        return bytes.withUnsafeBufferPointer { raw -> Loaded in
            let base = raw.baseAddress! + start
            switch kind {
            case .float32:
                var scalars = [Float](repeating: 0, count: shape.count)
                scalars.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: base, count: expected)) }
                #if _endian(big)
                scalars = scalars.map { Float(bitPattern: $0.bitPattern.byteSwapped) }
                #endif
                return Loaded(tensor: .float32(try! Tensor(shape: shape, scalars: scalars)), note: nil)
            case .float16:
                let scalars = (0..<shape.count).map { i in
                    DType.float16.value(bits16: UInt16(base[2 * i]) | UInt16(base[2 * i + 1]) << 8)
                }
                return Loaded(tensor: .reduced(try! Tensor(shape: shape, scalars: scalars), .float16), note: nil)
            case .float64:
                var scalars = [Double](repeating: 0, count: shape.count)
                scalars.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: base, count: expected)) }
                return Loaded(tensor: .float64(try! Tensor(shape: shape, scalars: scalars)), note: nil)
            case .integer(let size, let signed), .boolean(let size, let signed):
                var values = [Double](repeating: 0, count: shape.count)
                for i in 0..<shape.count {
                    var bits: UInt64 = 0
                    for b in 0..<size { bits |= UInt64(base[i * size + b]) << (8 * UInt64(b)) }
                    if signed && size < 8 && bits & (1 << (8 * UInt64(size) - 1)) != 0 {
                        bits |= ~((1 << (8 * UInt64(size))) - 1)
                    }
                    values[i] = signed ? Double(Int64(bitPattern: bits)) : Double(bits)
                }
                let tensor = AnyTensor.float64(try! Tensor(shape: shape, scalars: values)).converted(to: integerTarget)
                let what = { if case .boolean = kind { return "a bool" } else { return "an integer (\(fields.descr))" } }()
                var note = "\(what) array, converted to \(integerTarget)"
                if integerTarget == .float32, values.contains(where: { abs($0) > 16_777_216 }) {
                    note += "; values beyond ±2^24 were rounded"
                } else if values.contains(where: { abs($0) > 9_007_199_254_740_992 }) {
                    note += "; values beyond ±2^53 were rounded"
                }
                return Loaded(tensor: tensor, note: note)
            }
        }
    }

    enum ElementKind {
        case float16, float32, float64
        case integer(size: Int, signed: Bool)
        case boolean(size: Int, signed: Bool)

        var size: Int {
            switch self {
            case .float16: 2
            case .float32: 4
            case .float64: 8
            case .integer(let size, _), .boolean(let size, _): size
            }
        }

        init(descr: String) throws(Failure) {
            guard descr.count >= 2 else { throw Failure(message: "unknown dtype \(Escaping.quoted(descr))") }
            let order = descr.first!
            let type = String(descr.dropFirst())
            if order == ">" {
                let size = Int(type.dropFirst()) ?? 0
                if size > 1 {
                    throw Failure(message: "the array is big-endian (\(descr)); convert it with a.astype(a.dtype.newbyteorder('<')) before saving")
                }
            }
            guard "<>|=".contains(order) else { throw Failure(message: "unknown dtype \(Escaping.quoted(descr))") }
            switch type {
            case "f4": self = .float32
            case "f8": self = .float64
            case "i1", "i2", "i4", "i8": self = .integer(size: Int(type.dropFirst())!, signed: true)
            case "u1", "u2", "u4", "u8": self = .integer(size: Int(type.dropFirst())!, signed: false)
            case "b1": self = .boolean(size: 1, signed: false)
            case "f2": self = .float16
            case let t where t.hasPrefix("c"): throw Failure(message: "complex arrays (\(descr)) are not supported: NormLab tensors are real")
            case let t where t.hasPrefix("O"): throw Failure(message: "object arrays (\(descr)) are not supported: save a numeric array")
            case let t where t.hasPrefix("U") || t.hasPrefix("S"): throw Failure(message: "string arrays (\(descr)) are not supported")
            default: throw Failure(message: "dtype \(Escaping.quoted(descr)) is not supported (float32, float64, integers and bool are)")
            }
        }
    }

    struct HeaderFields {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    /// Parse `{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }` without evaluating anything.
    static func parseHeader(_ header: String) throws(Failure) -> HeaderFields {
        let text = header.trimmed(newlines: true)
        guard text.hasPrefix("{"), text.hasSuffix("}") else {
            throw Failure(message: "corrupt .npy header: expected a dictionary {…}, got \(Escaping.quoted(String(text.prefix(40))))")
        }
        func value(of key: String) throws(Failure) -> Substring {
            for quote in ["'", "\""] {
                if let range = text.firstRange(of: "\(quote)\(key)\(quote)") {
                    let rest = text[range.upperBound...].drop { $0 == " " }
                    guard rest.first == ":" else { break }
                    return rest.dropFirst().drop { $0 == " " }
                }
            }
            throw Failure(message: "corrupt .npy header: no '\(key)' entry")
        }
        let descrRest = try value(of: "descr")
        guard let q = descrRest.first, q == "'" || q == "\"" else {
            throw Failure(message: "the .npy dtype is not a simple type string (structured arrays are not supported)")
        }
        let afterQuote = descrRest.dropFirst()
        guard let end = afterQuote.firstIndex(of: q) else { throw Failure(message: "corrupt .npy header: unterminated descr") }
        let descr = String(afterQuote[..<end])

        let fortranRest = try value(of: "fortran_order")
        let fortran: Bool
        if fortranRest.hasPrefix("True") { fortran = true }
        else if fortranRest.hasPrefix("False") { fortran = false }
        else { throw Failure(message: "corrupt .npy header: fortran_order is neither True nor False") }

        let shapeRest = try value(of: "shape")
        guard shapeRest.first == "(", let close = shapeRest.firstIndex(of: ")") else {
            throw Failure(message: "corrupt .npy header: shape is not a tuple")
        }
        let inner = shapeRest[shapeRest.index(after: shapeRest.startIndex)..<close]
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmed().replacing("L", with: "")
            if trimmed.isEmpty { continue }
            guard let d = Int(trimmed), d >= 0 else {
                throw Failure(message: "corrupt .npy header: \(Escaping.quoted(trimmed)) is not a dimension")
            }
            shape.append(d)
        }
        guard shape.count <= Shape.maxRank else {
            throw Failure(message: "the array has \(shape.count) dimensions; NormLab tensors have at most \(Shape.maxRank)")
        }
        return HeaderFields(descr: descr, fortranOrder: fortran, shape: shape)
    }

    /// Version 1.0 with the header padded so the data starts on a 64-byte boundary, as NumPy writes it.
    public static func encode(_ tensor: AnyTensor) -> Data {
        // NumPy has no bfloat16 of its own: bfloat16 tensors are written as float32 (every value exact).
        let tensor = tensor.dtype == .bfloat16 ? tensor.converted(to: .float32) : tensor
        let descr = ["float16": "<f2", "float32": "<f4"][tensor.dtype.rawValue] ?? "<f8"
        let dims = tensor.shape.dims
        let shapeText = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data(magic)
        data.append(contentsOf: [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        switch tensor {
        case .float32(let t): t.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        case .float64(let t): t.scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        case .reduced(let t, let format):
            for value in t.scalars { withUnsafeBytes(of: format.bits16(of: value).littleEndian) { data.append(contentsOf: $0) } }
        }
        return data
    }
}
