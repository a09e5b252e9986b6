import NormKit
import Testing

/// BatchNorm whose channels are split into G groups (`layer norm over=n,c,s groups=G`, `over=n,c`): its sets span
/// the batch and a group's K = C/G channels. Checked against named layers on a rearranged input — the same sets,
/// made by other code: moving the group axis to the front, x′(g, n·K + k, s) = x(n, g·K + k, s), a set over
/// (N, K, S) is LayerNorm's set of sample g, and a set over (N, K) at one position is its per-position set.
@Suite struct BatchGroupTests {
    /// (N, C, S) → (G, N·K, S) (`inverse`: back).
    static func rearranged(_ x: [Double], n: Int, c: Int, s: Int, groups g: Int, inverse: Bool) -> [Double] {
        let k = c / g
        var out = [Double](repeating: .nan, count: x.count)
        for ni in 0..<n {
            for ci in 0..<c {
                for si in 0..<s {
                    let original = (ni * c + ci) * s + si
                    let moved = ((ci / k) * (n * k) + ni * k + ci % k) * s + si
                    if inverse { out[original] = x[moved] } else { out[moved] = x[original] }
                }
            }
        }
        return out
    }

    @Test(arguments: [(Reduce.group, 1), (.group, 3), (.channels, 1), (.channels, 2), (.group, 6)])
    func groupedBatchNormIsLayerNormOnTheGroupsFirst(_ reduce: Reduce, _ groups: Int) throws {
        let (n, c, s) = (3, 6, 5)
        let x = Tensor<Double>.randn(try Shape([n, c, s]), seed: 21)
        let dy = Tensor<Double>.randn(try Shape([n, c, s]), seed: 22)
        var spec = try LayerSpec(kind: .batchnorm)
        spec.groups = groups
        spec.reduce = reduce
        spec.affine = .none
        var grouped = try NormLayer<Double>(spec: spec)
        let pass = try grouped.forward(x)
        let gradients = try grouped.backward(dy)
        #expect(pass.plan.statsShape.dims == (reduce == .group ? [groups] : [groups, s]))
        #expect(pass.plan.setSize == (reduce == .group ? n * (c / groups) * s : n * (c / groups)))

        var reference = try LayerSpec(kind: .layernorm)
        reference.reduce = reduce
        reference.affine = .none
        var named = try NormLayer<Double>(spec: reference)
        let moved = try Shape([groups, n * (c / groups), s])
        let x2 = try Tensor(shape: moved, scalars: Self.rearranged(x.scalars, n: n, c: c, s: s, groups: groups, inverse: false))
        let dy2 = try Tensor(shape: moved, scalars: Self.rearranged(dy.scalars, n: n, c: c, s: s, groups: groups, inverse: false))
        let pass2 = try named.forward(x2)
        let gradients2 = try named.backward(dy2)
        let y2 = Self.rearranged(pass2.output.scalars, n: n, c: c, s: s, groups: groups, inverse: true)
        let dx2 = Self.rearranged(gradients2.dx.scalars, n: n, c: c, s: s, groups: groups, inverse: true)
        // LayerNorm's statistics (G, 1) or (G, 1, S) hold the same numbers in the same order.
        #expect(zip(pass.mean!.scalars, pass2.mean!.scalars).allSatisfy { abs($0 - $1) <= 1e-14 })
        #expect(zip(pass.variance.scalars, pass2.variance.scalars).allSatisfy { abs($0 - $1) <= 1e-13 * max(1, abs($1)) })
        #expect(zip(pass.output.scalars, y2).allSatisfy { abs($0 - $1) <= 1e-12 }, "\(reduce) G = \(groups): y")
        #expect(zip(gradients.dx.scalars, dx2).allSatisfy { abs($0 - $1) <= 1e-12 }, "\(reduce) G = \(groups): dx")
        // The running statistics have the statistics' shape and follow the batch's unbiased variance.
        let m = Double(pass.plan.setSize)
        let running = try #require(grouped.runningVariance)
        #expect(running.shape == pass.plan.statsShape)
        for (r, v) in zip(running.scalars, pass.variance.scalars) {
            #expect(abs(r - (0.9 + 0.1 * v * m / (m - 1))) <= 1e-14)
        }
    }

    /// Every element belongs to one set, the sets have the plan's size, and with G = C it is BatchNorm itself.
    @Test func setsCoverTheInputAndGEqualsCIsBatchNorm() throws {
        for reduce in Reduce.allCases {
            for groups in [1, 2, 4] {
                var spec = try LayerSpec(kind: .batchnorm)
                spec.groups = groups
                spec.reduce = reduce
                let plan = try NormPlan(spec: spec, inputShape: Shape([3, 4, 2, 3]))
                var seen = [Int](repeating: 0, count: plan.inputShape.count)
                for stat in 0..<plan.statsShape.count {
                    let members = plan.memberOffsets(ofStat: stat)
                    #expect(members.count == plan.setSize)
                    for offset in members { seen[offset] += 1 }
                }
                #expect(seen.allSatisfy { $0 == 1 }, "\(reduce) G = \(groups)")
            }
            var perChannel = try LayerSpec(kind: .batchnorm)
            perChannel.reduce = reduce
            var grouped = perChannel
            grouped.groups = 4
            let x = Tensor<Double>.randn(try Shape([3, 4, 2, 3]), seed: 23)
            let gamma = Tensor<Double>.randn(try Shape([4]), seed: 24)
            let a = try Normalization.forward(spec: perChannel, input: x, gamma: gamma, beta: nil)
            let b = try Normalization.forward(spec: grouped, input: x, gamma: gamma, beta: nil)
            #expect(zip(a.output.scalars, b.output.scalars).allSatisfy { abs($0 - $1) <= 1e-13 }, "\(reduce)")
        }
        var spec = try LayerSpec(kind: .batchnorm)
        spec.groups = 4
        #expect(throws: NormError.self) { try NormPlan(spec: spec, inputShape: Shape([2, 6, 3])) }
        // groups is a public var: 0 or a negative number set after init is an error, never a division by zero.
        for bad in [0, -2] {
            spec.groups = bad
            #expect(throws: NormError.self) { try NormPlan(spec: spec, inputShape: Shape([2, 6, 3])) }
            var groupNorm = try LayerSpec(kind: .groupnorm, groups: 2)
            groupNorm.groups = bad
            #expect(throws: NormError.self) { try NormPlan(spec: groupNorm, inputShape: Shape([2, 6, 3])) }
        }
    }
}
