/// BatchNorm in eval mode: nothing is reduced; each set is one affine map from the running statistics.
extension Normalization {
    /// BatchNorm in eval mode: the running statistics, one affine map per set (`StridedKernels.evalForward`).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func evalForward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?,
        running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)?, threads: Int, summarizing: Bool = false
    ) throws(NormError) -> ForwardResult<Scalar> {
        let (means, variances) = try runningStatistics(running, plan: plan)
        let rstds = reciprocalSquareRoots(variances, eps: spec.eps)
        // In Double for the per-channel rows and the per-element map; the element-wise rows read γ, β as they are.
        func gammaValues() -> [Double]? { gamma?.scalars.map(\.asDouble) }
        func betaValues() -> [Double]? { beta?.scalars.map(\.asDouble) }
        // The kernels see grouped channels as BatchNorm per channel.
        let perChannel = try perChannelStatistics(spec: spec, plan: plan, means: means, rstds: rstds)
        let kernelPlan = perChannel.plan, kernelMeans = perChannel.means, kernelRstds = perChannel.rstds
        // Per channel with channel-wise γ (or element-wise on one position: the same (C) values): row by row on the
        // lanes, x̂ made on demand; otherwise element by element.
        let rows = spec.reduce == .group && (spec.affine != .element || kernelPlan.spatial == 1)
        var normalized: [Scalar]? = nil
        let parts = SummaryParts(count: spec.reduce == .group && summarizing && plan.spatial >= SummaryParts.shortestSet
                                 ? plan.batch * plan.channels : 0)
        defer { parts.deallocate() }
        // Without the summary, each row's y checked for NaN and ±∞ as it is written (a pass over x after cost a
        // sixth of the forward): y is not finite wherever x is not. Short rows as the summary's (a call per row).
        let rowCount = spec.reduce == .group && parts.count == 0 && plan.spatial >= SummaryParts.shortestSet
            ? kernelPlan.batch * kernelPlan.channels : 0
        let nonFiniteRows = UnsafeMutablePointer<Bool>.allocate(capacity: max(rowCount, 1))
        defer { nonFiniteRows.deallocate() }
        let checked = rowCount > 0 ? nonFiniteRows : nil
        let output = [Scalar](unsafeUninitializedCapacity: input.count) { y, yCount in
            input.scalars.withUnsafeBufferPointer { x in
                if rows {
                    StridedKernels.evalRows(plan: kernelPlan, x: x, means: kernelMeans, rstds: kernelRstds,
                                            gamma: gammaValues(), beta: betaValues(), y: y, threads: threads,
                                            summary: parts.pointer, nonFiniteRows: checked)
                } else if spec.reduce == .group {
                    // Element-wise γ, β per channel set: row by row with γ and β running along, x̂ made on demand.
                    StridedKernels.evalElementRows(plan: kernelPlan, x: x, means: kernelMeans, rstds: kernelRstds,
                                                   gamma: gamma?.scalars, beta: beta?.scalars, y: y, threads: threads,
                                                   summary: parts.pointer, nonFiniteRows: checked)
                } else {
                    normalized = [Scalar](unsafeUninitializedCapacity: input.count) { h, hCount in
                        StridedKernels.evalForward(spec: spec, plan: kernelPlan, x: x, means: kernelMeans,
                                                   rstds: kernelRstds, gamma: gammaValues(), beta: betaValues(), xhat: h,
                                                   y: y, threads: threads)
                        hCount = input.count
                    }
                }
            }
            yCount = input.count
        }
        // y = (x − μ)·scale + offset is NaN or ±∞ wherever x is (∞·0 is NaN): a finite y needs no look at x.
        let moments = parts.total
        let warnings = Self.warnings(spec: spec, setSize: plan.setSize, usesRunning: true, variances: variances,
                                     nonFinite: {
                                         if let moments, moments.isFinite { return 0 }
                                         if let checked, !(0..<rowCount).contains(where: { checked[$0] }) { return 0 }
                                         return hasNonFinite(input, threads: threads) ? countNonFinite(input) : 0
                                     })
        func stats(_ values: [Double]) -> Tensor<Scalar> {
            Tensor(uncheckedShape: plan.statsShape, scalars: values.map { Scalar(fromDouble: $0) })
        }
        var result = ForwardResult(
            spec: spec, plan: plan, mode: .eval, input: input,
            output: Tensor(uncheckedShape: input.shape, scalars: output),
            mean: spec.centres ? stats(means) : nil, variance: stats(variances), rstd: stats(rstds),
            unbiasedVariance: nil, warnings: warnings, exactMeans: means, exactRstds: rstds,
            storedNormalized: normalized.map { Tensor(uncheckedShape: input.shape, scalars: $0) })
        result.outputMoments = moments
        return result
    }

    /// BatchNorm with grouped channels, in eval mode, as BatchNorm per channel: its group's statistics repeated
    /// for every channel of the group (per position: for every (channel, position)), so the per-channel eval kernels
    /// apply it — nothing is reduced in eval mode. Other layers: as they are.
    static func perChannelStatistics(spec: LayerSpec, plan: NormPlan, means: [Double], rstds: [Double]) throws(NormError)
        -> (plan: NormPlan, means: [Double], rstds: [Double]) {
        guard spec.groupsSpanBatch else { return (plan, means, rstds) }
        var perChannel = spec
        perChannel.groups = nil
        let channelPlan = try NormPlan(spec: perChannel, inputShape: plan.inputShape)
        // Per channel: a group's value K times; per position: a group's row of S values K times.
        let run = spec.reduce == .group ? 1 : plan.spatial, k = plan.channelsPerGroup
        func repeated(_ values: [Double]) -> [Double] {
            var out: [Double] = []
            out.reserveCapacity(values.count * k)
            for g in 0..<plan.groups {
                for _ in 0..<k { out.append(contentsOf: values[(g * run)..<((g + 1) * run)]) }
            }
            return out
        }
        return (channelPlan, repeated(means), repeated(rstds))
    }

    /// BatchNorm's running mean and variance as Float64, checked against the statistics this input needs.
    static func runningStatistics<Scalar: NormScalar>(
        _ running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)?, plan: NormPlan
    ) throws(NormError) -> (means: [Double], variances: [Double]) {
        guard let running else { throw NormError.state("BatchNorm in eval mode needs running statistics") }
        guard running.mean.shape == plan.statsShape, running.variance.shape == plan.statsShape else {
            throw NormError.mismatch("running statistics have shape \(running.mean.shape) but this input needs \(plan.statsShape)")
        }
        return (running.mean.scalars.map(\.asDouble), running.variance.scalars.map(\.asDouble))
    }
}
