/// The portable random numbers behind `rand` and `randn`.
///
/// Bits come from SplitMix64 (Steele, Lea & Flood 2014), a 64-bit generator whose whole state is one integer.
/// Normal deviates use Marsaglia's polar method with a logarithm written here from IEEE 754 basic operations
/// only (+, −, ×, ÷, √ are correctly rounded everywhere), not the platform's `log`, which may differ in the last
/// bit between C libraries. So `randn 2 3 seed 0` is the same on every machine, now and later; tests pin values.
///
/// - uniform Float64: the top 53 bits of a draw, times 2⁻⁵³, in [0, 1);
/// - uniform Float32: the top 24 bits of a draw, times 2⁻²⁴, in [0, 1);
/// - normal: u, v uniform in (−1, 1) from two Float64 draws, s = u² + v², rejected unless 0 < s < 1, then
///   u·√(−2 ln s / s) and v·√(−2 ln s / s), in that order; Float32 tensors round these Float64 values.
public struct SplitMix64: Sendable {
    /// The generator's state: the seed, advanced by each draw.
    public private(set) var state: UInt64

    /// A generator that starts from `seed`: the same seed gives the same numbers on every machine.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in [0, 1), from the top 53 bits.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// A uniform Float in [0, 1), from the top 24 bits.
    public mutating func nextUniformFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform in 0..<bound, without modulo bias.
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let limit = UInt64(bound)
        let threshold = (0 &- limit) % limit
        while true {
            let r = next()
            if r >= threshold { return Int(r % limit) }
        }
    }
}

/// A stream of standard normal deviates (Marsaglia's polar method over SplitMix64).
public struct NormalGenerator: Sendable {
    private var bits: SplitMix64
    private var spare: Double?

    /// Normal numbers from SplitMix64 bits seeded with `seed`.
    public init(seed: UInt64) { bits = SplitMix64(seed: seed) }

    /// The next standard normal number (Marsaglia's polar method, with `portableLog`).
    public mutating func next() -> Double {
        if let value = spare {
            spare = nil
            return value
        }
        while true {
            let u = 2 * bits.nextUniform() - 1
            let v = 2 * bits.nextUniform() - 1
            let s = u * u + v * v
            if s >= 1 || s == 0 { continue }
            let factor = (-2 * portableLog(s) / s).squareRoot()
            spare = v * factor
            return u * factor
        }
    }
}

/// Natural logarithm of a positive, finite Double using only correctly rounded operations, so its result is the
/// same on every IEEE 754 machine. Accurate to about one unit in the last place.
package func portableLog(_ x: Double) -> Double {
    guard x > 0, x.isFinite else { return x == 0 ? -.infinity : .nan }
    var exponent = Double(x.exponent)
    var m = x.significand  // in [1, 2), exact
    if m > 1.4142135623730951 {
        m *= 0.5  // exact
        exponent += 1
    }
    // log m = 2·atanh(t), t = (m − 1)/(m + 1), |t| ≤ 0.1716: the series in t² converges fast.
    let t = (m - 1) / (m + 1)
    let t2 = t * t
    var series = 0.0
    for k in stride(from: 12, through: 1, by: -1) {
        series = (series + 1 / Double(2 * k + 1)) * t2
    }
    let logM = 2 * t + 2 * t * series
    let ln2High = 0.693147180369123816490  // 0x1.62e42fee00000p-1: exact products with small exponents
    let ln2Low = 1.90821492927058770002e-10
    return exponent * ln2High + (exponent * ln2Low + logM)
}
