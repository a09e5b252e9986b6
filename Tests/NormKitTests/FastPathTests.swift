@testable import NormKit
import Testing

/// The fast kernels against the general per-element path, on awkward sizes, and bit-identical for any thread count.
@Suite struct FastPathTests {
    /// (kind, groups, dims): group sizes that are not a multiple of the SIMD width, one element per group,
    /// N = 1, no spatial dims, tiny and large.
    static let cases: [(LayerKind, Int?, [Int])] = [
        (.groupnorm, 2, [2, 4, 3, 3]), (.groupnorm, 3, [1, 6, 5]), (.groupnorm, 4, [3, 4]),
        (.groupnorm, 1, [1, 1, 1]), (.groupnorm, 8, [2, 16, 17]), (.groupnorm, 32, [2, 64, 9, 9]),
        (.layernorm, nil, [4, 7, 3]), (.instancenorm, nil, [2, 5, 1]), (.rmsnorm, 2, [2, 4, 11]),
        (.groupnorm, 4, [1, 8, 33, 7]), (.batchnorm, nil, [4, 3, 5]), (.batchnorm, nil, [2, 6, 17, 3]),
        (.batchnorm, nil, [5, 2]), (.batchnorm, nil, [3, 40, 33]), (.layernorm, nil, [5, 9]), (.layernorm, nil, [3, 203]),
        // 299 positions: two tiles of the per-position kernels, the second with a tail of 3.
        (.groupnorm, 2, [2, 4, 23, 13]),
        // 2295 elements per sample: BatchNorm per element runs in calls of 2048 columns (and x̂ in tiles of 256);
        // 40 channels per group: per-position backward spans of one tile.
        (.batchnorm, nil, [3, 9, 17, 15]), (.groupnorm, 1, [2, 40, 300]),
        // BatchNorm with its channels in groups (`layer norm over=n,c,s groups=G`): N·K rows per set.
        (.batchnorm, 2, [3, 4, 5, 3]), (.batchnorm, 1, [2, 3, 7]), (.batchnorm, 4, [2, 8, 17]), (.batchnorm, 3, [1, 6]),
        // Sets of more than eight rows run on the float32 tile loops, sixteen columns at a step (37 and 29 columns:
        // steps of 16, then 8, then one): over=n,c's sixteen rows (8 samples × 2 channels, its own loops), fifteen
        // rows from a table (5 samples × 3 channels), and BatchNorm per element over 12 samples.
        (.batchnorm, 2, [8, 4, 37]), (.batchnorm, 3, [5, 9, 29]), (.batchnorm, nil, [12, 3, 13]),
        // Rows of one element per channel over many samples: float32 dγ, dβ go through stages of eight sets per
        // chunk of the 16, folded mid-chunk and at its end; with 3 groups the chunks start mid-sample.
        (.layernorm, nil, [300, 20]), (.groupnorm, 3, [150, 6]),
        // Short sets (float32: batches of 64 sets through `shortSinglesForward`): 3 and 24 elements a set.
        (.groupnorm, 32, [9, 96]), (.groupnorm, 8, [70, 192]),
        // Short sets of a few short rows (`shortRowsForward`): 4 channels × 6 positions, and 7 positions a set.
        (.groupnorm, 8, [40, 32, 2, 3]), (.instancenorm, nil, [30, 16, 7]),
        // Longer sets of rows shorter than 32 go the same way: 32 rows of 9 (two batches), 70 rows of 5.
        (.groupnorm, 2, [40, 64, 3, 3]), (.layernorm, nil, [3, 70, 5]),
        // Rows of one element longer than `rowsInCache` (16,384): backward's loop that makes the next set's sums.
        (.layernorm, nil, [3, 16_500]),
        // One position per channel: per-position sets (reduce=channels) are then a group's channels of a sample, and
        // run on the rows kernels (`LayerSpec.onKernels`).
        (.groupnorm, 4, [6, 8, 1, 1]), (.rmsnorm, 2, [5, 8]), (.instancenorm, nil, [4, 6]), (.layernorm, nil, [3, 10, 1, 1]),
        // BatchNorm over a group's channels on one position: as BatchNorm on (N, G, K).
        (.batchnorm, 4, [40, 12]), (.batchnorm, 2, [9, 6, 1, 1]),
        // BatchNorm per channel on small positions: backward a thread's channels side by side, sample by sample.
        (.batchnorm, nil, [40, 6, 2, 3]), (.batchnorm, nil, [9, 5, 31]),
    ]

    func check<S: NormScalar>(_ type: S.Type, tolerance: Double, affine: Affine, reduce: Reduce = .group) throws {
        for (i, (kind, groups, dims)) in Self.cases.enumerated() {
            var spec = try LayerSpec(kind: kind, groups: kind == .batchnorm ? nil : groups)
            if kind == .batchnorm { spec.groups = groups }
            spec.affine = affine
            spec.reduce = reduce
            let shape = try Shape(dims)
            let x: Tensor<S> = Tensor<Double>.randn(shape, seed: UInt64(i)).map { 3 + 2 * $0 }.converted()
            let dy: Tensor<S> = Tensor<Double>.randn(shape, seed: UInt64(100 + i)).converted()
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let gamma: Tensor<S>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 7).converted() }
            let beta: Tensor<S>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 8).converted() }
            try Self.compare(spec, x: x, dy: dy, gamma: gamma, beta: beta, tolerance: tolerance,
                             threadCounts: [1, 2, 3, 8], label: "\(kind) \(dims)")
        }
    }

    /// The fast path against the general one for `spec` on x and dy, within `tolerance` of each tensor's largest value,
    /// and the same bits for every thread count.
    static func compare<S: NormScalar>(_ spec: LayerSpec, x: Tensor<S>, dy: Tensor<S>, gamma: Tensor<S>?, beta: Tensor<S>?,
                                       tolerance: Double, threadCounts: [Int], label: String) throws {
        let reference = try Normalization.computeForward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .train,
                                                          running: nil, threads: 1, allowFastPath: false)
        let referenceGrads = try Normalization.computeBackward(forward: reference, gamma: gamma, outputGradient: dy,
                                                               threads: 1, allowFastPath: false)
        var first: (ForwardResult<S>, Gradients<S>)? = nil
        for threads in threadCounts {
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
            let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: threads)
            let pairs: [(String, Tensor<S>?, Tensor<S>?)] = [
                ("y", fast.output, reference.output), ("xhat", fast.normalized, reference.normalized),
                ("var", fast.variance, reference.variance), ("dx", grads.dx, referenceGrads.dx),
                ("dgamma", grads.dgamma, referenceGrads.dgamma), ("dbeta", grads.dbeta, referenceGrads.dbeta),
            ]
            for (name, a, b) in pairs {
                guard let a, let b else { #expect((a == nil) == (b == nil), "\(label) \(name)"); continue }
                let scale = b.scalars.map { abs($0.asDouble) }.max() ?? 1
                let worst = zip(a.scalars, b.scalars).map { abs($0.asDouble - $1.asDouble) }.max() ?? 0
                #expect(worst <= tolerance * max(1, scale), "\(label) \(name): \(worst)")
            }
            if let (f, g) = first {
                #expect(f.output == fast.output && f.normalized == fast.normalized && f.variance == fast.variance,
                        "\(label): forward differs between \(threadCounts[0]) and \(threads) threads")
                #expect(g.dx == grads.dx && g.dgamma == grads.dgamma && g.dbeta == grads.dbeta,
                        "\(label): backward differs between \(threadCounts[0]) and \(threads) threads")
            } else {
                first = (fast, grads)
            }
        }
    }

    /// BatchNorm in eval mode: the fused map from the running statistics against the general path, per channel and
    /// per element, and the same bits for any thread count; on (N, C) and (N, C, 1, 1) per channel a sample's channels
    /// side by side (`StridedKernels.evalColumns`), and with more than 256 samples their sums in chunks of 256
    /// (`evalColumnsBackward`: three chunks, whole rows on one thread, spans of channels on two and three).
    @Test(arguments: [(Reduce.group, nil, [3, 40, 33]), (.channels, nil, [3, 40, 33]), (.group, 8, [3, 40, 33]),
                      (.channels, 4, [3, 40, 33]), (.group, nil, [37, 70]), (.group, nil, [5, 8, 1, 1]),
                      (.channels, nil, [37, 70]), (.group, nil, [700, 70])] as [(Reduce, Int?, [Int])])
    func batchNormEvalMatchesTheGeneralPath(_ reduce: Reduce, _ groups: Int?, _ dims: [Int]) throws {
        for affine in Affine.allCases {
            var spec = try LayerSpec(kind: .batchnorm)
            spec.groups = groups
            spec.reduce = reduce
            spec.affine = affine
            let shape = try Shape(dims)
            let x = Tensor<Double>.randn(shape, seed: 5).map { 1 + 3 * $0 }
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let gamma = plan.affineShape.map { Tensor<Double>.randn($0, seed: 7) }
            let beta = plan.affineShape.map { Tensor<Double>.randn($0, seed: 8) }
            let running = (Tensor<Double>.randn(plan.statsShape, seed: 9), Tensor<Double>.rand(plan.statsShape, seed: 10).map { 0.1 + $0 })
            let reference = try Normalization.computeForward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .eval,
                                                              running: running, threads: 1, allowFastPath: false)
            var outputs: [Tensor<Double>] = []
            var gradients: [[Tensor<Double>?]] = []
            for threads in [1, 2, 3] {
                let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .eval,
                                                     running: running, threads: threads)
                #expect(fast.mode == .eval)
                let worst = zip(fast.output.scalars, reference.output.scalars).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-12 * 10, "\(reduce) \(affine): \(worst)")
                let xhatWorst = zip(fast.normalized.scalars, reference.normalized.scalars).map { abs($0 - $1) }.max() ?? 0
                #expect(xhatWorst <= 1e-12 * 10, "\(reduce) \(affine) x̂: \(xhatWorst)")
                let dy = Tensor<Double>.randn(shape, seed: 11)
                let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: threads)
                let general = try Normalization.computeBackward(forward: reference, gamma: gamma, outputGradient: dy,
                                                                threads: 1, allowFastPath: false)
                for (name, a, b) in [("dx", grads.dx, general.dx), ("dgamma", grads.dgamma, general.dgamma), ("dbeta", grads.dbeta, general.dbeta)] {
                    guard let a, let b else { #expect((a == nil) == (b == nil), "\(name)"); continue }
                    let scale = max(1, b.scalars.map(abs).max() ?? 1)
                    let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
                    #expect(worst <= 1e-12 * scale, "\(reduce) \(affine) \(name): \(worst)")
                }
                outputs.append(fast.output)
                gradients.append([grads.dx, grads.dgamma, grads.dbeta])
            }
            #expect(outputs.allSatisfy { $0 == outputs[0] }, "\(reduce) \(affine): eval output differs between thread counts")
            #expect(gradients.allSatisfy { $0 == gradients[0] }, "\(reduce) \(affine): eval gradients differ between thread counts")
        }
    }

    @Test(arguments: Affine.allCases)
    func float64MatchesTheReference(_ affine: Affine) throws { try check(Double.self, tolerance: 1e-12, affine: affine) }

    @Test(arguments: Affine.allCases)
    func float32MatchesTheReference(_ affine: Affine) throws { try check(Float.self, tolerance: 1e-5, affine: affine) }

    /// Per-position statistics (reduce=channels, PyDLLib's GroupNorm) run on their own kernels.
    @Test(arguments: Affine.allCases)
    func perPositionStatisticsMatchTheReference(_ affine: Affine) throws {
        try check(Double.self, tolerance: 1e-12, affine: affine, reduce: .channels)
        try check(Float.self, tolerance: 1e-5, affine: affine, reduce: .channels)
    }

    /// Float32 values near 1e19 square past Float.greatestFiniteMagnitude in float32 lanes; those rows are summed
    /// again in Float64, so the statistics stay those of the general path.
    @Test func float32LanesThatWouldOverflow() throws {
        let shape = try Shape([2, 4, 40])
        let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 3).map { 1e19 * $0 }.converted()
        let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 4).map { 1e30 * $0 }.converted()
        let spec = try LayerSpec(kind: .groupnorm, groups: 2)
        let reference = try Normalization.computeForward(spec: spec, input: x, gamma: nil, beta: nil, mode: .train,
                                                          running: nil, threads: 1, allowFastPath: false)
        let referenceGrads = try Normalization.computeBackward(forward: reference, gamma: nil, outputGradient: dy,
                                                               threads: 1, allowFastPath: false)
        for threads in [1, 2] {
            let fast = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: threads)
            let grads = try Normalization.backward(forward: fast, gamma: nil, outputGradient: dy, threads: threads)
            #expect(fast.variance.scalars.allSatisfy { $0.isFinite })
            for (name, a, b) in [("var", fast.variance, reference.variance), ("y", fast.output, reference.output),
                                 ("dx", grads.dx, referenceGrads.dx)] {
                let scale = b.scalars.map { abs($0.asDouble) }.max() ?? 1
                let worst = zip(a.scalars, b.scalars).map { abs($0.asDouble - $1.asDouble) }.max() ?? 0
                #expect(worst <= 1e-5 * scale, "\(name): \(worst) against a scale of \(scale)")
            }
        }
    }

    /// Passes posted from many threads at once share one worker pool: each must still get its own, exact result.
    @Test func concurrentCallersGetTheirOwnResults() async throws {
        let spec = try LayerSpec(kind: .groupnorm, groups: 4)
        let shape = try Shape([4, 8, 33])
        let inputs: [Tensor<Float>] = (0..<6).map { Tensor<Double>.randn(shape, seed: UInt64(50 + $0)).converted() }
        let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 99).converted()
        let expected = try inputs.map { x in
            let f = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: 1)
            return (f.output, try Normalization.backward(forward: f, gamma: nil, outputGradient: dy, threads: 1).dx)
        }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for round in 0..<48 {
                let index = round % inputs.count
                let x = inputs[index], (y, dx) = expected[index]
                group.addTask {
                    for _ in 0..<20 {
                        let f = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: 2)
                        let g = try Normalization.backward(forward: f, gamma: nil, outputGradient: dy, threads: 2)
                        if f.output != y || g.dx != dx { return false }
                    }
                    return true
                }
            }
            for try await same in group { #expect(same) }
        }
    }

    /// Element-wise γ and β not given (ones and zeros): the element loops, with and without β (RMSNorm has none),
    /// against the general path, and the same bits on 1 and 2 threads (one group runs the rows path on 2 threads,
    /// the per-group path on 1).
    @Test func elementAffineWithoutGivenParameters() throws {
        for (kind, groups, dims) in [(LayerKind.groupnorm, 1, [3, 4, 37]), (.groupnorm, 4, [2, 8, 5, 7]),
                                     (.batchnorm, nil, [4, 3, 41]), (.rmsnorm, 2, [2, 4, 9])] {
            var spec = try LayerSpec(kind: kind, groups: groups)
            spec.affine = .element
            let shape = try Shape(dims)
            let x = Tensor<Double>.randn(shape, seed: 5).map { 1 + 3 * $0 }
            let dy = Tensor<Double>.randn(shape, seed: 6)
            let reference = try Normalization.computeForward(spec: spec, input: x, gamma: nil, beta: nil, mode: .train,
                                                              running: nil, threads: 1, allowFastPath: false)
            let referenceGrads = try Normalization.computeBackward(forward: reference, gamma: nil, outputGradient: dy,
                                                                   threads: 1, allowFastPath: false)
            var first: Gradients<Double>? = nil
            for threads in [1, 2] {
                let fast = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: threads)
                let grads = try Normalization.backward(forward: fast, gamma: nil, outputGradient: dy, threads: threads)
                let worstY = zip(fast.output.scalars, reference.output.scalars).map { abs($0 - $1) }.max() ?? 0
                let worstDx = zip(grads.dx.scalars, referenceGrads.dx.scalars).map { abs($0 - $1) }.max() ?? 0
                let worstDg = zip(grads.dgamma!.scalars, referenceGrads.dgamma!.scalars).map { abs($0 - $1) }.max() ?? 0
                #expect(worstY <= 1e-12 && worstDx <= 1e-12 && worstDg <= 1e-12, "\(kind) \(dims): \(worstY) \(worstDx) \(worstDg)")
                if let first {
                    #expect(first.dx == grads.dx && first.dgamma == grads.dgamma, "\(kind) \(dims): 1 and 2 threads differ")
                } else {
                    first = grads
                }
            }
        }
    }

    @Test func constantAndNonFiniteInputs() throws {
        let spec = try LayerSpec(kind: .groupnorm, groups: 2)
        let constant = Tensor<Float>.full(0.1, shape: try Shape([2, 4, 9]))
        let result = try Normalization.forward(spec: spec, input: constant, gamma: nil, beta: nil, threads: 2)
        #expect(result.normalized.scalars.allSatisfy { $0 == 0 })
        var values = Tensor<Double>.randn(try Shape([1, 4, 5]), seed: 1).scalars
        values[3] = .nan
        let nan = try Normalization.forward(spec: spec, input: Tensor(shape: Shape([1, 4, 5]), scalars: values), gamma: nil, beta: nil)
        #expect(nan.warnings == [.nonFiniteInput(count: 1)])
        #expect(nan.output.scalars[0].isNaN && !nan.output.scalars[10].isNaN)
    }

    /// BatchNorm per element and with grouped channels in float32: forward writes μ, σ², rstd and the unbiased σ² in
    /// float32 only (the kernel writes them; columns it runs in Float64 lanes go through a scratch buffer and are
    /// narrowed there); their Float64 forms, which backward in float32 does not read, are made when read — and are the
    /// ones the float32 values were rounded from. `huge`: position 5's values are scaled by 3e18 (σ² beyond 2¹²⁰), so
    /// the blocks or tiles holding it run in Float64 lanes.
    @Test func float32BatchNormKeepsNoFloat64Statistics() throws {
        var perElement = try LayerSpec(kind: .batchnorm)
        perElement.apply(.pydllib)
        var grouped = try LayerSpec(kind: .batchnorm)
        grouped.groups = 2
        grouped.reduce = .channels
        let cases = [(perElement, [8, 3, 29], false), (perElement, [11, 4, 9], false), (grouped, [5, 6, 37], false),
                     (perElement, [8, 3, 29], true), (grouped, [5, 6, 37], true)]
        for (spec, dims, huge) in cases {
            let shape = try Shape(dims)
            let positions = dims.last!
            var values = Tensor<Double>.randn(shape, seed: 51).map { 3 + $0 }.scalars
            for i in values.indices where huge && i % positions == 5 { values[i] *= 3e18 }
            let x: Tensor<Float> = Tensor(uncheckedShape: shape, scalars: values).converted()
            let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 52).converted()
            let fast = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: 2)
            #expect(!fast.statistics.isMade && fast.unbiasedVariance != nil, "\(dims)")
            let mean = fast.mean!, rstd = fast.rstd
            _ = try Normalization.backward(forward: fast, gamma: nil, outputGradient: dy, threads: 2)
            #expect(!fast.statistics.isMade, "\(dims): backward read the Float64 statistics")
            let exactMeans = fast.exactMeans, exactRstds = fast.exactRstds
            #expect(fast.statistics.isMade)
            #expect(exactMeans.map { Float($0) } == mean.scalars && exactRstds.map { Float($0) } == rstd.scalars, "\(dims)")
            let reference = try Normalization.computeForward(spec: spec, input: x, gamma: nil, beta: nil, mode: .train,
                                                              running: nil, threads: 1, allowFastPath: false)
            let worst = zip(fast.unbiasedVariance!.scalars, reference.unbiasedVariance!.scalars)
                .map { abs(Double($0) - Double($1)) / max(1e-30, abs(Double($1))) }.max() ?? 0
            #expect(worst <= 1e-5, "\(dims): unbiased variance off by \(worst) relative")
            if huge { #expect(fast.variance.scalars[5] > 0x1p120, "\(dims): position 5 is not out of range") }
        }
    }

    /// BatchNorm per channel on (N, C) (nn.BatchNorm1d) has a channel's column over the batch as its set, BatchNorm
    /// per element's, and runs on those column kernels (`LayerSpec.onKernels`; a float32 forward there keeps each
    /// column's constants for backward): every result, the unbiased variance for the running statistics included, as
    /// the general path's; the layer as declared, with its statistics' shape. (N, C, 1, 1) runs as (N, C).
    @Test(arguments: [[37, 21], [9, 6, 1, 1], [300, 130]])
    func batchNormOnTwoDimensionsRunsOnTheColumns(_ dims: [Int]) throws {
        for affine in Affine.allCases {
            var spec = try LayerSpec(kind: .batchnorm)
            spec.affine = affine
            let shape = try Shape(dims)
            let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 61).map { 2 + 3 * $0 }.converted()
            let dy: Tensor<Float> = Tensor<Double>.randn(shape, seed: 62).converted()
            let plan = try NormPlan(spec: spec, inputShape: shape)
            let gamma: Tensor<Float>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 63).converted() }
            let beta: Tensor<Float>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 64).converted() }
            let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: 2)
            #expect(fast.keptColumnConstants != nil, "\(affine): not on the column kernels")
            #expect(fast.spec == spec && fast.mean?.shape.dims == [dims[1]] && fast.plan == plan, "\(affine)")
            let grads = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: 2)
            let reference = try Normalization.computeForward(spec: spec, input: x, gamma: gamma, beta: beta, mode: .train,
                                                              running: nil, threads: 1, allowFastPath: false)
            let referenceGrads = try Normalization.computeBackward(forward: reference, gamma: gamma, outputGradient: dy,
                                                                   threads: 1, allowFastPath: false)
            let pairs: [(String, Tensor<Float>?, Tensor<Float>?)] = [
                ("y", fast.output, reference.output), ("xhat", fast.normalized, reference.normalized),
                ("mean", fast.mean, reference.mean), ("var", fast.variance, reference.variance),
                ("unbiased", fast.unbiasedVariance, reference.unbiasedVariance), ("dx", grads.dx, referenceGrads.dx),
                ("dgamma", grads.dgamma, referenceGrads.dgamma), ("dbeta", grads.dbeta, referenceGrads.dbeta),
            ]
            for (name, a, b) in pairs {
                guard let a, let b else { #expect((a == nil) == (b == nil), "\(affine) \(name)"); continue }
                let scale = b.scalars.map { abs(Double($0)) }.max() ?? 1
                let worst = zip(a.scalars, b.scalars).map { abs(Double($0) - Double($1)) }.max() ?? 0
                #expect(a.shape == b.shape && worst <= 1e-5 * max(1, scale), "\(affine) \(name): \(worst)")
            }
            // 300 samples on 2 or 3 threads run in narrower tiles (two a thread): the same bits.
            for threads in [1, 3] {
                let other = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
                let otherGrads = try Normalization.backward(forward: other, gamma: gamma, outputGradient: dy, threads: threads)
                #expect(other.output == fast.output && other.unbiasedVariance == fast.unbiasedVariance
                        && otherGrads.dx == grads.dx && otherGrads.dgamma == grads.dgamma && otherGrads.dbeta == grads.dbeta,
                        "\(dims) \(affine): \(threads) threads and 2 differ")
            }
        }
    }

    /// Per-position statistics are half as many values as the input: a pass does not make them until something reads
    /// them, backward does not need them, and when they are made they are the ones the pass normalised with.
    @Test func perPositionStatisticsAreMadeWhenRead() throws {
        var spec = try LayerSpec(kind: .groupnorm, groups: 2)
        spec.apply(.pydllib)
        let shape = try Shape([2, 6, 5, 7])  // three channels per group
        let x = Tensor<Double>.randn(shape, seed: 3).map { 10 + $0 }
        let dy = Tensor<Double>.randn(shape, seed: 4)
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let gamma = Tensor<Double>.randn(plan.affineShape!, seed: 5)
        let fast = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: nil, threads: 2)
        #expect(!fast.statistics.isMade)
        _ = try Normalization.backward(forward: fast, gamma: gamma, outputGradient: dy, threads: 2)
        #expect(!fast.statistics.isMade)
        let reference = try Normalization.computeForward(spec: spec, input: x, gamma: gamma, beta: nil, mode: .train,
                                                          running: nil, threads: 1, allowFastPath: false)
        // Bit for bit: μ = Σx / m in row order, as NumPy sums over an axis (what tutorial 10 compares bitwise).
        #expect(fast.mean == reference.mean && fast.variance == reference.variance && fast.rstd == reference.rstd)
        #expect(fast.statistics.isMade)
        // A constant position gets its value as the mean exactly, and variance 0.
        var values = x.scalars
        for n in 0..<2 { for c in 0..<3 { values[(n * 6 + c) * 35 + 6] = 0.1 } }
        let constant = Tensor(uncheckedShape: shape, scalars: values)
        let flat = try Normalization.forward(spec: spec, input: constant, gamma: gamma, beta: nil, threads: 1)
        #expect(flat.mean!.scalars[6] == 0.1 && flat.variance.scalars[6] == 0)
        #expect(flat.normalized.scalars[6] == 0 && flat.normalized.scalars[35 + 6] == 0)
    }
}
