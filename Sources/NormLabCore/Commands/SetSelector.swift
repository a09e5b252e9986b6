import NormKit

/// Which statistics set `explain` and `show axes` talk about: `n=` sample, `g=` group, `p=` position (for
/// per-position statistics), `c=` channel (BatchNorm; `g=` when its channels are grouped); with shape=, `n=` is the row (leading dims flattened).
public struct SetSelector: Equatable, Sendable {
    public var sample: Located<Int>?
    public var group: Located<Int>?
    public var position: Located<Int>?
    public var channel: Located<Int>?

    public init() {}

    static let keys = ["n=", "g=", "p=", "c="]

    /// `n=I g=J p=K c=C` in any order.
    init(parsing cursor: inout ArgumentCursor) throws {
        for (key, value) in try cursor.options() {
            guard let number = Int(value.text), number >= 0 else {
                throw cursor.error("\(key.text)= takes a whole number ≥ 0, got \(cursor.describe(value))", at: value)
            }
            let located = Located(number, value.range)
            switch key.text {
            case "n": sample = located
            case "g": group = located
            case "p": position = located
            case "c": channel = located
            default: throw cursor.error("unknown option \(cursor.describe(key)); options are n= (sample), g= (group), p= (position), c= (channel)", at: key)
            }
        }
    }

    /// The chosen set of the pass: its index among the statistics, words for it, and its elements' offsets.
    func select(in record: PassRecord, context: StatementContext) throws -> (stat: Int, label: String, members: [Int]) {
        let plan = record.plan
        func pick(_ value: Located<Int>?, _ name: String, below limit: Int, _ what: String) throws -> Int {
            guard let value else { return 0 }
            guard value.value >= 0 && value.value < limit else {
                throw context.error("\(name)=\(value.value) is out of range: \(what) runs from 0 to \(limit - 1)", at: value.range)
            }
            return value.value
        }
        func refuse(_ value: Located<Int>?, _ name: String, _ why: String) throws {
            if let value { throw context.error("\(name)= does not apply: \(why)", at: value.range) }
        }
        if let normalized = plan.normalizedShape {
            try refuse(group, "g", "with shape= there are no groups: n= picks the row")
            try refuse(channel, "c", "with shape= the whole of the last dims is one set: n= picks the row")
            try refuse(position, "p", "with shape= there are no positions: n= picks the row")
            let n = try pick(sample, "n", below: plan.batch, "the row (the leading dims flattened)")
            let leading = Array(plan.inputShape.dims.dropLast(normalized.count))
            var index: [Int] = [], rest = n
            for size in leading.reversed() { index.insert(rest % size, at: 0); rest /= size }
            let at = leading.isEmpty ? "the whole input" : "leading index (\(index.map(String.init).joined(separator: ", ")))"
            return (n, "row n = \(n), \(at), over the last dims \(Shape.format(normalized))", plan.memberOffsets(ofStat: n))
        }
        let perPosition = record.spec.reduce == .channels && plan.spatial > 1
        if !perPosition { try refuse(position, "p", "this layer's statistics cover all positions") }
        let p = perPosition ? try pick(position, "p", below: plan.spatial, "the position (flattened)") : 0
        let stat: Int
        var label: String
        if record.spec.groupsSpanBatch {
            try refuse(sample, "n", "these statistics cover the whole batch")
            try refuse(channel, "c", "use g= for the group")
            let g = try pick(group, "g", below: plan.groups, "the group")
            stat = perPosition ? g * plan.spatial + p : g
            let range = plan.channels(ofGroup: g)
            let channels = range.count == 1 ? "channel \(range.lowerBound)" : "channels \(range.lowerBound)–\(range.upperBound - 1)"
            label = "group g = \(g) (\(channels))" + (perPosition ? ", position p = \(p)" : "")
        } else if record.spec.kind.statisticsSpanBatch {
            try refuse(sample, "n", "batchnorm's statistics cover the whole batch")
            try refuse(group, "g", "batchnorm has channels, not groups (use c=)")
            let c = try pick(channel, "c", below: plan.channels, "the channel")
            stat = perPosition ? c * plan.spatial + p : c
            label = "channel c = \(c)" + (perPosition ? ", position p = \(p)" : "")
        } else {
            try refuse(channel, "c", "use g= for the group")
            let n = try pick(sample, "n", below: plan.batch, "the sample")
            let g = try pick(group, "g", below: plan.groups, "the group")
            stat = perPosition ? (n * plan.groups + g) * plan.spatial + p : n * plan.groups + g
            let range = plan.channels(ofGroup: g)
            let channels = range.count == 1 ? "channel \(range.lowerBound)" : "channels \(range.lowerBound)–\(range.upperBound - 1)"
            label = "sample n = \(n), group g = \(g) (\(channels))" + (perPosition ? ", position p = \(p)" : "")
        }
        return (stat, label, plan.memberOffsets(ofStat: stat))
    }
}
