#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

public enum TimedStep: String, Equatable, Sendable, CaseIterable {
    case forward, backward, step
}

/// `time forward|backward|step [runs=K]`, like IPython's %timeit: a warm-up, K timed runs, the median, min and
/// max, and the effective bandwidth (the bytes that must move ÷ the median). The session is not changed.
struct Time: Command, Equatable {
    static let maxRuns = 10_000

    static let help = CommandHelp(
        name: "time", usage: ["time forward|backward|step [runs=K]"],
        summary: "time the layer on the last forward's input: median, min, max and bandwidth",
        details: """
        Like IPython's %timeit: one warm-up run, then K timed runs (by default as many as fit in about a second,
        at most \(maxRuns)). step is forward then backward. The effective bandwidth is the
        bytes that must move (forward: read x, write y; backward: read dy and x̂, write dx) divided by the median.
        Uses `set threads`; the session is not changed. Ctrl-C stops it.
        """,
        examples: ["time step", "time forward runs=50"])

    let what: TimedStep
    let runs: Int?

    init(_ what: TimedStep, runs: Int? = nil) {
        self.what = what
        self.runs = runs
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        what = TimedStep(rawValue: try cursor.keyword(TimedStep.allCases.map(\.rawValue), "forward, backward or step").text)!
        var runs: Int? = nil
        for (key, value) in try cursor.options() {
            guard key.text == "runs" else { throw cursor.error("unknown option \(cursor.describe(key)); the option is runs=K", at: key) }
            guard let n = Int(value.text), n >= 1, n <= Self.maxRuns else {
                throw cursor.error("runs must be a whole number from 1 to \(Self.maxRuns), got \(cursor.describe(value))", at: value)
            }
            runs = n
        }
        self.runs = runs
    }

    func run(in context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        // The last input as it is: no widened copies of the pass (a timing must not pay for bookkeeping).
        guard let input = layer.lastInput else {
            throw Diagnostic("time needs a forward pass first: run forward (it times the layer on the same input)")
        }
        let shape = input.shape
        let threads = context.settings.threads
        let dy = AnyTensor.float64(.randn(shape, seed: Backward.defaultSeed))
        let run: () throws -> Void
        switch layer {
        case .float32(let l):
            run = try Self.timedRun(what, layer: l, x: input.tensor(as: Float.self), dy: dy.tensor(as: Float.self), threads: threads)
        case .float64(let l):
            run = try Self.timedRun(what, layer: l, x: input.tensor(as: Double.self), dy: dy.tensor(as: Double.self), threads: threads)
        }
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        try run()  // warm-up
        let first = seconds(try clock.measure(run))
        let count = runs ?? max(3, min(Self.maxRuns, Int(1.0 / max(first, 1e-7))))
        var samples: [Double] = []
        samples.reserveCapacity(count)
        for done in 0..<count {
            if context.interpreter.isCancelled() {
                throw NormError(.interrupted, "time stopped after \(done) of \(count) runs")
            }
            samples.append(seconds(try clock.measure(run)))
        }
        samples.sort()
        let median = samples[samples.count / 2]
        let elements = Double(shape.count)
        let size = Double(layer.dtype.memoryBytes)  // float16 and bfloat16 move as Float
        // What must move at least: forward reads x and writes y; backward reads dy and x (x̂ is recomputed) and writes dx.
        let passes: Double = what == .forward ? 2 : (what == .backward ? 3 : 5)
        let bandwidth = passes * elements * size / median / 1e9
        let ms = { (s: Double) in String(printf: "%.3f", s * 1e3) }
        return Report([
            .text("time \(what): \(layer.spec.kind.displayName) on \(shape) \(layer.dtype), \(plural(threads, "thread", "threads")): \(count) runs after a warm-up"),
            .text("  median \(ms(median)) ms, min \(ms(samples.first!)) ms, max \(ms(samples.last!)) ms; \(String(printf: "%.2f", bandwidth)) GB/s effective (\(Int(passes)) × \(Int(elements)) × \(Int(size)) bytes / median)"),
        ])
    }

    // Specialised: a generic caller would run NormKit's generic entry points, not its Float and Double passes.
    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func timedRun<S: NormScalar>(_ what: TimedStep, layer: NormLayer<S>, x: Tensor<S>, dy: Tensor<S>, threads: Int) throws -> () throws -> Void {
        // Each run works on a copy of the layer, so the session's is left as it was. The copies start with no
        // gradient, as a training step after zero_grad does: with the session's .grad in them (storage they share),
        // each backward would first copy it to add into it — a copy no backward in a session makes (element-wise γ:
        // a sample's size, twice).
        var base = layer
        base.zeroGrad()
        var probe = base
        try probe.forward(x, threads: threads)
        switch what {
        case .forward:
            return {
                var copy = base
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
                var copy = base
                try copy.forward(x, threads: threads)
                try copy.backward(dy, threads: threads)
            }
        }
    }
}
