import NormKit

/// Words for a layer's conventions, shared by `layer`, `forward` and `show groups`.
enum LayerDescription {
    /// What the elements of one set share: "mean and variance" for a centring layer, "mean square" for RMSNorm.
    static func sharedStatistics(_ spec: LayerSpec) -> String {
        spec.centres ? "mean and variance" : "mean square"
    }

    /// The statistics tensors a forward pass makes, as `forward` names them.
    static func statisticsNames(_ spec: LayerSpec) -> String {
        spec.centres ? "mean, var, rstd" : "mean square, rstd"
    }

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
        let bn = spec.kind.statisticsSpanBatch
        let what = "one " + sharedStatistics(spec)
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
        switch (spec.kind.statisticsSpanBatch, spec.reduce) {
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
