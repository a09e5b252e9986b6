import Foundation
import NormKit

extension Interpreter {
    func currentLayer() throws -> AnyLayer {
        guard let layer = session.layer else {
            throw Diagnostic("there is no layer yet: make one with `layer groupnorm 2` (see `help layer`)")
        }
        return layer
    }

    // MARK: - layer, param, train/eval

    func makeLayer(_ request: LayerRequest, text: String) throws {
        var preset = Preset.torch
        if let option = request.options.first(where: { $0.key == .preset }) {
            guard let p = Preset(rawValue: option.value.value) else {
                throw Diagnostic("preset must be torch or pydllib, got \(Escaping.quoted(option.value.value))", at: option.value.range, in: text)
            }
            preset = p
        }
        var spec = try LayerSpec(kind: request.kind, groups: request.groups?.value, preset: preset)
        for option in request.options {
            let value = option.value
            func choice<T: RawRepresentable & CaseIterable>(_ type: T.Type) throws -> T where T.RawValue == String {
                guard let v = T(rawValue: value.value) else {
                    let names = T.allCases.map(\.rawValue).joined(separator: " or ")
                    throw Diagnostic("\(option.key.rawValue) must be \(names), got \(Escaping.quoted(value.value))", at: value.range, in: text)
                }
                return v
            }
            switch option.key {
            case .preset: break
            case .reduce: spec.reduce = try choice(Reduce.self)
            case .affine: spec.affine = try choice(Affine.self)
            case .paramgrad: spec.paramGrad = try choice(ParamGrad.self)
            case .variance: spec.variance = try choice(VarianceEstimator.self)
            case .eps:
                guard let eps = ArgumentCursor.parseNumber(value.value), eps.isFinite, eps >= 0 else {
                    throw Diagnostic("eps must be a number ≥ 0 (e.g. 1e-5), got \(Escaping.quoted(value.value))", at: value.range, in: text)
                }
                spec.eps = eps
            case .momentum:
                guard let m = ArgumentCursor.parseNumber(value.value), m >= 0, m <= 1 else {
                    throw Diagnostic("momentum must be a number from 0 to 1, got \(Escaping.quoted(value.value))", at: value.range, in: text)
                }
                spec.momentum = m
            }
        }
        guard request.kind == .batchnorm || !request.options.contains(where: { $0.key == .momentum }) else {
            let option = request.options.first { $0.key == .momentum }!
            throw Diagnostic("momentum is for batchnorm only", at: option.value.range, in: text)
        }
        try spec.validate()
        session.layer = session.settings.dtype == .float32
            ? .float32(try NormLayer<Float>(spec: spec)) : .float64(try NormLayer<Double>(spec: spec))
        session.layerRequest = request
        for stale in ["dgamma", "dbeta"] { session[stale] = nil }
        try showLayer()
    }

    func showLayer() throws {
        let layer = try currentLayer()
        let spec = layer.spec
        out(LayerDescription.title(spec, mode: layer.mode))
        var rows: [(String, String)] = LayerDescription.conventions(spec)
        if let sample = layer.sampleShape {
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
        let width = rows.map(\.0.count).max() ?? 0
        for (key, value) in rows {
            out("  " + key + String(repeating: " ", count: width - key.count + 2) + value)
        }
    }

    func setParameter(_ which: Parameter, source: TensorSource, text: String) throws {
        let layer = try currentLayer()
        let value = try makeTensor(source, text: text).converted(to: layer.dtype)
        switch layer {
        case .float32(var l):
            which == .gamma ? try l.setGamma(value.tensor()) : try l.setBeta(value.tensor())
            session.layer = .float32(l)
        case .float64(var l):
            which == .gamma ? try l.setGamma(value.tensor()) : try l.setBeta(value.tensor())
            session.layer = .float64(l)
        }
        var line = "\(which.rawValue): \(value.shape) set"
        if layer.sampleShape == nil { line += "; its shape is checked against the input at the first forward" }
        out(line)
    }

    func setMode(_ mode: Mode) throws {
        let layer = try currentLayer()
        switch layer {
        case .float32(var l): l.mode = mode; session.layer = .float32(l)
        case .float64(var l): l.mode = mode; session.layer = .float64(l)
        }
        if layer.spec.kind == .batchnorm {
            out(mode == .train
                ? "train: batchnorm normalises with the batch's statistics and updates running_mean, running_var"
                : "eval: batchnorm normalises with running_mean and running_var")
        } else {
            out("\(mode): noted, but only batchnorm uses the mode; \(layer.spec.kind.displayName) computes the same in both")
        }
    }

    // MARK: - forward and backward

    func forward(_ name: Located<String>?, text: String, origin: Origin) throws {
        var layer = try currentLayer()
        let input: AnyTensor
        let inputName = name?.value ?? "x"
        if let name {
            input = try lookup(name, text: text)
        } else {
            guard let x = session["x"] else {
                throw Diagnostic("forward runs on x by default, and there is no x: make it (`tensor x = randn 2 4 3 3`) or name the input (`forward NAME`)")
            }
            input = x
        }
        if layer.dtype != input.dtype {
            if layer.sampleShape != nil {
                note("\(inputName) is \(input.dtype): the layer's parameters and statistics are converted to \(input.dtype)")
            }
            layer = layer.converted(to: input.dtype)
        }
        let made: [(String, AnyTensor)]
        let summary: ForwardSummary
        switch layer {
        case .float32(var l):
            let result = try l.forward(input.tensor(as: Float.self), threads: session.settings.threads)
            (made, summary) = Self.collect(result, layer: l)
            session.layer = .float32(l)
        case .float64(var l):
            let result = try l.forward(input.tensor(as: Double.self), threads: session.settings.threads)
            (made, summary) = Self.collect(result, layer: l)
            session.layer = .float64(l)
        }
        for (tensorName, tensor) in made { session[tensorName] = tensor }
        let spec = layer.spec
        out("\(spec.kind.displayName) forward on \(inputName) \(input.shape) \(input.dtype)" + (summary.mode == .eval ? ", eval mode" : ""))
        out("  " + summary.statistics)
        out("  " + summaryLine("y", session["y"]!))
        out("  made: " + made.map(\.0).joined(separator: " "))
        for warning in summary.warnings { warn(warning, origin: origin) }
    }

    /// Not 0: with x = randn … seed 0, dy = randn seed 0 would equal x, and dx would nearly vanish.
    static let defaultUpstreamSeed: UInt64 = 1000

    struct ForwardSummary {
        let statistics: String
        let warnings: [String]
        let mode: Mode
    }

    static func collect<S: NormScalar>(_ r: ForwardResult<S>, layer: NormLayer<S>) -> ([(String, AnyTensor)], ForwardSummary) {
        var made: [(String, AnyTensor)] = [("y", AnyTensor(r.output))]
        if let mean = r.mean { made.append(("mean", AnyTensor(mean))) }
        made.append(("var", AnyTensor(r.variance)))
        made.append(("rstd", AnyTensor(r.rstd)))
        made.append(("xhat", AnyTensor(r.normalized)))
        if r.mean != nil { made.append(("xc", AnyTensor(r.centered))) }
        if let rm = layer.runningMean, let rv = layer.runningVariance {
            made.append(("running_mean", AnyTensor(rm)))
            made.append(("running_var", AnyTensor(rv)))
        }
        let names = r.mean == nil ? "mean square, rstd" : "mean, var, rstd"
        let source = r.mode == .eval ? "running statistics" : "statistics"
        let statistics = "\(source) \(LayerDescription.setDescription(r.spec, plan: r.plan)): \(names) of shape \(r.plan.statsShape)"
        return (made, ForwardSummary(statistics: statistics, warnings: r.warnings.map(\.description), mode: r.mode))
    }

    func backward(_ source: UpstreamSource?, text: String, origin: Origin) throws {
        let layer = try currentLayer()
        guard let y = session["y"], layer.hasForward else {
            throw Diagnostic("backward needs a forward pass first: run forward, then backward")
        }
        let dy: AnyTensor
        let described: String
        switch source {
        case nil:
            dy = AnyTensor.float64(.randn(y.shape, seed: Self.defaultUpstreamSeed)).converted(to: layer.dtype)
            described = "dy = randn seed \(Self.defaultUpstreamSeed) (the default; `backward ones`, `backward randn seed S` or `backward NAME` choose another)"
        case .ones?:
            dy = AnyTensor.float64(.ones(y.shape)).converted(to: layer.dtype)
            described = "dy = ones"
        case .randn(let seed)?:
            dy = AnyTensor.float64(.randn(y.shape, seed: seed)).converted(to: layer.dtype)
            described = "dy = randn seed \(seed)"
        case .tensor(let name)?:
            dy = try lookup(name, text: text).converted(to: layer.dtype)
            described = "dy = \(name.value)"
        }
        var made: [(String, AnyTensor)] = [("dy", dy)]
        switch layer {
        case .float32(var l):
            let g = try l.backward(dy.tensor(as: Float.self), threads: session.settings.threads)
            made.append(("dx", AnyTensor(g.dx)))
            if let dg = l.gammaGrad, let db = l.betaGrad { made += [("dgamma", AnyTensor(dg)), ("dbeta", AnyTensor(db))] }
            session.layer = .float32(l)
        case .float64(var l):
            let g = try l.backward(dy.tensor(as: Double.self), threads: session.settings.threads)
            made.append(("dx", AnyTensor(g.dx)))
            if let dg = l.gammaGrad, let db = l.betaGrad { made += [("dgamma", AnyTensor(dg)), ("dbeta", AnyTensor(db))] }
            session.layer = .float64(l)
        }
        for (name, tensor) in made { session[name] = tensor }
        let spec = layer.spec
        let count = session.layer?.backwardCount ?? 0
        out(described)
        out("  " + summaryLine("dx", session["dx"]!))
        if let dgamma = session["dgamma"], spec.affine != .none {
            let reduction = spec.paramGrad == .sum ? "summed over the batch" : "averaged over the batch (paramgrad=mean)"
            out("  dgamma, dbeta: \(dgamma.shape), \(reduction); accumulated over \(plural(count, "backward pass", "backward passes"))" + (count > 1 ? " (zero_grad resets)" : ""))
        }
        out("  made: " + made.map(\.0).joined(separator: " "))
    }

    // MARK: - show

    func show(_ target: ShowTarget, text: String) throws {
        switch target {
        case .tensor(let name):
            let tensor = try lookup(name, text: text)
            out(headline(name.value, tensor))
            out(formatter.render(tensor))
        case .layer:
            try showLayer()
        case .grad:
            let layer = try currentLayer()
            guard let dx = session["dx"], layer.backwardCount > 0 else {
                throw Diagnostic("no gradients yet: run forward, then backward")
            }
            out(headline("dx", dx) + " (from the last backward pass)")
            out(formatter.render(dx))
            if let dgamma = layer.gammaGrad, let dbeta = layer.betaGrad {
                let reduction = layer.spec.paramGrad == .sum ? "summed" : "averaged"
                let accumulated = "\(reduction) over the batch, accumulated over \(plural(layer.backwardCount, "backward pass", "backward passes"))"
                out(headline("dgamma", dgamma) + ", " + accumulated)
                out(formatter.render(dgamma))
                out(headline("dbeta", dbeta) + ", " + accumulated)
                out(formatter.render(dbeta))
            } else {
                out("no dgamma or dbeta: the layer has affine=none")
            }
        case .groups:
            try showGroups()
        case .axes(let selector):
            try showAxes(selector, text: text)
        }
    }

    var formatter: TensorFormatter {
        TensorFormatter(precision: session.settings.precision, threshold: session.settings.threshold)
    }

    func showGroups() throws {
        let layer = try currentLayer()
        let spec = layer.spec
        guard let channels = layer.sampleShape?.first ?? session["x"].flatMap({ $0.shape.rank >= 2 ? $0.shape.dims[1] : nil }) else {
            throw Diagnostic("show groups needs the number of channels: make x (N, C, …) or run forward first")
        }
        let sample = layer.sampleShape ?? Array(session["x"]!.shape.dims.dropFirst())
        let plan = try NormPlan(spec: spec, inputShape: Shape([1] + sample))
        if spec.kind == .batchnorm {
            out("BatchNorm has no groups: it keeps " + LayerDescription.conventions(spec)[0].1)
            return
        }
        let g = plan.groups
        out("\(spec.kind.displayName) with G = \(g) over C = \(channels) channels: \(plural(plan.channelsPerGroup, "channel", "channels")) per group")
        let shown = g <= 16 ? Array(0..<g) : Array(0..<8) + [-1] + Array((g - 4)..<g)
        for group in shown {
            if group < 0 {
                out("  …")
                continue
            }
            let range = plan.channels(ofGroup: group)
            let members = range.count == 1 ? "channel \(range.lowerBound)" : "channels \(range.lowerBound)–\(range.upperBound - 1)"
            out("  " + style.group("group \(group): \(members)", group))
        }
        out(LayerDescription.setDescription(spec, plan: plan, capitalised: true) + ".")
    }

    // MARK: - stats

    func stats(_ name: Located<String>, by requested: StatsAxis?, text: String) throws {
        let tensor = try lookup(name, text: text)
        let dims = tensor.shape.dims
        var axis = requested
        var groups = 1
        // By default, by group only for tensors shaped like the layer's input (not, say, its (N, G) statistics).
        let inputShaped = session.layer?.sampleShape.map { Array(dims.dropFirst()) == $0 } ?? (dims.count >= 3)
        if axis == .group || (axis == nil && inputShaped) {
            if dims.count >= 2, let spec = session.layer?.spec, spec.kind != .batchnorm,
               let g = try? spec.resolvedGroups(channels: dims[1]) {
                groups = g
                axis = .group
            } else if axis == .group {
                let reason = dims.count < 2 ? "it has no channel axis (rank \(dims.count))"
                    : session.layer == nil ? "there is no layer to say what the groups are"
                    : session.layer!.spec.kind == .batchnorm ? "batchnorm has no groups"
                    : "its \(dims[1]) channels do not divide into the layer's groups"
                throw Diagnostic("cannot take stats of \(name.value) by group: \(reason)", at: name.range, in: text)
            } else {
                axis = dims.count >= 2 ? .channel : nil
            }
        } else if axis == nil {
            axis = dims.count >= 2 ? .channel : nil
        }
        if (axis == .channel || axis == .sample) && dims.count < 2 && requested != nil {
            throw Diagnostic("\(name.value) has rank 1: there is no sample or channel axis; `stats \(name.value)` gives the overall numbers", at: name.range, in: text)
        }
        let values = tensor.doubles
        var table = TextTable(headers: [], numericColumns: [])
        var rows: [(label: [String], offsets: [Int])] = []
        let n = dims.first ?? 1
        let c = dims.count >= 2 ? dims[1] : 1
        let s = dims.count >= 2 ? dims.dropFirst(2).reduce(1, *) : 1
        switch axis {
        case .group?:
            table.headers = ["sample", "group", "channels"]
            let k = c / groups
            for i in 0..<n {
                for g in 0..<groups {
                    var offsets: [Int] = []
                    for ch in (g * k)..<((g + 1) * k) { offsets += Array(((i * c + ch) * s)..<((i * c + ch + 1) * s)) }
                    rows.append(([String(i), String(g), k == 1 ? "\(g * k)" : "\(g * k)–\(g * k + k - 1)"], offsets))
                }
            }
        case .channel?:
            table.headers = ["channel"]
            for ch in 0..<c {
                var offsets: [Int] = []
                for i in 0..<n { offsets += Array(((i * c + ch) * s)..<((i * c + ch + 1) * s)) }
                rows.append(([String(ch)], offsets))
            }
        case .sample?:
            table.headers = ["sample"]
            let per = tensor.count / n
            for i in 0..<n { rows.append(([String(i)], Array((i * per)..<((i + 1) * per)))) }
        case nil:
            table.headers = []
        }
        let labelColumns = table.headers.count
        table.headers += ["count", "mean", "var", "std", "min", "max"]
        table.numericColumns = Set(0..<table.headers.count).subtracting(labelColumns == 3 ? [2] : [])
        let precision = session.settings.precision
        let noise = (values.lazy.filter(\.isFinite).map(abs).max() ?? 0) * NoiseFloor.relative(tensor.dtype)
        func statistics(_ offsets: [Int]?) -> [String] {
            var count = 0, sum = 0.0, low = Double.infinity, high = -Double.infinity
            var nan = false
            func visit(_ v: Double) {
                count += 1; sum += v
                if v.isNaN { nan = true } else { low = min(low, v); high = max(high, v) }
            }
            if let offsets { for o in offsets { visit(values[o]) } } else { for v in values { visit(v) } }
            let mean = sum / Double(count)
            var squares = 0.0
            if let offsets { for o in offsets { squares += (values[o] - mean) * (values[o] - mean) } }
            else { for v in values { squares += (v - mean) * (v - mean) } }
            let variance = squares / Double(count)
            let f = { (x: Double) in formatNumber(x, precision: precision, scale: noise) }
            return [String(count), f(mean), f(variance), f(variance.squareRoot()), nan ? "nan" : f(low), nan ? "nan" : f(high)]
        }
        let limit = 64
        let shownRows = rows.count <= limit ? Array(rows.indices) : Array(0..<10) + [-1] + Array((rows.count - 10)..<rows.count)
        for i in shownRows {
            if i < 0 {
                table.rows.append(Array(repeating: "…", count: labelColumns) + Array(repeating: "", count: 6))
            } else {
                table.rows.append(rows[i].label + statistics(rows[i].offsets))
            }
        }
        if labelColumns > 0 { table.rows.append(["all"] + Array(repeating: "", count: labelColumns - 1) + statistics(nil)) }
        else { table.rows.append(statistics(nil)) }
        let what = axis.map { "by \($0.rawValue)" } ?? "overall"
        out("stats of \(name.value) \(tensor.shape), \(what) (var is the biased variance):")
        out(table.render(style: style))
    }

    func summaryLine(_ name: String, _ tensor: AnyTensor) -> String {
        let values = tensor.doubles
        let precision = session.settings.precision
        let finite = values.filter(\.isFinite)
        var line = "\(name): \(tensor.shape)"
        if !finite.isEmpty {
            let mean = finite.reduce(0, +) / Double(finite.count)
            let variance = finite.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(finite.count)
            let scale = (finite.map(abs).max() ?? 0) * NoiseFloor.relative(tensor.dtype)
            let f = { (x: Double) in formatNumber(x, precision: precision, scale: scale) }
            line += "  mean \(f(mean))  std \(f(variance.squareRoot()))  min \(f(finite.min()!))  max \(f(finite.max()!))"
        }
        let flags = NonFinite.count(tensor)
        if !flags.isEmpty { line += "  (" + flags + (finite.isEmpty ? "" : "; mean, std, min, max of the finite values") + ")" }
        return line
    }
}

func plural(_ count: Int, _ one: String, _ many: String) -> String {
    "\(count) \(count == 1 ? one : many)"
}

/// Words for a layer's conventions, shared by `layer`, `forward` and `show groups`.
enum LayerDescription {
    static func title(_ spec: LayerSpec, mode: Mode) -> String {
        var title = spec.kind.displayName
        switch spec.kind {
        case .groupnorm: title += ", G = \(spec.groups ?? 1)"
        case .layernorm: title += " (GroupNorm with G = 1)"
        case .instancenorm: title += " (GroupNorm with G = C)"
        case .rmsnorm: title += ", G = \(spec.groups ?? 1), no centring"
        case .batchnorm: title += ", \(mode) mode"
        }
        var reference = spec
        reference.apply(spec.preset)
        var changed: [String] = []
        if reference.reduce != spec.reduce { changed.append("reduce") }
        if reference.affine != spec.affine { changed.append("affine") }
        if reference.paramGrad != spec.paramGrad { changed.append("paramgrad") }
        if reference.variance != spec.variance { changed.append("variance") }
        if reference.eps != spec.eps { changed.append("eps") }
        if reference.momentum != spec.momentum { changed.append("momentum") }
        let origin = spec.preset == .torch ? "paper and PyTorch" : "PyDLLib's code"
        title += ", preset=\(spec.preset) (\(origin))"
        if !changed.isEmpty { title += ", changed: " + changed.joined(separator: ", ") }
        return title
    }

    static func conventions(_ spec: LayerSpec) -> [(String, String)] {
        let bn = spec.kind == .batchnorm
        let what = spec.centres ? "one mean and variance" : "one mean square"
        let reduce: String
        switch (bn, spec.reduce) {
        case (false, .group): reduce = "\(what) per (sample, group), over its C/G channels × all positions"
        case (false, .channels): reduce = "\(what) per (sample, group, position), over its C/G channels only"
        case (true, .group): reduce = "\(what) per channel, over the batch × all positions"
        case (true, .channels): reduce = "\(what) per (channel, position), over the batch only"
        }
        let affine: String
        switch spec.affine {
        case .channel: affine = "γ and β of shape (C)"
        case .element: affine = "γ and β of the sample's shape (C, *spatial)"
        case .none: affine = "no γ or β: y = x̂"
        }
        var rows = [
            ("reduce=\(spec.reduce)", reduce),
            ("affine=\(spec.affine)", affine),
            ("paramgrad=\(spec.paramGrad)", spec.paramGrad == .sum ? "dγ and dβ summed over the batch (the true gradient)" : "dγ and dβ averaged over the batch (the true gradient ÷ N)"),
        ]
        if spec.centres {
            rows.append(("variance=\(spec.variance)", spec.variance == .biased ? "Σ(x − μ)² / m" : "Σ(x − μ)² / (m − 1)"))
        }
        rows.append(("eps=\(formatOption(spec.eps))", "added to the variance before the square root"))
        if bn {
            rows.append(("momentum=\(formatOption(spec.momentum))", "running = (1 − momentum)·running + momentum·batch"))
        }
        return rows
    }

    static func parameters(_ spec: LayerSpec, sampleShape: [Int]) -> String {
        let count = spec.parameterCount(sampleShape: sampleShape)
        switch spec.affine {
        case .none: return "0"
        case .channel: return "\(count) (γ and β, \(count / 2) each)"
        case .element: return "\(count) (γ and β of shape \(Shape.format(sampleShape)))"
        }
    }

    /// "per (sample, group), over 2 channels × 9 positions = 18 elements"
    static func setDescription(_ spec: LayerSpec, plan: NormPlan, capitalised: Bool = false) -> String {
        let positions = plan.spatial == 1 ? "" : " × \(plural(plan.spatial, "position", "positions"))"
        let k = plural(plan.channelsPerGroup, "channel", "channels")
        let text: String
        switch (spec.kind == .batchnorm, spec.reduce) {
        case (false, .group):
            text = "per (sample, group), over \(k)\(positions) = \(plural(plan.setSize, "element", "elements"))"
        case (false, .channels):
            text = plan.spatial == 1
                ? "per (sample, group), over \(k) = \(plural(plan.setSize, "element", "elements"))"
                : "per (sample, group, position), over \(k) only = \(plural(plan.setSize, "element", "elements"))"
        case (true, .group):
            text = "per channel, over \(plural(plan.batch, "sample", "samples"))\(positions) = \(plural(plan.setSize, "element", "elements"))"
        case (true, .channels):
            text = "per (channel, position), over \(plural(plan.batch, "sample", "samples")) = \(plural(plan.setSize, "element", "elements"))"
        }
        guard capitalised else { return text }
        return "Statistics are taken " + text
    }
}
