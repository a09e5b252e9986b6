/// The element types a tensor can hold.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32
    case float64

    public var description: String { rawValue }
    /// Bytes per element.
    public var byteSize: Int { self == .float32 ? 4 : 8 }
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
    /// The same value as a Double (exact).
    @inlinable public init(fromDouble value: Double) { self.init(value) }
    @inlinable public var asDouble: Double { Double(self) }
}

extension Double: NormScalar {
    /// float64.
    public static var dtype: DType { .float64 }
    /// The value itself.
    /// The value itself.
    @inlinable public init(fromDouble value: Double) { self = value }
    @inlinable public var asDouble: Double { self }
}
