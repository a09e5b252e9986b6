import Foundation
import NormKit

public enum TimedStep: String, Equatable, Sendable, CaseIterable {
    case forward, backward, step
}

/// `time forward|backward|step [runs=K]`, like IPython's %timeit: a warm-up, K timed runs, the median, min and
/// max, and the effective bandwidth (the bytes that must move ÷ the median). The session is not changed.
extension Interpreter {
    public static let maxTimedRuns = 10_000

    func time(_ what: TimedStep, runs requested: Int?) throws {
        let layer = try currentLayer()
        // The last input as it is: no widened copies of the pass (a timing must not pay for bookkeeping).
        guard let input = layer.lastInput else {
            throw Diagnostic("time needs a forward pass first: run forward (it times the layer on the same input)")
        }
        let shape = input.shape
        let threads = session.settings.threads
        let dy = AnyTensor.float64(.randn(shape, seed: Self.defaultUpstreamSeed))
        let run: () throws -> Void
        switch layer {
        case .float32(let l):
            let x = input.tensor(as: Float.self), g = dy.tensor(as: Float.self)
            run = try Self.timedRun(what, layer: l, x: x, dy: g, threads: threads)
        case .float64(let l):
            let x = input.tensor(as: Double.self), g = dy.tensor(as: Double.self)
            run = try Self.timedRun(what, layer: l, x: x, dy: g, threads: threads)
        }
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        try run()  // warm-up
        let first = seconds(try clock.measure(run))
        let runs = requested ?? max(3, min(Self.maxTimedRuns, Int(1.0 / max(first, 1e-7))))
        var samples: [Double] = []
        samples.reserveCapacity(runs)
        for done in 0..<runs {
            if isCancelled() {
                throw NormError(.interrupted, "time stopped after \(done) of \(runs) runs")
            }
            samples.append(seconds(try clock.measure(run)))
        }
        samples.sort()
        let median = samples[samples.count / 2]
        let elements = Double(shape.count)
        let size = Double(layer.dtype.byteSize)
        // What must move at least: forward reads x and writes y; backward reads dy and x (x̂ is recomputed) and writes dx.
        let passes: Double = what == .forward ? 2 : (what == .backward ? 3 : 5)
        let bandwidth = passes * elements * size / median / 1e9
        let ms = { (s: Double) in String(format: "%.3f", s * 1e3) }
        out("time \(what): \(layer.spec.kind.displayName) on \(shape) \(layer.dtype), \(plural(threads, "thread", "threads")): \(runs) runs after a warm-up")
        out("  median \(ms(median)) ms, min \(ms(samples.first!)) ms, max \(ms(samples.last!)) ms; \(String(format: "%.2f", bandwidth)) GB/s effective (\(Int(passes)) × \(Int(elements)) × \(Int(size)) bytes / median)")
    }

    static func timedRun<S: NormScalar>(_ what: TimedStep, layer: NormLayer<S>, x: Tensor<S>, dy: Tensor<S>, threads: Int) throws -> () throws -> Void {
        var probe = layer
        try probe.forward(x, threads: threads)
        switch what {
        case .forward:
            return {
                var copy = layer
                try copy.forward(x, threads: threads)
            }
        case .backward:
            let prepared = probe
            return {
                var copy = prepared
                try copy.backward(dy, threads: threads)
            }
        case .step:
            return {
                var copy = layer
                try copy.forward(x, threads: threads)
                try copy.backward(dy, threads: threads)
            }
        }
    }
}
