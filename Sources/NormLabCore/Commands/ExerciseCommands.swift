import NormKit

struct ExerciseCommand: Command, Equatable {
    static let help = CommandHelp(
        name: "exercise",
        usage: ["exercise forward|backward [n=I g=J p=K c=C] [seed=S]", "exercise skip", "exercise stop", "exercise"],
        summary: "compute a derivation yourself: each step's result hidden, asked for, graded",
        details: """
        Takes one statistics set of the last pass (n= g= p= c= as in `explain`) and asks for its steps in order —
        forward: μ, σ² (ms for RMSNorm), rstd, x̂, y; backward: ∂x̂, Σ∂x̂, Σ(∂x̂·x̂), dx — giving you the set's values
        and the layer's constants. `answer VALUE`, `answer [v0, v1, …]` or `answer NAME` (a tensor with the set's
        values) grades the current step (within 0.1 % or 1e-4); a wrong answer gets a hint that points at the
        step's formula or names the slip (dividing by m − 1, eps outside the square root, a missing term), never
        the value. With seed=S the problem is a new small one on the current layer (GroupNorm, G = 2 when there
        is none), its numbers rounded to two decimals, the same for the same seed; the session's tensors are not
        touched. `exercise skip` shows the current step's value and moves on; `exercise stop` ends with the score;
        `exercise` alone repeats the question. Recorded into a handout like any command (`record FILE.html
        answers=no` leaves the answers out: a worksheet).
        """,
        examples: ["exercise forward", "exercise forward seed=3", "exercise backward n=1", "exercise skip", "exercise stop"],
        completion: CompletionRule { request in
            guard request.option == nil else { return .nothing }
            return request.position == 1 ? request.matching(["forward", "backward", "skip", "stop"])
                                         : request.matching(["n=", "g=", "p=", "c=", "seed="])
        })

    enum Action: Equatable {
        case start(Exercise.Topic, SetSelector, seed: Located<UInt64>?)
        case skip, stop, status
    }

    let action: Action

    init(action: Action) { self.action = action }

    init(parsing cursor: inout ArgumentCursor) throws {
        guard !cursor.isAtEnd else { action = .status; return }
        let word = try cursor.keyword(["forward", "backward", "skip", "stop"], "forward, backward, skip or stop")
        switch word.text {
        case "skip": try cursor.finish(); action = .skip
        case "stop": try cursor.finish(); action = .stop
        default:
            var seed: Located<UInt64>? = nil
            if let token = try cursor.takeOption("seed") {
                guard let value = UInt64(token.text) else {
                    throw cursor.error("seed= takes a whole number ≥ 0, got \(cursor.describe(token))", at: token)
                }
                seed = Located(value, token.range)
            }
            let selector = try SetSelector(parsing: &cursor)
            action = .start(Exercise.Topic(rawValue: word.text)!, selector, seed: seed)
        }
    }

    func run(in context: StatementContext) throws -> Report {
        switch action {
        case .status:
            guard let exercise = context.session.exercise else {
                return Report([.text("no exercise (`exercise forward` or `exercise backward` starts one)")])
            }
            return Report([.text(exercise.prompt)])
        case .skip:
            guard var exercise = context.session.exercise else { throw Diagnostic("there is no exercise to skip a step of") }
            let step = exercise.steps[exercise.current]
            exercise.skip()
            var report = Report([.text("shown: \(step.formula) = " + context.wording.list(step.expected).replacingOnly())])
            report.append(Self.next(&exercise, context: context))
            return report
        case .stop:
            guard let exercise = context.session.exercise else { throw Diagnostic("there is no exercise to stop") }
            context.session.exercise = nil
            return Report([.text("exercise stopped after \(exercise.current) of \(exercise.steps.count) steps; " + exercise.score)])
        case .start(let topic, let selector, let seed):
            if context.session.exercise != nil {
                throw Diagnostic("an exercise is running: `answer …`, `exercise skip`, or `exercise stop` first")
            }
            let record: PassRecord
            if let seed {
                record = try Self.seededProblem(topic: topic, seed: seed.value, context: context)
            } else {
                record = try context.passRecord("there is no pass to make an exercise of: run forward (and backward), or give seed=S for a new problem")
            }
            let (stat, label, members) = try selector.select(in: record, context: context)
            guard members.count <= 64 else {
                throw Diagnostic("this set has \(members.count) values, too many to compute by hand: use a smaller input or layer, or seed=S for a small problem")
            }
            let exercise = try Exercise(topic: topic, record: record, stat: stat, label: label, members: members,
                                        wording: context.wording)
            var report = Report([.text(exercise.title + (seed.map { " (seed \($0.value))" } ?? ""))])
            for line in exercise.given { report.add(.text("  " + line)) }
            report.add(.text("  you will compute, in order: " + exercise.steps.enumerated().map { "\($0.offset + 1). \($0.element.formula)" }.joined(separator: "; ")))
            report.add(.text(exercise.prompt))
            context.session.exercise = exercise
            return report
        }
    }

    /// After a step: the next question, or the score when it was the last (and the exercise ends).
    static func next(_ exercise: inout Exercise, context: StatementContext) -> Report {
        if exercise.isFinished {
            context.session.exercise = nil
            return Report([.text("done. " + exercise.score)])
        }
        context.session.exercise = exercise
        return Report([.text(exercise.prompt)])
    }

    /// A small problem on the current layer (GroupNorm, G = 2 when there is none): x, γ, β and dy from `seed`,
    /// rounded to two decimals so the steps can be done by hand; in float64, apart from the session.
    static func seededProblem(topic: Exercise.Topic, seed: UInt64, context: StatementContext) throws -> PassRecord {
        let spec = try context.session.layer?.spec ?? LayerSpec(kind: .groupnorm, groups: 2)
        let shape: [Int]
        if let normalized = spec.normalizedShape {
            guard normalized.reduce(1, *) <= 16 else {
                throw Diagnostic("a seeded exercise makes a small problem; this layer normalises over \(normalized.reduce(1, *)) values: choose a smaller one (say `layer layernorm shape=4`)")
            }
            shape = [2] + normalized
        } else {
            let groups = spec.kind.hasGroups ? spec.groups ?? 1 : 1
            guard groups <= 8 else {
                throw Diagnostic("a seeded exercise makes a small problem; G = \(groups) needs \(groups) channels or more: choose a layer with G ≤ 8")
            }
            shape = [2, groups * max(1, 4 / groups), 3]
        }
        func rounded(_ t: Tensor<Double>, scale: Double = 1, offset: Double = 0) -> Tensor<Double> {
            t.map { ((offset + scale * $0) * 100).rounded() / 100 }
        }
        let dims = try Shape(shape)
        var layer = try NormLayer<Double>(spec: spec)
        let plan = try NormPlan(spec: spec, inputShape: dims)
        if let affine = plan.affineShape {
            try layer.setGamma(rounded(Tensor<Double>.randn(affine, seed: seed &+ 2), scale: 0.3, offset: 1))
            if spec.bias { try layer.setBeta(rounded(Tensor<Double>.randn(affine, seed: seed &+ 3), scale: 0.2)) }
        }
        _ = try layer.forward(rounded(Tensor<Double>.randn(dims, seed: seed)))
        if topic == .backward { _ = try layer.backward(rounded(Tensor<Double>.randn(dims, seed: seed &+ 1))) }
        guard let record = PassRecord(layer) else { throw Diagnostic("internal: the seeded problem has no pass") }
        return record
    }
}

struct Answer: Command, Equatable {
    static let help = CommandHelp(
        name: "answer", usage: ["answer VALUE", "answer [V0, V1, …]", "answer NAME"],
        summary: "answer the current step of an exercise",
        details: "One number, a list of numbers (one per element of the set, in the order shown), or a tensor holding them (its values in order; any shape). Graded within 0.1 % or 1e-4 per value.",
        examples: ["answer 0.5166", "answer [0.1, -0.2, 0.3]", "answer my_xhat"], completion: .tensorsAnd())

    enum Value: Equatable {
        case numbers([Double])
        case tensor(Located<String>)
    }

    let value: Value

    init(value: Value) { self.value = value }

    init(parsing cursor: inout ArgumentCursor) throws {
        guard let token = cursor.peek else { throw cursor.error("expected a number, a list [ … ] or a tensor name", at: nil) }
        if token.kind == .openBracket {
            value = .numbers(try Tensor<Double>(literal: try cursor.literal(), maxElements: 4096).scalars)
        } else if let number = ArgumentCursor.parseNumber(token.text) {
            _ = cursor.next()
            value = .numbers([number])
        } else {
            value = .tensor(try cursor.name("a number, a list [ … ] or a tensor name"))
        }
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        guard var exercise = context.session.exercise else {
            throw Diagnostic("there is no exercise to answer: `exercise forward` or `exercise backward` starts one")
        }
        let numbers: [Double]
        switch value {
        case .numbers(let values): numbers = values
        case .tensor(let name): numbers = try context.lookup(name).doubles
        }
        let step = exercise.steps[exercise.current]
        switch exercise.grade(numbers) {
        case .right:
            var report = Report([.text("[right] \(step.formula) = " + context.wording.list(step.expected).replacingOnly())])
            report.append(ExerciseCommand.next(&exercise, context: context))
            return report
        case .wrong(let hint):
            context.session.exercise = exercise
            return Report([.text("[not yet] " + hint)])
        }
    }
}

extension String {
    /// "[0.5166]" → "0.5166": a one-number list is a number.
    func replacingOnly() -> String {
        hasPrefix("[") && hasSuffix("]") && !contains(",") ? String(dropFirst().dropLast()) : self
    }
}
