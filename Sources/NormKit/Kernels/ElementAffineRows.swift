import CVectorMath

/// The row loops of element-wise γ, β (PyDLLib's affine, `affine=element`): γ and β run along the row with x, read
/// as they are stored, in the tensors' own type. float64 runs in Float64 lanes, x̂ = (x − μ)·rstd as the general path
/// computes it; float32 in float32 lanes (μ's remainder in x̂'s constant), or in Float64 lanes for a set whose μ or
/// rstd leaves float32's comfortable range.
extension FastKernels {
    /// float32 dγ and dβ written by the last fold itself (`normlab_fold_float_sums_narrowed`), each value
    /// `Float(sum)` or `Float(sum / divisor)` as narrowing the Float64 sums afterwards would make it: a float32 layer's
    /// element-wise gradients then skip a Float64 array twice their size.
    struct NarrowedParameters: @unchecked Sendable {
        let gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>
        /// 0: as summed; 1: times `factor`; 2: divided by it (`FastKernels.narrowed`'s choice for the divisor).
        let scaling: Int32, factor: Double

        init(gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>, dividedBy divisor: Double) {
            (self.gamma, self.beta) = (gamma, beta)
            let reciprocal = FastKernels.exactReciprocal(of: divisor)
            (scaling, factor) = divisor == 1 ? (0, 1) : reciprocal.map { (1, $0) } ?? (2, divisor)
        }

        private init(gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>, scaling: Int32, factor: Double) {
            (self.gamma, self.beta, self.scaling, self.factor) = (gamma, beta, scaling, factor)
        }

        func advanced(by i: Int) -> NarrowedParameters {
            NarrowedParameters(gamma: gamma + i, beta: beta + i, scaling: scaling, factor: factor)
        }
    }

    /// Where a row's terms of dγ (dy·x̂) and dβ (dy) go: the Float64 sums over the batch, or — rows in float32 lanes —
    /// float32 stages that `fold` adds into them after every eighth sample (so at most eight terms are summed in
    /// float32, in sample order, whichever loop or thread makes them); with `narrowed`, the last fold writes float32
    /// dγ and dβ there instead of the Float64 sums.
    struct ParameterSums {
        let gamma: UnsafeMutablePointer<Double>, beta: UnsafeMutablePointer<Double>
        let stageGamma: UnsafeMutablePointer<Float>, stageBeta: UnsafeMutablePointer<Float>
        /// float32 rows (float64 ones have no stages).
        let staged: Bool
        /// Whether the sums were cleared before the first sample; if not (every set in the float32 lanes, so nothing
        /// adds into them before the first fold), the first fold writes 0 + stage, the same value.
        let cleared: Bool
        let narrowed: NarrowedParameters?

        /// The sums of a run of `count` elements at `gamma`, `beta`: cleared first unless every set adding into them
        /// runs in the float32 lanes (`floatLanes`).
        init<S: NormScalar>(_: S.Type, gamma: UnsafeMutablePointer<Double>, beta: UnsafeMutablePointer<Double>,
                            count: Int, stageGamma: UnsafeMutablePointer<Float>, stageBeta: UnsafeMutablePointer<Float>,
                            floatLanes: Bool, narrowed: NarrowedParameters? = nil) {
            self.init(gamma: gamma, beta: beta, stageGamma: stageGamma, stageBeta: stageBeta, staged: S.self == Float.self,
                      cleared: !floatLanes, narrowed: S.self == Float.self ? narrowed : nil)
            if !floatLanes {
                gamma.update(repeating: 0, count: count)
                beta.update(repeating: 0, count: count)
            }
        }

        private init(gamma: UnsafeMutablePointer<Double>, beta: UnsafeMutablePointer<Double>,
                     stageGamma: UnsafeMutablePointer<Float>, stageBeta: UnsafeMutablePointer<Float>, staged: Bool,
                     cleared: Bool, narrowed: NarrowedParameters?) {
            (self.gamma, self.beta, self.stageGamma, self.stageBeta) = (gamma, beta, stageGamma, stageBeta)
            (self.staged, self.cleared, self.narrowed) = (staged, cleared, narrowed)
        }

        func advanced(by i: Int) -> ParameterSums {
            ParameterSums(gamma: gamma + i, beta: beta + i, stageGamma: stageGamma + i, stageBeta: stageBeta + i,
                          staged: staged, cleared: cleared, narrowed: narrowed?.advanced(by: i))
        }

        /// After sample n of `batch`: the stages added into the sums and cleared, at the end of each eighth sample.
        func fold(after n: Int, of batch: Int, count: Int) {
            guard staged, n % 8 == 7 || n == batch - 1 else { return }
            let first = !cleared && n < 8
            if n == batch - 1, let narrowed {
                normlab_fold_float_sums_narrowed(narrowed.gamma, first ? nil : gamma, stageGamma, count,
                                                 narrowed.scaling, narrowed.factor)
                normlab_fold_float_sums_narrowed(narrowed.beta, first ? nil : beta, stageBeta, count,
                                                 narrowed.scaling, narrowed.factor)
                return
            }
            normlab_fold_float_sums(gamma, first ? nil : gamma, stageGamma, count)
            normlab_fold_float_sums(beta, first ? nil : beta, stageBeta, count)
        }
    }

    /// Zeroed float32 stages for `count` elements' terms (float32 rows only) for the length of `body`.
    static func withStages<R>(_ scalar: (some NormScalar).Type, count: Int,
                              _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> R) -> R {
        let size = scalar == Float.self ? max(count, 1) : 1
        let stages = UnsafeMutablePointer<Float>.allocate(capacity: 2 * size)
        defer { stages.deallocate() }
        stages.initialize(repeating: 0, count: 2 * size)
        return body(stages, stages + size)
    }

    /// y = γ·x̂ + β along a row (`normlab_element_affine_apply`: C, AVX2 or AVX-512F where the CPU has it); γ nil is 1,
    /// β nil 0.
    @inline(__always)
    static func elementAffineRow<S: NormScalar>(
        x: UnsafePointer<S>, y: UnsafeMutablePointer<S>, count: Int, mean: Double, rstd: Double,
        gamma: UnsafePointer<S>?, beta: UnsafePointer<S>?
    ) {
        if S.self == Float.self {
            normlab_element_affine_apply_f32(f32(x), UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self), count,
                                             mean, rstd, gamma.map(f32), beta.map(f32))
        } else {
            normlab_element_affine_apply_f64(f64(x), UnsafeMutableRawPointer(y).assumingMemoryBound(to: Double.self), count,
                                             mean, rstd, gamma.map(f64), beta.map(f64))
        }
    }

    /// The base address of an optional array's elements, for the length of `body`.
    static func withBuffer<T, R>(_ values: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// Whether a set's backward runs in the float32 element lanes (`ElementLanes`: eight lanes, x̂ from μ split in
    /// two, as forward and the rows of one element per channel make it) — float32 with μ and rstd in float32's
    /// comfortable range — rather than the Float64 lanes of `element_affine.c`. Chosen per set, so a set's dx, its
    /// sums and its terms of dγ, dβ are the same expressions whichever loop or thread makes them.
    @inline(__always)
    static func floatElementLanes<S: NormScalar>(_: S.Type, mean: Double, rstd: Double) -> Bool {
        S.self == Float.self && normlab_element_float_lanes_fit(mean, rstd) != 0
    }

    /// (Σ γ·dy, Σ γ·dy·x̂) over a row.
    @inline(__always)
    static func elementAffineSums<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, count: Int, mean: Double, rstd: Double, gamma: UnsafePointer<S>
    ) -> (dh: Double, dhXhat: Double) {
        if floatElementLanes(S.self, mean: mean, rstd: rstd) {
            let sums = FloatKernel.elementwiseGradientSums(f32(dy), f32(x), gamma: f32(gamma), count: count, mean: mean,
                                                           rstd: rstd)
            return (sums.dy, sums.dyXhat)
        }
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

    /// dx = rstd·(γ·dy − meanTerm − x̂·projection) along a row, and dy·x̂ and dy into the parameter sums there (the
    /// parameter gradients of this row's elements, one sample more).
    @inline(__always)
    static func elementAffineGradient<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, count: Int, mean: Double,
        rstd: Double, gamma: UnsafePointer<S>, meanTerm: Double, projection: Double, sums: ParameterSums
    ) {
        if floatElementLanes(S.self, mean: mean, rstd: rstd) {
            FloatKernel.elementwiseGradientStaged(f32(dy), f32(x), f32(dx), gamma: f32(gamma), count: count, mean: mean,
                                                  rstd: rstd, meanTerm: meanTerm, projection: projection,
                                                  stageGamma: sums.stageGamma, stageBeta: sums.stageBeta)
        } else if S.self == Float.self {
            normlab_element_affine_gradient_f32(f32(dy), f32(x), f32(dx), count, mean, rstd, f32(gamma), meanTerm,
                                                projection, sums.gamma, sums.beta)
        } else {
            normlab_element_affine_gradient_f64(f64(dy), f64(x), f64(dx), count, mean, rstd, f64(gamma), meanTerm,
                                                projection, sums.gamma, sums.beta)
        }
    }

    /// BatchNorm in eval mode: dx = rstd·(γ·dy), dγ += dy·x̂, dβ += dy along a row.
    @inline(__always)
    static func elementAffineEvalGradient<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, count: Int, mean: Double, rstd: Double,
        gamma: UnsafePointer<S>, dgamma: UnsafeMutablePointer<Double>, dbeta: UnsafeMutablePointer<Double>
    ) {
        if S.self == Float.self {
            normlab_element_affine_eval_gradient_f32(f32(dy), f32(x), f32(dx), count, mean, rstd, f32(gamma), dgamma, dbeta)
        } else {
            normlab_element_affine_eval_gradient_f64(f64(dy), f64(x), f64(dx), count, mean, rstd, f64(gamma), dgamma, dbeta)
        }
    }

    /// `elementAffineGradient` on this row and `elementAffineSums` on the next one (the next sample's row with the same
    /// γ, read once, or BatchNorm's next channel with its own) in one loop where both sets run in the same lanes;
    /// otherwise the two calls.
    @inline(__always)
    static func elementAffineGradientAndSums<S: NormScalar>(
        dy: UnsafePointer<S>, x: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, count: Int, mean: Double, rstd: Double,
        gamma: UnsafePointer<S>, meanTerm: Double, projection: Double, sums parameters: ParameterSums,
        nextDy: UnsafePointer<S>, nextX: UnsafePointer<S>, nextGamma: UnsafePointer<S>, nextMean: Double, nextRstd: Double
    ) -> (dh: Double, dhXhat: Double) {
        let floatLanes = floatElementLanes(S.self, mean: mean, rstd: rstd)
        // The Float64 lanes' loop reads one γ for both rows.
        guard floatLanes == floatElementLanes(S.self, mean: nextMean, rstd: nextRstd), floatLanes || nextGamma == gamma else {
            elementAffineGradient(dy: dy, x: x, dx: dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                  meanTerm: meanTerm, projection: projection, sums: parameters)
            return elementAffineSums(dy: nextDy, x: nextX, count: count, mean: nextMean, rstd: nextRstd, gamma: nextGamma)
        }
        if floatLanes {
            let sums = FloatKernel.elementwiseGradientAndSumsStaged(
                f32(dy), f32(x), f32(dx), gamma: f32(gamma), count: count, mean: mean, rstd: rstd, meanTerm: meanTerm,
                projection: projection, stageGamma: parameters.stageGamma, stageBeta: parameters.stageBeta,
                nextDy: f32(nextDy), nextX: f32(nextX), nextGamma: f32(nextGamma), nextMean: nextMean, nextRstd: nextRstd)
            return (sums.dy, sums.dyXhat)
        }
        var sums = (0.0, 0.0)
        withUnsafeMutablePointer(to: &sums) { $0.withMemoryRebound(to: Double.self, capacity: 2) { out in
            if S.self == Float.self {
                normlab_element_affine_gradient_and_sums_f32(
                    f32(dy), f32(x), f32(dx), count, mean, rstd, f32(gamma), meanTerm, projection, parameters.gamma,
                    parameters.beta, f32(nextDy), f32(nextX), nextMean, nextRstd, out)
            } else {
                normlab_element_affine_gradient_and_sums_f64(
                    f64(dy), f64(x), f64(dx), count, mean, rstd, f64(gamma), meanTerm, projection, parameters.gamma,
                    parameters.beta, f64(nextDy), f64(nextX), nextMean, nextRstd, out)
            }
        }}
        return sums
    }

    @inline(__always)
    private static func f32<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
    @inline(__always)
    private static func f64<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Double> { UnsafeRawPointer(p).assumingMemoryBound(to: Double.self) }
    @inline(__always)
    private static func f32<S>(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }
    @inline(__always)
    private static func f64<S>(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Double> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Double.self)
    }

    /// Whether `elementAffineBackward` runs this pass: a unit is a channel (BatchNorm's sets, each over every
    /// sample, so always) or a group over every sample, when there are units enough for the threads (LayerNorm's one
    /// group is not: `elementAffineBackwardBySpans` then).
    static func elementAffineUnits(_ rows: Rows, threads: Int) -> Int? {
        let units = rows.groups  // BatchNorm: C, or its groups
        return rows.batchNorm || units >= 2 * threads || threads == 1 ? units : nil
    }

    /// Backward of element-wise γ with the parameter gradients made on the way: a unit (a channel for BatchNorm, a
    /// group otherwise) runs every sample in order, so each element's dγ and dβ are summed over the batch in sample
    /// order by one thread — the same operations, in the same order, as the pass after the rows it replaces.
    static func elementAffineBackward<S: NormScalar>(
        rows: Rows, units: Int, batch: Int, centre: Bool, m: Double, divisor: Double, dy: UnsafePointer<S>, x: UnsafePointer<S>,
        means: UnsafePointer<Double>, rstds: UnsafePointer<Double>, gamma: UnsafePointer<S>,
        dx: UnsafeMutablePointer<S>, dgamma: UnsafeMutablePointer<Double>, dbeta: UnsafeMutablePointer<Double>,
        threads: Int, rounder: RunRounder?, narrowed: NarrowedParameters? = nil
    ) {
        nonisolated(unsafe) let gp = dy, xp = x, dxp = dx, gammaOf = gamma, meanOf = means, rstdOf = rstds
        nonisolated(unsafe) let dg = dgamma, db = dbeta
        let spatial = rows.spatial, channels = rows.channels
        let run = rows.channelsPerGroup * spatial
        let groups = rows.groups
        parallel(units, threads: threads) { range in withStages(S.self, count: run) { stageGamma, stageBeta in
            // BatchNorm: the sums of the next channel of this range, made with this one's dx.
            var pendingChannel: (dh: Double, dhXhat: Double)? = nil
            for unit in range {
                // The unit's elements of one sample: a run of `run` at sample n; γ, dγ, dβ at `parameterOffset`.
                let parameterOffset = unit * run
                func offset(_ n: Int) -> Int { n * channels * spatial + parameterOffset }
                func inFloatLanes(_ set: Int) -> Bool { floatElementLanes(S.self, mean: meanOf[set], rstd: rstdOf[set]) }
                let floatLanes = rows.batchNorm ? inFloatLanes(unit) : (0..<batch).allSatisfy { inFloatLanes($0 * groups + unit) }
                let parameters = ParameterSums(S.self, gamma: dg + parameterOffset, beta: db + parameterOffset, count: run,
                                               stageGamma: stageGamma, stageBeta: stageBeta, floatLanes: floatLanes,
                                               narrowed: narrowed?.advanced(by: parameterOffset))
                let g = gammaOf + parameterOffset
                func finish(_ set: Int, _ mean: Double, _ rstd: Double, _ sums: (dh: Double, dhXhat: Double), _ n: Int) {
                    let meanTerm = centre ? sums.dh / m : 0, projection = sums.dhXhat / divisor
                    let at = offset(n)
                    elementAffineGradient(dy: gp + at, x: xp + at, dx: dxp + at, count: run, mean: mean, rstd: rstd,
                                          gamma: g, meanTerm: meanTerm, projection: projection, sums: parameters)
                    rounder?.round(dxp + at, count: run, set: set)
                    parameters.fold(after: n, of: batch, count: run)
                }
                if rows.batchNorm {
                    // One set: the channel's row (the group's K rows) in every sample, summed sample by sample, row by
                    // row. Making its dx also sums the range's next channel in that order (with its own γ).
                    let mean = meanOf[unit], rstd = rstdOf[unit], k = rows.channelsPerGroup
                    var sums = pendingChannel ?? (dh: 0.0, dhXhat: 0.0)
                    if pendingChannel == nil {
                        for n in 0..<batch {
                            let at = offset(n)
                            for r in 0..<k {
                                let row = elementAffineSums(dy: gp + at + r * spatial, x: xp + at + r * spatial,
                                                            count: spatial, mean: mean, rstd: rstd, gamma: g + r * spatial)
                                sums = (sums.dh + row.dh, sums.dhXhat + row.dhXhat)
                            }
                        }
                    }
                    pendingChannel = nil
                    guard unit + 1 < range.upperBound else {
                        for n in 0..<batch { finish(unit, mean, rstd, sums, n) }
                        continue
                    }
                    let meanTerm = centre ? sums.dh / m : 0, projection = sums.dhXhat / divisor
                    var next = (dh: 0.0, dhXhat: 0.0)
                    for n in 0..<batch {
                        let at = offset(n)
                        for r in 0..<k {
                            let row = elementAffineGradientAndSums(
                                dy: gp + at + r * spatial, x: xp + at + r * spatial, dx: dxp + at + r * spatial,
                                count: spatial, mean: mean, rstd: rstd, gamma: g + r * spatial, meanTerm: meanTerm,
                                projection: projection, sums: parameters.advanced(by: r * spatial),
                                nextDy: gp + at + run + r * spatial, nextX: xp + at + run + r * spatial,
                                nextGamma: g + run + r * spatial, nextMean: meanOf[unit + 1], nextRstd: rstdOf[unit + 1])
                            next = (next.dh + row.dh, next.dhXhat + row.dhXhat)
                        }
                        rounder?.round(dxp + at, count: run, set: unit)
                        parameters.fold(after: n, of: batch, count: run)
                    }
                    pendingChannel = next
                } else {
                    // A set per sample: (n, group), summed channel row by channel row as the rows path sums it.
                    // Making a set's dx also sums the next sample's set (the same γ, read once).
                    let k = rows.channelsPerGroup
                    var pending: (dh: Double, dhXhat: Double)? = nil
                    for n in 0..<batch {
                        let set = n * groups + unit, at = offset(n)
                        let mean = meanOf[set], rstd = rstdOf[set]
                        var sums = (dh: 0.0, dhXhat: 0.0)
                        if let pending {
                            sums = pending
                        } else {
                            for r in 0..<k {
                                let row = elementAffineSums(dy: gp + at + r * spatial, x: xp + at + r * spatial,
                                                            count: spatial, mean: mean, rstd: rstd, gamma: g + r * spatial)
                                sums = (sums.dh + row.dh, sums.dhXhat + row.dhXhat)
                            }
                        }
                        pending = nil
                        guard n + 1 < batch else {
                            finish(set, mean, rstd, sums, n)
                            continue
                        }
                        let nextSet = set + groups, nextAt = offset(n + 1)
                        var next = (dh: 0.0, dhXhat: 0.0)
                        for r in 0..<k {
                            let row = elementAffineGradientAndSums(
                                dy: gp + at + r * spatial, x: xp + at + r * spatial, dx: dxp + at + r * spatial,
                                count: spatial, mean: mean, rstd: rstd, gamma: g + r * spatial,
                                meanTerm: centre ? sums.dh / m : 0, projection: sums.dhXhat / divisor,
                                sums: parameters.advanced(by: r * spatial), nextDy: gp + nextAt + r * spatial,
                                nextX: xp + nextAt + r * spatial, nextGamma: g + r * spatial, nextMean: meanOf[nextSet],
                                nextRstd: rstdOf[nextSet])
                            next = (next.dh + row.dh, next.dhXhat + row.dhXhat)
                        }
                        rounder?.round(dxp + at, count: run, set: set)
                        parameters.fold(after: n, of: batch, count: run)
                        pending = next
                    }
                }
            }
        }}
    }

    /// Backward of element-wise γ for sets within a sample when there are too few groups for the threads
    /// (LayerNorm's one): each set's Σ γ·dy and Σ γ·dy·x̂ first, in parallel over the sets (channel row by channel
    /// row, as the unit path sums them), then dx, dγ and dβ in parallel over spans of a sample's channels, each span
    /// running every sample in order — so each element's dγ and dβ are summed over the batch in sample order, and
    /// every element gets the same operations as on the unit path: the same bits for any thread count.
    static func elementAffineBackwardBySpans<S: NormScalar>(
        rows: Rows, batch: Int, centre: Bool, m: Double, divisor: Double, dy: UnsafePointer<S>, x: UnsafePointer<S>,
        means: UnsafePointer<Double>, rstds: UnsafePointer<Double>, gamma: UnsafePointer<S>,
        dx: UnsafeMutablePointer<S>, dgamma: UnsafeMutablePointer<Double>, dbeta: UnsafeMutablePointer<Double>,
        threads: Int, rounder: RunRounder?, narrowed: NarrowedParameters? = nil
    ) {
        let groups = rows.groups, k = rows.channelsPerGroup, spatial = rows.spatial, channels = rows.channels
        let sets = batch * groups, sampleSize = channels * spatial
        guard sets > 0, channels > 0 else { return }
        let sums = UnsafeMutablePointer<(dh: Double, dhXhat: Double)>.allocate(capacity: sets)
        defer { sums.deallocate() }
        nonisolated(unsafe) let gp = dy, xp = x, dxp = dx, g = gamma, meanOf = means, rstdOf = rstds, out = sums
        nonisolated(unsafe) let dg = dgamma, db = dbeta
        parallel(sets, threads: threads) { range in
            for set in range {
                let first = (set % groups) * k * spatial, at = (set / groups) * sampleSize + first
                var total = (dh: 0.0, dhXhat: 0.0)
                for r in 0..<k {
                    let row = elementAffineSums(dy: gp + at + r * spatial, x: xp + at + r * spatial, count: spatial,
                                                mean: meanOf[set], rstd: rstdOf[set], gamma: g + first + r * spatial)
                    total = (total.dh + row.dh, total.dhXhat + row.dhXhat)
                }
                (out + set).initialize(to: total)
            }
        }
        // At most one span per set: the rounder counts each span in a set's slot of its own.
        let spans = min(channels, sets, 4 * max(1, threads))
        let widest = (channels + spans - 1) / spans * spatial
        parallel(spans, threads: threads) { range in withStages(S.self, count: widest) { stageGamma, stageBeta in
            for span in range {
                let low = channels * span / spans, high = channels * (span + 1) / spans
                let floatLanes = (0..<batch).allSatisfy { n in
                    (low / k...(high - 1) / k).allSatisfy { group in
                        floatElementLanes(S.self, mean: meanOf[n * groups + group], rstd: rstdOf[n * groups + group])
                    }
                }
                let parameters = ParameterSums(S.self, gamma: dg + low * spatial, beta: db + low * spatial,
                                               count: (high - low) * spatial, stageGamma: stageGamma, stageBeta: stageBeta,
                                               floatLanes: floatLanes, narrowed: narrowed?.advanced(by: low * spatial))
                for n in 0..<batch {
                    var c = low
                    while c < high {
                        // The span's channels of one group: one run, one set.
                        let end = min(high, (c / k + 1) * k), set = n * groups + c / k
                        let p = c * spatial, at = n * sampleSize + p, count = (end - c) * spatial
                        let total = out[set]
                        elementAffineGradient(dy: gp + at, x: xp + at, dx: dxp + at, count: count, mean: meanOf[set],
                                              rstd: rstdOf[set], gamma: g + p, meanTerm: centre ? total.dh / m : 0,
                                              projection: total.dhXhat / divisor,
                                              sums: parameters.advanced(by: (c - low) * spatial))
                        rounder?.round(dxp + at, count: count, set: span)
                        c = end
                    }
                    parameters.fold(after: n, of: batch, count: (high - low) * spatial)
                }
            }
        }}
    }
}
