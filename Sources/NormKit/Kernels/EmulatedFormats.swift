/// The arithmetic of an accumulation format, as native operations on a type that holds its values.
///
/// `EmulatedKernels` documents every step as "rounded to the format after each operation". A Double operation
/// rounded to the format is what the first implementation did (`DType.round` after each Double operation). Here
/// float64 runs in Double and float32 in Float, natively; float16 and bfloat16 run in Float and round the Float
/// result. Both orders round the exact result twice (through Double, or through Float), and both equal one correct
/// rounding: for +, −, ×, ÷ and √ of p-bit operands, a first rounding to at least 2p + 2 bits never changes the
/// second (float16 p = 11 and bfloat16 p = 8 against Float's 24; float32 p = 24 against Double's 53). Below the
/// smallest normal the same holds: sums and products of format values are exact in Float, and a quotient or root
/// that is not a midpoint of the format's subnormal grid lies further from one than Float's rounding moves it.
/// `EmulatedFormatTests` holds each format to `DType.round` of the Double operation on random and edge operands.
///
/// Conversions that are not a basic operation of two format values (a Double count, a Double input, eps) go
/// through `value(_: Double)`: one rounding from Double, as before.
protocol EmulatedFormat: SendableMetatype {
    associatedtype Value: BinaryFloatingPoint & Sendable
    static var format: DType { get }
    /// A Float value rounded into the format.
    static func value(float: Float) -> Value
    /// A Double rounded into the format (one rounding).
    static func value(_ double: Double) -> Value
    /// The result of a native operation on two format values, rounded into the format.
    static func rounded(_ value: Value) -> Value
}

extension EmulatedFormat {
    @inline(__always) static func add(_ a: Value, _ b: Value) -> Value { rounded(a + b) }
    @inline(__always) static func subtract(_ a: Value, _ b: Value) -> Value { rounded(a - b) }
    @inline(__always) static func multiply(_ a: Value, _ b: Value) -> Value { rounded(a * b) }
    @inline(__always) static func divide(_ a: Value, _ b: Value) -> Value { rounded(a / b) }
    @inline(__always) static func squareRoot(_ a: Value) -> Value { rounded(a.squareRoot()) }
    /// A format value divided by a Double (a count), through Double as `DType.round` did.
    @inline(__always) static func divide(_ a: Value, by count: Double) -> Value { value(Double(a) / count) }

    /// An element of a Float or Double tensor, rounded into the format.
    @inline(__always) static func value<Scalar: NormScalar>(scalar: Scalar) -> Value {
        if Scalar.self == Float.self { return value(float: unsafeBitCast(scalar, to: Float.self)) }
        return value(scalar.asDouble)
    }
}

enum Float64Format: EmulatedFormat {
    static var format: DType { .float64 }
    @inline(__always) static func value(float: Float) -> Double { Double(float) }
    @inline(__always) static func value(_ double: Double) -> Double { double }
    @inline(__always) static func rounded(_ value: Double) -> Double { value }
}

enum Float32Format: EmulatedFormat {
    static var format: DType { .float32 }
    @inline(__always) static func value(float: Float) -> Float { float }
    @inline(__always) static func value(_ double: Double) -> Float { Float(double) }
    @inline(__always) static func rounded(_ value: Float) -> Float { value }
}

enum Float16Format: EmulatedFormat {
    static var format: DType { .float16 }
    @inline(__always) static func value(float: Float) -> Float { roundedToHalf(float) }
    static func value(_ double: Double) -> Float { Float(DType.float16.round(double)) }
    @inline(__always) static func rounded(_ value: Float) -> Float { roundedToHalf(value) }
}

enum BFloat16Format: EmulatedFormat {
    static var format: DType { .bfloat16 }
    @inline(__always) static func value(float: Float) -> Float { roundedToBrain(float) }
    static func value(_ double: Double) -> Float { Float(DType.bfloat16.round(double)) }
    @inline(__always) static func rounded(_ value: Float) -> Float { roundedToBrain(value) }
}

/// `x` rounded to float16, ties to even, as a Float: the bit steps `FormatRounding` documents, for one value.
@inline(__always)
func roundedToHalf(_ x: Float) -> Float {
    let bits = x.bitPattern
    let sign = bits & 0x8000_0000, magnitude = bits & 0x7FFF_FFFF
    if magnitude >= 0x3880_0000 {  // |x| ≥ 2⁻¹⁴, float16's smallest normal (or ∞, NaN)
        if magnitude >= 0x7F80_0000 { return x }
        let kept = (magnitude &+ 0x0FFF &+ ((magnitude >> 13) & 1)) & ~UInt32(0x1FFF)
        return Float(bitPattern: sign | (kept > 0x477F_E000 ? 0x7F80_0000 : kept))  // past 65504: ∞
    }
    // Float's spacing in [0.5, 1) is 2⁻²⁴, float16's subnormal step: the addition rounds, the subtraction is exact.
    let subnormal = (Float(bitPattern: magnitude) + 0.5) - 0.5
    return Float(bitPattern: sign | subnormal.bitPattern)
}

/// `x` rounded to bfloat16, ties to even, as a Float: the top 16 bits kept; a carry into the exponent rounds up,
/// to ∞ past bfloat16's largest value.
@inline(__always)
func roundedToBrain(_ x: Float) -> Float {
    let bits = x.bitPattern
    if bits & 0x7FFF_FFFF > 0x7F80_0000 { return x }  // NaN
    return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
}
