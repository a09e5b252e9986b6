import NormLanes
import NormLanesAVX2
#if os(Linux)
import Glibc
#endif

/// Chooses the build of the float32 lane loops: NormLanesAVX2 (compiled with `-target-cpu haswell`, twice the
/// SIMD width) when this CPU has every feature that target may use, NormLanes otherwise. Both give the same bits.
/// `NORMLAB_KERNELS=baseline` in the environment forces the baseline build.
enum FloatKernel {
    static let usesAVX2: Bool = detectAVX2()

    /// The features `-target-cpu haswell` lets the compiler use, as /proc/cpuinfo spells them.
    static let requiredFlags = ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm", "popcnt"]

    static func detectAVX2() -> Bool {
        #if os(Linux) && arch(x86_64)
        if let choice = getenv("NORMLAB_KERNELS"), String(cString: choice) == "baseline" { return false }
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { break }
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == ":" }).map(String.init))
            return requiredFlags.allSatisfy(flags.contains)
        }
        return false
        #else
        return false
        #endif
    }

    @inline(__always)
    static func shiftedSum(_ x: UnsafePointer<Float>, count: Int, shift: Float) -> Double {
        usesAVX2 ? NormLanesAVX2.FloatLanes.shiftedSum(x, count: count, shift: shift)
            : NormLanes.FloatLanes.shiftedSum(x, count: count, shift: shift)
    }

    @inline(__always)
    static func applyAndShiftedSum(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                   count: Int, next: UnsafePointer<Float>, shift: Float) -> Double {
        if usesAVX2 {
            let m = NormLanesAVX2.FloatMap(high: map.high, scale: map.scale, offset: map.offset)
            return NormLanesAVX2.FloatLanes.applyAndShiftedSum(m, x, y, count: count, next: next, shift: shift)
        }
        let m = NormLanes.FloatMap(high: map.high, scale: map.scale, offset: map.offset)
        return NormLanes.FloatLanes.applyAndShiftedSum(m, x, y, count: count, next: next, shift: shift)
    }

    @inline(__always)
    static func centredSquares(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        usesAVX2 ? NormLanesAVX2.FloatLanes.centredSquares(x, count: count, mean: mean)
            : NormLanes.FloatLanes.centredSquares(x, count: count, mean: mean)
    }

    @inline(__always)
    static func apply(_ map: AffineMap<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        if usesAVX2 {
            NormLanesAVX2.FloatLanes.apply(NormLanesAVX2.FloatMap(high: map.high, scale: map.scale, offset: map.offset),
                                           x, y, count: count)
        } else {
            NormLanes.FloatLanes.apply(NormLanes.FloatMap(high: map.high, scale: map.scale, offset: map.offset),
                                       x, y, count: count)
        }
    }

    @inline(__always)
    static func gradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                             mean: Double) -> (dy: Double, dyCentred: Double) {
        usesAVX2 ? NormLanesAVX2.FloatLanes.gradientSums(dy, x, count: count, mean: mean)
            : NormLanes.FloatLanes.gradientSums(dy, x, count: count, mean: mean)
    }

    @inline(__always)
    static func gradientAndSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double,
                                projection: Double, nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>,
                                nextMean: Double) -> (dy: Double, dyCentred: Double) {
        if usesAVX2 {
            return NormLanesAVX2.FloatLanes.gradientAndSums(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                                            meanTerm: meanTerm, projection: projection, nextDy: nextDy,
                                                            nextX: nextX, nextMean: nextMean)
        }
        return NormLanes.FloatLanes.gradientAndSums(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                                    meanTerm: meanTerm, projection: projection, nextDy: nextDy,
                                                    nextX: nextX, nextMean: nextMean)
    }

    @inline(__always)
    static func gradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         count: Int, mean: Double, rstd: Double, gamma: Double, meanTerm: Double, projection: Double) {
        if usesAVX2 {
            NormLanesAVX2.FloatLanes.gradient(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                              meanTerm: meanTerm, projection: projection)
        } else {
            NormLanes.FloatLanes.gradient(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                          meanTerm: meanTerm, projection: projection)
        }
    }
}
