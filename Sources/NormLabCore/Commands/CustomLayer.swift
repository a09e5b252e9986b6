import NormKit

/// `layer norm over=AXES [groups=G] [affine=AXES] [centre=yes|no] [eps=E] [momentum=M] [method=M] [accumulate=A]`: a normalisation built
/// from which axes share statistics, for a learner to see that the named layers differ only in that. Axes are
/// named, so one spelling fits any rank: `n` the batch, `c` the channels (with groups=G, the channels of one
/// group), `s` every spatial position. Each buildable combination is a named layer under some conventions, and
/// the card says which ("this is InstanceNorm").
struct CustomLayerRequest: Equatable, Sendable {
    struct Option: Equatable, Sendable {
        let key: Located<String>
        let value: Located<String>
    }
    let options: [Option]

    static let keys = ["over", "groups", "affine", "centre", "eps", "momentum", "method", "accumulate"]

    /// The sets each `over=` builds, and the layer that is.
    static let table: [(over: Set<String>, words: String)] = [
        (["c", "s"], "per (sample, group), over the group's channels × all positions"),
        (["s"], "per (sample, channel), over the positions"),
        (["c"], "per (sample, group, position), over the group's channels (PyDLLib's sets)"),
        (["n", "s"], "per channel, over the batch × all positions"),
        (["n"], "per (channel, position), over the batch (PyDLLib's sets)"),
        (["n", "c", "s"], "per group, over the batch × the group's channels × all positions"),
        (["n", "c"], "per (group, position), over the batch × the group's channels"),
    ]

    /// The layer spec, and the named layer it is ("this is InstanceNorm").
    func build(context: StatementContext) throws -> (LayerSpec, String) {
        var values: [String: Located<String>] = [:]
        for option in options {
            guard Self.keys.contains(option.key.value) else {
                throw context.error("unknown option \(Escaping.quoted(option.key.value)) for layer norm; options are \(Self.keys.joined(separator: ", "))", at: option.key.range)
            }
            if values[option.key.value] != nil { throw context.error("\(option.key.value) is given twice", at: option.key.range) }
            values[option.key.value] = option.value
        }
        guard let overText = values["over"] else {
            throw Diagnostic("layer norm needs over=AXES: which axes share one mean and variance (n batch, c channels, s positions), e.g. over=c,s")
        }
        let over = try axes(overText, context: context)
        guard let row = Self.table.first(where: { $0.over == over }) else {
            let choices = Self.table.map { $0.over.sorted { Self.order($0) < Self.order($1) }.joined(separator: ",") }.joined(separator: ", ")
            throw context.error("over=\(overText.value) is not a set of axes NormLab builds; the sets it can build are over=\(choices)", at: overText.range)
        }
        var groups: Int? = nil
        if let g = values["groups"] {
            guard over.contains("c") else {
                throw context.error("groups= splits the channels into groups that share statistics: it needs c in over=", at: g.range)
            }
            guard let count = Int(g.value), count >= 1, count <= 1 << 30 else {
                throw context.error("groups= takes a whole number ≥ 1, got \(Escaping.quoted(g.value))", at: g.range)
            }
            groups = count
        }
        var centre = true
        if let c = values["centre"] {
            guard c.value == "yes" || c.value == "no" else {
                throw context.error("centre= is yes (subtract the mean) or no (divide by the root mean square), got \(Escaping.quoted(c.value))", at: c.range)
            }
            centre = c.value == "yes"
        }
        let kind: LayerKind
        var reduce = Reduce.group
        switch (over.contains("n"), over.contains("c"), over.contains("s")) {
        case (true, let grouped, let spatial):
            guard centre else { throw context.error("NormLab has no BatchNorm without centring: centre=no goes with sets within a sample", at: values["centre"]!.range) }
            kind = .batchnorm
            reduce = spatial ? .group : .channels
            // n with c: BatchNorm's sets widened to groups of channels (one group of all C unless groups= says).
            if grouped { groups = groups ?? 1 }
        case (false, true, let spatial):
            kind = !centre ? .rmsnorm : (groups ?? 1) == 1 ? .layernorm : .groupnorm
            reduce = spatial ? .group : .channels
        case (false, false, _):
            guard centre else {
                throw context.error("RMSNorm per channel (G = C) needs the number of channels: write layer norm over=c,s groups=C centre=no", at: values["centre"]!.range)
            }
            kind = .instancenorm
        }
        var spec = try LayerSpec(kind: kind, groups: kind == .layernorm || kind == .instancenorm || kind == .batchnorm ? nil : groups ?? 1)
        if kind == .batchnorm { spec.groups = groups }
        spec.reduce = reduce
        if let a = values["affine"] {
            switch a.value {
            case "none": spec.affine = .none
            case "c": spec.affine = .channel
            default:
                guard try axes(a, context: context) == ["c", "s"] else {
                    throw context.error("affine= is c (γ, β per channel), c,s (per element of a sample) or none", at: a.range)
                }
                spec.affine = .element
            }
        }
        if let e = values["eps"] {
            guard let eps = ArgumentCursor.parseNumber(e.value), eps.isFinite, eps >= 0 else {
                throw context.error("eps must be a number ≥ 0 (e.g. 1e-5), got \(Escaping.quoted(e.value))", at: e.range)
            }
            spec.eps = eps
        }
        if let m = values["momentum"] {
            guard kind == .batchnorm else { throw context.error("momentum is for sets over the batch (n in over=)", at: m.range) }
            guard let momentum = ArgumentCursor.parseNumber(m.value), momentum >= 0, momentum <= 1 else {
                throw context.error("momentum must be a number from 0 to 1, got \(Escaping.quoted(m.value))", at: m.range)
            }
            spec.momentum = momentum
        }
        if let v = values["method"] {
            guard let method = VarianceMethod(rawValue: v.value) else {
                throw context.error("method must be twopass, onepass or welford, got \(Escaping.quoted(v.value))", at: v.range)
            }
            spec.method = method
        }
        if let v = values["accumulate"] {
            guard let accumulate = Accumulation(rawValue: v.value) else {
                throw context.error("accumulate must be float64, float32 or storage, got \(Escaping.quoted(v.value))", at: v.range)
            }
            spec.accumulate = accumulate
        }
        try spec.validate()
        let sets = "over=\(overText.value): one \(spec.centres ? "mean and variance" : "mean square") \(row.words)."
        guard !spec.groupsSpanBatch else {
            let g = spec.groups ?? 1
            return (spec, sets + (g == 1 ? " No named layer is this: BatchNorm with all C channels in one group."
                                         : " No named layer is this: BatchNorm with its channels in G = \(g) groups (BatchNorm is G = C)."))
        }
        return (spec, "\(sets) This is \(Self.named(spec)).")
    }

    /// The named layer and preset a spec is, with the conventions that differ from it.
    static func named(_ spec: LayerSpec) -> String {
        var name = spec.kind.displayName
        if spec.kind == .groupnorm || (spec.kind == .rmsnorm && (spec.groups ?? 1) != 1) { name += " with G = \(spec.groups ?? 1)" }
        for preset in [Preset.torch, .pydllib] {
            var reference = spec
            reference.apply(preset)
            reference.preset = spec.preset
            if reference == spec { return "\(name), preset=\(preset)" }
        }
        var torch = spec
        torch.apply(.torch)
        var changed: [String] = []
        if torch.reduce != spec.reduce { changed.append("reduce=\(spec.reduce)") }
        if torch.affine != spec.affine { changed.append("affine=\(spec.affine)") }
        if torch.eps != spec.eps { changed.append("eps=\(formatOption(spec.eps))") }
        if torch.momentum != spec.momentum { changed.append("momentum=\(formatOption(spec.momentum))") }
        return "\(name), with " + changed.joined(separator: " ")
    }

    private static func order(_ axis: String) -> Int { ["n": 0, "c": 1, "s": 2][axis] ?? 3 }

    private func axes(_ text: Located<String>, context: StatementContext) throws -> Set<String> {
        let names = text.value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !names.isEmpty, names.allSatisfy({ ["n", "c", "s"].contains($0) }), Set(names).count == names.count else {
            throw context.error("axes are n (the batch), c (channels) and s (every spatial position), each at most once, separated by commas; got \(Escaping.quoted(text.value))", at: text.range)
        }
        return Set(names)
    }
}
