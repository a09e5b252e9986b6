/// The element types a tensor can hold. float16 and bfloat16 are storage formats: their tensors hold Float values
/// that are exactly representable in the format (`DType.round`), so every float32 routine reads them unchanged.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32
    case float64
    /// IEEE 754 binary16: 11 significant bits, largest finite 65504.
    case float16
    /// Brain float: float32's 8 exponent bits with 8 significant bits.
    case bfloat16

    public var description: String { rawValue }
    /// Bytes per element in a file.
    public var byteSize: Int {
        switch self {
        case .float64: 8
        case .float32: 4
        case .float16, .bfloat16: 2
        }
    }
    /// Bytes per element in memory: float16 and bfloat16 are held in Float.
    public var memoryBytes: Int { isReduced ? 4 : byteSize }
    /// True for the formats stored in Float values (float16, bfloat16).
    public var isReduced: Bool { self == .float16 || self == .bfloat16 }
}

/// Float and Double, with concrete conversions so that specialised loops never go through generic
/// `BinaryFloatingPoint` conversion paths.
public protocol NormScalar: BinaryFloatingPoint, Sendable, LosslessStringConvertible {
    static var dtype: DType { get }
    init(fromDouble value: Double)
    var asDouble: Double { get }
}

extension Float: NormScalar {
    /// float32.
    public static var dtype: DType { .float32 }
    /// The nearest Float.
    @inlinable public init(fromDouble value: Double) { self.init(value) }
    /// The same value as a Double (exact).
    @inlinable public var asDouble: Double { Double(self) }
}

extension Double: NormScalar {
    /// float64.
    public static var dtype: DType { .float64 }
    /// The value itself.
    @inlinable public init(fromDouble value: Double) { self = value }
    /// The value itself.
    @inlinable public var asDouble: Double { self }
}
