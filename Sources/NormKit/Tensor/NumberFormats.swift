#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a floating-point format can hold, and rounding into it.
///
/// Every format here is emulated in Double: a sum, product, quotient or square root of two values of a format with
/// p significant bits, computed in Double (53 bits ≥ 2p + 2) and then rounded to the format, is the format's own
/// correctly rounded result (double rounding is innocuous at that width), so `round(a + b)` *is* float16 addition.
extension DType {
    /// Significant bits, counting the implicit one.
    public var precisionBits: Int {
        switch self {
        case .float64: 53
        case .float32: 24
        case .float16: 11
        case .bfloat16: 8
        }
    }

    /// The exponent of the smallest normal number.
    public var minimumExponent: Int {
        switch self {
        case .float64: -1022
        case .float32, .bfloat16: -126
        case .float16: -14
        }
    }

    /// The largest finite value.
    public var largestFinite: Double {
        switch self {
        case .float64: .greatestFiniteMagnitude
        case .float32: Double(Float.greatestFiniteMagnitude)
        case .float16: 65504
        case .bfloat16: Double(Float(bitPattern: 0x7F7F_0000))  // 3.3895e38
        }
    }

    /// The smallest positive normal value.
    public var smallestNormal: Double { Double(sign: .plus, exponent: minimumExponent, significand: 1) }

    /// The smallest positive value (subnormal).
    public var smallestSubnormal: Double { Double(sign: .plus, exponent: minimumExponent - precisionBits + 1, significand: 1) }

    /// The unit roundoff u = 2^−p: the largest relative error of one rounding to nearest.
    public var unitRoundoff: Double { Double(sign: .plus, exponent: -precisionBits, significand: 1) }

    /// The machine epsilon 2^(1−p) (PyTorch's `finfo(dtype).eps`).
    public var machineEpsilon: Double { 2 * unitRoundoff }

    /// About how many significant decimal digits the format carries: −log10(u).
    public var decimalDigits: Double { -log10(unitRoundoff) }

    /// `value` rounded to the nearest value of this format, ties to even; past the largest finite value, ±∞.
    @inlinable
    public func round(_ value: Double) -> Double {
        switch self {
        case .float64: return value
        case .float32: return Double(Float(value))
        case .float16, .bfloat16: return DType.round(value, bits: precisionBits, minExponent: minimumExponent,
                                                     largest: largestFinite)
        }
    }

    /// Scale so the last kept bit is the units place, round to an integer, scale back: every step is exact in
    /// Double, so this is one correct rounding (subnormals included: below the smallest normal the units place
    /// stays at the subnormal spacing).
    @inlinable
    static func round(_ value: Double, bits: Int, minExponent: Int, largest: Double) -> Double {
        guard value.isFinite, value != 0 else { return value }
        let exponent = max(Int(value.exponent), minExponent)
        let ulpExponent = exponent - (bits - 1)
        let scaled = Double(sign: .plus, exponent: -ulpExponent, significand: value)
        let rounded = Double(sign: .plus, exponent: ulpExponent, significand: scaled.rounded(.toNearestOrEven))
        return abs(rounded) > largest ? (rounded < 0 ? -.infinity : .infinity) : rounded
    }

    /// Whether `value` is exactly a value of this format.
    public func represents(_ value: Double) -> Bool { value.isNaN || round(value) == value }
}

// MARK: - Bit patterns, for files

extension DType {
    /// The 16-bit pattern of a float16 or bfloat16 value (which must already be one: `round` first).
    public func bits16(of value: Float) -> UInt16 {
        switch self {
        case .bfloat16:
            if value.isNaN { return 0x7FC0 }
            return UInt16(truncatingIfNeeded: value.bitPattern >> 16)
        default:
            if value.isNaN { return 0x7E00 }
            let sign: UInt16 = value.sign == .minus ? 0x8000 : 0
            let magnitude = abs(value)
            if magnitude.isInfinite { return sign | 0x7C00 }
            if magnitude == 0 { return sign }
            let exponent = Int(magnitude.exponent)
            if exponent < -14 {  // subnormal: a multiple of 2^−24
                return sign | UInt16(Double(magnitude) * 0x1p24)
            }
            let fraction = UInt16(Double(magnitude.significand - 1) * 1024)
            return sign | UInt16(exponent + 15) << 10 | fraction
        }
    }

    /// The value a float16 or bfloat16 bit pattern holds.
    public func value(bits16 bits: UInt16) -> Float {
        switch self {
        case .bfloat16:
            return Float(bitPattern: UInt32(bits) << 16)
        default:
            let negative = bits & 0x8000 != 0
            let exponent = Int(bits >> 10 & 0x1F)
            let fraction = Double(bits & 0x3FF)
            let magnitude: Double
            switch exponent {
            case 0: magnitude = fraction * 0x1p-24
            case 31: magnitude = fraction == 0 ? .infinity : .nan
            default: magnitude = Double(sign: .plus, exponent: exponent - 15, significand: 1 + fraction / 1024)
            }
            return Float(negative ? -magnitude : magnitude)
        }
    }
}

extension Tensor where Scalar == Float {
    /// Every element rounded to `format` (float16 or bfloat16), with how many finite values became ±∞.
    public func rounded(to format: DType) -> (tensor: Tensor<Float>, overflowed: Int) {
        guard format.isReduced else { return (self, 0) }
        var copy = self
        let counts = copy.roundInPlace(to: format, threads: 1)
        return (copy, counts.overflowed)
    }
}

extension Tensor {
    /// Every element rounded to `format`, in this tensor's own element type.
    public func rounded(toFormat format: DType) -> Tensor {
        guard format.precisionBits < Scalar.dtype.precisionBits else { return self }
        return map { Scalar(fromDouble: format.round($0.asDouble)) }
    }
}
