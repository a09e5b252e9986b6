/// Which gradient a check is about.
public enum GradTarget: String, Sendable, CaseIterable, CustomStringConvertible {
    case dx, dgamma, dbeta
    public var description: String { rawValue }
}

/// Settings of a finite-difference check. The defaults are `torch.autograd.gradcheck`'s.
public struct GradcheckOptions: Sendable, Equatable {
    /// The finite-difference step h: numeric = (L(v + h) − L(v − h)) / 2h.
    public var step = 1e-6
    /// Absolute tolerance: an element passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
    public var atol = 1e-5
    /// Relative tolerance (torch.autograd.gradcheck's default).
    public var rtol = 1e-3
    /// How many elements of each gradient to check; nil means every element when there are at most
    /// `autoFullLimit`, otherwise a random sample of `defaultSampleSize`.
    public var sampleSize: Int?
    /// Check every element whatever the size.
    public var full = false
    /// Seed of the sample (SplitMix64).
    public var seed: UInt64 = 0
    /// How many of the worst elements a report lists.
    public var worstCount = 5

    /// Tensors up to this many elements are checked in full; larger ones on a sample.
    public static let autoFullLimit = 4096
    /// How many elements a sample checks, unless `sampleSize` says otherwise.
    public static let defaultSampleSize = 512

    /// The defaults: h 1e-6, atol 1e-5, rtol 1e-3, a sample of 512 past 4096 elements, seed 0.
    public init() {}

    /// Refuses a step h ≤ 0 or not finite, negative tolerances and a sample size below 1.
    public func validate() throws(NormError) {
        guard step.isFinite, step > 0 else { throw NormError.argument("the finite-difference step must be > 0 (got \(step))") }
        guard atol.isFinite, atol >= 0, rtol.isFinite, rtol >= 0 else {
            throw NormError.argument("atol and rtol must be finite and ≥ 0 (got atol=\(atol), rtol=\(rtol))")
        }
        if let sampleSize, sampleSize < 1 { throw NormError.argument("the sample size must be at least 1 (got \(sampleSize))") }
        guard worstCount >= 0 else { throw NormError.argument("worstCount must be ≥ 0") }
    }
}

/// One checked element.
public struct GradcheckElement: Sendable, Equatable {
    /// The element's flat offset in its tensor.
    public let offset: Int
    /// The element's multi-index.
    public let index: [Int]
    /// The gradient being checked (the engine's, or one supplied).
    public let analytic: Double
    /// The central difference (L(v + h) − L(v − h)) / 2h, in Float64.
    public let numeric: Double
    /// |analytic − numeric|.
    public var absError: Double { abs(analytic - numeric) }
    /// |analytic − numeric| / |numeric|; 0 when both are 0, ∞ when only the numeric one is.
    public var relError: Double {
        if numeric == 0 { return analytic == 0 ? 0 : .infinity }
        return absError / abs(numeric)
    }
    /// torch.allclose's rule: |a − n| ≤ atol + rtol·|n|.
    public func passes(atol: Double, rtol: Double) -> Bool {
        absError <= atol + rtol * abs(numeric)
    }
}

/// The verdict on one gradient.
public struct GradcheckReport: Sendable {
    /// Which gradient: dx, dgamma or dbeta.
    public let target: GradTarget
    /// True when the analytic side was a gradient supplied from outside, not the engine's backward.
    public internal(set) var supplied: Bool
    /// The element type the engine's analytic gradient was computed in (the layer's own, for a float32 layer;
    /// the numeric side is always Float64).
    public internal(set) var analyticDType: DType = .float64
    /// The gradient's shape.
    public let shape: Shape
    /// How many elements were checked (all, or a sample).
    public let checked: Int
    /// How many elements the gradient has.
    public var total: Int { shape.count }
    /// True when only a sample was checked.
    public var sampled: Bool { checked < total }
    /// How many checked elements fail the tolerance.
    public let failures: Int
    /// The largest |analytic − numeric| (infinite when one is NaN).
    public let maxAbsError: Double
    /// The largest |analytic − numeric| / |numeric|.
    public let maxRelError: Double
    /// Checked elements whose analytic or numeric gradient is NaN (a loss that is not finite there).
    public internal(set) var nanCount = 0
    /// The elements with the largest absolute error, worst first.
    public let worst: [GradcheckElement]
    /// The options the check ran with.
    public let options: GradcheckOptions
    /// What the comparison means beyond the plain numbers (e.g. the batch reduction of paramgrad=mean).
    public let notes: [String]
    /// True when every checked element passes.
    public var passed: Bool { failures == 0 }
}

/// Central finite differences, in Float64, of the scalar loss L = Σ dy·y with respect to x, γ and β, compared
/// with the layer's backward pass or with a gradient supplied from outside.
///
/// Under paramgrad=mean the convention defines dγ and dβ as the true gradient divided by N, so the numeric
/// gradient is divided by N before comparing (and the report says so). In BatchNorm's training mode y depends on
/// the batch statistics only; the running statistics are not touched.
public enum Gradcheck {
    /// Check the requested gradients of one pass: the engine's backward, or those in `supplied`, against central differences of L = Σ dy·y in Float64. `isCancelled` is polled between elements.
    public static func run(
        spec: LayerSpec,
        input: Tensor<Double>,
        gamma: Tensor<Double>?,
        beta: Tensor<Double>?,
        outputGradient dy: Tensor<Double>,
        mode: Mode = .train,
        running: (mean: Tensor<Double>, variance: Tensor<Double>)? = nil,
        targets: [GradTarget] = GradTarget.allCases,
        supplied: [GradTarget: Tensor<Double>] = [:],
        options: GradcheckOptions = GradcheckOptions(),
        isCancelled: () -> Bool = { false }
    ) throws(NormError) -> [GradcheckReport] {
        try options.validate()
        // Finite differences of the exact function: a low-precision method's own rounding is not differentiable.
        var spec = spec
        spec.method = .twopass
        spec.accumulate = .float64
        let plan = try NormPlan(spec: spec, inputShape: input.shape)
        let hasAffine = plan.affineShape != nil
        let gammaNow = gamma ?? plan.affineShape.map { Tensor<Double>.ones($0) }
        let betaNow = spec.bias ? beta ?? plan.affineShape.map { Tensor<Double>.zeros($0) } : nil

        func forwardLoss(x: Tensor<Double>, g: Tensor<Double>?, b: Tensor<Double>?) throws(NormError) -> Double {
            let result = try Normalization.forward(spec: spec, input: x, gamma: g, beta: b, mode: mode, running: running)
            return compensatedDot(result.output.scalars, dy.scalars)
        }

        let forward = try Normalization.forward(spec: spec, input: input, gamma: gammaNow, beta: betaNow,
                                                mode: mode, running: running)
        let engine = try Normalization.backward(forward: forward, gamma: gammaNow, outputGradient: dy)

        var reports: [GradcheckReport] = []
        for target in targets {
            if target != .dx && !hasAffine {
                if targets.count == 1 { throw NormError.argument("this layer has affine=none: there is no \(target) to check") }
                continue
            }
            if target == .dbeta && !spec.bias {
                if targets.count == 1 { throw NormError.argument("this layer has no β (a weight only): there is no dbeta to check") }
                continue
            }
            let pair: (Tensor<Double>?, Tensor<Double>?)
            switch target {
            case .dx: pair = (input, engine.dx)
            case .dgamma: pair = (gammaNow, engine.dgamma)
            case .dbeta: pair = (betaNow, engine.dbeta)
            }
            guard let variable = pair.0 else { continue }
            let engineGradient = pair.1
            let analytic: Tensor<Double>
            if let given = supplied[target] {
                guard given.shape == variable.shape else {
                    throw NormError.mismatch("the supplied \(target) has shape \(given.shape) but \(target) must have shape \(variable.shape)")
                }
                analytic = given
            } else if let engineGradient {
                analytic = engineGradient
            } else {
                continue
            }

            var notes: [String] = []
            let batchDivisor: Double
            if target != .dx && spec.paramGrad == .mean {
                batchDivisor = Double(plan.batch)
                notes.append("paramgrad=mean defines \(target) as the true gradient divided by N, so the numeric gradient was divided by N = \(plan.batch)")
            } else {
                batchDivisor = 1
            }

            let offsets = sampleOffsets(count: variable.count, options: options)
            if offsets.count < variable.count {
                notes.append("checked a random sample of \(offsets.count) of \(variable.count) elements (seed \(options.seed)); use full to check all")
            }
            var elements: [GradcheckElement] = []
            elements.reserveCapacity(offsets.count)
            var perturbed = variable
            for offset in offsets {
                if isCancelled() { throw NormError(.interrupted, "gradcheck stopped after \(elements.count) of \(offsets.count) elements") }
                let original = variable.scalars[offset]
                perturbed.set(offset: offset, to: original + options.step)
                let plus = try loss(target, perturbed, input, gammaNow, betaNow, forwardLoss)
                perturbed.set(offset: offset, to: original - options.step)
                let minus = try loss(target, perturbed, input, gammaNow, betaNow, forwardLoss)
                perturbed.set(offset: offset, to: original)
                let numeric = (plus - minus) / (2 * options.step) / batchDivisor
                elements.append(GradcheckElement(offset: offset, index: variable.shape.multiIndex(ofOffset: offset),
                                                 analytic: analytic.scalars[offset], numeric: numeric))
            }
            let failures = elements.filter { !$0.passes(atol: options.atol, rtol: options.rtol) }.count
            // NaN errors sort first: they are the worst news.
            func key(_ e: GradcheckElement) -> Double { e.absError.isNaN ? .infinity : e.absError }
            // Errors equal to 10 significant bits count as ties (then the lower index first): rounding noise in the
            // last bits must not reorder the table.
            func coarse(_ e: GradcheckElement) -> Double {
                let value = key(e)
                guard value.isFinite, value > 0 else { return value }
                let scale = Double(sign: .plus, exponent: 10 - value.exponent, significand: 1)
                return (value * scale).rounded() / scale
            }
            let worst = elements.sorted { (coarse($0), $1.offset) > (coarse($1), $0.offset) }.prefix(options.worstCount)
            reports.append(GradcheckReport(
                target: target, supplied: supplied[target] != nil, shape: variable.shape, checked: elements.count,
                failures: failures,
                maxAbsError: elements.map(key).max() ?? 0,
                maxRelError: elements.map { $0.relError.isNaN ? .infinity : $0.relError }.max() ?? 0,
                nanCount: elements.filter { $0.analytic.isNaN || $0.numeric.isNaN }.count,
                worst: Array(worst), options: options, notes: notes))
        }
        return reports
    }

    private static func loss(
        _ target: GradTarget, _ perturbed: Tensor<Double>, _ x: Tensor<Double>, _ g: Tensor<Double>?,
        _ b: Tensor<Double>?, _ forwardLoss: (Tensor<Double>, Tensor<Double>?, Tensor<Double>?) throws(NormError) -> Double
    ) throws(NormError) -> Double {
        switch target {
        case .dx: try forwardLoss(perturbed, g, b)
        case .dgamma: try forwardLoss(x, perturbed, b)
        case .dbeta: try forwardLoss(x, g, perturbed)
        }
    }

    /// Every offset, or a sorted random sample of distinct ones.
    static func sampleOffsets(count: Int, options: GradcheckOptions) -> [Int] {
        let wanted: Int
        if options.full {
            wanted = count
        } else if let size = options.sampleSize {
            wanted = min(size, count)
        } else {
            wanted = count <= GradcheckOptions.autoFullLimit ? count : GradcheckOptions.defaultSampleSize
        }
        if wanted >= count { return Array(0..<count) }
        // Partial Fisher–Yates over a sparse permutation: O(wanted) memory whatever the tensor size.
        var generator = SplitMix64(seed: options.seed)
        var swapped: [Int: Int] = [:]
        var chosen: [Int] = []
        chosen.reserveCapacity(wanted)
        for i in 0..<wanted {
            let j = i + generator.nextInt(below: count - i)
            let atJ = swapped[j] ?? j
            swapped[j] = swapped[i] ?? i
            chosen.append(atJ)
        }
        return chosen.sorted()
    }

    /// Σ aᵢ·bᵢ with Neumaier's compensation: the finite differences subtract two nearly equal losses, so their
    /// rounding error matters.
    static func compensatedDot(_ a: [Double], _ b: [Double]) -> Double {
        var sum = 0.0
        var compensation = 0.0
        for (x, y) in zip(a, b) {
            let term = x * y
            let t = sum + term
            if abs(sum) >= abs(term) {
                compensation += (sum - t) + term
            } else {
                compensation += (term - t) + sum
            }
            sum = t
        }
        return sum + compensation
    }
}

extension NormLayer {
    /// Gradcheck the layer's last forward pass in Float64 (its input, γ, β and mode), for the upstream gradient
    /// `dy`. Supplied gradients, if any, are checked instead of the engine's.
    public func gradcheck(
        outputGradient dy: Tensor<Scalar>,
        targets: [GradTarget] = GradTarget.allCases,
        supplied: [GradTarget: Tensor<Scalar>] = [:],
        options: GradcheckOptions = GradcheckOptions(),
        isCancelled: () -> Bool = { false }
    ) throws(NormError) -> [GradcheckReport] {
        guard let lastForward else {
            throw NormError.state("gradcheck needs a forward pass first: run forward, then gradcheck")
        }
        var running: (mean: Tensor<Double>, variance: Tensor<Double>)? = nil
        if let runningMean, let runningVariance {
            running = (runningMean.converted(), runningVariance.converted())
        }
        // The engine's gradient in the layer's own element type is what the session holds, so that is what is
        // checked (a Float64 recomputation would hide Float32 rounding): the last backward's when it used this
        // dy, else a backward now.
        var analytic: [GradTarget: Tensor<Double>] = supplied.mapValues { $0.converted() }
        var own: Set<GradTarget> = []
        if Scalar.dtype != .float64 {
            let gradients: Gradients<Scalar>
            if let last = lastGradients, lastOutputGradient == dy {
                gradients = last
            } else {
                gradients = try Normalization.backward(forward: lastForward, gamma: gamma, outputGradient: dy)
            }
            for target in targets where supplied[target] == nil {
                let value: Tensor<Scalar>?
                switch target {
                case .dx: value = gradients.dx
                case .dgamma: value = gradients.dgamma
                case .dbeta: value = gradients.dbeta
                }
                if let value { analytic[target] = value.converted(); own.insert(target) }
            }
        }
        var reports = try Gradcheck.run(
            spec: spec, input: lastForward.input.converted(), gamma: gamma?.converted(), beta: beta?.converted(),
            outputGradient: dy.converted(), mode: lastForward.mode, running: running, targets: targets,
            supplied: analytic, options: options, isCancelled: isCancelled)
        for i in reports.indices where own.contains(reports[i].target) {
            reports[i].supplied = false
            reports[i].analyticDType = lastForward.storage
        }
        return reports
    }
}
