@testable import NormKit
import Testing

/// The check for NaN and ±∞ (`Normalization.hasNonFinite`, on the bits in C) and BatchNorm eval's use of it row by
/// row on y: it must find every kind of non-finite value at every place, and never a finite one.
@Suite struct NonFiniteCheckTests {
    static func check<T: NormScalar>(_ values: [T]) -> Bool {
        values.withUnsafeBufferPointer { Normalization.hasNonFinite($0) }
    }

    @Test func everyNonFiniteValueIsFoundAnywhere() {
        for count in [1, 2, 7, 8, 9, 31, 64, 1000] {
            let finite: [Float] = (0..<count).map { i in
                [Float.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0, 1.5][i % 5]
            }
            #expect(!Self.check(finite), "\(count) finite Floats")
            #expect(!Self.check(finite.map(Double.init)), "\(count) finite Doubles")
            #expect(!Self.check([Double.greatestFiniteMagnitude, -.leastNonzeroMagnitude]))
            for position in Set([0, count / 2, count - 1]) {
                for bad in [Float.nan, .infinity, -.infinity, Float(bitPattern: 0x7f80_0001), Float(bitPattern: 0xffc0_0000)] {
                    var values = finite
                    values[position] = bad
                    #expect(Self.check(values), "\(bad) at \(position) of \(count) Floats")
                    var doubles = finite.map(Double.init)
                    doubles[position] = Double(bad)
                    #expect(Self.check(doubles), "\(bad) at \(position) of \(count) Doubles")
                }
            }
        }
    }

    /// BatchNorm in eval mode without the summary checks each row of y as it writes it: a NaN or ∞ in x is still
    /// counted (per channel and with element-wise γ, float32 and float64, one thread and three), and a finite x is not
    /// accused even where y overflows.
    @Test(arguments: [Affine.channel, .element])
    func evalCountsTheInputsNonFiniteValues(_ affine: Affine) throws {
        var spec = try LayerSpec(kind: .batchnorm)
        spec.affine = affine
        let shape = try Shape([3, 4, 17, 19])  // rows of 323, past the summary's shortest
        let plan = try NormPlan(spec: spec, inputShape: shape)
        var values = (0..<shape.count).map { Float(($0 * 37) % 101) / 25 - 2 }
        values[5] = .nan
        values[2 * 323 + 7] = .infinity
        values[shape.count - 1] = -.infinity
        let running = (Tensor<Float>.zeros(plan.statsShape), Tensor<Float>.ones(plan.statsShape))
        let gamma = plan.affineShape.map { Tensor<Float>.ones($0) }, beta = plan.affineShape.map { Tensor<Float>.zeros($0) }
        for threads in [1, 3] {
            let bad = try Normalization.forward(spec: spec, input: try Tensor(shape: shape, scalars: values), gamma: gamma,
                                                beta: beta, mode: .eval, running: running, threads: threads)
            #expect(bad.warnings.contains(.nonFiniteInput(count: 3)), "\(affine), \(threads) threads: \(bad.warnings)")
            let doubles = try Normalization.forward(
                spec: spec, input: try Tensor(shape: shape, scalars: values.map(Double.init)), gamma: gamma.map { $0.converted(to: Double.self) },
                beta: beta.map { $0.converted(to: Double.self) }, mode: .eval,
                running: (running.0.converted(to: Double.self), running.1.converted(to: Double.self)), threads: threads)
            #expect(doubles.warnings.contains(.nonFiniteInput(count: 3)), "float64 \(affine): \(doubles.warnings)")
            // Finite x, y past float32's range (γ of 3·10³⁸ on |x̂| up to 2): nothing to say about x.
            let huge = plan.affineShape.map { Tensor<Float>(uncheckedShape: $0, scalars: [Float](repeating: 3e38, count: $0.count)) }
            let finite = values.map { $0.isFinite ? $0 : 1.9 }
            let overflowing = try Normalization.forward(spec: spec, input: try Tensor(shape: shape, scalars: finite), gamma: huge,
                                                        beta: beta, mode: .eval, running: running, threads: threads)
            let yOverflows = overflowing.output.scalars.contains { !$0.isFinite }
            #expect(yOverflows, "the case must overflow y")
            #expect(!overflowing.warnings.contains { if case .nonFiniteInput = $0 { true } else { false } })
        }
    }
}
