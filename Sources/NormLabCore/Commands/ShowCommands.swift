import NormKit

public enum ShowTarget: Equatable, Sendable {
    case tensor(Located<String>)
    case grad
    case layer
    case groups
    case axes(SetSelector)
}

struct Show: Command, Equatable {
    static let help = CommandHelp(
        name: "show", usage: ["show NAME", "show grad", "show layer", "show groups", "show axes [n=I g=J p=K c=C]"],
        summary: "print a tensor, the gradients, the layer, which channels form which group, or a picture of the sets",
        details: """
        Tensors print like NumPy: nested brackets, aligned columns, one format for the whole tensor, `set
        precision` digits; past `set threshold` elements only the first and last 3 along each axis.
        """,
        examples: ["show x", "show grad", "show groups", "show axes g=1"],
        completion: .tensorsAnd(["grad", "layer", "groups", "axes"]))

    let target: ShowTarget

    init(target: ShowTarget) { self.target = target }

    init(parsing cursor: inout ArgumentCursor) throws {
        let token = try cursor.word("a tensor name, grad, layer or groups")
        switch token.text {
        case "grad": target = .grad
        case "layer": target = .layer
        case "groups": target = .groups
        case "axes": target = .axes(try SetSelector(parsing: &cursor))
        default:
            try ArgumentCursor.checkName(token, cursor: cursor)
            target = .tensor(Located(token.text, token.range))
        }
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        switch target {
        case .tensor(let name):
            let tensor = try context.lookup(name)
            return Report([.tensor(TensorView(headline: context.wording.headline(name.value, tensor), tensor: tensor))])
        case .layer:
            return ChooseLayer.describe(try context.currentLayer())
        case .grad:
            return try gradients(context)
        case .groups:
            return try groups(context)
        case .axes(let selector):
            return try Self.axes(selector, context: context)
        }
    }

    private func gradients(_ context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        guard let dx = context.session["dx"], layer.backwardCount > 0 else {
            throw Diagnostic("no gradients yet: run forward, then backward")
        }
        let wording = context.wording
        var report = Report([.tensor(TensorView(headline: wording.headline("dx", dx) + " (from the last backward pass)", tensor: dx))])
        guard let dgamma = layer.gammaGrad else {
            report.line("no dgamma or dbeta: the layer has affine=none")
            return report
        }
        let reduction = layer.spec.paramGrad == .sum ? "summed" : "averaged"
        let over = layer.spec.normalizedShape != nil ? "the leading dims" : "the batch"
        let accumulated = "\(reduction) over \(over), accumulated over \(plural(layer.backwardCount, "backward pass", "backward passes"))"
        report.add(.tensor(TensorView(headline: wording.headline("dgamma", dgamma) + ", " + accumulated, tensor: dgamma)))
        if let dbeta = layer.betaGrad {
            report.add(.tensor(TensorView(headline: wording.headline("dbeta", dbeta) + ", " + accumulated, tensor: dbeta)))
        } else {
            report.line("no dbeta: the layer has no β")
        }
        return report
    }

    private func groups(_ context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        let spec = layer.spec
        let x = context.session["x"]
        guard let channels = layer.sampleShape?.first ?? x.flatMap({ $0.shape.rank >= 2 ? $0.shape.dims[1] : nil }) else {
            throw Diagnostic("show groups needs the number of channels: make x (N, C, …) or run forward first")
        }
        let sample = layer.sampleShape ?? Array(x!.shape.dims.dropFirst())
        let plan = try NormPlan(spec: spec, inputShape: Shape([1] + sample))
        if spec.kind.statisticsSpanBatch && !spec.groupsSpanBatch {
            return Report([.text("BatchNorm has no groups: it keeps " + LayerDescription.conventions(spec)[0].1)])
        }
        let g = plan.groups
        var report = Report([.text("\(spec.kind.displayName) with G = \(g) over C = \(channels) channels: \(plural(plan.channelsPerGroup, "channel", "channels")) per group")])
        let shown = g <= 16 ? Array(0..<g) : Array(0..<8) + [-1] + Array((g - 4)..<g)
        for group in shown {
            guard group >= 0 else { report.line("  …"); continue }
            let range = plan.channels(ofGroup: group)
            let members = range.count == 1 ? "channel \(range.lowerBound)" : "channels \(range.lowerBound)–\(range.upperBound - 1)"
            report.add(.groupLine("group \(group): \(members)", group: group))
        }
        // The plan above has one sample: sets that span the batch are described without counting it.
        report.line(spec.kind.statisticsSpanBatch ? "Statistics: \(LayerDescription.conventions(spec)[0].1)."
                                                  : LayerDescription.setDescription(spec, plan: plan, capitalised: true) + ".")
        return report
    }

    /// Which elements of (N, C, positions) share the chosen set's statistics.
    static func axes(_ selector: SetSelector, context: StatementContext) throws -> Report {
        let record = try context.passRecord("show axes needs the input's shape: run forward first")
        let plan = record.plan
        let (_, label, members) = try selector.select(in: record, context: context)
        let marked = Set(members)
        // Windows that hold the set's first element, so the chosen set is always in the picture.
        let first = members.min() ?? 0
        let focus = (n: first / (plan.channels * plan.spatial), c: (first / plan.spatial) % plan.channels, s: first % plan.spatial)
        func window(_ total: Int, _ limit: Int, around index: Int) -> [Int] {
            guard total > limit else { return Array(0..<total) }
            let start = min(max(0, index - limit / 4), total - limit)
            return Array(start..<(start + limit))
        }
        let samples = window(plan.batch, 4, around: focus.n)
        let channels = window(plan.channels, 16, around: focus.c)
        let positions = window(plan.spatial, 24, around: focus.s)
        let grid = samples.map { n in
            channels.map { c in positions.map { s in marked.contains((n * plan.channels + c) * plan.spatial + s) } }
        }
        let sets = samples.map { n in
            channels.map { c in positions.map { s in plan.statIndex(sample: n, channel: c, position: s) } }
        }
        let shapeForm = plan.normalizedShape != nil
        let headline = shapeForm
            ? "rows × normalised = \(plan.batch) × \(plan.channels) (rows: the leading dims flattened; normalised: the last dims \(LayerDescription.shapeText(record.spec)) flattened)"
            : "N × C × positions = \(plan.batch) × \(plan.channels) × \(plan.spatial)"
        let picture = AxesPicture(
            title: LayerDescription.title(record.spec, mode: record.mode), headline: headline,
            batch: plan.batch, channels: plan.channels, positions: plan.spatial,
            spatialNote: plan.spatialDims.count > 1 ? " (\(plan.spatialDims.map(String.init).joined(separator: "×")) flattened)" : "",
            samples: samples, channelIndices: channels, positionIndices: positions,
            sampleWord: shapeForm ? "row" : "sample", channelWord: shapeForm ? "d" : "c",
            marked: grid, sets: sets, memberCount: members.count, label: label,
            setWords: LayerDescription.sharedStatistics(record.spec),
            reducedOver: LayerDescription.conventions(record.spec)[0].1)
        return Report([.axes(picture)])
    }
}
