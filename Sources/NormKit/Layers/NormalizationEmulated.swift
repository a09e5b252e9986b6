#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The passes for layers that do not compute exactly (`method=` other than twopass, `accumulate=` other than
/// float64) and the rounding of every result to a reduced storage format (float16, bfloat16), with the findings
/// that say where low precision broke the numbers.
extension Normalization {
    /// `EmulatedKernels.forward` wrapped as a pass, with what went wrong compared with the exact statistics.
    static func emulatedForward<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, input: Tensor<Scalar>, gamma: Tensor<Scalar>?, beta: Tensor<Scalar>?,
        running: (mean: Tensor<Scalar>, variance: Tensor<Scalar>)?, usesRunning: Bool, storage: DType, threads: Int
    ) throws(NormError) -> ForwardResult<Scalar> {
        let format = spec.accumulate.format(storage: storage)
        let runningValues = usesRunning ? try runningStatistics(running, plan: plan) : nil
        let pass = EmulatedKernels.forward(spec: spec, plan: plan, x: input.scalars,
                                           gamma: gamma?.scalars.map(\.asDouble), beta: beta?.scalars.map(\.asDouble),
                                           running: runningValues.map { ($0.means, $0.variances) }, format: format,
                                           storage: storage, threads: threads, keepNormalized: false)
        // A NaN or ±∞ in x makes its set's μ (σ², for a layer that does not centre) NaN or ±∞ in every format and
        // method, so finite statistics need no look at x — when they are few; per-position ones are half an input.
        let statistics = spec.centres ? pass.means : pass.variances
        let statisticsFinite = !usesRunning && statistics.count * 8 <= input.count && statistics.allSatisfy(\.isFinite)
        let nonFinite = !statisticsFinite && hasNonFinite(input, threads: threads) ? countNonFinite(input) : 0
        var warnings = Self.warnings(spec: spec, setSize: plan.setSize, usesRunning: usesRunning,
                                     variances: pass.variances, nonFinite: { nonFinite })
        warnings += pass.findings
        if !usesRunning && nonFinite == 0 {
            if let cancellation = cancellation(spec: spec, plan: plan, input: input, pass: pass, format: format,
                                               threads: threads) {
                warnings.append(cancellation)
            }
        }
        func stats(_ values: [Double]) -> Tensor<Scalar> {
            Tensor(uncheckedShape: plan.statsShape, scalars: values.mapFilling { Scalar(fromDouble: $0) })
        }
        var result = ForwardResult(
            // y is in the storage format already (one rounding); `store` counts what it made infinite unless the pass did.
            spec: spec, plan: plan, mode: usesRunning ? .eval : .train, input: input,
            output: Tensor(uncheckedShape: input.shape, scalars: pass.output),
            mean: spec.centres ? stats(pass.means) : nil, variance: stats(pass.variances), rstd: stats(pass.rstds),
            unbiasedVariance: spec.kind.hasRunningStatistics && !usesRunning ? pass.unbiased.map(stats) : nil,
            warnings: warnings, exactMeans: pass.means, exactRstds: pass.rstds,
            storedNormalized: nil)  // made from x when something reads it (`ForwardResult.normalized`)
        result.roundedByKernel = pass.rounded
        return result
    }

    /// Sets whose computed σ² is ≤ 0, NaN or more than 10 % from the exact two-pass value (overflowed sets aside:
    /// they have their own finding), with μ²/σ² as the digits a one-pass variance loses.
    static func cancellation<Scalar: NormScalar>(
        spec: LayerSpec, plan: NormPlan, input: Tensor<Scalar>, pass: EmulatedKernels.Forward<Scalar>, format: DType,
        threads: Int
    ) -> NormWarning? {
        if pass.cancellationRuledOut { return nil }
        let (exactMeans, sumSquares) = pass.exact ?? EmulatedKernels.exactStatistics(
            of: input.scalars, plan: plan, centre: spec.centres, threads: threads)
        let divisor = Double(spec.variance == .unbiased ? plan.setSize - 1 : plan.setSize)
        var sets = 0, nonPositive = 0, notANumber = 0
        var worst = 0.0, ratio = 0.0
        let variances = pass.variances, overflowed = pass.overflowed
        for i in 0..<variances.count where !overflowed[i] {
            let exact = sumSquares[i] / divisor, computed = variances[i]
            guard exact > 0 else { continue }
            // Divisions only for the sets that are off (per-position sets can number half an input).
            if computed.isNaN { notANumber += 1 } else if computed <= 0 { nonPositive += 1 }
            if computed.isNaN || computed <= 0 || abs(computed - exact) > 0.1 * exact {
                sets += 1
                worst = max(worst, computed.isNaN ? .infinity : abs(computed - exact) / exact)
            }
        }
        guard sets > 0 else { return nil }
        if spec.centres {
            for i in 0..<variances.count where !overflowed[i] && sumSquares[i] > 0 {
                ratio = max(ratio, exactMeans[i] * exactMeans[i] / (sumSquares[i] / divisor))
            }
        }
        let digitsLost = spec.method == .onepass && spec.centres && ratio > 1 ? log10(ratio) : nil
        return .cancellation(sets: sets, nonPositive: nonPositive, notANumber: notANumber, worstRelativeError: worst,
                             digitsLost: digitsLost, method: spec.method, format: format)
    }

    /// Round y to the storage format and say what that and the pass made non-finite.
    static func store<Scalar: NormScalar>(_ result: inout ForwardResult<Scalar>, storage: DType, parametersFinite: Bool,
                                          threads: Int) {
        result.storage = storage
        var overflowed = 0, nonFinite: Int? = nil
        if storage.isReduced {
            // y rounded here, after the kernel summed it: its summary is made again from the rounded values.
            if result.roundedByKernel == nil { result.outputMoments = nil }
            let counts = result.roundedByKernel ?? result.output.roundInPlace(to: storage, threads: threads)
            overflowed = counts.overflowed
            nonFinite = counts.nonFinite
            if overflowed > 0 { result.warnings.append(.storageOverflow(name: "y", count: overflowed, format: storage)) }
        }
        let inputFinite = !result.warnings.contains { if case .nonFiniteInput = $0 { true } else { false } }
        if inputFinite && parametersFinite && (storage.isReduced || !result.spec.computesExactly) {
            let bad = nonFinite ?? countNonFinite(result.output)
            if bad > overflowed { result.warnings.append(.nonFiniteResult(name: "y", count: bad, total: result.output.count)) }
        }
    }

    /// dx, dγ and dβ (summed over the batch) as the emulated backward computes them.
    static func emulatedBackward<Scalar: NormScalar>(
        forward: ForwardResult<Scalar>, gammaValues: [Double]?, dy: Tensor<Scalar>, threads: Int
    ) -> (dx: [Scalar], dgamma: [Double], dbeta: [Double], rounded: FormatRounding.Counts?) {
        let spec = forward.spec
        let constant = spec.kind.hasRunningStatistics && forward.mode == .eval
        return EmulatedKernels.backward(spec: spec, plan: forward.plan, x: forward.input.scalars, dy: dy.scalars,
                                        means: forward.exactMeans, rstds: forward.exactRstds, gamma: gammaValues,
                                        constantStatistics: constant,
                                        format: spec.accumulate.format(storage: forward.storage),
                                        storage: forward.storage, threads: threads)
    }
}
