import NormKit

/// An exercise (`exercise forward|backward`): the derivation of one statistics set with its results hidden, asked
/// for one step at a time. Each step knows the engine's value, the formula it follows, and the usual wrong turns,
/// so a wrong answer gets a hint that names the formula (or the slip), never the value.
public struct Exercise: Sendable {
    public enum Topic: String, Sendable, CaseIterable { case forward, backward }

    struct Step: Sendable {
        /// "μ = Σx / m"
        let formula: String
        /// The engine's value: one number, or one per element of the set.
        let expected: [Double]
        /// What to look at when an answer is wrong.
        let hint: String
        /// Wrong answers worth naming: a value the slip would give, and what to say about it.
        let slips: [(value: [Double], says: String)]
        var isList: Bool { expected.count > 1 }
    }

    enum Grade: Equatable { case right, wrong(String) }

    let topic: Topic
    let title: String
    /// What the learner is given: the set's values and the layer's constants, as lines.
    let given: [String]
    let steps: [Step]
    var current = 0
    /// Steps right at the first answer, right after a hint, and shown by `exercise skip`.
    var firstTry = 0, afterHints = 0, skipped = 0
    var missesOnCurrent = 0

    var isFinished: Bool { current >= steps.count }

    /// Relative 1e-3 and absolute 1e-4: an answer copied at four digits is right; a slip of one unit in the third
    /// digit is not.
    static func close(_ answer: Double, _ expected: Double) -> Bool {
        abs(answer - expected) <= 1e-3 * abs(expected) + 1e-4
    }

    static func close(_ answer: [Double], _ expected: [Double]) -> Bool {
        answer.count == expected.count && zip(answer, expected).allSatisfy { close($0, $1) }
    }

    /// Grade an answer to the current step (and move on when it is right).
    mutating func grade(_ answer: [Double]) -> Grade {
        let step = steps[current]
        if answer.count != step.expected.count {
            missesOnCurrent += 1
            return .wrong(step.isList
                ? "this step has one value per element of the set: \(step.expected.count) values; your answer has \(answer.count)"
                : "this step is one number; your answer has \(answer.count) values")
        }
        if Self.close(answer, step.expected) {
            if missesOnCurrent == 0 { firstTry += 1 } else { afterHints += 1 }
            missesOnCurrent = 0
            current += 1
            return .right
        }
        missesOnCurrent += 1
        if let slip = step.slips.first(where: { Self.close(answer, $0.value) }) { return .wrong(slip.says) }
        if step.isList, let wrong = zip(answer, step.expected).enumerated().first(where: { !Self.close($0.element.0, $0.element.1) }) {
            let right = step.expected.count - zip(answer, step.expected).filter { !Self.close($0, $1) }.count
            return .wrong("\(right) of \(step.expected.count) values are right; the first that is not is value \(wrong.offset) (counting from 0). " + step.hint)
        }
        return .wrong(step.hint)
    }

    mutating func skip() {
        skipped += 1
        missesOnCurrent = 0
        current += 1
    }

    var score: String {
        "score: \(firstTry) of \(steps.count) steps right at the first answer, \(afterHints) after a hint, \(skipped) shown"
    }

    /// "step 2 of 5: σ² = Σ(x − μ)² / m = ?"
    var prompt: String {
        guard !isFinished else { return score }
        let step = steps[current]
        return "step \(current + 1) of \(steps.count): \(step.formula) = ?" + (step.isList ? "  (\(step.expected.count) values: `answer [v0, v1, …]` or `answer NAME`)" : "  (`answer VALUE`)")
    }
}

extension Exercise {
    /// The steps of `topic` for one set of a pass, with the engine's values.
    init(topic: Topic, record r: PassRecord, stat: Int, label: String, members: [Int], wording w: Wording) throws {
        let spec = r.spec
        let m = members.count
        let divisor = spec.variance == .unbiased ? m - 1 : m
        let divisorText = spec.variance == .unbiased ? "(m − 1)" : "m"
        let x = members.map { r.x[$0] }
        let gamma = members.map { r.gamma?[r.parameterIndex(ofOffset: $0)] ?? 1 }
        let beta = members.map { r.beta?[r.parameterIndex(ofOffset: $0)] ?? 0 }
        let rstd = r.rstd[stat], variance = r.variance[stat]
        let xhat = members.map { r.xhat[$0] }
        var fullWording = w
        fullWording.full = true
        self.topic = topic
        var given = ["the set: \(label); m = \(m)", "x = " + fullWording.list(x), "eps = \(formatOption(spec.eps))"]
        if r.gamma != nil { given.append("γ = " + fullWording.list(gamma) + "   (each element's own)") }
        if r.beta != nil { given.append("β = " + fullWording.list(beta)) }
        var steps: [Step] = []
        switch topic {
        case .forward:
            guard r.mode == .train || !spec.kind.hasRunningStatistics else {
                throw Diagnostic("in eval mode the statistics are the running ones, not computed from the set: `train`, `forward`, then `exercise forward`")
            }
            title = "exercise forward — " + LayerDescription.title(spec, mode: r.mode)
            let statName = spec.centres ? "σ²" : "ms"
            if spec.centres {
                let mu = r.mean?[stat] ?? x.reduce(0, +) / Double(m)
                steps.append(Step(formula: "μ = Σx / m", expected: [mu],
                                  hint: "μ is the mean of the set: add its m = \(m) values of x and divide by m.",
                                  slips: [([x.reduce(0, +)], "that is Σx: divide it by m = \(m).")]))
                let squares = x.reduce(0) { $0 + ($1 - mu) * ($1 - mu) }
                var slips: [(value: [Double], says: String)] = [([squares], "that is Σ(x − μ)²: divide it by \(divisorText).")]
                if spec.variance == .biased, m > 1 {
                    slips.append(([squares / Double(m - 1)], "that divides by m − 1 (the unbiased variance); this layer divides by m."))
                } else {
                    slips.append(([squares / Double(m)], "that divides by m; this layer's variance is unbiased: divide by m − 1."))
                }
                steps.append(Step(formula: "σ² = Σ(x − μ)² / \(divisorText)", expected: [variance],
                                  hint: "subtract μ from each x, square, add the squares, and divide by \(divisorText).",
                                  slips: slips))
            } else {
                let squares = x.reduce(0) { $0 + $1 * $1 }
                steps.append(Step(formula: "ms = Σx² / m", expected: [variance],
                                  hint: "RMSNorm subtracts no mean: square each x, add, and divide by m.",
                                  slips: [([squares], "that is Σx²: divide it by m = \(m)."),
                                          ([x.reduce(0, +) / Double(m)], "that is the mean of x; ms is the mean of x².")]))
            }
            steps.append(Step(formula: "rstd = (\(statName) + eps)^(−½)", expected: [rstd],
                              hint: "rstd = 1 / √(\(statName) + eps): eps is added before the square root.",
                              slips: [([1 / variance.squareRoot()], "eps goes inside the square root: 1 / √(\(statName) + eps)."),
                                      ([(variance + spec.eps).squareRoot()], "that is √(\(statName) + eps); rstd is its reciprocal."),
                                      ([1 / (variance + spec.eps)], "that is 1 / (\(statName) + eps); take the square root first.")]))
            let centred = spec.centres ? "(x − μ)·rstd" : "x·rstd"
            steps.append(Step(formula: "x̂ = \(centred)", expected: xhat,
                              hint: "x̂ = \(centred) for each element, with the set's one rstd.",
                              slips: spec.centres ? [(x.map { $0 * rstd }, "subtract μ before multiplying by rstd.")] : []))
            if r.gamma != nil || r.beta != nil {
                let y = members.map { r.y[$0] }
                steps.append(Step(formula: "y = γ·x̂ + β", expected: y,
                                  hint: "y = γ·x̂ + β element by element, each with its own channel's γ and β (given above).",
                                  slips: [(zip(xhat, beta).map { $0 + $1 }, "multiply x̂ by γ before adding β.")]))
            }
        case .backward:
            guard let dx = r.dx, let dy = r.dy else {
                throw Diagnostic("exercise backward needs a backward pass after the last forward: run backward first")
            }
            guard r.mode == .train else {
                throw Diagnostic("in eval mode dx = ∂x̂·rstd has no set-wide terms to practise: `train`, then forward and backward")
            }
            title = "exercise backward — " + LayerDescription.title(spec, mode: r.mode)
            let dyValues = members.map { dy[$0] }
            given.insert("x̂ = " + fullWording.list(xhat) + ";  rstd = " + w.number(rstd), at: 2)
            given.insert("dy = " + fullWording.list(dyValues), at: 3)
            let dxhat = zip(dyValues, gamma).map { $0 * $1 }
            steps.append(Step(formula: "∂x̂ = dy·γ", expected: dxhat,
                              hint: "the gradient reaching x̂ is dy times each element's γ.", slips: []))
            var sumDxhat = 0.0
            if spec.centres {
                sumDxhat = dxhat.reduce(0, +)
                steps.append(Step(formula: "Σ∂x̂", expected: [sumDxhat], hint: "add the m = \(m) values of ∂x̂.",
                                  slips: [([dyValues.reduce(0, +)], "that is Σdy: add ∂x̂ = dy·γ instead.")]))
            }
            let projection = zip(dxhat, xhat).reduce(0) { $0 + $1.0 * $1.1 }
            steps.append(Step(formula: "Σ(∂x̂·x̂)", expected: [projection], hint: "multiply each ∂x̂ by its x̂ and add.",
                              slips: [([zip(dyValues, xhat).reduce(0) { $0 + $1.0 * $1.1 }], "that is Σ(dy·x̂): use ∂x̂ = dy·γ.")]))
            let mText = spec.variance == .unbiased ? "(m − 1)" : "m"
            let formula = spec.centres
                ? "dx = rstd·(∂x̂ − Σ∂x̂ / m − x̂·Σ(∂x̂·x̂) / \(mText))"
                : "dx = rstd·(∂x̂ − x̂·Σ(∂x̂·x̂) / m)"
            let withoutMean = (0..<m).map { rstd * (dxhat[$0] - xhat[$0] * projection / Double(divisor)) }
            let withoutProjection = (0..<m).map { rstd * (dxhat[$0] - sumDxhat / Double(m)) }
            steps.append(Step(formula: formula, expected: members.map { dx[$0] },
                              hint: "for each element: ∂x̂, minus the mean term, minus x̂ times the projection term, all times rstd.",
                              slips: [(withoutMean, "the −Σ∂x̂ / m term is missing: every x moves μ."),
                                      (withoutProjection, "the −x̂·Σ(∂x̂·x̂) term is missing: every x moves σ²."),
                                      (dxhat.map { $0 * rstd }, "that is ∂x̂·rstd alone: subtract both set-wide terms before multiplying.")]))
        }
        self.given = given
        self.steps = steps
    }
}
