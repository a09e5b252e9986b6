/// The emulated two-pass forward in float32 lanes, eight sets at a time from their sums to their y: a block's Σx,
/// μ, Σ(x − μ)², σ², rstd and then its rows' y, while the block's rows are still in the L2 cache — where the walks
/// one after another read x from memory three times (the sums, the squares, y). Every value is made by the same
/// operations as in `EmulatedRun.forward`'s separate walks, so the bits are the same.
///
/// It does not make the exact sums the cancellation check compares with (in Float64 they cost more than the float32
/// chains themselves): its sum chain also adds |x|, and a set whose float32 σ² provably lies within 5 % of the exact
/// one (`TwoPassBound`) cannot be flagged. Only when some set has no such proof does the check make the exact sums.
extension EmulatedRun {
    /// The per-set values the fused forward writes (each block its own eight).
    struct SetValues<Value>: @unchecked Sendable {
        let sums, squares, means, variances, unbiased, rstds: UnsafeMutablePointer<Value>
        /// Whether `unbiased` is wanted (it has room for every set then).
        let wantsUnbiased: Bool
    }

    /// Whether `fusedForward` applies: float32 lanes on a Float tensor, two passes, sets of whole rows in blocks of
    /// eight.
    func fusesForward<F: EmulatedFormat, Scalar: NormScalar>(_: F.Type, _: Scalar.Type, units: EmulatedUnits,
                                                             method: VarianceMethod) -> Bool {
        EightLanes.applies(F.self, Scalar.self) && method == .twopass && !units.columns && units.count > 0
            && units.count % 8 == 0
    }

    /// Every set's statistics into `values` and y (rounded to `storage` when reduced, with its counts), and whether
    /// `TwoPassBound` rules out cancellation in every set.
    func fusedForward<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, units: EmulatedUnits, values: SetValues<F.Value>,
        gamma: [Double]?, beta: [Double]?
    ) -> (y: [Scalar], rounded: FormatRounding.Counts?, cancellationRuledOut: Bool) {
        let m = plan.setSize
        let divisor = Double(spec.variance == .unbiased ? m - 1 : m)
        let centre = spec.centres, eps = F.value(spec.eps)
        let affine = EmulatedAffine<F.Value>(gamma: gamma?.mapFilling(F.value), beta: beta?.mapFilling(F.value),
                                             elementwise: layout.elementwise, spatial: layout.spatial)
        defer { affine.free() }
        let rounder = chunkRounder(F.self, Scalar.self, units: units)
        let input = SharedInput(x.baseAddress!)
        // Each block's verdict: every set's cancellation ruled out.
        let ruledOut = SharedValues(UnsafeMutablePointer<Bool>.allocate(capacity: units.count / 8))
        defer { ruledOut.base.deallocate() }
        let y = [Scalar](unsafeUninitializedCapacity: x.count) { yOut, initialized in
            let output = SharedValues(yOut.baseAddress!)
            FastKernels.parallel(units.count / 8, threads: threads) { blocks in
                for block in blocks {
                    let first = 8 * block, sets = first..<first + 8
                    var magnitudes = SIMD8<Float>()
                    if centre {
                        EightLanes.walk(.sumAndMagnitudes, units, first: first, x: input) { lane, sum, magnitude in
                            values.sums[first + lane] = unsafeBitCast(sum, to: F.Value.self)
                            magnitudes[lane] = magnitude
                        }
                        for i in sets { values.means[i] = F.divide(values.sums[i], by: Double(m)) }
                    }
                    _ = SquareChain<F, Scalar>(x: input, means: SharedInput(values.means),
                                               squares: SharedValues(values.squares))
                        .walkEight(units, first: first)
                    var proved = true
                    for i in sets {
                        values.variances[i] = F.divide(values.squares[i], by: divisor)
                        if values.wantsUnbiased { values.unbiased[i] = F.divide(values.squares[i], by: Double(m - 1)) }
                        values.rstds[i] = F.divide(1, F.squareRoot(F.add(values.variances[i], eps)))
                        proved = proved && TwoPassBound.rulesOutCancellation(
                            setSize: m, magnitudeSum: centre ? Double(magnitudes[i - first]) : nil,
                            squares: Double(values.squares[i]))
                    }
                    ruledOut[block] = proved
                    for unit in sets {
                        for r in 0..<units.rowsPerUnit {
                            let row = units.row(unit: unit, r)
                            let (gamma, gammaStride) = affine.gammaRow(row.channel)
                            let (beta, betaStride) = affine.betaRow(row.channel)
                            EmulatedRows.normalize(F.self, EmulatedRowOperands(
                                mean: values.means + row.firstStat, rstd: values.rstds + row.firstStat, statStride: 0,
                                gamma: gamma, gammaStride: gammaStride, beta: beta, betaStride: betaStride),
                                x: input.base + row.offset, y: output.base + row.offset, count: units.spatial,
                                rounding: rounder?.row(set: unit))
                        }
                    }
                }
            }
            initialized = x.count
        }
        let everySet = (0..<units.count / 8).allSatisfy { ruledOut[$0] }
        return (y, rounder?.finish(), everySet)
    }
}

/// When float32 two-pass statistics cannot be off by the 10 % the cancellation check flags, from the float32 sums
/// alone. The standard bounds (Higham, Accuracy and Stability of Numerical Algorithms, §3.1 and §4.2), with
/// u = 2⁻²⁴ and γₙ = nu/(1 − nu), for a set of m elements, S = Σ(x − μ)² exact and Ŝ the float32 chain's:
/// - the sequential sum ŝ of x: |ŝ − Σx| ≤ γ_{m−1}·Σ|x|; μ̂ = fl(ŝ/m) adds a rounding, so
///   |μ̂ − μ| ≤ δ = (γ_{m−1}(1 + u) + u)·Σ|x|/m (Σ|x| from its own float32 sum Â: Σ|x| ≤ Â/(1 − γ_{m−1}));
/// - each (x − μ̂)² is rounded twice and the sequential sum of positive terms adds γ_{m−1}, so
///   Ŝ = Σ(x − μ̂)²·(1 + θ), |θ| ≤ γ_{m+2}, and Σ(x − μ̂)² = S + m(μ̂ − μ)²: S ≥ Ŝ/(1 + γ_{m+2}) − mδ²;
/// - σ̂² = fl(Ŝ/d) adds a rounding: σ̂²/σ² lies in [1 − γ_{m+3}, (1 + mδ²/S)(1 + γ_{m+3})].
/// A set passes when that interval is within 5 % of 1 (half the check's 10 %, for the Double arithmetic here and the
/// division's rounding through Double). Sets whose squares could have underflowed (S below m·2⁻¹²⁰: a subnormal
/// square is off by up to 2⁻¹⁴⁹ absolutely), that overflowed or that are constant (Ŝ = 0) never pass.
enum TwoPassBound {
    /// `magnitudeSum`: the float32 sum of |x| (nil when the layer does not centre: μ = 0 exactly, δ = 0).
    static func rulesOutCancellation(setSize m: Int, magnitudeSum: Double?, squares: Double) -> Bool {
        let u = 0x1p-24, n = Double(m)
        func gamma(_ k: Double) -> Double { k * u / (1 - k * u) }
        guard squares.isFinite, (n + 3) * u < 0.5 else { return false }  // γ's formula holds; the end decides
        var meanError = 0.0
        if let magnitudeSum {
            guard magnitudeSum.isFinite else { return false }
            meanError = (gamma(n - 1) * (1 + u) + u) * (magnitudeSum / (1 - gamma(n - 1))) / n
        }
        let lower = squares / (1 + gamma(n + 2)) - n * meanError * meanError
        guard lower > n * 0x1p-120 else { return false }
        return (1 + n * meanError * meanError / lower) * (1 + gamma(n + 3)) <= 1.05
    }
}
