import NormKit

struct Histogram: Command, Equatable {
    static let help = CommandHelp(
        name: "hist", usage: ["hist NAME [group J | row J]", "hist A B [group J | row J]"],
        summary: "a histogram of a tensor's values, or of two side by side",
        details: "With two tensors (say x and y) the histograms stand side by side on the same bins and the same scale, so their bars can be compared: normalisation happening. `group J` keeps the elements of the layer's group J; under a shape= layer (LayerNorm, RMSNorm over the last dims) `row J` keeps row J of the leading dims (one statistics set).",
        examples: ["hist x", "hist x y", "hist x y group 1", "hist x y row 2"], completion: .tensorsAnd(["group", "row"]))

    let names: [Located<String>]
    let group: Located<Int>?
    /// `row J`: with a shape= layer, the J-th row of the leading dims.
    let row: Located<Int>?

    init(names: [Located<String>], group: Located<Int>?, row: Located<Int>? = nil) {
        self.names = names
        self.group = group
        self.row = row
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        var names = [try cursor.name()]
        if let next = cursor.peek, next.kind == .word, next.text != "group", next.text != "row" { names.append(try cursor.name()) }
        var group: Located<Int>? = nil, row: Located<Int>? = nil
        if !cursor.isAtEnd {
            let word = try cursor.keyword(["group", "row"], "group or row")
            if word.text == "group" { group = try cursor.integer("a group number", minimum: 0) }
            else { row = try cursor.integer("a row number", minimum: 0) }
        }
        try cursor.finish()
        self.names = names
        self.group = group
        self.row = row
    }

    func run(in context: StatementContext) throws -> Report {
        var panels: [(title: String, count: Int, value: (Int) -> Double, included: ((Int) -> Bool)?)] = []
        for name in names {
            let tensor = try context.lookup(name)
            var title = name.value
            var included: ((Int) -> Bool)? = nil
            if let row {
                guard let spec = context.session.layer?.spec, let normalized = spec.normalizedShape,
                      tensor.shape.rank > normalized.count, Array(tensor.shape.dims.suffix(normalized.count)) == normalized else {
                    throw context.error("`row` needs a shape= layer (LayerNorm or RMSNorm over the last dims) and a tensor whose last dims are its normalised shape", at: row.range)
                }
                let width = normalized.reduce(1, *), rows = tensor.count / max(width, 1)
                guard row.value < rows else {
                    throw context.error("row \(row.value) is out of range: the rows (the leading dims flattened) run from 0 to \(rows - 1)", at: row.range)
                }
                let first = row.value * width
                included = { $0 >= first && $0 < first + width }
                title += " row \(row.value)"
            }
            if let group {
                if context.session.layer?.spec.normalizedShape != nil {
                    throw context.error("with shape= there are no groups: `row J` picks one row of the leading dims (one statistics set)", at: group.range)
                }
                guard let spec = context.session.layer?.spec, tensor.shape.rank >= 2, spec.kind.hasGroups,
                      let plan = try? NormPlan(spec: spec, inputShape: tensor.shape) else {
                    throw context.error("`group` needs a layer with groups and a tensor of its input's shape (N, C, …)", at: group.range)
                }
                guard group.value >= 0 && group.value < plan.groups else {
                    throw context.error("group \(group.value) is out of range: the groups run from 0 to \(plan.groups - 1)", at: group.range)
                }
                let channels = plan.channels(ofGroup: group.value)
                included = { channels.contains(($0 / plan.spatial) % plan.channels) }
                title += " group \(group.value)"
            }
            panels.append((title, tensor.count, { tensor.value(at: $0) }, included))
        }
        // Side by side, the panels share their bins: the finite range of all of them.
        let ranges = panels.compactMap { Self.finiteRange(count: $0.count, value: $0.value, included: $0.included) }
        let shared = ranges.isEmpty ? nil : (ranges.map(\.low).min()!, ranges.map(\.high).max()!)
        return Report([.histograms(panels.map {
            Self.picture(title: $0.title, count: $0.count, value: $0.value, included: $0.included,
                         bins: 12, binRange: panels.count > 1 ? shared : nil)
        })])
    }

    /// The smallest and largest finite value, or nil when there is none.
    static func finiteRange(count: Int, value: (Int) -> Double, included: ((Int) -> Bool)?) -> (low: Double, high: Double)? {
        var low = Double.infinity, high = -Double.infinity
        for i in 0..<count where included?(i) ?? true {
            let v = value(i)
            if v.isFinite { low = min(low, v); high = max(high, v) }
        }
        return low <= high ? (low, high) : nil
    }

    /// Counts in `bins` equal bins between the smallest and largest finite value (one bin when they are equal),
    /// in two passes over the values where they are: no copy of the tensor.
    /// `binRange`: the bins' span when it is shared with other panels (it holds this panel's values); otherwise this
    /// panel's own finite range.
    static func picture(title: String, count: Int, value: (Int) -> Double, included: ((Int) -> Bool)? = nil, bins: Int = 12,
                        binRange: (low: Double, high: Double)? = nil) -> HistogramPicture {
        var low = Double.infinity, high = -Double.infinity, total = 0, nonFinite = 0
        for i in 0..<count where included?(i) ?? true {
            total += 1
            let v = value(i)
            if v.isFinite { low = min(low, v); high = max(high, v) } else { nonFinite += 1 }
        }
        guard low <= high else {
            return HistogramPicture(title: title, total: total, nonFinite: nonFinite, range: nil, edges: [], counts: [])
        }
        let own = (low: low, high: high)
        if let binRange { (low, high) = binRange }
        var counts = [Int](repeating: 0, count: bins)
        // In halves: high − low of two finite values can overflow (1e308 − (−1e308)), half of it cannot.
        let halfSpan = high / 2 - low / 2
        for i in 0..<count where included?(i) ?? true {
            let v = value(i)
            guard v.isFinite else { continue }
            let position = halfSpan == 0 ? 0 : (v / 2 - low / 2) / halfSpan * Double(bins)
            counts[max(0, min(bins - 1, Int(position)))] += 1
        }
        let shownBins = halfSpan == 0 ? 1 : bins
        let edges = (0...shownBins).map { k -> Double in
            let half = halfSpan * (Double(k) / Double(bins))
            return (low + half) + half  // never past high, so never overflowing
        }
        return HistogramPicture(title: title, total: total, nonFinite: nonFinite,
                                range: own, edges: edges, counts: Array(counts.prefix(shownBins)))
    }
}
