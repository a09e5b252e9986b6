import NormKit

// A placeholder front end until the REPL core lands: it proves the engine links and runs.
let version = "0.1.0"
let arguments = CommandLine.arguments.dropFirst()

if arguments.contains("--version") {
    print("normlab \(version)")
} else if arguments.contains("--help") || arguments.contains("-h") {
    print("""
    usage: normlab [--version] [--help]

    NormLab explores normalisation layers. This build has the engine (NormKit) only;
    with no arguments it runs one GroupNorm (G=2) on randn 2 4 3 3 seed 0 under both conventions.
    """)
} else if let unknown = arguments.first {
    print("normlab: unknown argument '\(unknown)' (try --help)")
    exit(2)
} else {
    do {
        let x = Tensor<Double>.randn(try Shape([2, 4, 3, 3]), seed: 0)
        for preset in Preset.allCases {
            var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2, preset: preset))
            let result = try layer.forward(x)
            let y = result.output.scalars
            let mean = y.reduce(0, +) / Double(y.count)
            print("GroupNorm(2) preset=\(preset): mean/var shape \(result.variance.shape), y mean \(mean), parameters \(layer.parameterCount ?? 0)")
        }
    } catch {
        print("normlab: \(error)")
        exit(1)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
