import Dispatch
import Foundation
import NormKit
import CMemoryTuning
import NormKitAVX2
import NormLabCore

// NormLab's benchmark: GroupNorm forward and forward+backward in float32, 1 and 2 threads, side by side with a
// plain NumPy implementation and PyTorch's F.group_norm (when importable) measured in the same run.
// Usage: swift run -c release normlab-bench [runs]

normlab_keep_large_blocks()  // as normlab itself does
NormKitAVX2.install()

// `normlab-bench loop forward|step ITERATIONS [THREADS [N C H W G | FORM]]`: one GroupNorm shape in float32 (default
// (8,64,56,56) G=32), or one form of `layers` by name, in a loop and nothing else, for a profiler
// (perf record .build/release/normlab-bench loop step 2000 1 "batchnorm affine=element").
if CommandLine.arguments.count > 2, CommandLine.arguments[1] == "loop" {
    let arguments = CommandLine.arguments
    let iterations = arguments.count > 3 ? Int(arguments[3]) ?? 1000 : 1000
    let threads = arguments.count > 4 ? Int(arguments[4]) ?? 1 : 1
    let withBackward = CommandLine.arguments[2] == "step"
    // A form of `normlab-bench layers` by its whole name: loop step 2000 1 "batchnorm affine=element".
    if arguments.count == 6, Int(arguments[5]) == nil {
        guard let form = try LayerBenchmark.forms().first(where: { $0.name == arguments[5] }) else {
            fatalError("no layers form named \(arguments[5]): \((try? LayerBenchmark.forms().map(\.name)) ?? [])")
        }
        let prepared = try LayerBenchmark.Prepared(form)
        for _ in 0..<iterations {
            if withBackward { try prepared.step(threads: threads) } else { _ = try prepared.forward(threads: threads) }
        }
        exit(0)
    }
    let numbers = arguments.count > 9 ? arguments[5...9].compactMap { Int($0) } : [8, 64, 56, 56, 32]
    guard numbers.count == 5 else { fatalError("usage: normlab-bench loop forward|step ITERATIONS [THREADS [N C H W G | FORM]]") }
    let shape = try Shape(Array(numbers[0..<4]))
    let spec = try LayerSpec(kind: .groupnorm, groups: numbers[4])
    let x = Tensor<Float>.randn(shape, seed: 0), dy = Tensor<Float>.randn(shape, seed: 1)
    let gamma = Tensor<Float>.ones(try Shape([numbers[1]])), beta = Tensor<Float>.zeros(try Shape([numbers[1]]))
    for _ in 0..<iterations {
        let result = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
        if withBackward { _ = try Normalization.backward(forward: result, gamma: gamma, outputGradient: dy, threads: threads) }
    }
    exit(0)
}
/// `normlab -c quit` from the normlab binary beside this one, median of 21: the process, the runtime, the flags
/// and a fresh session — what a user waits for before the prompt. Prints nothing when normlab is not built.
func measureStartup() {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("normlab")
    guard FileManager.default.fileExists(atPath: binary.path) else { return }
    let clock = ContinuousClock()
    // posix_spawn + waitpid: Foundation's Process adds tens of milliseconds of its own on Linux.
    var samples: [Double] = []
    for _ in 0..<21 {
        var arguments: [UnsafeMutablePointer<CChar>?] = [strdup(binary.path), strdup("-c"), strdup("quit"), nil]
        defer { for pointer in arguments { free(pointer) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let t = clock.measure {
            var pid: pid_t = 0
            if posix_spawn(&pid, binary.path, &actions, nil, &arguments, environ) == 0 {
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
        samples.append(Double(t.components.seconds) + Double(t.components.attoseconds) * 1e-18)
    }
    samples.sort()
    print(String(format: "\nstart-up (normlab -c quit, median of 21): %.1f ms", samples[samples.count / 2] * 1e3))
}

// `normlab-bench startup`: the start-up measurement alone.
if CommandLine.arguments.count == 2, CommandLine.arguments[1] == "startup" {
    measureStartup()
    exit(0)
}
let runs = CommandLine.arguments.count > 1 ? max(10, Int(CommandLine.arguments[1]) ?? 20) : 20
let shapes: [([Int], Int)] = [([8, 64, 56, 56], 32), ([32, 256, 14, 14], 32), ([1, 32, 128, 128], 8)]
let clock = ContinuousClock()
// `normlab-bench layers [runs] [name]`: every layer form (or those whose name contains `name`) against PyTorch's
// (Layers.swift).
if CommandLine.arguments.count >= 2, CommandLine.arguments[1] == "layers" {
    let arguments = CommandLine.arguments
    try LayerBenchmark.run(runs: arguments.count > 2 ? max(5, Int(arguments[2]) ?? 20) : 20,
                           only: arguments.count > 3 ? arguments[3] : nil)
    exit(0)
}

// `normlab-bench formats [runs]`: float16 and bfloat16 storage against float32, interleaved (Layers.swift).
if CommandLine.arguments.count >= 2, CommandLine.arguments[1] == "formats" {
    try FormatBenchmark.run(runs: CommandLine.arguments.count > 2 ? max(5, Int(CommandLine.arguments[2]) ?? 30) : 30)
    exit(0)
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

func median(_ samples: [Double]) -> Double { samples.sorted()[samples.count / 2] }

/// A copy with ordinary SIMD loads and stores, as the kernels write (glibc's memcpy switches to non-temporal stores
/// above a size threshold, so its speed would change with the number of threads that split the copy).
@inline(never)
func copy(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, _ count: Int) {
    var i = 0
    while i + 16 <= count {
        UnsafeMutableRawPointer(target + i).storeBytes(of: UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<Float>.self),
                                                       as: SIMD16<Float>.self)
        i += 16
    }
    while i < count {
        target[i] = source[i]
        i += 1
    }
}

/// Copy bandwidth over the working set of a forward + backward pass: copy x → y and dy → dx, four tensors of
/// `count` floats, as the passes touch them (a copy of one tensor alone would stay in the last-level cache and
/// measure that cache, not the memory the passes stream from), split over `threads` threads as the kernels split
/// their work. Bytes read plus bytes written per second.
func copyBandwidth(count: Int, threads: Int) -> Double {
    let x = UnsafeMutablePointer<Float>.allocate(capacity: count), dy = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: count), dx = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { x.deallocate(); dy.deallocate(); y.deallocate(); dx.deallocate() }
    for p in [x, dy, y, dx] { p.initialize(repeating: 1, count: count) }
    nonisolated(unsafe) let (sx, sdy, sy, sdx) = (x, dy, y, dx)
    var samples: [Double] = []
    for _ in 0..<(runs + 1) {
        let t = clock.measure {
            KernelThreads.run(chunks: threads, threads: threads) { chunk in
                let lower = count * chunk / threads, upper = count * (chunk + 1) / threads
                copy(sx + lower, sy + lower, upper - lower)
                copy(sdy + lower, sdx + lower, upper - lower)
            }
        }
        samples.append(seconds(t))
    }
    return Double(2 * 2 * count * 4) / median(Array(samples.dropFirst()))
}

func python(_ arguments: [String]) -> [String: Any]? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
}

let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("compare.py").path

// The machine is noisy and its state drifts over seconds: every measurement (NormLab, NumPy, PyTorch, the copy)
// is repeated in `repeats` rounds spread over the run, and the table shows the median of the rounds' medians.
let repeats = 3
struct Measured {
    var forward: [Int: [Double]] = [1: [], 2: []], step: [Int: [Double]] = [1: [], 2: []]
    var numpy: [Int: [Double]] = [1: [], 2: []], torch: [Int: [Double]] = [1: [], 2: []]
    var torchForward: [Int: [Double]] = [1: [], 2: []]
    var bandwidth: [Int: [Double]] = [1: [], 2: []]
}
var measured = [Measured](repeating: Measured(), count: shapes.count)
var torchVersion: String? = nil  // compare.py reports it with its timings
for _ in 0..<repeats {
    for (index, (dims, groups)) in shapes.enumerated() {
        let shape = try Shape(dims)
        let spec = try LayerSpec(kind: .groupnorm, groups: groups)
        let x = Tensor<Float>.randn(shape, seed: 0)
        let dy = Tensor<Float>.randn(shape, seed: 1)
        let gamma = Tensor<Float>.ones(try Shape([dims[1]])), beta = Tensor<Float>.zeros(try Shape([dims[1]]))
        // Interleave thread counts (A B A B): back-to-back runs on this machine exaggerate speed-ups.
        var forward: [Int: [Double]] = [1: [], 2: []], step: [Int: [Double]] = [1: [], 2: []]
        for round in 0...runs {
            for threads in [1, 2] {
                // Each round's results are released before the next, as in the REPL (and as PyTorch frees its own).
                var result: ForwardResult<Float>? = nil
                let f = clock.measure { result = try? Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads) }
                guard let forwardResult = result else { fatalError("forward failed") }
                result = nil
                let b = clock.measure { _ = try? Normalization.backward(forward: forwardResult, gamma: gamma, outputGradient: dy, threads: threads) }
                if round > 0 {  // the first round is the warm-up
                    forward[threads]!.append(seconds(f))
                    step[threads]!.append(seconds(f) + seconds(b))
                }
            }
        }
        for threads in [1, 2] { measured[index].bandwidth[threads]!.append(copyBandwidth(count: shape.count, threads: threads)) }
        for threads in [1, 2] {
            measured[index].forward[threads]!.append(median(forward[threads]!))
            measured[index].step[threads]!.append(median(step[threads]!))
            let reference = python([script] + dims.map(String.init) + [String(groups), String(threads), String(runs)]) ?? [:]
            if let numpy = reference["numpy_step"] as? Double { measured[index].numpy[threads]!.append(numpy) }
            if let torch = reference["torch_step"] as? Double { measured[index].torch[threads]!.append(torch) }
            if let torch = reference["torch_forward"] as? Double { measured[index].torchForward[threads]!.append(torch) }
            if let version = reference["torch_version"] as? String { torchVersion = version }
        }
    }
}

print("| shape, G | threads | NormLab fwd ms | fwd+bwd ms | NumPy fwd+bwd ms | PyTorch fwd ms | PyTorch fwd+bwd ms | vs PyTorch (fwd+bwd) | vs NumPy | vs bandwidth bound |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (index, (dims, groups)) in shapes.enumerated() {
    let shape = try Shape(dims)
    let m = measured[index]
    for threads in [1, 2] {
        let bandwidth = median(m.bandwidth[threads]!)
        let bound = Double(5 * shape.count * 4) / bandwidth  // read x, write y; read dy and x, write dx
        func middle(_ values: [Double]) -> Double? { values.isEmpty ? nil : median(values) }
        let ours = median(m.step[threads]!), oursForward = median(m.forward[threads]!)
        let numpy = middle(m.numpy[threads]!), torch = middle(m.torch[threads]!)
        let torchForward = middle(m.torchForward[threads]!)
        func ms(_ s: Double?) -> String { s.map { String(format: "%.2f", $0 * 1e3) } ?? "—" }
        func ratio(_ a: Double, _ b: Double?) -> String { b.map { String(format: "%.2f×", a / $0) } ?? "—" }
        print("| \(shape) G=\(groups) | \(threads) | \(ms(oursForward)) | \(ms(ours)) | \(ms(numpy)) | \(ms(torchForward)) | \(ms(torch)) | \(ratio(ours, torch)) | \(numpy.map { String(format: "%.1f× faster", $0 / ours) } ?? "—") | \(String(format: "%.2f×", ours / bound)) (bound \(ms(bound)) ms at \(String(format: "%.1f", bandwidth / 1e9)) GB/s copy) |")
    }
}
print("\n\(torchVersion.map { "PyTorch \($0); " } ?? "PyTorch not importable; ")medians of \(repeats) rounds, each the median of \(runs) timed runs after a warm-up")

// Start-up to the first prompt's work, and printing a big tensor.
measureStartup()
let sink = BufferSink()
let interpreter = Interpreter(sink: sink)
interpreter.execute("set dtype float32; tensor big = randn 8 64 112 112 seed 0")
var showSamples: [Double] = []
for _ in 0..<11 { showSamples.append(seconds(clock.measure { interpreter.execute("show big") })) }
print(String(format: "show of a 6.4M-element tensor (8, 64, 112, 112), median of 11: %.1f ms", median(showSamples) * 1e3))
