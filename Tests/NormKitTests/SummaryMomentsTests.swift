@testable import NormKit
import Testing

/// A summary line's numbers: one pass against a plain two-pass computation, and the kernels' set-by-set sums of y
/// against a pass over y after the kernel.
@Suite struct SummaryMomentsTests {
    @Test func onePassMatchesTwoPass() {
        var generator = SystemRandomNumberGenerator()
        let sets: [[Double]] = [
            (0..<1001).map { _ in Double.random(in: -1...1, using: &generator) },
            (0..<999).map { _ in 1e6 + Double.random(in: -1e-3...1e-3, using: &generator) },
            [1e8] + [Double](repeating: 0, count: 17),
            [3], [2, 2, 2, 2, 2],
        ]
        for values in sets {
            let got = values.withUnsafeBufferPointer { SummaryMoments($0) }
            let mean = values.reduce(0, +) / Double(values.count)
            let squares = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +)
            #expect(got.count == values.count)
            #expect(abs(got.sum / Double(values.count) - mean) <= 1e-12 * max(1, abs(mean)), "\(values.prefix(3))")
            #expect(abs(got.squares - squares) <= 1e-9 * max(squares, 1e-300) + 1e-300, "\(values.prefix(3)): \(got.squares) vs \(squares)")
            #expect(got.low == values.min() && got.high == values.max())
        }
        // In parts on threads: the same numbers for any thread count, and close to the single pass.
        let big = (0..<(1 << 20) + 5).map { Float($0 % 1000) * 1e-3 + 5 }
        let one = big.withUnsafeBufferPointer { SummaryMoments($0) }
        let byThreads = [1, 2, 3].map { t in big.withUnsafeBufferPointer { SummaryMoments.of($0, threads: t) } }
        #expect(byThreads.allSatisfy { $0.sum.bitPattern == byThreads[0].sum.bitPattern && $0.squares.bitPattern == byThreads[0].squares.bitPattern })
        #expect(abs(byThreads[0].squares - one.squares) <= 1e-9 * one.squares && byThreads[0].low == 5 && byThreads[0].high == Double(Float(0.999) + 5))
        let withNaN: [Float] = [1, 2, .nan, 4, 5]
        #expect(!withNaN.withUnsafeBufferPointer { SummaryMoments($0) }.isFinite)
        #expect([Float]().withUnsafeBufferPointer { SummaryMoments($0) } == .empty)
    }

    /// Float32 values against a Float64 two-pass computation, to Float64's rounding (and its cancellation): a summary shows its numbers to
    /// four decimals (seven digits for a std of 900), so sums in Float32 lanes — tried, and 2 of 192 logged summaries
    /// moved a shown digit — would not do. Data that would trip such sums: far from zero, a first value (the shift)
    /// far from the rest, the first 32 values far from the rest, a mean cancelling almost to zero, lengths off an
    /// 8- or 32-element step, spreads that underflow or overflow Float32 squares.
    @Test func float32SummariesKeepTheirDigits() throws {
        var generator = SystemRandomNumberGenerator()
        func noisy(_ count: Int, _ centre: Double, _ spread: Double) -> [Float] {
            (0..<count).map { _ in Float(centre + spread * Double.random(in: -1...1, using: &generator)) }
        }
        let symmetric = noisy(3000, 0, 1e-2)
        let sets: [(String, [Float])] = [
            ("unit", noisy(6272, 0, 3)), ("offset", noisy(1000, 1e3, 1)),
            ("far first value", [1000] + noisy(4099, 1.1, 1e-2)), ("odd length", noisy(161, -5, 0.5)),
            ("far first 32", [Float](repeating: 1000, count: 32) + noisy(4000, 1.1, 1e-2)),
            ("mean near zero", symmetric + symmetric.map { -$0 } + [1e-7]),
            ("integers", (0..<4096).map { Float($0 % 97) }), ("constant", [Float](repeating: 2.5, count: 300)),
            ("short", noisy(31, 1, 1)), ("tiny", noisy(3000, 0, 1e-20)), ("huge", noisy(3000, 0, 1e25)),
        ]
        for (label, values) in sets {
            let got = values.withUnsafeBufferPointer { SummaryMoments($0) }
            let exact = values.map(Double.init)
            let n = Double(exact.count), mean = exact.reduce(0, +) / n
            let squares = exact.map { ($0 - mean) * ($0 - mean) }.reduce(0, +)
            let largest = exact.map(abs).max()!
            #expect(abs(got.sum / n - mean) <= 1e-13 * largest, "\(label): mean \(got.sum / n) against \(mean)")
            // Σ(x − x₀)² − n·(x̄ − x₀)² cancels up to 4,000-fold in "far first value": 1e-10, not 1e-12.
            #expect(abs(got.squares - squares) <= 1e-10 * squares, "\(label): \(got.squares) against \(squares)")
            #expect(got.low == exact.min() && got.high == exact.max(), "\(label)")
        }
    }

    /// (kind, preset, groups, shape, storage, element-wise γ and β): the row kernels (GroupNorm, BatchNorm per channel,
    /// LayerNorm over the last dim; rows past 1,024 elements; element-wise γ, β over a set's run or BatchNorm's rows),
    /// the column kernels (PyDLLib's per-position sets and BatchNorm per element, several tiles), float16 rounded by
    /// the row kernel and after the column kernel.
    static let cases: [(LayerKind, Preset, Int?, [Int], DType?, Bool)] = [
        (.groupnorm, .torch, 4, [3, 8, 17, 19], nil, false), (.batchnorm, .torch, nil, [4, 6, 300], nil, false),
        (.layernorm, .torch, nil, [2, 5, 7, 40], nil, false), (.instancenorm, .torch, nil, [2, 3, 1000], nil, false),
        (.groupnorm, .pydllib, 2, [2, 4, 23, 13], nil, false), (.batchnorm, .pydllib, nil, [3, 9, 17, 15], nil, false),
        (.groupnorm, .torch, 2, [2, 4, 300], .float16, false), (.groupnorm, .pydllib, 2, [2, 4, 300], .float16, false),
        (.layernorm, .torch, nil, [2, 3, 40, 30], nil, false), (.groupnorm, .torch, 2, [2, 4, 33, 33], nil, false),
        (.groupnorm, .torch, 2, [2, 4, 1100], .float16, false),
        (.layernorm, .torch, nil, [3, 4, 9, 11], nil, true), (.batchnorm, .torch, nil, [5, 3, 7, 9], nil, true),
    ]

    @Test func kernelsSumYSetBySet() throws {
        for (i, (kind, preset, groups, dims, storage, elementwise)) in Self.cases.enumerated() {
            var spec = try LayerSpec(kind: kind, groups: groups, preset: preset)
            if elementwise { spec.affine = .element }
            let shape = try Shape(dims)
            for type in [DType.float32, .float64] where storage == nil || type == .float32 {
                func run<S: NormScalar>(_: S.Type) throws {
                    let x: Tensor<S> = Tensor<Double>.randn(shape, seed: UInt64(i)).map { 3 + 2 * $0 }.converted()
                    let plan = try NormPlan(spec: spec, inputShape: shape)
                    let gamma: Tensor<S>? = plan.affineShape.map { Tensor<Double>.randn($0, seed: 7).converted() }
                    let beta: Tensor<S>? = spec.bias ? plan.affineShape.map { Tensor<Double>.randn($0, seed: 8).converted() } : nil
                    var first: SummaryMoments? = nil
                    for threads in [1, 2, 3] {
                        let pass = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads,
                                                             storage: storage, summarizing: true)
                        let plain = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads,
                                                              storage: storage)
                        #expect(plain.outputMoments == nil, "asked for nothing, \(kind) \(dims)")
                        let label = "\(kind) \(spec.affine) \(preset) \(dims) \(S.dtype) storage \(storage.map(\.description) ?? "-"), \(threads) threads"
                        if storage != nil && preset == .pydllib {
                            // Rounded after the kernel: nothing summed on the way can describe the stored y.
                            #expect(pass.outputMoments == nil, "\(label)")
                            continue
                        }
                        let fused = try #require(pass.outputMoments, "\(label)")
                        let after = pass.output.scalars.withUnsafeBufferPointer { SummaryMoments.of($0, threads: 1) }
                        #expect(fused.count == x.count && fused.low == after.low && fused.high == after.high, "\(label)")
                        #expect(abs(fused.sum - after.sum) <= 1e-12 * Double(x.count) * max(abs(after.low), abs(after.high)), "\(label)")
                        #expect(abs(fused.squares - after.squares) <= 1e-12 * after.squares, "\(label)")
                        if let first {
                            #expect(first.sum.bitPattern == fused.sum.bitPattern && first.squares.bitPattern == fused.squares.bitPattern,
                                    "\(label): not the same bits as on 1 thread")
                        } else {
                            first = fused
                        }
                    }
                }
                if type == .float32 { try run(Float.self) } else { try run(Double.self) }
            }
        }
    }

    /// BatchNorm in eval mode sums y row by row; a finite y then stands for a finite x (NaN and ±∞ reach y through
    /// (x − μ)·scale + offset), and otherwise x is counted — on one thread or in parts on several.
    @Test func evalModeSummaryAndNonFiniteInput() throws {
        let spec = try LayerSpec(kind: .batchnorm)
        let shape = try Shape([4, 3, 90_000])  // over a million elements: the check for NaN runs in parts
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let running = (Tensor<Float>.randn(plan.statsShape, seed: 9), Tensor<Float>.rand(plan.statsShape, seed: 10).map { 0.1 + $0 })
        var x = Tensor<Float>.randn(shape, seed: 3)
        for threads in [1, 2] {
            let pass = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, mode: .eval, running: running,
                                                 threads: threads, summarizing: true)
            let after = pass.output.scalars.withUnsafeBufferPointer { SummaryMoments.of($0, threads: 1) }
            let fused = try #require(pass.outputMoments)
            #expect(fused.low == after.low && fused.high == after.high && abs(fused.squares - after.squares) <= 1e-12 * after.squares)
            #expect(pass.warnings.isEmpty)
        }
        var values = x.scalars
        values[1_000_001] = .nan
        values[7] = -.infinity
        x = Tensor(uncheckedShape: shape, scalars: values)
        for threads in [1, 2] {
            for summarizing in [false, true] {
                let pass = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, mode: .eval, running: running,
                                                     threads: threads, summarizing: summarizing)
                #expect(pass.warnings == [.nonFiniteInput(count: 2)], "\(threads) threads, summarizing \(summarizing)")
            }
        }
    }

    /// Sets too short for a call each are summarised after the kernel.
    @Test func shortSetsAreLeftToThePassAfter() throws {
        let spec = try LayerSpec(kind: .groupnorm, groups: 2)
        let x = Tensor<Double>.randn(try Shape([2, 4, 3, 3]), seed: 1)
        let pass = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, summarizing: true)
        #expect(pass.outputMoments == nil)
    }
}
