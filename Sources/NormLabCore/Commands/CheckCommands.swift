import NormKit

/// `gradcheck [dx|dgamma|dbeta|all] [against NAME] [eps=… atol=… rtol=… seed=…] [sample=K | full]`
struct Gradcheck: Command, Equatable {
    static let maxSample = 1 << 24

    static let help = CommandHelp(
        name: "gradcheck",
        usage: ["gradcheck [dx|dgamma|dbeta|all] [against NAME] [eps=H atol=A rtol=R] [sample=K | full]"],
        summary: "check gradients against central finite differences in float64",
        details: """
        Differentiates L = Σ dy·y numerically, (L(v + h) − L(v − h)) / 2h for every checked element v of x, γ or
        β, on the last forward pass's input and the last backward's dy (randn seed 1000 if there was none),
        and compares with the layer's own backward pass, or with NAME: a gradient computed elsewhere. An
        element passes when |analytic − numeric| ≤ atol + rtol·|numeric| (torch.autograd.gradcheck's rule
        and defaults: eps (the step h) 1e-6, atol 1e-5, rtol 1e-3). Tensors of more than 4096 elements are
        checked on a random sample of 512 (sample=K for another size, seed=S for another draw, full for
        all). Under paramgrad=mean the numeric dγ, dβ are divided by N, as the convention defines them.
        Ctrl-C stops it.
        """,
        examples: ["gradcheck", "gradcheck dx against mydx", "gradcheck dgamma atol=1e-8", "gradcheck dx sample=100"],
        completion: CompletionRule { request in
            if request.arguments.last == "against" { return request.matching(request.tensorNames) }
            guard request.option == nil else { return .nothing }
            return request.matching(GradTarget.allCases.map(\.rawValue) + ["all", "against", "full", "eps=", "atol=", "rtol=", "sample=", "seed="])
        })

    /// Empty means all of the layer's gradients.
    var targets: [GradTarget] = []
    var against: Located<String>?
    var step: Double?
    var atol: Double?
    var rtol: Double?
    var sample: Int?
    var seed: UInt64?
    var full = false

    init() {}

    init(parsing cursor: inout ArgumentCursor) throws {
        while let token = cursor.next() {
            if let target = GradTarget(rawValue: token.text) {
                guard targets.isEmpty else { throw cursor.error("name one gradient or all", at: token) }
                targets = [target]
            } else if token.text == "all" {
                guard targets.isEmpty else { throw cursor.error("name one gradient or all", at: token) }
                targets = GradTarget.allCases
            } else if token.text == "against" {
                against = try cursor.name("the name of the gradient to check")
            } else if token.text == "full" {
                full = true
            } else if token.kind == .word, let equals = cursor.peek, equals.kind == .equals {
                _ = cursor.next()
                switch token.text {
                case "eps": step = try cursor.number("a step h > 0")
                case "atol": atol = try cursor.number("a tolerance ≥ 0")
                case "rtol": rtol = try cursor.number("a tolerance ≥ 0")
                case "sample": sample = try cursor.integer("a sample size", minimum: 1, maximum: Self.maxSample).value
                case "seed": seed = UInt64(try cursor.integer("a seed (a whole number ≥ 0)", minimum: 0).value)
                default:
                    throw cursor.error("unknown option \(cursor.describe(token)); options are eps, atol, rtol, sample, seed", at: token)
                }
            } else {
                throw cursor.error("expected dx, dgamma, dbeta, all, against NAME, full or an option, got \(cursor.describe(token))", at: token)
            }
        }
        if full && sample != nil {
            throw cursor.error("give sample=K or full, not both", at: nil)
        }
    }

    func run(in context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        let record = try context.passRecord("gradcheck needs a forward pass first: run forward (and backward, for its dy), then gradcheck")
        var options = GradcheckOptions()
        if let step { options.step = step }
        if let atol { options.atol = atol }
        if let rtol { options.rtol = rtol }
        if let seed { options.seed = seed }
        options.sampleSize = sample
        options.full = full

        var checked = targets.isEmpty ? GradTarget.allCases : targets
        if layer.spec.affine == .none && targets.isEmpty { checked = [.dx] }
        if !layer.spec.bias && targets.count != 1 { checked.removeAll { $0 == .dbeta } }  // a weight only (nn.RMSNorm)
        var supplied: [GradTarget: AnyTensor] = [:]
        if let against {
            guard checked.count == 1, let target = checked.first else {
                throw context.error("`against` checks one gradient: say which (gradcheck dx against \(against.value))", at: against.range)
            }
            supplied[target] = try context.lookup(against)
        }

        // The dy of the backward after the last forward: the pass's own, whatever `dy` names now.
        let shape = record.plan.inputShape
        let dy: AnyTensor
        let dySource: String
        if let own = record.dy {
            dy = .float64(try Tensor(shape: shape, scalars: own))
            dySource = "dy (the last backward's)"
        } else {
            dy = .float64(.randn(shape, seed: Backward.defaultSeed))
            dySource = "randn seed \(Backward.defaultSeed) (no backward yet)"
        }

        // A gradient computed in float32 (the layer's own, or one supplied as float32) carries float32 rounding:
        // unless atol is given, each target's atol is raised to twice diagnose's rounding estimate for it.
        var perTarget: [(GradTarget, GradcheckOptions, String?)] = checked.map { ($0, options, nil) }
        let formats = [layer.dtype] + supplied.values.map(\.dtype)
        let narrowest = formats.min { $0.precisionBits < $1.precisionBits } ?? .float64
        if narrowest != .float64 && atol == nil {
            // A layer that sums in the storage format on purpose (accumulate=storage) is held to that format's sums.
            let estimates = try Diagnosis.roundingEstimates(
                spec: record.spec, shape: shape, x: record.x, gamma: record.gamma, beta: record.beta, dy: dy.doubles,
                float32: true, format: narrowest, accumulation: record.spec.accumulate == .storage ? narrowest : nil)
            perTarget = checked.map { target in
                var raised = options
                let estimate = 2 * (estimates[DiagnosisRole(rawValue: target.rawValue)!] ?? 0)
                guard estimate > options.atol else { return (target, options, nil) }
                raised.atol = estimate
                return (target, raised, "\(narrowest): atol raised to \(formatNumber(estimate, precision: 1)), twice the rounding estimate of a \(narrowest) \(target) for this problem (diagnose's)")
            }
        }
        var reports: [(GradcheckReport, String?)] = []
        let cancel = context.interpreter.isCancelled
        for (target, targetOptions, note) in perTarget {
            let one: [GradcheckReport]
            switch layer {
            case .float32(let l):
                one = try l.gradcheck(outputGradient: dy.tensor(), targets: [target],
                                      supplied: supplied.mapValues { $0.tensor() }, options: targetOptions, isCancelled: cancel)
            case .float64(let l):
                one = try l.gradcheck(outputGradient: dy.tensor(), targets: [target],
                                      supplied: supplied.mapValues { $0.tensor() }, options: targetOptions, isCancelled: cancel)
            }
            reports += one.map { ($0, note) }
        }
        var result = Report()
        // A step far from √(float64's epsilon) × scale checks rounding noise or truncation error, not the gradient.
        if options.step < 1e-10 || options.step > 1e-2 {
            result.add(.warning("h = \(formatOption(options.step)) is \(options.step < 1e-10 ? "so small that L(v ± h) differ only by rounding noise" : "so large that the difference quotient's truncation error dominates"): every element may fail for that alone; h near 1e-6 suits float64", origin: context.origin))
        }
        result.add(.text("gradcheck: L = Σ dy·y with dy = \(dySource); central differences in float64, h = \(formatOption(options.step)); pass when |a − n| ≤ \(formatOption(options.atol)) + \(formatOption(options.rtol))·|n|"))
        let precision = max(context.settings.precision, 6)
        for (report, float32Note) in reports {
            var worst: TextTable? = nil
            if !report.worst.isEmpty {
                var table = TextTable(headers: ["  worst", "analytic", "numeric", "abs err", "rel err"], numericColumns: [1, 2, 3, 4])
                let values = NumberStyle.choose(for: report.worst.flatMap { [$0.analytic, $0.numeric] }, precision: precision)
                for element in report.worst {
                    table.rows.append(["  " + Shape.format(element.index), values.format(element.analytic), values.format(element.numeric),
                                       formatNumber(element.absError, precision: 2), formatNumber(element.relError, precision: 2)])
                }
                worst = table
            }
            result.add(.verdict(GradcheckVerdict(
                what: report.supplied ? "\(against?.value ?? "?") (as \(report.target))"
                    : "\(report.target) (the engine's \(report.analyticDType == .float64 ? "" : "\(report.analyticDType) ")backward)",
                passed: report.passed,
                summary: "\(report.failures) of \(report.checked) checked elements fail; " + (report.nanCount > 0
                    ? "\(report.nanCount) of them NaN (the loss is not finite there: see the input, γ, β and eps)"
                    : "max abs err \(formatNumber(report.maxAbsError, precision: 2)), max rel err \(formatNumber(report.maxRelError, precision: 2))"),
                notes: report.notes + (float32Note.map { [$0] } ?? []), worst: worst)))
        }
        return result
    }
}

struct Compare: Command, Equatable {
    static let help = CommandHelp(
        name: "compare", usage: ["compare A B [rtol=R atol=A]"],
        summary: "compare two tensors: bitwise equal, close, and where they differ most",
        details: "allclose is NumPy's rule, |a − b| ≤ atol + rtol·|b|, with its defaults rtol 1e-5 and atol 1e-8. The shapes must be equal: compare does not broadcast.",
        examples: ["compare dx mydx", "compare y y_ref rtol=1e-3"], completion: .tensorsAnd(["rtol=", "atol="]))

    let a: Located<String>, b: Located<String>
    var rtol: Double? = nil, atol: Double? = nil

    init(_ a: Located<String>, _ b: Located<String>, rtol: Double? = nil, atol: Double? = nil) {
        self.a = a
        self.b = b
        self.rtol = rtol
        self.atol = atol
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        a = try cursor.name()
        b = try cursor.name()
        for (key, value) in try cursor.options() {
            guard let number = ArgumentCursor.parseNumber(value.text), number >= 0, number.isFinite else {
                throw cursor.error("\(key.text) must be a number ≥ 0, got \(cursor.describe(value))", at: value)
            }
            switch key.text {
            case "rtol": rtol = number
            case "atol": atol = number
            default: throw cursor.error("unknown option \(cursor.describe(key)); options are rtol, atol", at: key)
            }
        }
    }

    func run(in context: StatementContext) throws -> Report {
        let rtol = self.rtol ?? 1e-5, atol = self.atol ?? 1e-8
        let left = try context.lookup(a), right = try context.lookup(b)
        try context.reserve(elements: left.count, bytesEach: 8, copies: 4, for: "compare")
        guard left.shape == right.shape else {
            throw context.error("\(a.value) has shape \(left.shape) and \(b.value) has shape \(right.shape): compare needs equal shapes (it does not broadcast)", at: b.range)
        }
        let x = left.doubles, y = right.doubles
        let bitwise = left.dtype == right.dtype && left == right
        var far = 0, worstAbs = 0.0, worstAbsAt = 0, worstRel = 0.0, worstRelAt = 0
        for i in 0..<x.count {
            let diff = abs(x[i] - y[i])
            let sameSpecial = (x[i].isNaN && y[i].isNaN) || x[i] == y[i]
            if !sameSpecial && !(diff <= atol + rtol * abs(y[i])) { far += 1 }
            let absDiff = sameSpecial ? 0 : (diff.isNaN ? .infinity : diff)
            if absDiff > worstAbs { worstAbs = absDiff; worstAbsAt = i }
            let rel = sameSpecial ? 0 : (y[i] == 0 ? .infinity : absDiff / abs(y[i]))
            if rel > worstRel { worstRel = rel; worstRelAt = i }
        }
        let shape = left.shape
        let p = max(context.settings.precision, 6)
        var report = Report()
        report.line("compare \(a.value) \(b.value): \(shape), \(x.count) elements, \(left.dtype) and \(right.dtype)")
        report.line("  bitwise equal: " + (bitwise ? "yes" : "no"))
        report.line("  allclose (|a − b| ≤ \(formatOption(atol)) + \(formatOption(rtol))·|b|): " + (far == 0 ? "yes" : "no — \(far) of \(x.count) elements differ by more"))
        // rtol 1e-5 says nothing about float16 (u = 2⁻¹¹ ≈ 4.9e-4): also say what the narrower format's last bits allow.
        if let narrow = [left.dtype, right.dtype].filter(\.isReduced).min(by: { $0.precisionBits < $1.precisionBits }) {
            let u = narrow.unitRoundoff
            let beyond = (0..<x.count).filter { i in
                !((x[i].isNaN && y[i].isNaN) || x[i] == y[i]) && !(abs(x[i] - y[i]) <= 2 * u * max(abs(x[i]), abs(y[i])))
            }.count
            report.line("  within \(narrow)'s rounding (|a − b| ≤ 2u·max(|a|, |b|), u = 2^−\(narrow.precisionBits)): " + (beyond == 0 ? "yes" : "no — \(beyond) of \(x.count) elements differ by more"))
        }
        if worstAbs > 0 {
            report.line("  max abs diff \(formatNumber(worstAbs, precision: 2)) at \(Shape.format(shape.multiIndex(ofOffset: worstAbsAt))): \(a.value) = \(formatNumber(x[worstAbsAt], precision: p)), \(b.value) = \(formatNumber(y[worstAbsAt], precision: p))")
            report.line("  max rel diff \(formatNumber(worstRel, precision: 2)) at \(Shape.format(shape.multiIndex(ofOffset: worstRelAt))) (relative to \(b.value))")
        }
        for hint in CompareHints.hints(left, right, names: (a.value, b.value), context: context) {
            report.line("  hint: " + hint)
        }
        return report
    }
}
