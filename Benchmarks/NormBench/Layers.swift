import Foundation
import NormKit

/// `normlab-bench layers [runs]`: every layer form NormLab has, float32, at (8, 64, 56, 56) (the token forms at
/// (4096, 768)), forward and forward + backward on 1 and 2 threads, against PyTorch's form where it has one
/// (Benchmarks/compare_layers.py, same run) and against GroupNorm G = 32 and the bandwidth bound.
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
            Form(name: "batchnorm eval", spec: try spec(.batchnorm), dims: cnn, mode: .eval),
            Form(name: "groupnorm 32 affine=element", spec: try element(spec(.groupnorm, 32)), dims: cnn, mode: .train),
            Form(name: "layernorm affine=element", spec: try element(spec(.layernorm)), dims: cnn, mode: .train),
            Form(name: "batchnorm affine=element", spec: try element(spec(.batchnorm)), dims: cnn, mode: .train),
            Form(name: "batchnorm eval affine=element", spec: try element(spec(.batchnorm)), dims: cnn, mode: .eval),
            Form(name: "norm over=n,c,s groups=32", spec: try batchGroups(.group), dims: cnn, mode: .train),
            Form(name: "norm over=n,c groups=32", spec: try batchGroups(.channels), dims: cnn, mode: .train),
            Form(name: "layernorm shape=768", spec: try LayerSpec(kind: .layernorm, normalizedShape: [768]), dims: [4096, 768], mode: .train),
            Form(name: "rmsnorm shape=768", spec: try LayerSpec(kind: .rmsnorm, normalizedShape: [768]), dims: [4096, 768], mode: .train),
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

    /// Medians of forward and of forward + backward, in seconds.
    static func time(_ form: Form, threads: Int, runs: Int) throws -> (Double, Double) {
        let shape = try Shape(form.dims)
        let plan = try NormPlan(spec: form.spec, inputShape: shape)
        let x = Tensor<Float>.randn(shape, seed: 0).rounded(toFormat: form.storage)
        let dy = Tensor<Float>.randn(shape, seed: 1).rounded(toFormat: form.storage)
        let gamma = plan.affineShape.map { Tensor<Float>.ones($0) }
        let beta = form.spec.bias ? plan.affineShape.map { Tensor<Float>.zeros($0) } : nil
        let running = (Tensor<Float>.zeros(plan.statsShape), Tensor<Float>.ones(plan.statsShape))
        let clock = ContinuousClock()
        func forward() throws -> ForwardResult<Float> {
            try Normalization.forward(spec: form.spec, input: x, gamma: gamma, beta: beta, mode: form.mode,
                                      running: form.mode == .eval ? running : nil, threads: threads,
                                      storage: form.storage)
        }
        func medianOf(_ body: () throws -> Void) rethrows -> Double {
            try body()
            var samples: [Double] = []
            for _ in 0..<runs { samples.append(seconds(try clock.measure { try body() })) }
            return median(samples)
        }
        let fwd = try medianOf { _ = try forward() }
        let step = try medianOf {
            let result = try forward()
            _ = try Normalization.backward(forward: result, gamma: gamma, outputGradient: dy, threads: threads)
        }
        return (fwd, step)
    }

    static func run(runs: Int, only: String? = nil) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("compare_layers.py").path
        print("| layer (float32) | threads | fwd ms | fwd+bwd ms | PyTorch fwd ms | PyTorch fwd+bwd ms | vs PyTorch (fwd+bwd) | vs GroupNorm 32 (fwd+bwd) | vs bandwidth bound |")
        print("|---|---|---|---|---|---|---|---|---|")
        var version: String? = nil
        for threads in [1, 2] {
            let torch = python([script, "\(threads)", "\(runs)"]) ?? [:]
            version = version ?? torch["torch_version"] as? String
            let cnnBound = 5.0 * Double(8 * 64 * 56 * 56) * 4 / copyBandwidth(count: 8 * 64 * 56 * 56, threads: threads)
            let tokenBound = 5.0 * Double(4096 * 768) * 4 / copyBandwidth(count: 4096 * 768, threads: threads)
            var reference: Double? = nil
            if let only, !"groupnorm 32".contains(only) {
                reference = try time(forms()[0], threads: threads, runs: runs).1
            }
            for form in try forms() where only.map(form.name.contains) ?? true {
                let (fwd, step) = try time(form, threads: threads, runs: runs)
                if reference == nil { reference = step }
                let theirs = torch[form.name] as? [Double]
                let bound = form.dims.count == 2 ? tokenBound : cnnBound
                func ms(_ value: Double) -> String { String(format: "%.2f", value * 1e3) }
                func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
                var cells = [form.name, "\(threads)", ms(fwd), ms(step)]
                if let theirs {
                    cells += [ms(theirs[0]), ms(theirs[1]), ratio(step / theirs[1])]
                } else {
                    cells += ["—", "—", "—"]
                }
                cells.append(form.dims.count == 2 ? "—" : ratio(step / (reference ?? step)))
                cells.append(ratio(step / bound))
                print("| " + cells.joined(separator: " | ") + " |")
            }
        }
        print("\n\(version.map { "PyTorch \($0)" } ?? "PyTorch not importable"); medians of \(runs) timed runs after a warm-up; batchnorm eval: forward + backward with the running statistics")
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
