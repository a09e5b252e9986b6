import NormKit

struct Forward: Command, Equatable {
    static let help = CommandHelp(
        name: "forward", usage: ["forward [X]"],
        summary: "run the layer on X (default x)",
        details: """
        Makes y, mean, var, rstd, xhat and xc (x − mean) session tensors (RMSNorm makes ms, its mean square, and no
        mean, var or xc) and prints a summary of y. batchnorm also makes running_mean and running_var.
        """,
        examples: ["forward", "forward x2"], completion: .tensorsAnd())

    let input: Located<String>?

    init(input: Located<String>?) { self.input = input }

    init(parsing cursor: inout ArgumentCursor) throws {
        input = cursor.isAtEnd ? nil : try cursor.name()
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        var layer = try context.currentLayer()
        let inputName = input?.value ?? "x"
        let x: AnyTensor
        if let input {
            x = try context.lookup(input)
        } else {
            guard let named = context.session["x"] else {
                throw Diagnostic("forward runs on x by default, and there is no x: make it (`tensor x = randn 2 4 3 3`) or name the input (`forward NAME`)")
            }
            x = named
        }
        var report = Report()
        if layer.dtype != x.dtype {
            if layer.sampleShape != nil {
                report.add(.note("\(inputName) is \(x.dtype): the layer's parameters and statistics are converted to \(x.dtype)"))
            }
            layer = layer.converted(to: x.dtype)
        }
        let threads = context.settings.threads
        // y, x̂, x − μ and the pass's own copies: about five tensors of the input's size.
        // The emulating kernel (method=, accumulate=) works on float64 copies: about eight of them.
        let emulated = !layer.spec.computesExactly
        try context.reserve(elements: x.count, bytesEach: emulated ? 8 : x.dtype.memoryBytes, copies: emulated ? 8 : 5,
                            for: "forward on \(inputName) \(x.shape)")
        let made: [(String, Session.Entry)]
        let summary: Summary
        switch layer {
        case .float32(var l):
            let result = try l.forward(x.tensor(as: Float.self), threads: threads, summarizing: true)
            (made, summary) = Self.collect(result, layer: l)
            context.session.layer = .float32(l)
        case .float64(var l):
            let result = try l.forward(x.tensor(as: Double.self), threads: threads, summarizing: true)
            (made, summary) = Self.collect(result, layer: l)
            context.session.layer = .float64(l)
        }
        for (tensorName, entry) in made {
            switch entry {
            case .made(let tensor): context.session[tensorName] = tensor
            case .deferred(let tensor): context.session.setDeferred(tensor, as: tensorName)
            }
        }
        report.line("\(layer.spec.kind.displayName) forward on \(inputName) \(x.shape) \(x.dtype)" + (summary.mode == .eval ? ", eval mode" : ""))
        report.line("  " + summary.statistics)
        report.line("  " + context.wording.summaryLine("y", made[0].1.value, moments: summary.outputMoments))
        report.line("  made: " + made.map(\.0).joined(separator: " "))
        for warning in summary.warnings { report.add(.warning(warning, origin: context.origin)) }
        return report
    }

    struct Summary {
        let statistics: String
        let warnings: [String]
        let mode: Mode
        /// y's summary numbers when the kernel made them on the way.
        let outputMoments: SummaryMoments?
    }

    /// The session tensors a forward pass makes, named for what they hold, and the words for its statistics.
    /// x̂ and x − μ are deferred: made when first read (`DeferredTensor`).
    static func collect<S: NormScalar>(_ r: ForwardResult<S>, layer: NormLayer<S>) -> ([(String, Session.Entry)], Summary) {
        // y is stored in the tensors' format; the statistics and x̂ in the format they were computed in (float32 for
        // float16 inputs accumulated in float32 or float64, float16 itself under accumulate=storage).
        let inner = r.spec.accumulate == .storage ? r.storage : S.dtype
        var made: [(String, Session.Entry)] = [("y", .made(AnyTensor(r.output, storage: r.storage)))]
        // Deferred too: PyDLLib's per-position statistics are half as many values as x, made only when read.
        let statsShape = r.plan.statsShape
        func statistic(_ value: @escaping @Sendable () -> Tensor<S>) -> Session.Entry {
            .deferred(DeferredTensor(shape: statsShape, dtype: inner) { AnyTensor(value(), storage: inner) })
        }
        if r.spec.centres { made.append(("mean", statistic { r.mean! })) }
        made.append((LayerDescription.spreadName(r.spec), statistic { r.variance }))
        made.append(("rstd", statistic { r.rstd }))
        let shape = r.input.shape
        made.append(("xhat", .deferred(DeferredTensor(shape: shape, dtype: inner) { AnyTensor(r.normalized, storage: inner) })))
        if r.spec.centres {
            made.append(("xc", .deferred(DeferredTensor(shape: shape, dtype: inner) { AnyTensor(r.centered, storage: inner) })))
        }
        if let rm = layer.runningMean, let rv = layer.runningVariance {
            made.append(("running_mean", .made(AnyTensor(rm, storage: inner))))
            made.append(("running_var", .made(AnyTensor(rv, storage: inner))))
        }
        let names = LayerDescription.statisticsNames(r.spec)
        let source = r.mode == .eval ? "running statistics" : "statistics"
        let statistics = "\(source) \(LayerDescription.setDescription(r.spec, plan: r.plan)): \(names) of shape \(r.plan.statsShape)"
        return (made, Summary(statistics: statistics, warnings: r.warnings.map(\.description), mode: r.mode,
                              outputMoments: r.outputMoments))
    }
}

/// The upstream gradient of `backward`.
public enum UpstreamSource: Equatable, Sendable {
    case tensor(Located<String>)
    case ones
    case randn(seed: UInt64)
}

struct Backward: Command, Equatable {
    /// Not 0: with x = randn … seed 0, dy = randn seed 0 would equal x, and dx would nearly vanish.
    static let defaultSeed: UInt64 = 1000

    static let help = CommandHelp(
        name: "backward", usage: ["backward [DY | ones | randn [seed S]]"],
        summary: "back-propagate an upstream gradient dy through the last forward pass",
        details: """
        With no argument dy is randn of y's shape with seed \(defaultSeed) (not 0, which would copy an x made with seed 0;
        ones would make dx vanish for most layers, which hides the interesting part). `randn` alone also uses
        seed \(defaultSeed). Makes dy, dx, dgamma and dbeta session tensors; dgamma and dbeta are the
        accumulated gradients (see `show grad` and zero_grad).
        """,
        examples: ["backward", "backward ones", "backward randn seed 3", "backward g"],
        completion: .tensorsAnd(["ones", "randn"]))

    /// Nil: randn with the default seed.
    let source: UpstreamSource?

    init(source: UpstreamSource?) { self.source = source }

    init(parsing cursor: inout ArgumentCursor) throws {
        guard let token = cursor.peek else { source = nil; return }
        if token.kind == .word && token.text == "ones" {
            _ = cursor.next()
            source = .ones
        } else if token.kind == .word && token.text == "randn" {
            _ = cursor.next()
            var seed = Self.defaultSeed
            if let s = cursor.peek, s.kind == .word, s.text == "seed" {
                _ = cursor.next()
                seed = UInt64(try cursor.integer("a seed (a whole number ≥ 0)", minimum: 0).value)
            }
            source = .randn(seed: seed)
        } else {
            source = .tensor(try cursor.name("a tensor name, ones or randn"))
        }
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        guard let y = context.session["y"], layer.hasForward else {
            throw Diagnostic("backward needs a forward pass first: run forward, then backward")
        }
        let dy: AnyTensor
        let described: String
        switch source {
        case nil:
            dy = AnyTensor.float64(.randn(y.shape, seed: Self.defaultSeed)).converted(to: layer.dtype)
            described = "dy = randn seed \(Self.defaultSeed) (the default; `backward ones`, `backward randn seed S` or `backward NAME` choose another)"
        case .ones?:
            dy = AnyTensor.float64(.ones(y.shape)).converted(to: layer.dtype)
            described = "dy = ones"
        case .randn(let seed)?:
            dy = AnyTensor.float64(.randn(y.shape, seed: seed)).converted(to: layer.dtype)
            described = "dy = randn seed \(seed)"
        case .tensor(let name)?:
            dy = try context.lookup(name).converted(to: layer.dtype)
            described = "dy = \(name.value)"
        }
        let emulated = !layer.spec.computesExactly
        try context.reserve(elements: y.count, bytesEach: emulated ? 8 : layer.dtype.memoryBytes, copies: emulated ? 8 : 4,
                            for: "backward on \(y.shape)")
        var made: [(String, AnyTensor)] = [("dy", dy)]
        var warnings: [NormWarning] = []
        let threads = context.settings.threads
        switch layer {
        case .float32(var l):
            let g = try l.backward(dy.tensor(as: Float.self), threads: threads)
            made.append(("dx", AnyTensor(g.dx, storage: l.storage)))
            if let dg = l.gammaGrad { made.append(("dgamma", AnyTensor(dg, storage: l.storage))) }
            if let db = l.betaGrad { made.append(("dbeta", AnyTensor(db, storage: l.storage))) }
            warnings = g.warnings
            context.session.layer = .float32(l)
        case .float64(var l):
            let g = try l.backward(dy.tensor(as: Double.self), threads: threads)
            made.append(("dx", AnyTensor(g.dx)))
            if let dg = l.gammaGrad { made.append(("dgamma", AnyTensor(dg))) }
            if let db = l.betaGrad { made.append(("dbeta", AnyTensor(db))) }
            warnings = g.warnings
            context.session.layer = .float64(l)
        }
        for (name, tensor) in made { context.session[name] = tensor }
        let spec = layer.spec
        let count = context.session.layer?.backwardCount ?? 0
        var report = Report([.text(described), .text("  " + context.wording.summaryLine("dx", made[1].1))])
        if let dgamma = context.session["dgamma"], spec.affine != .none {
            let over = spec.normalizedShape != nil ? "the leading dims" : "the batch"
            let reduction = spec.paramGrad == .sum ? "summed over \(over)" : "averaged over \(over) (paramgrad=mean)"
            report.line("  \(spec.bias ? "dgamma, dbeta" : "dgamma"): \(dgamma.shape), \(reduction); accumulated over \(plural(count, "backward pass", "backward passes"))" + (count > 1 ? " (zero_grad resets)" : ""))
        }
        report.line("  made: " + made.map(\.0).joined(separator: " "))
        for warning in warnings { report.add(.warning(warning.description, origin: context.origin)) }
        return report
    }
}
