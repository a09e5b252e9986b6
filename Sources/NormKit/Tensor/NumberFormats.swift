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

    /// `round` on the Double's bits, without `exponent` or a conversion: the same results (`LowPrecisionTests`), for
    /// loops over many values (element-wise dγ, dβ stored as float16 cost milliseconds through `round`).
    @inlinable
    public func roundedOnBits(_ value: Double) -> Double {
        switch self {
        case .float64: return value
        case .float32: return Double(Float(value))
        case .float16: return BitRounding.half.round(value)
        case .bfloat16: return BitRounding.brain.round(value)
        }
    }

    /// `roundedOnBits` of every value in place, the format chosen once (pointer loops: `map` stored the array's
    /// count at every element and ran one element at a time).
    public func roundOnBits(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { v in
            let rounding: BitRounding
            switch self {
            case .float64: return
            case .float32:
                for i in v.indices { v[i] = Double(Float(v[i])) }
                return
            case .float16: rounding = .half
            case .bfloat16: rounding = .brain
            }
            for i in v.indices { v[i] = rounding.round(v[i]) }
        }
    }

    /// Ties-to-even on the magnitude's bits with `dropped` fraction bits cleared (a carry into the exponent is the
    /// correct rounding up; past the largest value, ∞); below the smallest normal, (|x| + C) − C where the Doubles
    /// near C are spaced by the format's subnormal step (C = 2²⁸ for float16's 2⁻²⁴, 2⁻⁸¹ for bfloat16's 2⁻¹³³).
    @usableFromInline
    struct BitRounding: Sendable {
        @usableFromInline let dropped: UInt64
        @usableFromInline let smallestNormal: Double
        @usableFromInline let subnormalShift: Double
        @usableFromInline let largestBits: UInt64

        @usableFromInline static let half = BitRounding(dropped: 42, smallestNormal: 0x1p-14, subnormalShift: 0x1p28,
                                                        largestBits: 0x40EF_FC00_0000_0000)
        @usableFromInline static let brain = BitRounding(dropped: 45, smallestNormal: 0x1p-126,
                                                         subnormalShift: 0x1p-81, largestBits: 0x47EF_E000_0000_0000)

        /// Both roundings made and one selected, so a loop of these vectorises.
        @inlinable @inline(__always)
        func round(_ value: Double) -> Double {
            let bits = value.bitPattern
            let sign = bits & 0x8000_0000_0000_0000, magnitude = bits & 0x7FFF_FFFF_FFFF_FFFF
            let small = Double(bitPattern: magnitude)
            let subnormal = ((small + subnormalShift) - subnormalShift).bitPattern
            let half = (UInt64(1) << (dropped - 1)) - 1
            let normal = (magnitude &+ half &+ ((magnitude >> dropped) & 1)) & ~((UInt64(1) << dropped) - 1)
            var rounded = small < smallestNormal ? subnormal : (normal > largestBits ? 0x7FF0_0000_0000_0000 : normal)
            rounded = magnitude >= 0x7FF0_0000_0000_0000 ? magnitude : rounded  // ±∞ and NaN stay as they are
            return Double(bitPattern: sign | rounded)
        }
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
        if Scalar.self == Float.self && format.isReduced {  // the vectorised C rounding, the same values
            var copy = self
            _ = copy.roundInPlace(to: format, threads: 1)
            return copy
        }
        var values = scalars.map(\.asDouble)
        format.roundOnBits(&values)
        return Tensor(uncheckedShape: shape, scalars: values.map { Scalar(fromDouble: $0) })
    }
}
