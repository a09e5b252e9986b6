/// The emulated two-pass forward in float32 lanes, eight sets at a time from their sums to their y: a block's Σx,
/// μ, Σ(x − μ)², σ², rstd and then its rows' y, while the block's rows are still in the L2 cache — where the walks
/// one after another read x from memory three times (the sums, the squares, y). Every value is made by the same
/// operations as in `EmulatedRun.forward`'s separate walks, so the bits are the same.
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

    /// Every set's statistics into `values` and y (rounded to `storage` when reduced, with its counts).
    func fusedForward<F: EmulatedFormat, Scalar: NormScalar>(
        _ format: F.Type, x: UnsafeBufferPointer<Scalar>, units: EmulatedUnits, values: SetValues<F.Value>,
        gamma: [Double]?, beta: [Double]?, exact: ExactSums?
    ) -> (y: [Scalar], rounded: FormatRounding.Counts?) {
        let m = plan.setSize
        let divisor = Double(spec.variance == .unbiased ? m - 1 : m)
        let centre = spec.centres, eps = F.value(spec.eps)
        let affine = EmulatedAffine<F.Value>(gamma: gamma?.mapFilling(F.value), beta: beta?.mapFilling(F.value),
                                             elementwise: layout.elementwise, spatial: layout.spatial)
        defer { affine.free() }
        let rounder = chunkRounder(F.self, Scalar.self, units: units)
        let input = SharedInput(x.baseAddress!)
        let y = [Scalar](unsafeUninitializedCapacity: x.count) { yOut, initialized in
            let output = SharedValues(yOut.baseAddress!)
            FastKernels.parallel(units.count / 8, threads: threads) { blocks in
                for block in blocks {
                    let first = 8 * block, sets = first..<first + 8
                    if centre {
                        _ = SumChain<F, Scalar>(x: input, sums: SharedValues(values.sums), exact: exact)
                            .walkEight(units, first: first)
                        for i in sets { values.means[i] = F.divide(values.sums[i], by: Double(m)) }
                    }
                    _ = SquareChain<F, Scalar>(x: input, means: SharedInput(values.means),
                                               squares: SharedValues(values.squares), exact: centre ? nil : exact)
                        .walkEight(units, first: first)
                    for i in sets {
                        values.variances[i] = F.divide(values.squares[i], by: divisor)
                        if values.wantsUnbiased { values.unbiased[i] = F.divide(values.squares[i], by: Double(m - 1)) }
                        values.rstds[i] = F.divide(1, F.squareRoot(F.add(values.variances[i], eps)))
                    }
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
        return (y, rounder?.finish())
    }
}
