import Foundation
import NormKit

/// `normlab-bench layers [runs]`: every layer form NormLab has, float32, at (8, 64, 56, 56) (the token forms at
/// (4096, 768)), forward and forward + backward on 1 and 2 threads, against PyTorch's form where it has one
/// (Benchmarks/compare_layers.py, same run), against GroupNorm G = 32 in alternating rounds, and against the
/// bandwidth bound of the bytes the form must move.
enum LayerBenchmark {
    struct Form {
        let name: String
        let spec: LayerSpec
        let dims: [Int]
        let mode: Mode
        /// float32, or float16/bfloat16 held in Float (the input rounded to it, every result rounded once).
        var storage: DType = .float32
    }

    static func forms() throws -> [Form] {
        func spec(_ kind: LayerKind, _ groups: Int? = nil, _ preset: Preset = .torch) throws -> LayerSpec {
            try LayerSpec(kind: kind, groups: groups, preset: preset)
        }
        func element(_ spec: LayerSpec) -> LayerSpec {
            var spec = spec
            spec.affine = .element  // γ and β of the sample's shape, as PyDLLib's layers have them
            return spec
        }
        // BatchNorm with its 64 channels in 32 groups (`layer norm over=…`): sets over the batch × 2 channels.
        func batchGroups(_ reduce: Reduce) throws -> LayerSpec {
            var spec = try spec(.batchnorm)
            spec.groups = 32
            spec.reduce = reduce
            return spec
        }
        let cnn = [8, 64, 56, 56]
        return [
            Form(name: "groupnorm 32", spec: try spec(.groupnorm, 32), dims: cnn, mode: .train),
            Form(name: "groupnorm 32 preset=pydllib", spec: try spec(.groupnorm, 32, .pydllib), dims: cnn, mode: .train),
            Form(name: "layernorm", spec: try spec(.layernorm), dims: cnn, mode: .train),
            Form(name: "instancenorm", spec: try spec(.instancenorm), dims: cnn, mode: .train),
            Form(name: "rmsnorm", spec: try spec(.rmsnorm), dims: cnn, mode: .train),
            Form(name: "batchnorm", spec: try spec(.batchnorm), dims: cnn, mode: .train),
            Form(name: "batchnorm preset=pydllib", spec: try spec(.batchnorm, nil, .pydllib), dims: cnn, mode: .train),
            // PyDLLib's LayerNorm and InstanceNorm: statistics per position over a sample's 64 channels, and over one
            // channel (a set of one element: x̂ = 0).
            Form(name: "layernorm preset=pydllib", spec: try spec(.layernorm, nil, .pydllib), dims: cnn, mode: .train),
            Form(name: "instancenorm preset=pydllib", spec: try spec(.instancenorm, nil, .pydllib), dims: cnn, mode: .train),
            Form(name: "batchnorm eval", spec: try spec(.batchnorm), dims: cnn, mode: .eval),
            Form(name: "groupnorm 32 affine=element", spec: try element(spec(.groupnorm, 32)), dims: cnn, mode: .train),
            Form(name: "layernorm affine=element", spec: try element(spec(.layernorm)), dims: cnn, mode: .train),
            Form(name: "instancenorm affine=element", spec: try element(spec(.instancenorm)), dims: cnn, mode: .train),
            Form(name: "batchnorm affine=element", spec: try element(spec(.batchnorm)), dims: cnn, mode: .train),
            Form(name: "batchnorm eval affine=element", spec: try element(spec(.batchnorm)), dims: cnn, mode: .eval),
            Form(name: "norm over=n,c,s groups=32", spec: try batchGroups(.group), dims: cnn, mode: .train),
            Form(name: "norm over=n,c groups=32", spec: try batchGroups(.channels), dims: cnn, mode: .train),
            Form(name: "layernorm shape=768", spec: try LayerSpec(kind: .layernorm, normalizedShape: [768]), dims: [4096, 768], mode: .train),
            Form(name: "rmsnorm shape=768", spec: try LayerSpec(kind: .rmsnorm, normalizedShape: [768]), dims: [4096, 768], mode: .train),
            // nn.LayerNorm([64, 56, 56]) on a CNN activation: eight sets of a sample's size, rows of one element.
            Form(name: "layernorm shape=64,56,56", spec: try LayerSpec(kind: .layernorm, normalizedShape: [64, 56, 56]),
                 dims: cnn, mode: .train),
            // Short sets: 24 elements each (768 channels in 32 groups, no spatial dims).
            Form(name: "groupnorm 32 on (4096, 768)", spec: try spec(.groupnorm, 32), dims: [4096, 768], mode: .train),
            // nn.BatchNorm1d after a linear layer: a channel's column over the batch.
            Form(name: "batchnorm on (4096, 768)", spec: try spec(.batchnorm), dims: [4096, 768], mode: .train),
            Form(name: "batchnorm eval on (4096, 768)", spec: try spec(.batchnorm), dims: [4096, 768], mode: .eval),
            Form(name: "groupnorm 32 float16", spec: try spec(.groupnorm, 32), dims: cnn, mode: .train, storage: .float16),
            Form(name: "groupnorm 32 bfloat16", spec: try spec(.groupnorm, 32), dims: cnn, mode: .train, storage: .bfloat16),
            Form(name: "batchnorm float16", spec: try spec(.batchnorm), dims: cnn, mode: .train, storage: .float16),
            Form(name: "groupnorm 32 accumulate=float32 on float16", spec: try {
                var s = try spec(.groupnorm, 32)
                s.accumulate = .float32
                return s
            }(), dims: cnn, mode: .train, storage: .float16),
        ]
    }

    /// One form's tensors, made once, and its forward and forward + backward, timed on demand.
    struct Prepared {
        let form: Form
        let plan: NormPlan
        let x: Tensor<Float>, dy: Tensor<Float>
        let gamma: Tensor<Float>?, beta: Tensor<Float>?
        let running: (Tensor<Float>, Tensor<Float>)

        init(_ form: Form) throws {
            let shape = try Shape(form.dims)
            self.form = form
            plan = try NormPlan(spec: form.spec, inputShape: shape)
            x = Tensor<Float>.randn(shape, seed: 0).rounded(toFormat: form.storage)
            dy = Tensor<Float>.randn(shape, seed: 1).rounded(toFormat: form.storage)
            gamma = plan.affineShape.map { Tensor<Float>.ones($0) }
            beta = form.spec.bias ? plan.affineShape.map { Tensor<Float>.zeros($0) } : nil
            running = (Tensor<Float>.zeros(plan.statsShape), Tensor<Float>.ones(plan.statsShape))
        }

        func forward(threads: Int) throws -> ForwardResult<Float> {
            try Normalization.forward(spec: form.spec, input: x, gamma: gamma, beta: beta, mode: form.mode,
                                      running: form.mode == .eval ? running : nil, threads: threads,
                                      storage: form.storage)
        }

        func step(threads: Int) throws {
            let result = try forward(threads: threads)
            _ = try Normalization.backward(forward: result, gamma: gamma, outputGradient: dy, threads: threads)
        }

        /// Medians of `runs` forwards and of `runs` forward + backward steps, in seconds, after one of each.
        func time(threads: Int, runs: Int) throws -> (forward: [Double], step: [Double]) {
            let clock = ContinuousClock()
            var forwards: [Double] = [], steps: [Double] = []
            _ = try forward(threads: threads)
            for _ in 0..<runs { forwards.append(seconds(try clock.measure { _ = try forward(threads: threads) })) }
            try step(threads: threads)
            for _ in 0..<runs { steps.append(seconds(try clock.measure { try step(threads: threads) })) }
            return (forwards, steps)
        }

        /// The bytes a forward + backward must move at the least: x read, y written, x and dy read, dx written (five
        /// tensors); γ and β read by forward, γ read and dγ, dβ written by backward (element-wise γ is a sample's size);
        /// the statistics forward keeps, μ and rstd (RMSNorm: rstd), or in eval mode the running ones it reads
        /// (per position, PyDLLib's GroupNorm keeps half an input's worth of each).
        var leastBytes: Double {
            let elements = Double(x.count)
            let parameters = Double(plan.affineShape?.count ?? 0) * (form.spec.bias ? 5 : 3)
            let statistics = Double(plan.statsShape.count) * (form.spec.centres ? 2 : 1)
            return 4 * (5 * elements + parameters + statistics)
        }
    }

    /// Each form timed in rounds that alternate with GroupNorm 32 (`rounds` blocks of `runs / rounds` after a
    /// warm-up each), so that the machine's drift falls on both alike: "vs GroupNorm 32" is the median over rounds of
    /// the two blocks' ratio, the times the medians of all of a form's runs.
    static func run(runs: Int, only: String? = nil) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("compare_layers.py").path
        print("| layer (float32) | threads | fwd ms | fwd+bwd ms | PyTorch fwd ms | PyTorch fwd+bwd ms | vs PyTorch (fwd+bwd) | vs GroupNorm 32 (fwd+bwd) | vs its bandwidth bound |")
        print("|---|---|---|---|---|---|---|---|---|")
        var version: String? = nil
        let rounds = 4, perRound = max(3, runs / rounds)
        let reference = try Prepared(forms()[0])
        for threads in [1, 2] {
            let torch = python([script, "\(threads)", "\(runs)"]) ?? [:]
            version = version ?? torch["torch_version"] as? String
            var bandwidth: [Int: Double] = [:]
            for form in try forms() where only.map(form.name.contains) ?? true {
                let prepared = try Prepared(form)
                var forwards: [Double] = [], steps: [Double] = [], ratios: [Double] = []
                for _ in 0..<rounds {
                    let ours = try prepared.time(threads: threads, runs: perRound)
                    forwards += ours.forward
                    steps += ours.step
                    if form.dims.count == 2 { continue }
                    let base = try reference.time(threads: threads, runs: perRound)
                    ratios.append(median(ours.step) / median(base.step))
                }
                let (fwd, step) = (median(forwards), median(steps))
                let count = prepared.x.count
                if bandwidth[count] == nil { bandwidth[count] = copyBandwidth(count: count, threads: threads) }
                let bound = prepared.leastBytes / bandwidth[count]!
                let theirs = torch[form.name] as? [Double]
                func ms(_ value: Double) -> String { String(format: "%.2f", value * 1e3) }
                func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
                var cells = [form.name, "\(threads)", ms(fwd), ms(step)]
                if let theirs {
                    cells += [ms(theirs[0]), ms(theirs[1]), ratio(step / theirs[1])]
                } else {
                    cells += ["—", "—", "—"]
                }
                cells.append(ratios.isEmpty ? "—" : ratio(median(ratios)))
                cells.append(ratio(step / bound))
                print("| " + cells.joined(separator: " | ") + " |")
            }
        }
        print("\n\(version.map { "PyTorch \($0)" } ?? "PyTorch not importable"); \(rounds) rounds of \(perRound) timed runs after a warm-up, alternating with GroupNorm 32; batchnorm eval: forward + backward with the running statistics; bound: the bytes each form must move at the copy bandwidth")
    }
}

/// `normlab-bench formats [runs]`: float16 and bfloat16 storage against float32 on the same forms, run interleaved
/// (float32, float16, bfloat16, float32, …) so that the machine's drift falls on all three alike; the ratio of the
/// medians is the issue's measure (float16/bfloat16 within 1.5× of float32).
enum FormatBenchmark {
    static func run(runs: Int) throws {
        print("| layer | threads | float32 fwd+bwd ms | float16 ms | bfloat16 ms | float16 / float32 | bfloat16 / float32 |")
        print("|---|---|---|---|---|---|---|")
        let forms = try LayerBenchmark.forms().filter { ["groupnorm 32", "layernorm", "instancenorm", "rmsnorm", "batchnorm", "layernorm shape=768"].contains($0.name) }
        let clock = ContinuousClock()
        for threads in [1, 2] {
            for form in forms {
                let shape = try Shape(form.dims)
                let plan = try NormPlan(spec: form.spec, inputShape: shape)
                let gamma = plan.affineShape.map { Tensor<Float>.ones($0) }
                let beta = form.spec.bias ? plan.affineShape.map { Tensor<Float>.zeros($0) } : nil
                let formats: [DType] = [.float32, .float16, .bfloat16]
                let inputs = formats.map { (Tensor<Float>.randn(shape, seed: 0).rounded(toFormat: $0),
                                            Tensor<Float>.randn(shape, seed: 1).rounded(toFormat: $0)) }
                var samples = [[Double]](repeating: [], count: formats.count)
                for round in 0...runs {
                    for (k, format) in formats.enumerated() {
                        let (x, dy) = inputs[k]
                        let elapsed = try clock.measure {
                            let result = try Normalization.forward(spec: form.spec, input: x, gamma: gamma, beta: beta,
                                                                   threads: threads, storage: format)
                            _ = try Normalization.backward(forward: result, gamma: gamma, outputGradient: dy, threads: threads)
                        }
                        if round > 0 { samples[k].append(seconds(elapsed)) }  // round 0 warms up
                    }
                }
                let m = samples.map(median)
                func ms(_ v: Double) -> String { String(format: "%.2f", v * 1e3) }
                print("| \(form.name) | \(threads) | \(ms(m[0])) | \(ms(m[1])) | \(ms(m[2])) | \(String(format: "%.2f×", m[1] / m[0])) | \(String(format: "%.2f×", m[2] / m[0])) |")
            }
        }
        print("\nmedians of \(runs) interleaved runs after a warm-up; inputs rounded to each format; defaults (twopass, float64 sums in the fast kernels)")
    }
}
