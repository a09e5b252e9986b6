import NormKit

/// `layer KIND [G] [key=value…]` as typed; built into a `LayerSpec` when run.
public struct LayerRequest: Equatable, Sendable {
    public var kind: LayerKind
    public var groups: Located<Int>?
    public var options: [LayerOption]
}

public struct LayerOption: Equatable, Sendable {
    public enum Key: String, CaseIterable, Sendable {
        case shape, preset, reduce, affine, paramgrad, variance, eps, momentum, method, accumulate

        /// The words an option takes, for completion (empty for numbers).
        var values: [String] {
            switch self {
            case .preset: Preset.allCases.map(\.rawValue)
            case .reduce: Reduce.allCases.map(\.rawValue)
            case .affine: Affine.allCases.map(\.rawValue)
            case .paramgrad: ParamGrad.allCases.map(\.rawValue)
            case .variance: VarianceEstimator.allCases.map(\.rawValue)
            case .method: VarianceMethod.allCases.map(\.rawValue)
            case .accumulate: Accumulation.allCases.map(\.rawValue)
            case .eps, .momentum, .shape: []
            }
        }
    }
    public let key: Key
    public let value: Located<String>
}

struct ChooseLayer: Command, Equatable {
    static let help = CommandHelp(
        name: "layer",
        usage: ["layer groupnorm G [key=value…]", "layer layernorm|instancenorm|batchnorm [key=value…]",
                "layer rmsnorm [G] [key=value…]", "layer layernorm|rmsnorm shape=D[,D…] [key=value…]",
                "layer norm over=AXES [groups=G] [affine=AXES] [centre=yes|no] [eps=E] [method=M] [accumulate=A]", "layer"],
        summary: "choose the normalisation layer, or show the current one",
        details: """
        shape=D[,D…] (layernorm, rmsnorm): PyTorch's normalized_shape — normalise over the last dims, whatever
        the leading ones, as nn.LayerNorm(768) on a (B, T, 768) activation; γ (and β) have that shape. RMSNorm
        with shape= is nn.RMSNorm: a weight only, and eps the dtype's machine epsilon unless eps= is given.
        layer norm builds a layer from the axes that share one mean and variance — n the batch, c the channels
        (with groups=G, one group's channels), s every position: over=c,s is LayerNorm (GroupNorm with groups=),
        over=s InstanceNorm, over=c the per-position sets of PyDLLib's code, over=n,s BatchNorm, over=n BatchNorm
        per element; over=n,c,s and over=n,c span the batch and a group's channels (groups=G, default 1: one set
        for the whole batch, or per position) — no named layer is that; affine=c|c,s|none, centre=no divides by
        the root mean square (RMSNorm). It says which named layer the result is.
        Options (a preset first sets all of them; options after it change single conventions):
          preset=torch|pydllib       paper and PyTorch (default), or the PyDLLib library's code
          reduce=group|channels      statistics over the whole group, or per spatial position (pydllib);
                                     for batchnorm: per channel, or per element over the batch (pydllib)
          affine=channel|element|none  γ, β of shape (C), of the sample's shape (C, *spatial), or none
          paramgrad=sum|mean         dγ, dβ summed over the batch, or averaged (pydllib)
          variance=biased|unbiased   divide Σ(x − μ)² by m or by m − 1 (pydllib's batchnorm)
          eps=1e-5                   added to the variance (torch 1e-5, pydllib 1e-6)
          momentum=0.1               batchnorm's running-statistics update
        How the numbers are computed (`help numerics`; the defaults are the exact way):
          method=twopass|onepass|welford  σ² as Σ(x − μ)² after μ, as E[x²] − E[x]² in one pass, or Welford's update
          accumulate=float64|float32|storage  the precision of every sum and step: float64, float32, or the
                                     tensors' own format (float16 sums in float16, as failing kernels did)
        A new layer replaces the old one, with fresh parameters and gradients. `help conventions` explains them.
        """,
        examples: ["layer groupnorm 2", "layer groupnorm 32 preset=pydllib", "layer batchnorm momentum=0.01",
                   "layer layernorm affine=none eps=1e-6", "layer layernorm shape=768", "layer rmsnorm shape=4,5",
                   "layer norm over=s", "layer norm over=c,s groups=2 centre=no", "layer norm over=n,c,s groups=4",
                   "layer layernorm shape=16 method=onepass accumulate=float32"],
        completion: CompletionRule { request in
            if request.position > 1, request.arguments.first == "norm" {
                if let (key, prefix) = request.option {
                    let values = ["over": ["c,s", "s", "c", "n,s", "n", "n,c,s", "n,c"], "affine": ["c", "c,s", "none"], "centre": ["yes", "no"]][key] ?? []
                    return Completion.Result(candidates: values.filter { $0.hasPrefix(prefix) }, wantsPaths: false)
                }
                let used = Set(request.arguments.compactMap { $0.split(separator: "=").first.map(String.init) })
                return request.matching(CustomLayerRequest.keys.filter { !used.contains($0) }.map { $0 + "=" })
            }
            if let (key, prefix) = request.option {
                let values = LayerOption.Key(rawValue: key)?.values ?? []
                return Completion.Result(candidates: values.filter { $0.hasPrefix(prefix) }, wantsPaths: false)
            }
            if request.position == 1 { return request.matching(LayerKind.allCases.map(\.rawValue) + ["norm"]) }
            let used = Set(request.arguments.compactMap { $0.split(separator: "=").first.map(String.init) })
            return request.matching(LayerOption.Key.allCases.map(\.rawValue).filter { !used.contains($0) }.map { $0 + "=" })
        })

    /// Nil (and no `custom`): show the current layer.
    let request: LayerRequest?
    /// `layer norm over=…`.
    var custom: CustomLayerRequest? = nil

    init(request: LayerRequest?) { self.request = request }

    init(parsing cursor: inout ArgumentCursor) throws {
        guard !cursor.isAtEnd else { request = nil; return }
        let kindToken = try cursor.keyword(LayerKind.allCases.map(\.rawValue) + ["norm"], "a layer kind")
        if kindToken.text == "norm" {
            custom = CustomLayerRequest(options: try cursor.options().map {
                CustomLayerRequest.Option(key: Located($0.key.text, $0.key.range), value: Located($0.value.text, $0.value.range))
            })
            request = nil
            return
        }
        let kind = LayerKind(rawValue: kindToken.text)!
        var groups: Located<Int>? = nil
        if let next = cursor.peek, next.kind == .word, Int(next.text) != nil {
            guard kind.takesGroupCount else {
                throw cursor.error("\(kind) takes no number of groups", at: next)
            }
            groups = try cursor.integer("the number of groups", minimum: 1, maximum: 1 << 30)
        } else if kind.needsGroupCount {
            throw cursor.error("\(kind) needs the number of groups G (a whole number ≥ 1), got \(cursor.describe(cursor.peek))", at: cursor.peek)
        }
        var options: [LayerOption] = []
        for (key, value) in try cursor.options() {
            guard let optionKey = LayerOption.Key(rawValue: key.text) else {
                throw cursor.error("unknown option \(cursor.describe(key)); options are \(LayerOption.Key.allCases.map(\.rawValue).joined(separator: ", "))", at: key)
            }
            if options.contains(where: { $0.key == optionKey }) {
                throw cursor.error("\(key.text) is given twice", at: key)
            }
            options.append(LayerOption(key: optionKey, value: Located(value.text, value.range)))
        }
        request = LayerRequest(kind: kind, groups: groups, options: options)
    }

    func run(in context: StatementContext) throws -> Report {
        if let custom {
            let (spec, words) = try custom.build(context: context)
            var report = try install(spec, context: context)
            report.line(words)
            return report
        }
        guard let request else { return try Self.describe(context.currentLayer()) }
        return try install(try buildSpec(request, context: context), context: context)
    }

    private func install(_ spec: LayerSpec, context: StatementContext) throws -> Report {
        let layer = AnyLayer.float64(try NormLayer<Double>(spec: spec)).converted(to: context.settings.dtype)
        context.session.layer = layer
        for stale in ["dgamma", "dbeta"] { context.session[stale] = nil }
        return Self.describe(layer)
    }

    private func buildSpec(_ request: LayerRequest, context: StatementContext) throws -> LayerSpec {
        var preset = Preset.torch
        if let option = request.options.first(where: { $0.key == .preset }) {
            guard let p = Preset(rawValue: option.value.value) else {
                throw context.error("preset must be torch or pydllib, got \(Escaping.quoted(option.value.value))", at: option.value.range)
            }
            preset = p
        }
        var spec = try LayerSpec(kind: request.kind, groups: request.groups?.value, preset: preset)
        if let option = request.options.first(where: { $0.key == .shape }) {
            let parts = option.value.value.split(separator: ",", omittingEmptySubsequences: false)
            let sizes = parts.compactMap { Int($0) }
            guard !parts.isEmpty, sizes.count == parts.count, sizes.allSatisfy({ $0 > 0 && $0 <= 1 << 30 }) else {
                throw context.error("shape= takes the normalised dims as whole numbers ≥ 1 separated by commas (shape=768, shape=4,5), got \(Escaping.quoted(option.value.value))", at: option.value.range)
            }
            guard request.kind == .layernorm || request.kind == .rmsnorm else {
                throw context.error("shape= is for layernorm and rmsnorm (PyTorch's normalized_shape); \(request.kind) normalises the (N, C, *spatial) way", at: option.value.range)
            }
            if request.groups != nil {
                throw context.error("shape= normalises all of the last dims together: it takes no number of groups", at: option.value.range)
            }
            if preset == .pydllib {
                throw context.error("PyDLLib has no layer over the last dims: shape= goes with preset=torch", at: option.value.range)
            }
            spec = try LayerSpec(kind: request.kind, normalizedShape: sizes)
        }
        for option in request.options {
            let value = option.value
            func choice<T: RawRepresentable & CaseIterable>(_ type: T.Type) throws -> T where T.RawValue == String {
                guard let v = T(rawValue: value.value) else {
                    let names = T.allCases.map(\.rawValue).joined(separator: " or ")
                    throw context.error("\(option.key.rawValue) must be \(names), got \(Escaping.quoted(value.value))", at: value.range)
                }
                return v
            }
            switch option.key {
            case .preset, .shape: break
            case .reduce: spec.reduce = try choice(Reduce.self)
            case .affine: spec.affine = try choice(Affine.self)
            case .paramgrad: spec.paramGrad = try choice(ParamGrad.self)
            case .variance: spec.variance = try choice(VarianceEstimator.self)
            case .method: spec.method = try choice(VarianceMethod.self)
            case .accumulate: spec.accumulate = try choice(Accumulation.self)
            case .eps:
                guard let eps = ArgumentCursor.parseNumber(value.value), eps.isFinite, eps >= 0 else {
                    throw context.error("eps must be a number ≥ 0 (e.g. 1e-5), got \(Escaping.quoted(value.value))", at: value.range)
                }
                spec.eps = eps
                spec.epsIsMachineEpsilon = false
            case .momentum:
                guard let m = ArgumentCursor.parseNumber(value.value), m >= 0, m <= 1 else {
                    throw context.error("momentum must be a number from 0 to 1, got \(Escaping.quoted(value.value))", at: value.range)
                }
                spec.momentum = m
            }
        }
        if !request.kind.hasRunningStatistics, let option = request.options.first(where: { $0.key == .momentum }) {
            throw context.error("momentum is for batchnorm only", at: option.value.range)
        }
        try spec.validate()
        return spec
    }

    /// The layer's title and its conventions, one per line.
    static func describe(_ layer: AnyLayer) -> Report {
        let spec = layer.spec
        var rows = LayerDescription.conventions(spec)
        if let normalized = spec.normalizedShape {
            rows.append(("input", "any shape (*, \(normalized.map(String.init).joined(separator: ", "))): its last dims are the normalised ones"))
            if let sample = layer.sampleShape { rows.append(("parameters", LayerDescription.parameters(spec, sampleShape: sample))) }
        } else if let sample = layer.sampleShape {
            rows.append(("input", "samples of shape \(Shape.format(sample)), fixed by the first forward"))
            var parameters = LayerDescription.parameters(spec, sampleShape: sample)
            if let reported = layer.pydllibReportedParameterCount, reported != layer.parameterCount {
                parameters += "; PyDLLib's own nparams reports \(reported)"
            }
            rows.append(("parameters", parameters))
        } else {
            rows.append(("input", "not seen yet: the first forward fixes the sample shape (C, *spatial)"))
        }
        if layer.backwardCount > 0 {
            rows.append(("gradients", "dγ, dβ accumulated over \(plural(layer.backwardCount, "backward pass", "backward passes"))"))
        }
        return Report([.text(LayerDescription.title(spec, mode: layer.mode)), .fields(rows.map { (key: $0.0, value: $0.1) })])
    }
}

public enum Parameter: String, Equatable, Sendable, CaseIterable {
    case gamma, beta
}

struct SetParameter: Command, Equatable {
    static let help = CommandHelp(
        name: "param", usage: ["param gamma|beta = SOURCE"],
        summary: "set the layer's γ or β",
        details: """
        SOURCE is anything `tensor` accepts (a name, a literal, full V D…, …). Before the first forward pass the
        shape cannot be checked yet: it is checked at forward, against (C) for affine=channel or the sample's
        shape (C, *spatial) for affine=element.
        """,
        examples: ["param gamma = full 2 4", "param beta = [0.1, 0.2, 0.3, 0.4]", "param gamma = g"],
        completion: CompletionRule { request in
            request.position == 1 ? request.matching(Parameter.allCases.map(\.rawValue)) : sourceCompletion.complete(request)
        })

    let which: Parameter
    let source: TensorSource

    init(which: Parameter, source: TensorSource) {
        self.which = which
        self.source = source
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        let token = try cursor.keyword(Parameter.allCases.map(\.rawValue), "gamma or beta")
        try cursor.expect(.equals, "'=' after \(token.text)")
        which = Parameter(rawValue: token.text)!
        source = try TensorSource(parsing: &cursor)
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        let value = try source.make(in: context).converted(to: layer.dtype)
        switch layer {
        case .float32(var l):
            which == .gamma ? try l.setGamma(value.tensor()) : try l.setBeta(value.tensor())
            context.session.layer = .float32(l)
        case .float64(var l):
            which == .gamma ? try l.setGamma(value.tensor()) : try l.setBeta(value.tensor())
            context.session.layer = .float64(l)
        }
        var line = "\(which.rawValue): \(value.shape) set"
        if layer.sampleShape == nil { line += "; its shape is checked against the input at the first forward" }
        return Report([.text(line)])
    }
}

/// `train` and `eval`: one declaration each, one handler.
struct TrainMode: Command, Equatable {
    static let help = CommandHelp(
        name: "train", usage: ["train"],
        summary: "batchnorm: normalise with the batch's statistics and update the running ones",
        details: "A new batchnorm starts in train mode. The other layers have no modes.", examples: ["train"])

    init() {}
    init(parsing cursor: inout ArgumentCursor) throws { try cursor.finish() }
    func run(in context: StatementContext) throws -> Report { try setMode(.train, context) }
}

struct EvalMode: Command, Equatable {
    static let help = CommandHelp(
        name: "eval", usage: ["eval"],
        summary: "batchnorm: normalise with the running statistics", examples: ["eval"])

    init() {}
    init(parsing cursor: inout ArgumentCursor) throws { try cursor.finish() }
    func run(in context: StatementContext) throws -> Report { try setMode(.eval, context) }
}

private func setMode(_ mode: Mode, _ context: StatementContext) throws -> Report {
    let layer = try context.currentLayer()
    switch layer {
    case .float32(var l): l.mode = mode; context.session.layer = .float32(l)
    case .float64(var l): l.mode = mode; context.session.layer = .float64(l)
    }
    guard layer.spec.kind.hasRunningStatistics else {
        return Report([.text("\(mode): noted, but only batchnorm uses the mode; \(layer.spec.kind.displayName) computes the same in both")])
    }
    return Report([.text(mode == .train
        ? "train: batchnorm normalises with the batch's statistics and updates running_mean, running_var"
        : "eval: batchnorm normalises with running_mean and running_var")])
}

struct ZeroGrad: Command, Equatable {
    static let help = CommandHelp(
        name: "zero_grad", usage: ["zero_grad"],
        summary: "forget the accumulated dγ and dβ",
        details: "backward adds into dγ and dβ, as PyTorch's .grad does, until zero_grad.", examples: ["zero_grad"])

    init() {}
    init(parsing cursor: inout ArgumentCursor) throws { try cursor.finish() }

    func run(in context: StatementContext) throws -> Report {
        guard var layer = context.session.layer else { throw Diagnostic("there is no layer yet: make one with `layer groupnorm 2`") }
        switch layer {
        case .float32(var l): l.zeroGrad(); layer = .float32(l)
        case .float64(var l): l.zeroGrad(); layer = .float64(l)
        }
        context.session.layer = layer
        context.session["dgamma"] = nil
        context.session["dbeta"] = nil
        return Report([.text("dgamma and dbeta zeroed; the accumulation count is 0")])
    }
}
