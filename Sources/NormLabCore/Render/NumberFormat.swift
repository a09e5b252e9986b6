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

/// How one tensor's numbers are written: the same style for every element, chosen from the range of the values
/// that are shown.
enum NumberStyle: Equatable {
    /// Every shown value is a whole number: `3.`, `-12.`.
    case integral
    /// `precision` digits after the point.
    case fixed(Int)
    /// Mantissa with `precision` digits after the point and an exponent.
    case scientific(Int)

    /// Fixed unless the largest magnitude is ≥ 1e8 (NumPy's threshold), or every non-zero value would print as 0 in fixed form.
    static func choose(for values: [Double], precision: Int) -> NumberStyle {
        let finite = values.filter(\.isFinite)
        let magnitudes = finite.map(abs)
        guard let largest = magnitudes.max() else { return .fixed(precision) }
        if finite.allSatisfy({ $0 == $0.rounded() }) && largest < 1e15 { return .integral }
        let smallestUnit = pow(10, -Double(precision)) / 2
        if largest >= 1e8 || largest < smallestUnit { return .scientific(precision) }
        return .fixed(precision)
    }

    func format(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        switch self {
        case .integral: return String(printf: "%.0f.", value)
        case .fixed(let digits): return String(printf: "%.\(digits)f", value)
        case .scientific(let digits): return String(printf: "%.\(digits)e", value)
        }
    }
}

/// A single number in running text (summaries, tables): fixed for ordinary magnitudes, scientific otherwise.
/// Values below `noise` (rounding noise, such as the 1e-17 mean of a normalised group) print as 0.
func formatNumber(_ value: Double, precision: Int, scale noise: Double = 0) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    if abs(value) < noise { return String(printf: "%.\(precision)f", 0.0) }
    let magnitude = abs(value)
    if value == 0 || (magnitude >= pow(10, -Double(precision)) && magnitude < 1e8) {
        return String(printf: "%.\(precision)f", value)
    }
    return String(printf: "%.\(precision)e", value)
}

/// Short form of an option value: 1e-05 rather than 1.0000000000000001e-05.
func formatOption(_ value: Double) -> String {
    var text = String(printf: "%g", value)
    if Double(text) != value { text = "\(value)" }
    return text
}

/// How far below a tensor's largest magnitude a summary value is rounding noise rather than a number: a mean of
/// 1e-17 next to values of size 1 is an exact 0 computed in Float64.
enum NoiseFloor {
    static func relative(_ dtype: DType) -> Double { dtype == .float64 ? 1e-12 : 4 * dtype.unitRoundoff }
}
