// swift-tools-version: 6.0
import PackageDescription

import Foundation

// The float32 lane loops are compiled a second time for AVX2 CPUs (NormKit picks the build at run time, see
// FloatKernel.swift). The manifest runs on the machine that builds, so `arch` is the build machine's: when
// cross-compiling from x86-64 to another architecture, set NORMLAB_NO_AVX2=1 (Swift has no per-function target
// attribute, so the flag is all or nothing per target).
#if arch(x86_64)
let avx2Wanted = ProcessInfo.processInfo.environment["NORMLAB_NO_AVX2"] == nil
#else
let avx2Wanted = false
#endif
let avx2Settings: [SwiftSetting] = avx2Wanted ? [.unsafeFlags(["-target-cpu", "haswell"])] : []

let package = Package(
    name: "NormLab",
    // Synchronization's Atomic (the signal flags) needs macOS 15.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "normlab", targets: ["normlab"]),
        .library(name: "NormKit", targets: ["NormKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The math: tensors, normalisation layers, gradcheck. No printing, no I/O.
        // The float32 lane loops, for the build's baseline CPU and (one file, linked) for AVX2.
        .target(name: "NormLanes"),
        .target(name: "NormLanesAVX2", swiftSettings: avx2Settings),
        // Asks the CPU whether the AVX2 lanes can run (cpuid; any OS).
        .target(name: "CPUFeatures"),
        // 1/√(v + eps) over many statistics at once (Swift's squareRoot() stays scalar).
        .target(name: "CVectorMath"),
        .target(
            name: "NormKit",
            dependencies: ["NormLanes", "CPUFeatures", "CVectorMath"],
            // squareRoot() in generic code lowers to libm's sqrt, which nothing else links on Linux.
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux], configuration: .release))]
        ),
        // The AVX2 lanes installed into NormKit by the executables (kept out of the NormKit product: unsafe flags).
        .target(name: "NormKitAVX2", dependencies: ["NormKit", "NormLanesAVX2"]),
        // The REPL core: commands, interpreter, printing, .npy. Text in, text out; no terminal.
        .target(name: "NormLabCore", dependencies: ["NormKit"]),
        // GNU readline, the one system dependency (Debian: libreadline-dev); only the executable uses it.
        .systemLibrary(name: "CReadline", pkgConfig: "readline", providers: [.apt(["libreadline-dev"]), .brew(["readline"])]),
        // glibc's allocator thresholds, set by the executables (not the library: it is process-wide).
        .target(name: "CMemoryTuning"),
        .executableTarget(
            name: "normlab",
            dependencies: [
                "NormLabCore", "CReadline", "CMemoryTuning", "NormKitAVX2",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The Swift runtime linked in: start-up to the prompt drops from about 19 ms to 10 (most of it was the
            // dynamic loader resolving the runtime's symbols), and the binary runs without the toolchain.
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims", "-Xlinker", "--no-export-dynamic"], .when(platforms: [.linux], configuration: .release))]
        ),
        // swift run -c release normlab-bench: timings against NumPy and PyTorch (Benchmarks/compare.py).
        .executableTarget(name: "normlab-bench", dependencies: ["NormKit", "NormKitAVX2", "NormLabCore", "CMemoryTuning"], path: "Benchmarks/NormBench"),
        // The grammar-aware fuzzer, shared by the fuzz tests and the long run; not part of any product.
        .target(name: "NormLabFuzzing", dependencies: ["NormKit", "NormLabCore"], path: "Benchmarks/NormLabFuzzing"),
        // swift run -c release normlab-fuzz N SEED: the long fuzz run (the tests run 20,000 inputs).
        .executableTarget(name: "normlab-fuzz", dependencies: ["NormLabFuzzing"], path: "Benchmarks/NormFuzz"),
        .testTarget(
            name: "NormKitTests",
            dependencies: ["NormKit", "NormKitAVX2", "NormLanes", "NormLanesAVX2", "CMemoryTuning"],
            resources: [.copy("Reference")]
        ),
        // Fixtures/ holds .npy files the tests read by path.
        .testTarget(name: "NormLabCoreTests", dependencies: ["NormLabCore", "NormLabFuzzing"], exclude: ["Fixtures"]),
        // Drives the release binary in tmux; depends on nothing but the built executable.
        .testTarget(name: "TerminalTests"),
    ],
    swiftLanguageModes: [.v6]
)
