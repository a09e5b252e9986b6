import NormKit

/// Words for a layer's conventions, shared by `layer`, `forward` and `show groups`.
enum LayerDescription {
    /// What the elements of one set share: "mean and variance" for a centring layer, "mean square" for RMSNorm.
    static func sharedStatistics(_ spec: LayerSpec) -> String {
        spec.centres ? "mean and variance" : "mean square"
    }

    /// The statistics tensors a forward pass makes, as `forward` names them.
    static func statisticsNames(_ spec: LayerSpec) -> String {
        spec.centres ? "mean, var, rstd" : "ms (mean square), rstd"
    }

    /// The session name of the second statistic: `var` for a centring layer, `ms` (mean square) for RMSNorm.
    static func spreadName(_ spec: LayerSpec) -> String { spec.centres ? "var" : "ms" }

    /// "(4, 5)": the normalised dims of a `shape=` layer.
    static func shapeText(_ spec: LayerSpec) -> String { Shape.format(spec.normalizedShape ?? []) }

    static func title(_ spec: LayerSpec, mode: Mode) -> String {
        var title = spec.kind.displayName
        if spec.normalizedShape != nil {
            let torch = spec.kind == .layernorm ? "nn.LayerNorm" : "nn.RMSNorm"
            title += " over the last dims \(shapeText(spec)), as PyTorch's \(torch)(\(spec.normalizedShape!.map(String.init).joined(separator: ", ")))"
            var reference = try? LayerSpec(kind: spec.kind, normalizedShape: spec.normalizedShape!)
            reference?.momentum = spec.momentum
            let changed = reference.map { r in
                [("affine", r.affine != spec.affine), ("paramgrad", r.paramGrad != spec.paramGrad),
                 ("eps", !sameEps(r, spec)), ("method", spec.method != .twopass),
                 ("accumulate", spec.accumulate != .float64)].filter(\.1).map(\.0)
            } ?? []
            if !changed.isEmpty { title += ", changed: " + changed.joined(separator: ", ") }
            return title
        }
        switch spec.kind {
        case .groupnorm: title += ", G = \(spec.groups ?? 1)"
        case .layernorm: title += " (GroupNorm with G = 1)"
        case .instancenorm: title += " (GroupNorm with G = C)"
        case .rmsnorm: title += ", G = \(spec.groups ?? 1), no centring (the CNN form; shape= is PyTorch's nn.RMSNorm)"
        case .batchnorm where spec.groupsSpanBatch: title += " with G = \(spec.groups ?? 1) \(spec.groups == 1 ? "group" : "groups") of channels, \(mode) mode"
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
        if spec.method != .twopass { changed.append("method") }
        if spec.accumulate != .float64 { changed.append("accumulate") }
        let origin = spec.preset == .pydllib ? "PyDLLib's code" : spec.kind == .rmsnorm ? "PyTorch's conventions" : "paper and PyTorch"
        title += ", preset=\(spec.preset) (\(origin))"
        if !changed.isEmpty { title += ", changed: " + changed.joined(separator: ", ") }
        return title
    }

    /// A pass's spec has eps resolved (`LayerSpec.resolved`): the machine epsilon of either type is the default.
    private static func sameEps(_ reference: LayerSpec, _ spec: LayerSpec) -> Bool {
        guard reference.epsIsMachineEpsilon else { return !spec.epsIsMachineEpsilon && reference.eps == spec.eps }
        return spec.epsIsMachineEpsilon || spec.eps == Double(Float.ulpOfOne) || spec.eps == Double.ulpOfOne
    }

    static func conventions(_ spec: LayerSpec) -> [(String, String)] {
        let bn = spec.kind.statisticsSpanBatch
        let what = "one " + sharedStatistics(spec)
        let spread = spec.centres ? "variance" : "mean square"
        let epsRow = spec.epsIsMachineEpsilon
            ? ("eps=machine", "the dtype's machine epsilon, added to the \(spread) (float32 1.19e-07, float64 2.22e-16; torch's eps=None)")
            : ("eps=\(formatOption(spec.eps))", "added to the \(spread) before the square root")
        if spec.normalizedShape != nil {
            var rows = [
                ("shape=\(spec.normalizedShape!.map(String.init).joined(separator: ","))", "\(what) per index of the leading dims, over the last dims \(shapeText(spec))"),
                ("affine=\(spec.affine)", spec.affine == .none ? "no γ or β: y = x̂"
                    : spec.bias ? "γ and β of shape \(shapeText(spec))" : "γ of shape \(shapeText(spec)), no β (nn.RMSNorm has a weight only)"),
                ("paramgrad=\(spec.paramGrad)", spec.paramGrad == .sum ? "dγ\(spec.bias ? " and dβ" : "") summed over the leading dims (the true gradient)" : "dγ\(spec.bias ? " and dβ" : "") averaged over the leading dims"),
            ]
            if spec.centres {
                rows.append(("variance=\(spec.variance)", spec.variance == .biased ? "Σ(x − μ)² / m" : "Σ(x − μ)² / (m − 1)"))
            } else {
                rows.append(("ms", "Σx² / m, the mean square (nothing is subtracted)"))
            }
            rows.append(epsRow)
            rows.append(arithmeticRow(spec))
            return rows
        }
        let reduce: String
        switch (bn, spec.reduce) {
        case (false, .group): reduce = "\(what) per (sample, group), over its C/G channels × all positions"
        case (false, .channels): reduce = "\(what) per (sample, group, position), over its C/G channels only"
        case (true, .group) where spec.groupsSpanBatch:
            reduce = "\(what) per group, over the batch × its C/G channels × all positions"
        case (true, .channels) where spec.groupsSpanBatch:
            reduce = "\(what) per (group, position), over the batch × its C/G channels"
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
        } else {
            rows.append(("ms", "Σx² / m, the mean square (nothing is subtracted)"))
        }
        rows.append(epsRow)
        rows.append(arithmeticRow(spec))
        if bn {
            rows.append(("momentum=\(formatOption(spec.momentum))", "running = (1 − momentum)·running + momentum·batch"))
        }
        return rows
    }

    /// How the numbers are computed: `method=` and `accumulate=`.
    static func arithmeticRow(_ spec: LayerSpec) -> (String, String) {
        let method: String
        switch (spec.method, spec.centres) {
        case (.twopass, true): method = "σ² from Σ(x − μ)² after μ"
        case (.onepass, true): method = "σ² as E[x²] − E[x]² in one pass (cancels when |μ| ≫ σ)"
        case (.welford, true): method = "σ² by Welford's running update"
        case (_, false): method = "ms from Σx²"
        }
        let accumulate: String
        switch spec.accumulate {
        case .float64: accumulate = spec.computesExactly ? "in float64 (the exact way)" : "in float64"
        case .float32: accumulate = "every sum and step in float32"
        case .storage: accumulate = "every sum and step in the tensors' own format"
        }
        return ("arithmetic", "method=\(spec.method) accumulate=\(spec.accumulate): \(method), \(accumulate)")
    }

    static func parameters(_ spec: LayerSpec, sampleShape: [Int]) -> String {
        let count = spec.parameterCount(sampleShape: sampleShape)
        if spec.normalizedShape != nil, spec.affine != .none {
            return spec.bias ? "\(count) (γ and β of shape \(shapeText(spec)))" : "\(count) (γ of shape \(shapeText(spec)))"
        }
        switch spec.affine {
        case .none: return "0"
        case .channel: return "\(count) (γ and β, \(count / 2) each)"
        case .element: return "\(count) (γ and β of shape \(Shape.format(sampleShape)))"
        }
    }

    /// "per (sample, group), over 2 channels × 9 positions = 18 elements"
    static func setDescription(_ spec: LayerSpec, plan: NormPlan, capitalised: Bool = false) -> String {
        if spec.normalizedShape != nil {
            let text = "per index of the leading dims, over the last dims \(shapeText(spec)) = \(plural(plan.setSize, "element", "elements"))"
            return capitalised ? "Statistics are taken " + text : text
        }
        let positions = plan.spatial == 1 ? "" : " × \(plural(plan.spatial, "position", "positions"))"
        let k = plural(plan.channelsPerGroup, "channel", "channels")
        let text: String
        switch (spec.kind.statisticsSpanBatch, spec.reduce) {
        case (false, .group):
            text = "per (sample, group), over \(k)\(positions) = \(plural(plan.setSize, "element", "elements"))"
        case (false, .channels):
            text = plan.spatial == 1
                ? "per (sample, group), over \(k) = \(plural(plan.setSize, "element", "elements"))"
                : "per (sample, group, position), over \(k) only = \(plural(plan.setSize, "element", "elements"))"
        case (true, .group) where spec.groupsSpanBatch:
            text = "per group, over \(plural(plan.batch, "sample", "samples")) × \(k)\(positions) = \(plural(plan.setSize, "element", "elements"))"
        case (true, .channels) where spec.groupsSpanBatch:
            text = plan.spatial == 1
                ? "per group, over \(plural(plan.batch, "sample", "samples")) × \(k) = \(plural(plan.setSize, "element", "elements"))"
                : "per (group, position), over \(plural(plan.batch, "sample", "samples")) × \(k) = \(plural(plan.setSize, "element", "elements"))"
        case (true, .group):
            text = "per channel, over \(plural(plan.batch, "sample", "samples"))\(positions) = \(plural(plan.setSize, "element", "elements"))"
        case (true, .channels):
            text = "per (channel, position), over \(plural(plan.batch, "sample", "samples")) = \(plural(plan.setSize, "element", "elements"))"
        }
        guard capitalised else { return text }
        return "Statistics are taken " + text
    }
}
