@testable import NormKit
import NormKitAVX2
import NormLanes
import NormLanesAVX2
import Testing
import Foundation

/// The two builds of the float32 lane loops (baseline and AVX2) must give the same bits: NormKit picks one at run
/// time, and a result must not depend on the machine's CPU.
@Suite(.enabled(if: FloatKernel.detectAVX2(), "this CPU cannot run the AVX2 build"))
struct LaneBuildTests {
    static let sizes = [0, 1, 3, 4, 5, 15, 16, 17, 31, 33, 49, 127, 128, 129, 196, 255, 256, 257, 1000, 3136]

    func data(_ count: Int, seed: UInt64, scale: Double = 1, offset: Double = 0) -> [Float] {
        guard count > 0, let shape = try? Shape([count]) else { return [] }
        return Tensor<Double>.randn(shape, seed: seed).scalars.map { Float(offset + scale * $0) }
    }

    @Test(arguments: sizes)
    func sameBits(_ count: Int) {
        let x = data(count, seed: 1, scale: 2, offset: 1e3), dy = data(count, seed: 2)
        let nextX = data(count, seed: 3, scale: 0.5, offset: -7), nextDy = data(count, seed: 4)
        let mean = 1e3 + 0.123456789, nextMean = -7.0 + 0.987654321
        x.withUnsafeBufferPointer { xb in dy.withUnsafeBufferPointer { gb in
        nextX.withUnsafeBufferPointer { nxb in nextDy.withUnsafeBufferPointer { ngb in
            let xp = xb.baseAddress ?? UnsafePointer(bitPattern: 16)!, gp = gb.baseAddress ?? UnsafePointer(bitPattern: 16)!
            let nxp = nxb.baseAddress ?? UnsafePointer(bitPattern: 16)!, ngp = ngb.baseAddress ?? UnsafePointer(bitPattern: 16)!
            #expect(NormLanes.FloatLanes.shiftedSum(xp, count: count, shift: 999.5)
                    .bitPattern == NormLanesAVX2.FloatLanes.shiftedSum(xp, count: count, shift: 999.5).bitPattern)
            #expect(NormLanes.FloatLanes.centredSquares(xp, count: count, mean: mean)
                    .bitPattern == NormLanesAVX2.FloatLanes.centredSquares(xp, count: count, mean: mean).bitPattern)
            let a = NormLanes.FloatLanes.gradientSums(gp, xp, count: count, mean: mean)
            let b = NormLanesAVX2.FloatLanes.gradientSums(gp, xp, count: count, mean: mean)
            #expect(a.dy.bitPattern == b.dy.bitPattern && a.dyCentred.bitPattern == b.dyCentred.bitPattern)

            var y1 = [Float](repeating: 0, count: count), y2 = y1
            let map = AffineMap<Float>(mean: mean, rstd: 0.37, gamma: 1.5, beta: -0.25)
            let m1 = NormLanes.FloatMap(high: map.high, scale: map.scale, offset: map.offset)
            let m2 = NormLanesAVX2.FloatMap(high: map.high, scale: map.scale, offset: map.offset)
            y1.withUnsafeMutableBufferPointer { NormLanes.FloatLanes.apply(m1, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count) }
            y2.withUnsafeMutableBufferPointer { NormLanesAVX2.FloatLanes.apply(m2, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count) }
            #expect(y1.map(\.bitPattern) == y2.map(\.bitPattern))

            var s1 = 0.0, s2 = 0.0
            y1.withUnsafeMutableBufferPointer {
                s1 = NormLanes.FloatLanes.applyAndShiftedSum(m1, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                                                             count: count, next: nxp, shift: -7)
            }
            y2.withUnsafeMutableBufferPointer {
                s2 = NormLanesAVX2.FloatLanes.applyAndShiftedSum(m2, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                                                                 count: count, next: nxp, shift: -7)
            }
            #expect(s1.bitPattern == s2.bitPattern && y1.map(\.bitPattern) == y2.map(\.bitPattern))
            // The fused loop's sum is the separate loop's, to the bit.
            #expect(s1.bitPattern == NormLanes.FloatLanes.shiftedSum(nxp, count: count, shift: -7).bitPattern)

            // And summarising y on the way changes neither y nor the sum; its sums match a pass over y afterwards.
            var y3 = y1, y4 = y1, sums3 = [Double](repeating: 0, count: 5), sums4 = sums3
            let s3 = y3.withUnsafeMutableBufferPointer { yb in
                NormLanes.FloatLanes.applyAndShiftedSumSummarizing(m1, xp, yb.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count,
                                                                   next: nxp, shift: -7, summary: &sums3)
            }
            let s4 = y4.withUnsafeMutableBufferPointer { yb in
                NormLanesAVX2.FloatLanes.applyAndShiftedSumSummarizing(m2, xp, yb.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count,
                                                                       next: nxp, shift: -7, summary: &sums4)
            }
            #expect(s3.bitPattern == s1.bitPattern && s4.bitPattern == s1.bitPattern)
            #expect(y3.map(\.bitPattern) == y1.map(\.bitPattern) && y4.map(\.bitPattern) == y1.map(\.bitPattern))
            #expect(sums3.map(\.bitPattern) == sums4.map(\.bitPattern))
            expectSummary(sums3, of: y1)
            var d1 = [Float](repeating: 0, count: count), d2 = d1
            d1.withUnsafeMutableBufferPointer {
                NormLanes.FloatLanes.gradient(gp, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count,
                                              mean: mean, rstd: 0.37, gamma: 1.5, meanTerm: 0.01, projection: 0.3)
            }
            d2.withUnsafeMutableBufferPointer {
                NormLanesAVX2.FloatLanes.gradient(gp, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count,
                                                  mean: mean, rstd: 0.37, gamma: 1.5, meanTerm: 0.01, projection: 0.3)
            }
            #expect(d1.map(\.bitPattern) == d2.map(\.bitPattern))
            var f1 = [Float](repeating: 0, count: count), f2 = f1
            var t1 = (dy: 0.0, dyCentred: 0.0), t2 = t1
            f1.withUnsafeMutableBufferPointer {
                t1 = NormLanes.FloatLanes.gradientAndSums(gp, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                                                          count: count, mean: mean, rstd: 0.37, gamma: 1.5, meanTerm: 0.01,
                                                          projection: 0.3, nextDy: ngp, nextX: nxp, nextMean: nextMean)
            }
            f2.withUnsafeMutableBufferPointer {
                t2 = NormLanesAVX2.FloatLanes.gradientAndSums(gp, xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                                                              count: count, mean: mean, rstd: 0.37, gamma: 1.5, meanTerm: 0.01,
                                                              projection: 0.3, nextDy: ngp, nextX: nxp, nextMean: nextMean)
            }
            #expect(f1.map(\.bitPattern) == f2.map(\.bitPattern) && f1.map(\.bitPattern) == d1.map(\.bitPattern))
            #expect(t1.dy.bitPattern == t2.dy.bitPattern && t1.dyCentred.bitPattern == t2.dyCentred.bitPattern)
            let separate = NormLanes.FloatLanes.gradientSums(ngp, nxp, count: count, mean: nextMean)
            #expect(t1.dy.bitPattern == separate.dy.bitPattern && t1.dyCentred.bitPattern == separate.dyCentred.bitPattern)
        }}}}
    }

    /// The lanes for runs with γ and β per element (ElementLanes.swift).
    @Test(arguments: sizes)
    func sameBitsPerElement(_ count: Int) {
        let x = data(count, seed: 5, scale: 2, offset: 1e3), dy = data(count, seed: 6)
        let gamma = data(count, seed: 7, scale: 0.5, offset: 1), beta = data(count, seed: 8, scale: 0.3)
        let mean = 1e3 + 0.123456789, rstd = 0.37
        func pointer(_ b: UnsafeBufferPointer<Float>) -> UnsafePointer<Float> { b.baseAddress ?? UnsafePointer(bitPattern: 16)! }
        x.withUnsafeBufferPointer { xb in dy.withUnsafeBufferPointer { gb in
        gamma.withUnsafeBufferPointer { gammab in beta.withUnsafeBufferPointer { betab in
            let xp = pointer(xb), gp = pointer(gb), gammap = pointer(gammab), betap = pointer(betab)
            var y1 = [Float](repeating: 0, count: count), y2 = y1
            y1.withUnsafeMutableBufferPointer {
                NormLanes.FloatLanes.applyElementwise(xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count,
                                                      mean: mean, rstd: rstd, gamma: gammap, beta: betap)
            }
            y2.withUnsafeMutableBufferPointer {
                NormLanesAVX2.FloatLanes.applyElementwise(xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, count: count,
                                                          mean: mean, rstd: rstd, gamma: gammap, beta: betap)
            }
            #expect(y1.map(\.bitPattern) == y2.map(\.bitPattern))
            // Close to the Float64 formula (one rounding of each float32 step, x − μ exact near μ).
            for i in 0..<count {
                let exact = (Double(x[i]) - mean) * rstd * Double(gamma[i]) + Double(beta[i])
                #expect(abs(Double(y1[i]) - exact) <= 4e-7 * max(1, abs(exact)))
            }
            // Fused with the next row's sum (dy stands in for it): the same y, and the sum `shiftedSum` makes, in
            // both builds.
            var y3 = [Float](repeating: 0, count: count), y4 = y3
            let shift = dy.first ?? 0
            let s3 = y3.withUnsafeMutableBufferPointer {
                NormLanes.FloatLanes.applyElementwiseAndShiftedSum(xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                    count: count, mean: mean, rstd: rstd, gamma: gammap, beta: betap, next: gp, shift: shift)
            }
            let s4 = y4.withUnsafeMutableBufferPointer {
                NormLanesAVX2.FloatLanes.applyElementwiseAndShiftedSum(xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                    count: count, mean: mean, rstd: rstd, gamma: gammap, beta: betap, next: gp, shift: shift)
            }
            #expect(y3.map(\.bitPattern) == y1.map(\.bitPattern) && y4.map(\.bitPattern) == y1.map(\.bitPattern))
            let separate = NormLanes.FloatLanes.shiftedSum(gp, count: count, shift: shift)
            #expect(s3.bitPattern == separate.bitPattern && s4.bitPattern == separate.bitPattern, "\(s3) \(s4) \(separate)")
            // Summarising y on the way: the same y and sum, and y's summary sums.
            var y5 = y3, y6 = y3, sums5 = [Double](repeating: 0, count: 5), sums6 = sums5
            let s5 = y5.withUnsafeMutableBufferPointer {
                NormLanes.FloatLanes.applyElementwiseAndShiftedSumSummarizing(xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                    count: count, mean: mean, rstd: rstd, gamma: gammap, beta: betap, next: gp, shift: shift, summary: &sums5)
            }
            let s6 = y6.withUnsafeMutableBufferPointer {
                NormLanesAVX2.FloatLanes.applyElementwiseAndShiftedSumSummarizing(xp, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                    count: count, mean: mean, rstd: rstd, gamma: gammap, beta: betap, next: gp, shift: shift, summary: &sums6)
            }
            #expect(s5.bitPattern == separate.bitPattern && s6.bitPattern == separate.bitPattern)
            #expect(y5.map(\.bitPattern) == y1.map(\.bitPattern) && y6.map(\.bitPattern) == y1.map(\.bitPattern))
            #expect(sums5.map(\.bitPattern) == sums6.map(\.bitPattern))
            expectSummary(sums5, of: y1)
            let a = NormLanes.FloatLanes.elementwiseGradientSums(gp, xp, gamma: gammap, count: count, mean: mean, rstd: rstd)
            let b = NormLanesAVX2.FloatLanes.elementwiseGradientSums(gp, xp, gamma: gammap, count: count, mean: mean, rstd: rstd)
            #expect(a.dy.bitPattern == b.dy.bitPattern && a.dyXhat.bitPattern == b.dyXhat.bitPattern)
            var d1 = [Float](repeating: 0, count: count), d2 = d1
            var p1 = [Double](repeating: 0.5, count: 2 * count), p2 = p1
            d1.withUnsafeMutableBufferPointer { d in p1.withUnsafeMutableBufferPointer { p in
                NormLanes.FloatLanes.elementwiseGradient(gp, xp, d.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, gamma: gammap,
                    count: count, mean: mean, rstd: rstd, meanTerm: 0.01, projection: 0.3,
                    partialGamma: p.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                    partialBeta: (p.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!) + count)
            }}
            d2.withUnsafeMutableBufferPointer { d in p2.withUnsafeMutableBufferPointer { p in
                NormLanesAVX2.FloatLanes.elementwiseGradient(gp, xp, d.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, gamma: gammap,
                    count: count, mean: mean, rstd: rstd, meanTerm: 0.01, projection: 0.3,
                    partialGamma: p.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                    partialBeta: (p.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!) + count)
            }}
            #expect(d1.map(\.bitPattern) == d2.map(\.bitPattern) && p1.map(\.bitPattern) == p2.map(\.bitPattern))
            // Fused with the next run's sums (x and dy swapped stand in for the next run): the same dx and partial
            // sums as alone, and the sums `elementwiseGradientSums` makes of that run, in both builds.
            let nextMean = 0.25, nextRstd = 1.7
            let alone = NormLanes.FloatLanes.elementwiseGradientSums(xp, gp, gamma: betap, count: count, mean: nextMean, rstd: nextRstd)
            for fused in [NormLanes.FloatLanes.elementwiseGradientAndSums, NormLanesAVX2.FloatLanes.elementwiseGradientAndSums] {
                var d3 = [Float](repeating: 0, count: count), p3 = [Double](repeating: 0.5, count: 2 * count)
                let sums = d3.withUnsafeMutableBufferPointer { d in p3.withUnsafeMutableBufferPointer { p in
                    fused(gp, xp, d.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, gammap, count, mean, rstd, 0.01, 0.3,
                          p.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!,
                          (p.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!) + count, xp, gp, betap, nextMean, nextRstd)
                }}
                #expect(d3.map(\.bitPattern) == d1.map(\.bitPattern) && p3.map(\.bitPattern) == p1.map(\.bitPattern))
                #expect(sums.dy.bitPattern == alone.dy.bitPattern && sums.dyXhat.bitPattern == alone.dyXhat.bitPattern)
            }
            // Into float32 stages: the same dx as into Float64 partial sums, the same stages in both builds and fused
            // with the next run's sums, and each stage the float32 sum of its start and the term.
            var stages: [[Float]] = []
            for staged in [NormLanes.FloatLanes.elementwiseGradientStaged, NormLanesAVX2.FloatLanes.elementwiseGradientStaged] {
                var d5 = [Float](repeating: 0, count: count), s5 = [Float](repeating: 0.5, count: 2 * count)
                d5.withUnsafeMutableBufferPointer { d in s5.withUnsafeMutableBufferPointer { st in
                    let base = st.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!
                    staged(gp, xp, d.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, gammap, count, mean, rstd, 0.01, 0.3,
                           base, base + count)
                }}
                #expect(d5.map(\.bitPattern) == d1.map(\.bitPattern))
                stages.append(s5)
            }
            // Fused in C (with a prefetch of the next run): the same dx, stages and sums.
            var dxC = [Float](repeating: 0, count: count), stagesC = [Float](repeating: 0.5, count: 2 * count)
            let sums = dxC.withUnsafeMutableBufferPointer { d in stagesC.withUnsafeMutableBufferPointer { st in
                let base = st.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!
                return FloatKernel.elementwiseGradientAndSumsStaged(
                    gp, xp, d.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!, gamma: gammap, count: count,
                    mean: mean, rstd: rstd, meanTerm: 0.01, projection: 0.3, stageGamma: base, stageBeta: base + count,
                    nextDy: xp, nextX: gp, nextGamma: betap, nextMean: nextMean, nextRstd: nextRstd)
            }}
            #expect(dxC.map(\.bitPattern) == d1.map(\.bitPattern))
            #expect(sums.dy.bitPattern == alone.dy.bitPattern && sums.dyXhat.bitPattern == alone.dyXhat.bitPattern)
            stages.append(stagesC)
            #expect(stages.allSatisfy { $0.map(\.bitPattern) == stages[0].map(\.bitPattern) })
            for i in 0..<count {
                let (high, low) = (Float(mean), mean - Double(Float(mean)))
                let h = (x[i] - high) * Float(rstd) - Float(low * rstd)
                #expect(stages[0][i] == 0.5 + dy[i] * h && stages[0][count + i] == 0.5 + dy[i])
            }
            // The summary line's moments.
            let m1 = NormLanes.FloatLanes.moments(xp, count: count, shift: 999.5)
            let m2 = NormLanesAVX2.FloatLanes.moments(xp, count: count, shift: 999.5)
            #expect([m1.sum, m1.squares, m1.low, m1.high].map(\.bitPattern) == [m2.sum, m2.squares, m2.low, m2.high].map(\.bitPattern))
            if count > 0 {
                #expect(m1.low == Double(x.min()!) && m1.high == Double(x.max()!))
                let exact = x.reduce(0.0) { $0 + (Double($1) - 999.5) }
                #expect(abs(m1.sum - exact) <= 1e-9 * max(1, abs(exact)))
            }
        }}}}
    }
}

/// NormKitAVX2.install() switches NormKit's float32 passes to the AVX2 lanes: the same bits as the baseline.
@Suite(.enabled(if: FloatKernel.detectAVX2(), "this CPU cannot run the AVX2 build"))
struct InstalledLanesTests {
    @Test func installingTheAVX2LanesChangesNoBit() throws {
        let shape = try Shape([3, 8, 7, 5])
        let spec = try LayerSpec(kind: .groupnorm, groups: 4)
        let x = Tensor<Float>.randn(shape, seed: 3), dy = Tensor<Float>.randn(shape, seed: 4)
        func pass() throws -> [Float] {
            let forward = try Normalization.forward(spec: spec, input: x, gamma: nil, beta: nil, threads: 2)
            return forward.output.scalars + (try Normalization.backward(forward: forward, gamma: nil, outputGradient: dy, threads: 2)).dx.scalars
        }
        let before = try pass()
        NormKitAVX2.install()
        #expect(FloatKernel.usesAVX2)
        let after = try pass()
        #expect(before.map(\.bitPattern) == after.map(\.bitPattern))
    }
}

/// The cpuid check agrees with what Linux reports: every feature `-target-cpu haswell` may use, as
/// /proc/cpuinfo spells them ("abm" is LZCNT, "bmi1" BMI1).
@Suite struct CPUFeatureTests {
    @Test func cpuidAgreesWithProcCpuinfo() throws {
        #if os(Linux) && arch(x86_64)
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            print("skipped: /proc/cpuinfo has no flags line here")
            return
        }
        let flags = Set(line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        let required = ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm", "popcnt"]
        if getenv("NORMLAB_KERNELS") != nil {
            print("skipped: NORMLAB_KERNELS is set, so the CPU is not asked")
            return
        }
        #expect(FloatKernel.detectAVX2() == required.allSatisfy(flags.contains))
        #elseif !arch(x86_64)
        #expect(!FloatKernel.detectAVX2())
        #endif
    }
}

/// (shift, Σ(y − shift), Σ(y − shift)², min, max) from a loop that wrote y: the shift is y's first value, the rest
/// as a Float64 pass over y would make them.
func expectSummary(_ sums: [Double], of y: [Float], sourceLocation: SourceLocation = #_sourceLocation) {
    guard let first = y.first else { return }
    #expect(sums[0] == Double(first), sourceLocation: sourceLocation)
    let shifted = y.map { Double($0) - Double(first) }
    let scale = shifted.reduce(0) { $0 + abs($1) }, squares = shifted.reduce(0) { $0 + $1 * $1 }
    #expect(abs(sums[1] - shifted.reduce(0, +)) <= 1e-12 * scale && abs(sums[2] - squares) <= 1e-12 * squares,
            sourceLocation: sourceLocation)
    #expect(sums[3] == Double(y.min()!) && sums[4] == Double(y.max()!), sourceLocation: sourceLocation)
}
