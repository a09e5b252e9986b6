@testable import NormKit
import Testing

/// Float32 sets that are columns run in float32 lanes (`column_sets_f32.c`): μ's remainder folded into one constant
/// per set, more than eight rows summed eight at a time into Float64, and tiles whose numbers leave float32's range
/// handed to the Float64 lanes. Each against the general path, and the same bits for any thread count.
@Suite struct ColumnFloatLaneTests {
    /// PyDLLib's GroupNorm (per position over a group's channel rows), its BatchNorm (per element over the samples),
    /// and BatchNorm with grouped channels per position, with the given rows per set.
    static func specs() throws -> [(String, LayerSpec, [Int])] {
        var twoChannels = try LayerSpec(kind: .groupnorm, groups: 4)
        twoChannels.apply(.pydllib)
        var twelveChannels = try LayerSpec(kind: .groupnorm, groups: 1)
        twelveChannels.apply(.pydllib)
        // Two groups: 8 and 6 rows a set with 16 and 12 channels (more than four rows run on the general loops).
        var twoGroups = try LayerSpec(kind: .groupnorm, groups: 2)
        twoGroups.apply(.pydllib)
        var perElement = try LayerSpec(kind: .batchnorm)
        perElement.apply(.pydllib)
        // PyDLLib's InstanceNorm: a set is one element (the loops of one row).
        var oneChannel = try LayerSpec(kind: .instancenorm)
        oneChannel.apply(.pydllib)
        // PyTorch's conventions per position (`reduce=channels`): γ per channel, so one sum per row (`pair_rows`).
        var perChannelGamma = try LayerSpec(kind: .groupnorm, groups: 4)
        perChannelGamma.reduce = .channels
        // PyDLLib's LayerNorm: a position's channels, γ and β per element. 13 rows go four at a time and one after;
        // 2,500 columns in two tiles (1,264 and 1,236: four columns after the last step of eight); 64 rows over
        // 1,600 columns in four tiles of 400.
        var positionChannels = try LayerSpec(kind: .layernorm)
        positionChannels.apply(.pydllib)
        var grouped = try LayerSpec(kind: .batchnorm)
        grouped.groups = 2
        grouped.reduce = .channels
        // 11 samples: dγ's float32 per-element sums are added into Float64 after the 8th sample and the last.
        return [("GroupNorm, 2 rows", twoChannels, [3, 8, 7, 11]), ("GroupNorm, 2 rows, 11 samples", twoChannels, [11, 8, 3, 7]),
                ("GroupNorm, 12 rows", twelveChannels, [2, 12, 43]), ("InstanceNorm, 1 row", oneChannel, [9, 4, 7, 5]),
                ("GroupNorm, 8 rows", twoGroups, [3, 16, 5, 7]), ("GroupNorm, 6 rows, 11 samples", twoGroups, [11, 12, 3, 5]),
                // 77 columns (nine steps of eight, a fold after the eighth, five one at a time); 4,900 (two tiles).
                ("GroupNorm γ per channel, 2 rows", perChannelGamma, [3, 8, 7, 11]),
                ("GroupNorm γ per channel, 2 rows, two tiles", perChannelGamma, [2, 8, 70, 70]),
                ("BatchNorm per element, 20 rows", perElement, [20, 3, 29]),
                // 93 columns: five blocks of sixteen, one of eight, five after them.
                ("BatchNorm per element, 8 rows", perElement, [8, 3, 31]),
                ("grouped BatchNorm, 15 rows", grouped, [5, 6, 37]),
                ("LayerNorm, 13 rows, two tiles", positionChannels, [2, 13, 50, 50]),
                ("LayerNorm, 64 rows, four tiles", positionChannels, [2, 64, 40, 40])]
    }

    func compare(_ spec: LayerSpec, _ x: Tensor<Float>, tolerance: Double, _ label: String) throws {
        let plan = try NormPlan(spec: spec, inputShape: x.shape)
        let gamma: Tensor<Float>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 7).map { 1 + $0 / 4 }.converted() }
        let beta: Tensor<Float>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 8).converted() }
        let dy: Tensor<Float> = Tensor<Double>.randn(x.shape, seed: 9).converted()
        let reference = try Normalization.computeForward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .train,
                                                          running: nil, threads: 1, allowFastPath: false)
        let referenceGrads = try Normalization.computeBackward(forward: reference, gamma: gamma, outputGradient: dy,
                                                               threads: 1, allowFastPath: false)
        var first: (Tensor<Float>, Tensor<Float>)? = nil
        for threads in [1, 2, 3] {
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
            let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: threads)
            #expect(fast.warnings == reference.warnings, "\(label)")
            let pairs: [(String, Tensor<Float>?, Tensor<Float>?)] = [
                ("y", fast.output, reference.output), ("xhat", fast.normalized, reference.normalized),
                ("mean", fast.mean, reference.mean), ("var", fast.variance, reference.variance),
                ("dx", grads.dx, referenceGrads.dx), ("dgamma", grads.dgamma, referenceGrads.dgamma),
                ("dbeta", grads.dbeta, referenceGrads.dbeta),
            ]
            for (name, a, b) in pairs {
                guard let a, let b else { #expect((a == nil) == (b == nil), "\(label) \(name)"); continue }
                let scale = b.scalars.filter { $0.isFinite }.map { abs(Double($0)) }.max() ?? 1
                let worst = zip(a.scalars, b.scalars).map { p, q in
                    p == q || (p.isNaN && q.isNaN) ? 0 : abs(Double(p) - Double(q))
                }.max() ?? 0
                #expect(worst <= tolerance * max(1, scale), "\(label) \(name): \(worst) against a scale of \(scale)")
            }
            if let (y, dx) = first {
                #expect(y == fast.output && dx == grads.dx, "\(label): 1 and \(threads) threads differ")
            } else {
                first = (fast.output, grads.dx)
            }
        }
    }

    /// 1e4 + noise of 0.01: μ rounded to float32 is off by up to 5e-4, five percent of σ; folding its remainder into
    /// x̂'s constant keeps x̂ to float32's precision (without it x̂ is off by about 0.05).
    @Test func aLargeMeanKeepsItsFraction() throws {
        for (label, spec, dims) in try Self.specs() {
            let x: Tensor<Float> = Tensor<Double>.randn(try Shape(dims), seed: 3).map { 1e4 + 0.01 * $0 }.converted()
            try compare(spec, x, tolerance: 2e-4, label)
        }
    }

    /// Ordinary data, and sets whose elements are all equal (variance exactly 0, x̂ exactly 0).
    @Test func ordinaryAndConstantSets() throws {
        for (label, spec, dims) in try Self.specs() {
            let shape = try Shape(dims)
            try compare(spec, Tensor<Double>.randn(shape, seed: 4).map { 3 + 2 * $0 }.converted(), tolerance: 1e-5, label)
            let constant = Tensor<Float>(uncheckedShape: shape, scalars: [Float](repeating: 0.1, count: shape.count))
            let result = try Normalization.forward(spec: spec, input: constant, gamma: nil, beta: nil, threads: 2)
            #expect(result.variance.scalars.allSatisfy { $0 == 0 }, "\(label)")
            #expect(result.normalized.scalars.allSatisfy { $0 == 0 }, "\(label)")
            #expect(result.mean!.scalars.allSatisfy { $0 == 0.1 }, "\(label)")
            // With eps = 0 each zero variance is counted in the warning: every lane of every block counts.
            var zeroEps = spec
            zeroEps.eps = 0
            let counted = try Normalization.forward(spec: zeroEps, input: constant, gamma: nil, beta: nil, threads: 2)
            let reference = try Normalization.computeForward(spec: zeroEps, input: constant, gamma: nil, beta: nil,
                                                              mode: .train, running: nil, threads: 1, allowFastPath: false)
            #expect(!counted.warnings.isEmpty && counted.warnings == reference.warnings, "\(label): \(counted.warnings)")
        }
    }

    /// Values whose variance passes 2¹²⁰, a NaN, an infinity: their tiles run in Float64 lanes, and the rest of the
    /// tensor in float32 lanes, as the general path computes them.
    @Test func tilesOutsideFloat32sRangeRunInFloat64() throws {
        for (label, spec, dims) in try Self.specs() {
            let shape = try Shape(dims)
            var huge = Tensor<Double>.randn(shape, seed: 5).map { 1 + $0 }.scalars
            for i in stride(from: 0, to: huge.count / 3, by: 1) { huge[i] *= 1e25 }
            try compare(spec, Tensor<Double>(uncheckedShape: shape, scalars: huge).converted(), tolerance: 1e-5, label)
            var bad = Tensor<Double>.randn(shape, seed: 6).scalars
            bad[1] = .nan
            bad[bad.count - 2] = .infinity
            let x: Tensor<Float> = Tensor<Double>(uncheckedShape: shape, scalars: bad).converted()
            let fast = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: 2)
            let reference = try Normalization.computeForward(spec: spec, input: x, gamma: nil, beta: nil, mode: .train,
                                                              running: nil, threads: 1, allowFastPath: false)
            #expect(fast.warnings == reference.warnings, "\(label)")
            let nanHere = zip(fast.output.scalars, reference.output.scalars).allSatisfy { $0.isNaN == $1.isNaN }
            #expect(nanHere, "\(label): the non-finite sets differ")
        }
    }

    /// BatchNorm per element folds γ into dx's scale (rstd·γ, with γ shared by a column's rows): a γ of 1e37 on sets
    /// whose rstd is near 1000 makes that scale overflow float32, though dx itself (dy nearly constant, so γ·rstd times
    /// a small difference) is about 1e34. Such columns run in Float64 lanes, and dx stays finite and right.
    @Test(arguments: [[8, 3, 29], [20, 3, 29]])  // blocks of eight rows at most, and the general loops
    func aHugeGammaTimesRstdRunsInFloat64(dims: [Int]) throws {
        var spec = try LayerSpec(kind: .batchnorm)
        spec.apply(.pydllib)
        let shape = try Shape(dims)
        let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 31).map { 5 + 1e-3 * $0 }.converted()
        let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 32).map { 1 + 1e-3 * $0 }.converted()
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let gamma = Tensor<Float>(uncheckedShape: plan.affineShape!, scalars: [Float](repeating: 1e37, count: plan.affineShape!.count))
        let exact = try Normalization.computeForward(spec: spec, input: x.converted() as Tensor<Double>,
                                                     gamma: gamma.converted() as Tensor<Double>, beta: nil, mode: .train,
                                                     running: nil, threads: 1, allowFastPath: false)
        let exactDx = try Normalization.computeBackward(forward: exact, gamma: gamma.converted() as Tensor<Double>,
                                                        outputGradient: dy.converted() as Tensor<Double>, threads: 1,
                                                        allowFastPath: false).dx
        let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: nil, threads: 2)
        let dx = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: 2).dx
        let scale = exactDx.scalars.map { abs($0) }.max() ?? 1
        #expect(scale > 1e30 && scale < 1e38, "the case is meant to have a large, finite dx: \(scale)")
        let worst = zip(dx.scalars, exactDx.scalars).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * scale, "dx off by \(worst) against a scale of \(scale)")
    }

    /// Sets of one element (PyDLLib's InstanceNorm), whose float32 loops of their own (column_sets_f32.c) skip the
    /// general steps: where x is finite, x̂ is ±0, so y is β exactly (β non-zero), dx is 0, dγ's terms are ±0 and dβ's
    /// are dy — in blocks of sixteen and eight, their tails, and blocks of each beside a NaN, on 1 and 3 threads.
    @Test func setsOfOneElementGiveBetaAndNoGradient() throws {
        var spec = try LayerSpec(kind: .instancenorm)
        spec.apply(.pydllib)
        spec.paramGrad = .sum
        let shape = try Shape([3, 5, 7, 11])  // 77 positions: blocks, then a tail
        var values = Tensor<Double>.randn(shape, seed: 41).map { 1e3 * $0 }.scalars
        values[100] = .nan
        let x: Tensor<Float> = Tensor<Double>(uncheckedShape: shape, scalars: values).converted()
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 42).converted()
        let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 43)
            .map { $0 + ($0 < 0 ? -0.1 : 0.1) }.converted()  // no zero: y is β exactly
        let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 44).converted()
        let sample = plan.affineShape!.count
        for threads in [1, 3] {
            let pass = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
            let grads = try Normalization.backward(forward: pass, gamma: gamma, outputGradient: dy, threads: threads)
            for i in 0..<x.count where i % sample != 100 % sample {  // elements whose column has no NaN
                #expect(pass.output.scalars[i] == beta.scalars[i % sample], "y[\(i)]")
                #expect(grads.dx.scalars[i] == 0, "dx[\(i)]")
            }
            #expect(pass.output.scalars[100].isNaN && grads.dx.scalars[100].isNaN)
            for e in 0..<sample where e != 100 % sample {
                #expect(grads.dgamma!.scalars[e] == 0, "dgamma[\(e)]")
                let sum = (0..<3).reduce(0.0) { $0 + Double(dy.scalars[$1 * sample + e]) }
                #expect(abs(Double(grads.dbeta!.scalars[e]) - sum) <= 1e-6 * max(1, abs(sum)), "dbeta[\(e)]")
            }
        }
    }

    /// PyDLLib's GroupNorm and BatchNorm, whose sets are pairs on 8 channels (G = 4) and on a batch of two.
    static func pydllibSetsOfTwo() throws -> (LayerSpec, LayerSpec) {
        var groupNorm = try LayerSpec(kind: .groupnorm, groups: 4)
        groupNorm.apply(.pydllib)
        var batchNorm = try LayerSpec(kind: .batchnorm)
        batchNorm.apply(.pydllib)
        return (groupNorm, batchNorm)
    }

    /// Sets of two elements (PyDLLib's GroupNorm with two channels per group; BatchNorm per element on a batch of
    /// two): the general form of dx cancels to eps's order (dx = ±(dx̂₀ − dx̂₁)·eps·rstd³/2), so float32 arithmetic
    /// through it keeps few digits — as the float32 general path does, which works from the float32 x̂ (most of its
    /// dx elements here are off by more than 1e-4). The closed form keeps dx to float32's precision, element by
    /// element, against the float64 pass on the same values.
    @Test func setsOfTwoKeepDxDigits() throws {
        let (groupNorm, batchNorm) = try Self.pydllibSetsOfTwo()
        for (label, spec, dims) in [("GroupNorm", groupNorm, [3, 8, 7, 11]), ("BatchNorm", batchNorm, [2, 5, 37])] {
            let shape = try Shape(dims)
            let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 11).converted()
            let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 12).converted()
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 13).converted()
            let exact = try Normalization.computeForward(spec: spec, input: x.converted() as Tensor<Double>,
                                                         gamma: gamma.converted() as Tensor<Double>, beta: nil,
                                                         mode: .train, running: nil, threads: 1, allowFastPath: false)
            let exactDx = try Normalization.computeBackward(forward: exact, gamma: gamma.converted() as Tensor<Double>,
                                                            outputGradient: dy.converted() as Tensor<Double>, threads: 1,
                                                            allowFastPath: false).dx
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: nil, threads: 2)
            let dx = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: 2).dx
            let poor = zip(dx.scalars, exactDx.scalars).filter { abs(Double($0) - $1) > 1e-4 * abs($1) }
            #expect(poor.count == 0, "\(label): \(poor.count) of \(shape.count) elements off by more than 1e-4")
        }
    }
    /// Sets of two take their own first mean (μ₀ = x₀, `PAIR_STATISTICS`): the two elements then normalise to exact
    /// opposites, x̂₁ = (x₁ − x₀)·rstd − δ·rstd = 2H − H with H = δ·rstd, inside (−1, 1) — in whole blocks of eight
    /// columns and in the columns after them (77 positions), forward and the `xhat` made when read alike.
    @Test func setsOfTwoNormaliseToOpposites() throws {
        let (groupNorm, batchNorm) = try Self.pydllibSetsOfTwo()
        for (label, spec, dims) in [("GroupNorm", groupNorm, [3, 8, 7, 11]), ("BatchNorm", batchNorm, [2, 5, 77])] {
            let shape = try Shape(dims)
            // Values near 1e3 with noise: the old first mean, x₀ + (x₁ − x₀)/2, left x̂₀ + x̂₁ a few ulps from 0.
            let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 21).map { 1000 + $0 / 3 }.converted()
            let fast = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: 2)
            let h = fast.normalized.scalars
            var checked = 0, unequal = 0
            if spec.kind == .batchnorm {
                let half = h.count / 2
                for i in 0..<half { checked += 1; if h[i] != -h[half + i] || abs(h[i]) >= 1 { unequal += 1 } }
            } else {
                let positions = dims[2] * dims[3], groupRows = 2
                for start in stride(from: 0, to: h.count, by: groupRows * positions) {
                    for p in 0..<positions {
                        checked += 1
                        if h[start + p] != -h[start + positions + p] || abs(h[start + p]) >= 1 { unequal += 1 }
                    }
                }
            }
            #expect(checked == shape.count / 2 && unequal == 0, "\(label): \(unequal) of \(checked) sets not ±x̂")
        }
    }

    /// Tile widths: whole cache lines, never more than asked for, one tile when it holds every column, and an even
    /// number of tiles wherever a thread's share matters (up to 16 tiles; the first odd count is 23 tiles of 256).
    @Test func tilesComeInEvenNumbers() {
        #expect(ColumnKernels.Layout.evenTiles(columns: 3136, most: 512) == 400)
        #expect(ColumnKernels.Layout.evenTiles(columns: 300, most: 512) == 512)
        #expect(ColumnKernels.Layout.evenTiles(columns: 512, most: 512) == 512)
        #expect(ColumnKernels.Layout.evenTiles(columns: 513, most: 512) == 272)
        for most in [256, 512, 1024, 2048, 4096] {
            for columns in stride(from: 1, to: 40_000, by: 7) {
                let width = ColumnKernels.Layout.evenTiles(columns: columns, most: most)
                let tiles = (columns + width - 1) / width, label = "\(columns) columns, at most \(most): \(width)"
                #expect(width <= most && (width == most || width % 16 == 0), "\(label)")
                if columns <= most { #expect(width == most, "\(label)") }
                if width != most || (tiles > 1 && tiles <= 16) { #expect(tiles % 2 == 0, "\(label), \(tiles) tiles") }
            }
        }
    }
}
