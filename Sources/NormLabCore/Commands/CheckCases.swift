import NormKit

/// One problem `check` gives the user's layer: its shape, the group count, how its values are made, all from a
/// seed, so a case can be made again (and made smaller) exactly.
struct CheckCase: Equatable, Sendable {
    enum Values: Equatable, Sendable {
        case random
        /// Every set's elements equal (variance 0: x̂ must be 0, not NaN).
        case constantSets
        /// Random values plus a large offset (one-pass variances cancel in float32).
        case offset(Double)
        /// Random values with a variance near eps (eps's place matters).
        case nearEps
    }

    var batch: Int
    /// G for layers that take it (`groups` is passed to forward), else nil.
    var groups: Int?
    /// Channels per group (the channel count for layers without groups).
    var channelsPerGroup: Int
    var spatial: [Int]
    /// shape= layers: the normalised dims (the leading dims are [batch]).
    var normalized: [Int]?
    var values: Values
    var randomAffine: Bool
    let seed: UInt64

    var channels: Int { (groups ?? 1) * channelsPerGroup }
    var dims: [Int] { normalized.map { [batch] + $0 } ?? ([batch, channels] + spatial) }
    var count: Int { dims.reduce(1, *) }

    /// "(2, 4, 3, 3) G = 2, values offset by 1e+06"
    var description: String {
        var text = "x (" + dims.map(String.init).joined(separator: ", ") + ")" + (groups.map { " G = \($0)" } ?? "")
        switch values {
        case .random: text += ", random values"
        case .constantSets: text += ", every set constant"
        case .offset(let o): text += ", random values offset by \(formatOption(o))"
        case .nearEps: text += ", variance near eps"
        }
        return text + (randomAffine ? ", random γ, β" : ", γ = 1, β = 0")
    }

    /// The layer for this case: the user's conventions with this case's G or normalised shape.
    func spec(from base: LayerSpec) -> LayerSpec {
        var spec = base
        if groups != nil { spec.groups = groups }
        if normalized != nil { spec.normalizedShape = normalized }
        return spec
    }

    /// Smaller cases, most reducing first: fewer samples, positions, channels and groups; plainer values.
    func smaller(statisticsSpanBatch: Bool) -> [CheckCase] {
        var out: [CheckCase] = []
        func add(_ change: (inout CheckCase) -> Void) {
            var next = self
            change(&next)
            // BatchNorm in training needs two values per channel.
            if statisticsSpanBatch && next.batch * next.spatial.reduce(1, *) < 2 { return }
            if next != self && !out.contains(next) { out.append(next) }
        }
        if batch > 1 { add { $0.batch = 1 }; add { $0.batch -= 1 } }
        if var dims = normalized {
            if dims.count > 1 { add { $0.normalized = Array(dims.dropFirst()) } }
            for i in dims.indices where dims[i] > 1 {
                dims[i] -= 1
                let reduced = dims
                add { $0.normalized = reduced }
                dims[i] += 1
            }
        }
        if !spatial.isEmpty { add { $0.spatial.removeLast() } }
        for i in spatial.indices where spatial[i] > 1 {
            add { $0.spatial[i] = 1 }
            add { $0.spatial[i] -= 1 }
        }
        if let g = groups, g > 1 { add { $0.groups = 1 }; add { $0.groups = g - 1 } }
        if channelsPerGroup > 1 { add { $0.channelsPerGroup = 1 }; add { $0.channelsPerGroup -= 1 } }
        if values != .random { add { $0.values = .random } }
        if randomAffine { add { $0.randomAffine = false } }
        return out
    }

    /// The tensors of the case, in Float64 (rounded to Float32 first when the check is in float32).
    func tensors(spec: LayerSpec, float32: Bool) throws -> (x: [Double], gamma: [Double]?, beta: [Double]?, dy: [Double], plan: NormPlan) {
        let shape = try Shape(dims)
        let plan = try NormPlan(spec: spec, inputShape: shape)
        func round(_ values: [Double]) -> [Double] { float32 ? values.map { Double(Float($0)) } : values }
        var x = Tensor<Double>.randn(shape, seed: seed).scalars
        switch values {
        case .random: break
        case .offset(let o): x = x.map { o + $0 }
        case .nearEps: x = x.map { $0 * 0.5 * spec.eps.squareRoot() }
        case .constantSets:
            let levels = Tensor<Double>.randn(try Shape([plan.statsShape.count]), seed: seed &+ 7).scalars
            for n in 0..<plan.batch {
                for c in 0..<plan.channels {
                    for s in 0..<plan.spatial {
                        x[(n * plan.channels + c) * plan.spatial + s] = levels[plan.statIndex(sample: n, channel: c, position: s)]
                    }
                }
            }
        }
        var gamma: [Double]? = nil, beta: [Double]? = nil
        if let affine = plan.affineShape {
            gamma = randomAffine ? Tensor<Double>.randn(affine, seed: seed &+ 1).scalars.map { 1 + 0.5 * $0 }
                                 : [Double](repeating: 1, count: affine.count)
            if spec.bias {
                beta = randomAffine ? Tensor<Double>.randn(affine, seed: seed &+ 2).scalars.map { 0.5 * $0 }
                                    : [Double](repeating: 0, count: affine.count)
            }
        }
        let dy = Tensor<Double>.randn(shape, seed: seed &+ 3).scalars
        return (round(x), gamma.map(round), beta.map(round), round(dy), plan)
    }
}

/// The battery: first the cases where bugs are known to hide or show (N = 1, G = 1, G = C, no spatial dims,
/// three spatial dims, offsets, variance near eps, constant sets, odd sizes), then random ones from the seed.
enum CheckBattery {
    static func cases(for spec: LayerSpec, count: Int, seed: UInt64) -> [CheckCase] {
        let takesGroups = spec.kind == .groupnorm || spec.groupsSpanBatch
            || (spec.kind == .rmsnorm && spec.groups != nil && spec.normalizedShape == nil)
        let shapeForm = spec.normalizedShape != nil
        var generator = SplitMix(seed: seed)
        func make(_ batch: Int, _ groups: Int, _ perGroup: Int, _ spatial: [Int], _ values: CheckCase.Values = .random,
                  affine: Bool = true, normalized: [Int]? = nil) -> CheckCase {
            CheckCase(batch: batch, groups: takesGroups ? groups : nil, channelsPerGroup: takesGroups ? perGroup : groups * perGroup,
                      spatial: shapeForm ? [] : spatial, normalized: shapeForm ? (normalized ?? [groups * perGroup]) : nil,
                      values: values, randomAffine: affine, seed: generator.next() % 1_000_000)
        }
        var cases = [
            make(2, 2, 2, [3, 3]), make(1, 2, 2, [3, 3]), make(2, 1, 4, [3, 3]), make(2, 4, 1, [3, 3]),
            make(3, 2, 3, []), make(2, 2, 2, [2, 3, 2]), make(2, 2, 2, [3, 3], .offset(1e3)), make(2, 2, 2, [3, 3], .offset(1e4)),
            make(2, 2, 2, [3, 3], .offset(1e6)), make(2, 2, 2, [3, 3], .nearEps), make(2, 2, 2, [3, 3], .constantSets),
            make(3, 3, 2, [5, 7]), make(2, 2, 2, [3, 3], affine: false), make(1, 3, 3, [4], normalized: [3, 4]),
        ]
        let offsets = [1e3, 1e4, 1e5, 1e6]
        while cases.count < count {
            let batch = 1 + Int(generator.next() % 4)
            let groups = 1 + Int(generator.next() % 4)
            let perGroup = 1 + Int(generator.next() % 3)
            let rank = Int(generator.next() % 4)
            let spatial = (0..<rank).map { _ in 1 + Int(generator.next() % 5) }
            let values: CheckCase.Values
            switch generator.next() % 6 {
            case 0: values = .offset(offsets[Int(generator.next() % 4)])
            case 1: values = .nearEps
            case 2: values = .constantSets
            default: values = .random
            }
            let normalized = (0..<(1 + Int(generator.next() % 2))).map { _ in 1 + Int(generator.next() % 6) }
            cases.append(make(batch, groups, perGroup, spatial, values, affine: generator.next() % 4 != 0, normalized: normalized))
        }
        // BatchNorm in training needs two values per channel.
        return Array(cases.prefix(count)).map { c in
            var c = c
            if spec.kind.statisticsSpanBatch && c.batch * c.spatial.reduce(1, *) < 2 { c.batch = 2 }
            return c
        }
    }

    /// "N 1–4, C 1–12, G 1–4, spatial rank 0–3"
    static func summary(_ cases: [CheckCase]) -> String {
        func span(_ values: [Int]) -> String {
            guard let low = values.min(), let high = values.max() else { return "—" }
            return low == high ? "\(low)" : "\(low)–\(high)"
        }
        var parts = ["N " + span(cases.map(\.batch))]
        if cases.first?.normalized != nil {
            parts.append("normalised size " + span(cases.compactMap { $0.normalized?.reduce(1, *) }))
        } else {
            parts.append("C " + span(cases.map(\.channels)))
            if cases.contains(where: { $0.groups != nil }) { parts.append("G " + span(cases.compactMap(\.groups))) }
            parts.append("spatial rank " + span(cases.map(\.spatial.count)))
        }
        return parts.joined(separator: ", ")
    }
}

/// A small seeded generator (SplitMix64) for the battery's choices.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
