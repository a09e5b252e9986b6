@testable import NormKit
import NormLanes
import NormLanesAVX2
import Testing

/// Many short sets in one call (`SetLanes.swift`, GroupNorm on (N, C) inputs): each set's μ, Σ(x − μ)² and y the
/// same bits as the per-set loops make them, in both builds of the lanes, whatever the set length (all of a set
/// shorter than 32 is in the squares' one-at-a-time tail, which the set lanes run four sets side by side) and
/// however many sets (not a multiple of four).
@Suite struct ShortSetTests {
    typealias Lanes = (setStatistics: (UnsafePointer<Float>, Int, Int, Double, Bool, UnsafeMutablePointer<Double>,
                                       UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) -> Void,
                       applySets: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, UnsafePointer<Double>,
                                   UnsafePointer<Double>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void)

    static var builds: [(String, Lanes)] { [
        ("baseline", (setStatistics: { NormLanes.FloatLanes.setStatistics($0, count: $1, sets: $2, m: $3, centre: $4,
                                                                          totals: $5, means: $6, squares: $7) },
                      applySets: { NormLanes.FloatLanes.applySets($0, $1, count: $2, sets: $3, means: $4, rstds: $5,
                                                                  gamma: $6, beta: $7, firstGroup: $8, groups: $9) })),
        ("AVX2", (setStatistics: { NormLanesAVX2.FloatLanes.setStatistics($0, count: $1, sets: $2, m: $3, centre: $4,
                                                                         totals: $5, means: $6, squares: $7) },
                  applySets: { NormLanesAVX2.FloatLanes.applySets($0, $1, count: $2, sets: $3, means: $4, rstds: $5,
                                                                 gamma: $6, beta: $7, firstGroup: $8, groups: $9) })),
    ] }

    @Test(arguments: [(1, 9), (3, 7), (4, 4), (24, 13), (31, 6), (32, 5), (33, 11), (49, 3), (96, 10), (192, 2)])
    func setsMatchThePerSetLoops(_ count: Int, _ sets: Int) throws {
        let shape = try Shape([sets * count])
        // An offset of 10⁴ (μ's low part matters) and a few sets at 10¹⁹ (squares past float32's range: not finite).
        var x: [Float] = Tensor<Double>.randn(shape, seed: 81).scalars.map { Float(1e4 + 3 * $0) }
        for i in 0..<min(count, x.count) where sets > 2 { x[2 * count + i] *= 1e15 }
        let groups = 3
        let gamma: [Float] = Tensor<Double>.randn(try Shape([groups * count]), seed: 82).converted().scalars
        let beta: [Float] = Tensor<Double>.randn(try Shape([groups * count]), seed: 83).converted().scalars
        let m = Double(count), firstGroup = 2
        for (name, lanes) in Self.builds {
            for centre in [true, false] {
                var totals = [Double](repeating: 0, count: sets), means = totals, squares = totals
                x.withUnsafeBufferPointer { xb in
                    lanes.setStatistics(xb.baseAddress!, count, sets, m, centre, &totals, &means, &squares)
                }
                let rstds = squares.map { 1 / ($0 / m + 1e-5).squareRoot() }
                var y = [Float](repeating: .nan, count: x.count)
                lanes.applySets(x, &y, count, sets, means, rstds, gamma, beta, firstGroup, groups)
                for s in 0..<sets {
                    x.withUnsafeBufferPointer { xb in
                        let row = xb.baseAddress! + s * count
                        var mean = 0.0
                        if centre {
                            let total = NormLanes.FloatLanes.shiftedSum(row, count: count, shift: row[0])
                            #expect(totals[s].bitPattern == total.bitPattern, "\(name) \(count)×\(sets) set \(s): Σ(x − x₀)")
                            mean = Double(row[0]) + (0.0 + total) / m
                        }
                        #expect(means[s].bitPattern == mean.bitPattern, "\(name) \(count)×\(sets) set \(s): μ")
                        let expected = 0.0 + NormLanes.FloatLanes.centredSquares(row, count: count, mean: mean)
                        #expect(squares[s].bitPattern == expected.bitPattern || (squares[s].isNaN && expected.isNaN),
                                "\(name) \(count)×\(sets) set \(s) centre \(centre): Σ(x − μ)²")
                        var single = [Float](repeating: .nan, count: count)
                        let at = ((firstGroup + s) % groups) * count
                        gamma.withUnsafeBufferPointer { g in beta.withUnsafeBufferPointer { b in
                            NormLanes.FloatLanes.applyElementwise(row, &single, count: count, mean: means[s], rstd: rstds[s],
                                                                  gamma: g.baseAddress! + at, beta: b.baseAddress! + at)
                        }}
                        let differing = (0..<count).filter { single[$0].bitPattern != y[s * count + $0].bitPattern }.count
                        #expect(differing == 0, "\(name) \(count)×\(sets) set \(s): \(differing) y differ")
                    }
                }
            }
        }
    }

    /// `gradientSets` against `elementwiseGradientSums` and `elementwiseGradientStaged` set by set: dx and the stages.
    @Test(arguments: [(1, 9), (3, 7), (24, 13), (33, 5), (96, 6)])
    func gradientSetsMatchThePerSetLoops(_ count: Int, _ sets: Int) throws {
        let shape = try Shape([sets * count]), groups = 3, firstGroup = 1
        let x: [Float] = Tensor<Double>.randn(shape, seed: 84).scalars.map { Float(10 + 2 * $0) }
        let dy: [Float] = Tensor<Double>.randn(shape, seed: 85).converted().scalars
        let gamma: [Float] = Tensor<Double>.randn(try Shape([groups * count]), seed: 86).converted().scalars
        let means = (0..<sets).map { 10 + 0.01 * Double($0) }, rstds = (0..<sets).map { 0.5 + 0.001 * Double($0) }
        let m = Double(count), divisor = Double(max(1, count - 1))
        for centre in [true, false] {
            var dxExpected = [Float](repeating: .nan, count: x.count)
            var stagesExpected = [Float](repeating: 0, count: 2 * groups * count)
            for s in 0..<sets {
                let at = s * count, g = ((firstGroup + s) % groups) * count
                x.withUnsafeBufferPointer { xb in dy.withUnsafeBufferPointer { db in gamma.withUnsafeBufferPointer { gb in
                dxExpected.withUnsafeMutableBufferPointer { dxb in stagesExpected.withUnsafeMutableBufferPointer { sb in
                    let sums = NormLanes.FloatLanes.elementwiseGradientSums(db.baseAddress! + at, xb.baseAddress! + at,
                                                                            gamma: gb.baseAddress! + g, count: count,
                                                                            mean: means[s], rstd: rstds[s])
                    NormLanes.FloatLanes.elementwiseGradientStaged(
                        db.baseAddress! + at, xb.baseAddress! + at, dxb.baseAddress! + at, gamma: gb.baseAddress! + g,
                        count: count, mean: means[s], rstd: rstds[s], meanTerm: centre ? sums.dy / m : 0,
                        projection: sums.dyXhat / divisor, stageGamma: sb.baseAddress! + g,
                        stageBeta: sb.baseAddress! + groups * count + g)
                }}}}}
            }
            for (name, gradientSets) in [("baseline", NormLanes.FloatLanes.gradientSets), ("AVX2", NormLanesAVX2.FloatLanes.gradientSets)] {
                var dx = [Float](repeating: .nan, count: x.count), stages = [Float](repeating: 0, count: 2 * groups * count)
                stages.withUnsafeMutableBufferPointer { sb in
                    gradientSets(dy, x, &dx, count, sets, means, rstds, gamma, sb.baseAddress!, sb.baseAddress! + groups * count,
                                 firstGroup, groups, m, divisor, centre)
                }
                #expect(zip(dx, dxExpected).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(name) \(count)×\(sets): dx")
                #expect(zip(stages, stagesExpected).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(name) \(count)×\(sets): stages")
            }
        }
    }
}
