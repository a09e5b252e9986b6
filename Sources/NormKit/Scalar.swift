/// The element types a tensor can hold.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32
    case float64

    public var description: String { rawValue }
    public var byteSize: Int { self == .float32 ? 4 : 8 }
}

/// Float and Double, with concrete conversions so that specialised loops never go through generic
/// `BinaryFloatingPoint` conversion paths.
public protocol NormScalar: BinaryFloatingPoint, Sendable, LosslessStringConvertible {
    static var dtype: DType { get }
    init(fromDouble value: Double)
    var asDouble: Double { get }
    /// Eight elements widened to Float64 lanes, and back: one kernel serves both types (FastKernels).
    static func loadWide(_ pointer: UnsafePointer<Self>) -> SIMD8<Double>
    static func storeNarrow(_ value: SIMD8<Double>, to pointer: UnsafeMutablePointer<Self>)
    /// x̂ = (x − μ)·rstd and y = γ·x̂ + β over `count` contiguous elements, in this type's own SIMD lanes
    /// (statistics stay Float64; one rounding per operation, as the scalar formula).
    static func normalizeRun(_ x: UnsafePointer<Self>, _ xhat: UnsafeMutablePointer<Self>, _ y: UnsafeMutablePointer<Self>,
                             count: Int, mean: Double, rstd: Double, gamma: Double, beta: Double)
    /// dx = rstd·(dy·γ − meanTerm − x̂·projection) over `count` contiguous elements, in this type's own lanes.
    static func gradientRun(_ dy: UnsafePointer<Self>, _ xhat: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>,
                            count: Int, gamma: Double, rstd: Double, meanTerm: Double, projection: Double)
}

extension Float: NormScalar {
    public static var dtype: DType { .float32 }
    @inlinable public init(fromDouble value: Double) { self.init(value) }
    @inlinable public var asDouble: Double { Double(self) }
}

extension Double: NormScalar {
    public static var dtype: DType { .float64 }
    @inlinable public init(fromDouble value: Double) { self = value }
    @inlinable public var asDouble: Double { self }
}
