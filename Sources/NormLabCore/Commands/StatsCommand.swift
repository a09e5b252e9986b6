import NormKit

public enum StatsAxis: String, Equatable, Sendable, CaseIterable {
    /// `row`: for a `shape=` layer, each index of the leading dims over the normalised (last) dims.
    case group, channel, sample, row
}

struct Stats: Command, Equatable {
    static let help = CommandHelp(
        name: "stats", usage: ["stats NAME [by group|channel|sample|row]"],
        summary: "count, mean, var, std, min and max per group, channel or sample, and overall",
        details: """
        By row (each index of the leading dims, over the normalised dims) when the layer is a shape= layer and NAME
        ends in its normalised shape; by group when NAME has the layer's input shape and the layer has groups (for
        BatchNorm with grouped channels, a group over the whole batch: its sets over all positions), else by
        channel for rank ≥ 2,
        else overall only. var is the biased variance (divided by the count), as normalisation uses.
        """,
        examples: ["stats x", "stats y by channel"],
        completion: CompletionRule { request in
            switch request.position {
            case 1: request.matching(request.tensorNames)
            case 2: request.matching(["by"])
            case 3: request.matching(StatsAxis.allCases.map(\.rawValue))
            default: .nothing
            }
        })

    let name: Located<String>
    let axis: StatsAxis?

    init(name: Located<String>, axis: StatsAxis?) {
        self.name = name
        self.axis = axis
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        name = try cursor.name()
        var axis: StatsAxis? = nil
        if !cursor.isAtEnd {
            _ = try cursor.keyword(["by"], "by")
            axis = StatsAxis(rawValue: try cursor.keyword(StatsAxis.allCases.map(\.rawValue), "group, channel, sample or row").text)
        }
        try cursor.finish()
        self.axis = axis
    }

    func run(in context: StatementContext) throws -> Report {
        let tensor = try context.lookup(name)
        let (axis, groups) = try resolveAxis(tensor, context: context)
        let acrossBatch = axis == .group && context.session.layer?.spec.groupsSpanBatch == true
        let (labels, rowCount, row) = Self.rows(tensor.shape.dims, by: axis, groups: groups, acrossBatch: acrossBatch)
        var table = TextTable(headers: labels + ["count", "mean", "var", "std", "min", "max"])
        table.numericColumns = Set(0..<table.headers.count).subtracting(labels.last == "channels" ? [labels.count - 1] : [])
        // Read in place, never copied: a tensor near the element limit has no room for a widened copy.
        let value = { (i: Int) in tensor.value(at: i) }
        var largest = 0.0
        for i in 0..<tensor.count { let v = abs(value(i)); if v.isFinite && v > largest { largest = v } }
        let noise = largest * NoiseFloor.relative(tensor.dtype)
        let precision = context.settings.precision
        func cells(_ runs: [Range<Int>]) -> [String] {
            let s = Self.statistics(value, runs)
            let f = { (x: Double) in formatNumber(x, precision: precision, scale: noise) }
            return [String(s.count), f(s.mean), f(s.variance), f(s.variance.squareRoot()),
                    s.hasNaN ? "nan" : f(s.low), s.hasNaN ? "nan" : f(s.high)]
        }
        // Like a tensor, a long table is summarised: the first and last 10 rows.
        let limit = 64
        let shownRows = rowCount <= limit ? Array(0..<rowCount) : Array(0..<10) + [-1] + Array((rowCount - 10)..<rowCount)
        for i in shownRows {
            if i < 0 {
                table.rows.append(Array(repeating: "…", count: labels.count) + Array(repeating: "", count: 6))
            } else {
                let (label, runs) = row(i)
                table.rows.append(label + cells(runs))
            }
        }
        let all = [0..<tensor.count]
        if labels.isEmpty { table.rows.append(cells(all)) }
        else { table.rows.append(["all"] + Array(repeating: "", count: labels.count - 1) + cells(all)) }
        let what = axis.map { "by \($0.rawValue)" } ?? "overall"
        return Report([.text("stats of \(name.value) \(tensor.shape), \(what) (var is the biased variance):"), .table(table)])
    }

    /// The axis to tabulate by (nil: overall only) and, by group, the number of groups (by row: the row's length).
    private func resolveAxis(_ tensor: AnyTensor, context: StatementContext) throws -> (StatsAxis?, Int) {
        let dims = tensor.shape.dims
        let layer = context.session.layer
        if let normalized = layer?.spec.normalizedShape, axis == nil || axis == .row,
           dims.count >= normalized.count, Array(dims.suffix(normalized.count)) == normalized {
            return (.row, normalized.reduce(1, *))
        }
        if axis == .row {
            throw context.error("stats by row needs a shape= layer whose normalised dims end \(name.value)'s shape \(tensor.shape)", at: name.range)
        }
        // By default, by group only for tensors shaped like the layer's input (not, say, its (N, G) statistics).
        let inputShaped = layer?.sampleShape.map { Array(dims.dropFirst()) == $0 } ?? (dims.count >= 3)
        var resolved = axis
        var groups = 1
        if axis == .group || (axis == nil && inputShaped) {
            if dims.count >= 2, let spec = layer?.spec, spec.kind.hasGroups || spec.groupsSpanBatch,
               let g = try? spec.resolvedGroups(channels: dims[1]) {
                groups = g
                resolved = .group
            } else if axis == .group {
                let reason = dims.count < 2 ? "it has no channel axis (rank \(dims.count))"
                    : layer == nil ? "there is no layer to say what the groups are"
                    : !layer!.spec.kind.hasGroups ? "\(layer!.spec.kind) has no groups"
                    : "its \(dims[1]) channels do not divide into the layer's groups"
                throw context.error("cannot take stats of \(name.value) by group: \(reason)", at: name.range)
            } else {
                resolved = dims.count >= 2 ? .channel : nil
            }
        } else if axis == nil {
            resolved = dims.count >= 2 ? .channel : nil
        }
        if (resolved == .channel || resolved == .sample) && dims.count < 2 && axis != nil {
            throw context.error("\(name.value) has rank 1: there is no sample or channel axis; `stats \(name.value)` gives the overall numbers", at: name.range)
        }
        return (resolved, groups)
    }

    /// The label columns, the number of rows, and for a row its labels and its elements as contiguous runs
    /// (made only for the rows shown).
    /// `acrossBatch`: a group's rows are its channels in every sample (BatchNorm with grouped channels).
    static func rows(_ dims: [Int], by axis: StatsAxis?, groups: Int, acrossBatch: Bool = false)
        -> ([String], Int, (Int) -> (label: [String], runs: [Range<Int>])) {
        let n = dims.first ?? 1
        let c = dims.count >= 2 ? dims[1] : 1
        let s = dims.count >= 2 ? dims.dropFirst(2).reduce(1, *) : 1
        switch axis {
        case .group? where acrossBatch:
            let k = c / groups
            return (["group", "channels"], groups, { g in
                ([String(g), k == 1 ? "\(g * k)" : "\(g * k)–\(g * k + k - 1)"],
                 (0..<n).map { i in ((i * c + g * k) * s)..<((i * c + g * k + k) * s) })
            })
        case .group?:
            let k = c / groups
            return (["sample", "group", "channels"], n * groups, { r in
                let (i, g) = (r / groups, r % groups)
                let start = (i * c + g * k) * s
                return ([String(i), String(g), k == 1 ? "\(g * k)" : "\(g * k)–\(g * k + k - 1)"], [start..<(start + k * s)])
            })
        case .channel?:
            return (["channel"], c, { ch in ([String(ch)], (0..<n).map { ((($0 * c + ch) * s))..<(($0 * c + ch + 1) * s) }) })
        case .sample?:
            let per = dims.reduce(1, *) / n
            return (["sample"], n, { i in ([String(i)], [(i * per)..<((i + 1) * per)]) })
        case .row?:
            let length = max(1, groups), count = dims.reduce(1, *) / length
            return (["row"], count, { i in ([String(i)], [(i * length)..<((i + 1) * length)]) })
        case nil:
            return ([], 0, { _ in ([], []) })
        }
    }

    /// Two-pass statistics of the chosen elements; min and max skip NaN.
    static func statistics(_ value: (Int) -> Double, _ runs: [Range<Int>]) -> (count: Int, mean: Double, variance: Double, low: Double, high: Double, hasNaN: Bool) {
        var count = 0, sum = 0.0, low = Double.infinity, high = -Double.infinity
        var nan = false
        for run in runs {
            for i in run {
                let v = value(i)
                count += 1; sum += v
                if v.isNaN { nan = true } else { low = min(low, v); high = max(high, v) }
            }
        }
        let mean = sum / Double(count)
        var squares = 0.0
        for run in runs { for i in run { let d = value(i) - mean; squares += d * d } }
        return (count, mean, squares / Double(count), low, high, nan)
    }
}
