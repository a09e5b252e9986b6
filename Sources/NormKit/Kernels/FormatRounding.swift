import CVectorMath

/// Rounding Float values to float16 or bfloat16 in place on integer bit patterns, in C loops that clang vectorises
/// (`normlab_round_float16`, `normlab_round_bfloat16`; the same code with Swift's SIMD masks ran one lane at a time):
/// the results a pass stores (y, dx) cost one more sweep over memory, not a per-element call.
///
/// Round to nearest, ties to even, on the float32 bits b of |x|:
/// - bfloat16 keeps the top 16 bits: (b + 0x7FFF + bit 16 of b) with the low 16 bits cleared; a carry into the
///   exponent is the correct rounding up, to ∞ past bfloat16's largest value.
/// - float16, normal range (|x| ≥ 2⁻¹⁴): the same with 13 bits, then ∞ above 65504.
/// - float16, subnormal range: (|x| + 0.5) − 0.5 in float32, whose spacing near 0.5 is 2⁻²⁴, float16's subnormal step.
/// NaN stays NaN and ±∞ stays ±∞. Tested against `DType.round` on every float32 class.
enum FormatRounding {
    struct Counts: Sendable {
        /// Finite values that became ±∞.
        var overflowed = 0
        /// Values that are NaN or ±∞ after rounding.
        var nonFinite = 0
    }

    private struct Buffer: @unchecked Sendable {
        let base: UnsafeMutablePointer<Float>
        let count: Int
    }

    private struct Results: @unchecked Sendable {
        let base: UnsafeMutablePointer<Counts>
    }

    /// Round `values` to `format` (float16 or bfloat16) in place and count what is not finite.
    static func round(_ values: UnsafeMutableBufferPointer<Float>, to format: DType, threads: Int) -> Counts {
        guard format.isReduced, let base = values.baseAddress, values.count > 0 else { return Counts() }
        let buffer = Buffer(base: base, count: values.count)
        // At least 4 per thread, and below 2³¹ elements each (the C loop counts in 32 bits).
        let chunks = max(1, min(4 * threads, values.count / 65_536), (values.count >> 31) + 1)
        let counts = UnsafeMutablePointer<Counts>.allocate(capacity: chunks)
        counts.initialize(repeating: Counts(), count: chunks)
        defer { counts.deallocate() }
        let results = Results(base: counts)
        let half = format == .float16
        FastKernels.parallel(chunks, threads: threads) { range in
            for chunk in range {
                let lower = buffer.count * chunk / chunks, upper = buffer.count * (chunk + 1) / chunks
                let found = half ? roundHalf(buffer.base + lower, upper - lower) : roundBrain(buffer.base + lower, upper - lower)
                results.base[chunk] = found
            }
        }
        var total = Counts()
        for i in 0..<chunks { total.overflowed += counts[i].overflowed; total.nonFinite += counts[i].nonFinite }
        return total
    }

    private static func roundBrain(_ p: UnsafeMutablePointer<Float>, _ count: Int) -> Counts {
        var over = 0, bad = 0
        normlab_round_bfloat16(p, count, &over, &bad)
        return Counts(overflowed: over, nonFinite: bad)
    }

    /// float16 rounding without F16C, as CPUs without it get it (the tests hold it to the same results).
    static func roundHalfPortable(_ values: inout [Float]) -> Counts {
        var over = 0, bad = 0
        values.withUnsafeMutableBufferPointer { normlab_round_float16_portable($0.baseAddress!, $0.count, &over, &bad) }
        return Counts(overflowed: over, nonFinite: bad)
    }

    private static func roundHalf(_ p: UnsafeMutablePointer<Float>, _ count: Int) -> Counts {
        var over = 0, bad = 0
        normlab_round_float16(p, count, &over, &bad)
        return Counts(overflowed: over, nonFinite: bad)
    }

    /// Round a buffer of `Scalar` that is Float underneath (the caller checks `Scalar.self == Float.self`).
    static func round<Scalar: NormScalar>(_ values: inout [Scalar], to format: DType, threads: Int) -> Counts {
        guard Scalar.self == Float.self, format.isReduced else { return Counts() }
        return values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return Counts() }
            let floats = UnsafeMutableRawPointer(base).assumingMemoryBound(to: Float.self)
            return round(UnsafeMutableBufferPointer(start: floats, count: buffer.count), to: format, threads: threads)
        }
    }
}

/// Rounding a kernel's output set by set, while the set is still in cache (a separate pass over y cost as much as
/// the whole GroupNorm forward): each set's runs are rounded right after they are written, and the counts kept per
/// set so that threads never share a counter.
struct RunRounder: @unchecked Sendable {
    let format: DType
    private let counts: UnsafeMutablePointer<Int>
    private let sets: Int

    /// Nil unless `format` is float16 or bfloat16 and the elements are Float.
    init?<S: NormScalar>(_ format: DType?, sets: Int, scalar _: S.Type) {
        guard let format, format.isReduced, S.self == Float.self else { return nil }
        self.format = format
        self.sets = sets
        counts = .allocate(capacity: 2 * max(sets, 1))
        counts.initialize(repeating: 0, count: 2 * max(sets, 1))
    }

    func round<S: NormScalar>(_ start: UnsafeMutablePointer<S>, count: Int, set: Int) {
        row(set: set).round(start, count: count)
    }

    /// The rounding of a row of set (or unit) `set`, counted in that set's counters.
    func row(set: Int) -> RowRounding { RowRounding(format: format, counts: counts + 2 * set) }

    /// The totals; frees the counters.
    func finish() -> FormatRounding.Counts {
        var total = FormatRounding.Counts()
        for i in 0..<sets { total.overflowed += counts[2 * i]; total.nonFinite += counts[2 * i + 1] }
        counts.deallocate()
        return total
    }
}

extension Tensor {
    /// Round every element to `format` in place (Float tensors stored as float16 or bfloat16), with the counts of
    /// values that overflowed or are not finite.
    mutating func roundInPlace(to format: DType, threads: Int) -> FormatRounding.Counts {
        guard Scalar.self == Float.self, format.isReduced else { return FormatRounding.Counts() }
        return withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return FormatRounding.Counts() }
            let floats = UnsafeMutableRawPointer(base).assumingMemoryBound(to: Float.self)
            return FormatRounding.round(UnsafeMutableBufferPointer(start: floats, count: buffer.count), to: format,
                                        threads: threads)
        }
    }
}
