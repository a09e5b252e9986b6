import CVectorMath

/// The row loops of element-wise γ, β (PyDLLib's affine, `affine=element`): γ and β run along the row with x, in
/// Float64 lanes — x̂ = (x − μ)·rstd, y = γ·x̂ + β as the general path computes them, element by element. γ and β
/// are read as they are stored, in the tensors' own type.
extension FastKernels {
    @inline(__always)
    static func elementAffineRow<S: NormScalar>(
        x: UnsafePointer<S>, y: UnsafeMutablePointer<S>, count: Int, mean: Double, rstd: Double,
        gamma: UnsafePointer<S>, beta: UnsafePointer<S>?
    ) {
        let mv = SIMD4<Double>(repeating: mean), rv = SIMD4<Double>(repeating: rstd)
        if let beta {
            WideLanes.lanes(count) { i in
                let h = (WideLanes.wide4(x + i) - mv) * rv
                WideLanes.narrow4(h * WideLanes.wide4(gamma + i) + WideLanes.wide4(beta + i), y + i)
            } one: { i in
                y[i] = S(fromDouble: (x[i].asDouble - mean) * rstd * gamma[i].asDouble + beta[i].asDouble)
            }
        } else {
            WideLanes.lanes(count) { i in
                // + 0 as the general path adds its β = 0 (−0 becomes +0).
                WideLanes.narrow4((WideLanes.wide4(x + i) - mv) * rv * WideLanes.wide4(gamma + i) + 0, y + i)
            } one: { i in
                y[i] = S(fromDouble: (x[i].asDouble - mean) * rstd * gamma[i].asDouble + 0)
            }
        }
    }

    /// y = x̂ + β where a layer has element-wise β but no γ.
    @inline(__always)
    static func normalizedRow<S: NormScalar>(
        x: UnsafePointer<S>, y: UnsafeMutablePointer<S>, count: Int, mean: Double, rstd: Double, beta: UnsafePointer<S>?
    ) {
        let mv = SIMD4<Double>(repeating: mean), rv = SIMD4<Double>(repeating: rstd)
        WideLanes.lanes(count) { i in
            let h = (WideLanes.wide4(x + i) - mv) * rv
            WideLanes.narrow4(h + (beta.map { WideLanes.wide4($0 + i) } ?? SIMD4<Double>()), y + i)
        } one: { i in
            let h = (x[i].asDouble - mean) * rstd
            y[i] = S(fromDouble: h + (beta.map { $0[i].asDouble } ?? 0))
        }
    }

    /// The base address of an optional array's elements, for the length of `body`.
    static func withBuffer<T, R>(_ values: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// (Σ γ·dy, Σ γ·dy·x̂) over a row (`normlab_element_affine_sums`: C, AVX2 where the CPU has it).
    @inline(__always)
    static func elementAffineSums<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, count: Int, mean: Double, rstd: Double, gamma: UnsafePointer<S>
    ) -> (dh: Double, dhXhat: Double) {
        var sums = (0.0, 0.0)
        withUnsafeMutablePointer(to: &sums) { $0.withMemoryRebound(to: Double.self, capacity: 2) { out in
            if S.self == Float.self {
                normlab_element_affine_sums_f32(f32(dy), f32(x), count, mean, rstd, f32(gamma), out)
            } else {
                normlab_element_affine_sums_f64(f64(dy), f64(x), count, mean, rstd, f64(gamma), out)
            }
        }}
        return sums
    }

    /// dx = rstd·(γ·dy − meanTerm − x̂·projection) along a row; with `dgamma`, also dγ += dy·x̂ and dβ += dy there
    /// (the parameter gradients of this row's elements, one sample more).
    @inline(__always)
    static func elementAffineGradient<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, count: Int, mean: Double,
        rstd: Double, gamma: UnsafePointer<S>, meanTerm: Double, projection: Double,
        dgamma: UnsafeMutablePointer<Double>? = nil, dbeta: UnsafeMutablePointer<Double>? = nil
    ) {
        if S.self == Float.self {
            normlab_element_affine_gradient_f32(f32(dy), f32(x), UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Float.self),
                                                count, mean, rstd, f32(gamma), meanTerm, projection, dgamma, dbeta)
        } else {
            normlab_element_affine_gradient_f64(f64(dy), f64(x), UnsafeMutableRawPointer(dx).assumingMemoryBound(to: Double.self),
                                                count, mean, rstd, f64(gamma), meanTerm, projection, dgamma, dbeta)
        }
    }

    @inline(__always)
    private static func f32<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
    @inline(__always)
    private static func f64<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Double> { UnsafeRawPointer(p).assumingMemoryBound(to: Double.self) }

    /// x̂ = (x − μ)·rstd of a run of one set, in Float64, for the parameter gradients.
    @inline(__always)
    static func normalizedRun<S: NormScalar>(x: UnsafePointer<S>, into h: UnsafeMutablePointer<Double>, count: Int,
                                             mean: Double, rstd: Double) {
        let mv = SIMD4<Double>(repeating: mean), rv = SIMD4<Double>(repeating: rstd)
        WideLanes.lanes(count) { i in
            WideLanes.put4((WideLanes.wide4(x + i) - mv) * rv, h + i)
        } one: { i in
            h[i] = (x[i].asDouble - mean) * rstd
        }
    }

    /// Whether `elementAffineBackward` can run this pass: a unit is a channel (BatchNorm's sets) or a group over
    /// every sample, and there must be units enough for the threads (LayerNorm's one group is not).
    static func elementAffineUnits(_ rows: Rows, threads: Int) -> Int? {
        let units = rows.batchNorm ? rows.channels : rows.groups
        return units >= 2 * threads || threads == 1 ? units : nil
    }

    /// Backward of element-wise γ with the parameter gradients made on the way: a unit (a channel for BatchNorm, a
    /// group otherwise) runs every sample in order, so each element's dγ and dβ are summed over the batch in sample
    /// order by one thread — the same operations, in the same order, as the pass after the rows it replaces.
    static func elementAffineBackward<S: NormScalar>(
        rows: Rows, units: Int, batch: Int, centre: Bool, m: Double, divisor: Double, dy: UnsafePointer<S>, x: UnsafePointer<S>,
        means: UnsafePointer<Double>, rstds: UnsafePointer<Double>, gamma: UnsafePointer<S>,
        dx: UnsafeMutablePointer<S>, dgamma: UnsafeMutablePointer<Double>?, dbeta: UnsafeMutablePointer<Double>?,
        threads: Int, rounder: RunRounder?
    ) {
        nonisolated(unsafe) let gp = dy, xp = x, dxp = dx, gammaOf = gamma, meanOf = means, rstdOf = rstds
        nonisolated(unsafe) let dg = dgamma, db = dbeta
        let spatial = rows.spatial, channels = rows.channels
        let run = rows.batchNorm ? spatial : rows.channelsPerGroup * spatial
        let groups = rows.groups
        parallel(units, threads: threads) { range in
            for unit in range {
                // The unit's elements of one sample: a run of `run` at sample n; γ, dγ, dβ at `parameterOffset`.
                let parameterOffset = unit * run
                func offset(_ n: Int) -> Int { n * channels * spatial + parameterOffset }
                if let dg, let db {
                    (dg + parameterOffset).update(repeating: 0, count: run)
                    (db + parameterOffset).update(repeating: 0, count: run)
                }
                let g = gammaOf + parameterOffset
                func finish(_ set: Int, _ mean: Double, _ rstd: Double, _ sums: (dh: Double, dhXhat: Double), _ n: Int) {
                    let meanTerm = centre ? sums.dh / m : 0, projection = sums.dhXhat / divisor
                    let at = offset(n)
                    elementAffineGradient(dy: gp + at, x: xp + at, dx: dxp + at, count: run, mean: mean, rstd: rstd,
                                          gamma: g, meanTerm: meanTerm, projection: projection,
                                          dgamma: dg.map { $0 + parameterOffset }, dbeta: db.map { $0 + parameterOffset })
                    rounder?.round(dxp + at, count: run, set: set)
                }
                if rows.batchNorm {
                    // One set: the channel's row in every sample.
                    let mean = meanOf[unit], rstd = rstdOf[unit]
                    var sums = (dh: 0.0, dhXhat: 0.0)
                    for n in 0..<batch {
                        let at = offset(n)
                        let row = elementAffineSums(dy: gp + at, x: xp + at, count: run, mean: mean, rstd: rstd, gamma: g)
                        sums = (sums.dh + row.dh, sums.dhXhat + row.dhXhat)
                    }
                    for n in 0..<batch { finish(unit, mean, rstd, sums, n) }
                } else {
                    // A set per sample: (n, group), summed channel row by channel row as the rows path sums it.
                    for n in 0..<batch {
                        let set = n * groups + unit, at = offset(n)
                        let mean = meanOf[set], rstd = rstdOf[set]
                        var sums = (dh: 0.0, dhXhat: 0.0)
                        for k in 0..<rows.channelsPerGroup {
                            let row = elementAffineSums(dy: gp + at + k * spatial, x: xp + at + k * spatial, count: spatial,
                                                        mean: mean, rstd: rstd, gamma: g + k * spatial)
                            sums = (sums.dh + row.dh, sums.dhXhat + row.dhXhat)
                        }
                        finish(set, mean, rstd, sums, n)
                    }
                }
            }
        }
    }
}
