// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "NormLab",
    products: [
        .executable(name: "normlab", targets: ["normlab"]),
        .library(name: "NormKit", targets: ["NormKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The math: tensors, normalisation layers, gradcheck. No printing, no I/O.
        .target(
            name: "NormKit",
            // squareRoot() in generic code lowers to libm's sqrt, which nothing else links on Linux.
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        // The REPL core: commands, interpreter, printing, .npy. Text in, text out; no terminal.
        .target(name: "NormLabCore", dependencies: ["NormKit"]),
        // GNU readline, the one system dependency (Debian: libreadline-dev); only the executable uses it.
        .systemLibrary(name: "CReadline", providers: [.apt(["libreadline-dev"]), .brew(["readline"])]),
        .executableTarget(
            name: "normlab",
            dependencies: [
                "NormLabCore", "CReadline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // swift run -c release normlab-bench: timings against NumPy and PyTorch (Benchmarks/compare.py).
        .executableTarget(name: "normlab-bench", dependencies: ["NormKit", "NormLabCore"], path: "Benchmarks/NormBench"),
        // swift run -c release normlab-fuzz N SEED: the long fuzz run (the tests run 20,000 inputs).
        .executableTarget(name: "normlab-fuzz", dependencies: ["NormLabCore"], path: "Benchmarks/NormFuzz"),
        .testTarget(
            name: "NormKitTests",
            dependencies: ["NormKit"],
            resources: [.copy("Reference")]
        ),
        // Fixtures/ holds .npy files the tests read by path.
        .testTarget(name: "NormLabCoreTests", dependencies: ["NormLabCore"], exclude: ["Fixtures"]),
        // Drives the release binary in tmux; depends on nothing but the built executable.
        .testTarget(name: "TerminalTests"),
    ],
    swiftLanguageModes: [.v6]
)
