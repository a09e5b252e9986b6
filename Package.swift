// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "NormLab",
    products: [
        .executable(name: "normlab", targets: ["normlab"]),
        .library(name: "NormKit", targets: ["NormKit"]),
    ],
    targets: [
        // The math: tensors, normalisation layers, gradcheck. No printing, no I/O.
        .target(
            name: "NormKit",
            // squareRoot() in generic code lowers to libm's sqrt, which nothing else links on Linux.
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        .executableTarget(name: "normlab", dependencies: ["NormKit"]),
        .testTarget(
            name: "NormKitTests",
            dependencies: ["NormKit"],
            resources: [.copy("Reference")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
