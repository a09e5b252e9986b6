@testable import NormKit
import NormLanes
import NormLanesAVX2
import Testing

/// Many short sets in one call (`SetLanes.swift`, GroupNorm on (N, C) inputs): each set's μ, Σ(x − μ)² and y the
/// same bits as the per-set loops make them, in both builds of the lanes, whatever the set length (all of a set
/// shorter than 32 is in the squares' one-at-a-time tail, which the set lanes run four sets side by side) and
/// however many sets (not a multiple of four).
@Suite struct ShortSetTests {
    typealias Lanes = (setStatistics: (UnsafePointer<Float>, Int, Int, Int, Double, Bool, UnsafeMutablePointer<Double>,
                                       UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) -> Void,
                       applySets: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, UnsafePointer<Double>,
                                   UnsafePointer<Double>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void)

    static var builds: [(String, Lanes)] { [
        ("baseline", (setStatistics: { NormLanes.FloatLanes.setStatistics($0, count: $1, rows: $2, sets: $3, m: $4, centre: $5,
                                                                          totals: $6, means: $7, squares: $8) },
                      applySets: { NormLanes.FloatLanes.applySets($0, $1, count: $2, sets: $3, means: $4, rstds: $5,
                                                                  gamma: $6, beta: $7, firstGroup: $8, groups: $9) })),
        ("AVX2", (setStatistics: { NormLanesAVX2.FloatLanes.setStatistics($0, count: $1, rows: $2, sets: $3, m: $4, centre: $5,
                                                                         totals: $6, means: $7, squares: $8) },
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
                    lanes.setStatistics(xb.baseAddress!, count, 1, sets, m, centre, &totals, &means, &squares)
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

    /// Sets of several rows (per-channel γ): each row's sum, row by row, into the set's total, the set's squares over
    /// the whole set, and each row's y through its own map — against `shiftedSum`, `centredSquares` and `apply`.
    @Test(arguments: [(4, 8, 9), (7, 1, 6), (2, 3, 5), (49, 3, 4), (1, 5, 7)])
    func rowSetsMatchThePerRowLoops(_ length: Int, _ rows: Int, _ sets: Int) throws {
        let count = length * rows, shape = try Shape([sets * count])
        // Rows of very different sizes, so that the order in which their sums are added shows in the last bits.
        let x: [Float] = Tensor<Double>.randn(shape, seed: 87).scalars.enumerated().map { i, v in
            Float(v * [1, 1e15, 1e-6][(i / length) % 3])
        }
        let m = Double(count)
        var totals = [Double](repeating: 0, count: sets), means = totals, squares = totals
        NormLanesAVX2.FloatLanes.setStatistics(x, count: count, rows: rows, sets: sets, m: m, centre: true, totals: &totals,
                                               means: &means, squares: &squares)
        var maps = [Float](), expectedY = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xb in expectedY.withUnsafeMutableBufferPointer { yb in
            for s in 0..<sets {
                let set = xb.baseAddress! + s * count
                var total = 0.0
                for r in 0..<rows { total += NormLanes.FloatLanes.shiftedSum(set + r * length, count: length, shift: set[0]) }
                let mean = Double(set[0]) + total / m
                let squared = 0.0 + NormLanes.FloatLanes.centredSquares(set, count: count, mean: mean)
                #expect(totals[s].bitPattern == total.bitPattern && means[s].bitPattern == mean.bitPattern
                        && squares[s].bitPattern == squared.bitPattern, "\(length)×\(rows)×\(sets) set \(s)")
                for r in 0..<rows {
                    let map = NormLanes.FloatMap(high: Float(mean), scale: Float(0.5 + Double(r)), offset: Float(s) - 2)
                    maps += [map.high, map.scale, map.offset]
                    NormLanes.FloatLanes.apply(map, set + r * length, yb.baseAddress! + s * count + r * length, count: length)
                }
            }
        }}
        for applyRows in [NormLanes.FloatLanes.applyRows, NormLanesAVX2.FloatLanes.applyRows] {
            var y = [Float](repeating: .nan, count: x.count)
            applyRows(x, &y, length, sets * rows, maps)
            #expect(zip(y, expectedY).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(length)×\(rows)×\(sets): y")
        }
    }

    /// Rows' backward sums and dx (`gradientSumsRows`, `gradientRows`) against `gradientSums` and `gradient` row by row.
    @Test(arguments: [(4, 8, 3), (7, 1, 5), (9, 2, 4), (31, 3, 2), (1, 4, 3)])
    func rowGradientsMatchThePerRowLoops(_ length: Int, _ k: Int, _ sets: Int) throws {
        let rows = k * sets, shape = try Shape([rows * length])
        let x: [Float] = Tensor<Double>.randn(shape, seed: 88).scalars.map { Float(100 + $0) }
        let dy: [Float] = Tensor<Double>.randn(shape, seed: 89).converted().scalars
        let means = (0..<sets).map { 100 + 0.1 * Double($0) }
        var constants = [Double]()
        for r in 0..<rows {
            let rstd: Double = 0.9 + 0.01 * Double(r), gamma: Double = 1.5 - 0.1 * Double(r % k)
            constants += [means[r / k], rstd, gamma, 0.03, -0.02]
        }
        var expectedSums = [Double](), expectedDx = [Float](repeating: .nan, count: x.count)
        for r in 0..<rows {
            let at = r * length
            x.withUnsafeBufferPointer { xb in dy.withUnsafeBufferPointer { db in expectedDx.withUnsafeMutableBufferPointer { dxb in
                let sums = NormLanes.FloatLanes.gradientSums(db.baseAddress! + at, xb.baseAddress! + at, count: length,
                                                             mean: means[r / k])
                expectedSums += [sums.dy, sums.dyCentred]
                let c = Array(constants[5 * r ..< 5 * r + 5])
                NormLanes.FloatLanes.gradient(db.baseAddress! + at, xb.baseAddress! + at, dxb.baseAddress! + at, count: length,
                                              mean: c[0], rstd: c[1], gamma: c[2], meanTerm: c[3], projection: c[4])
            }}}
        }
        let builds = [(NormLanes.FloatLanes.gradientSumsRows, NormLanes.FloatLanes.gradientRows),
                      (NormLanesAVX2.FloatLanes.gradientSumsRows, NormLanesAVX2.FloatLanes.gradientRows)]
        for (sumsRows, gradientRows) in builds {
            var sums = [Double](repeating: .nan, count: 2 * rows), dx = [Float](repeating: .nan, count: x.count)
            sumsRows(dy, x, length, rows, k, means, &sums)
            gradientRows(dy, x, &dx, length, rows, constants)
            #expect(zip(sums, expectedSums).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(length)×\(k)×\(sets): sums")
            #expect(zip(dx, expectedDx).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(length)×\(k)×\(sets): dx")
        }
    }

    /// `rowShiftedSums` and `rowCentredSquares` (BatchNorm's channels side by side) against `shiftedSum` and
    /// `centredSquares` row by row, each row with its own shift and mean, in both builds, bit for bit.
    @Test(arguments: [(1, 9), (4, 7), (6, 5), (31, 3), (32, 2), (33, 4)])
    func rowSumsMatchTheRowByRowSums(_ count: Int, _ rows: Int) throws {
        let x = Tensor<Double>.randn(try Shape([rows, count]), seed: 95).scalars.enumerated().map { i, v in
            Float(v * [1, 1e4, 1e-3][(i / count) % 3] + 7)
        }
        let shifts = (0..<rows).map { x[$0 * count + min(1, count - 1)] }, means = (0..<rows).map { 7 + Double($0) / 3 }
        typealias Sums = (UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, UnsafeMutablePointer<Double>) -> Void
        typealias Squares = (UnsafePointer<Float>, Int, Int, UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void
        let builds: [(String, Sums, Squares)] = [
            ("baseline", { NormLanes.FloatLanes.rowShiftedSums($0, count: $1, rows: $2, shifts: $3, sums: $4) },
             { NormLanes.FloatLanes.rowCentredSquares($0, count: $1, rows: $2, means: $3, squares: $4) }),
            ("AVX2", { NormLanesAVX2.FloatLanes.rowShiftedSums($0, count: $1, rows: $2, shifts: $3, sums: $4) },
             { NormLanesAVX2.FloatLanes.rowCentredSquares($0, count: $1, rows: $2, means: $3, squares: $4) }),
        ]
        for (name, sums, squares) in builds {
            var gotSums = [Double](repeating: 0, count: rows), gotSquares = [Double](repeating: 0, count: rows)
            sums(x, count, rows, shifts, &gotSums)
            squares(x, count, rows, means, &gotSquares)
            for r in 0..<rows {
                let row = Array(x[(r * count)..<((r + 1) * count)])
                let expectedSum = NormLanes.FloatLanes.shiftedSum(row, count: count, shift: shifts[r])
                let expectedSquares = NormLanes.FloatLanes.centredSquares(row, count: count, mean: means[r])
                #expect(gotSums[r].bitPattern == expectedSum.bitPattern, "\(name) \(count)×\(rows) row \(r): sum")
                #expect(gotSquares[r].bitPattern == expectedSquares.bitPattern, "\(name) \(count)×\(rows) row \(r): squares")
            }
        }
    }

    /// Sets of 256 or more with rows shorter than 32: forward runs in batches (`shortRowsForward`) unless a summary is
    /// asked for (the REPL's `forward`), when the per-set path sums y as it writes it. Both must give the same y and
    /// statistics, bit for bit.
    @Test(arguments: [(LayerKind.layernorm, nil, [9, 70, 5]), (.groupnorm, 2, [40, 64, 3, 3]), (.groupnorm, 4, [5, 256, 2, 2]),
                      // BatchNorm per channel on small positions (`batchNormShortRowsForward`): sets of 384 and 620.
                      (.batchnorm, nil, [64, 6, 2, 3]), (.batchnorm, nil, [20, 5, 31])]
          as [(LayerKind, Int?, [Int])])
    func batchedForwardMatchesThePerSetPath(_ kind: LayerKind, _ groups: Int?, _ dims: [Int]) throws {
        let spec = try LayerSpec(kind: kind, groups: groups)
        let shape = try Shape(dims)
        // BatchNorm's sets span the batch: samples of magnitudes far enough apart that Float64 sums of the rows' sums
        // round, so the order they are added in shows.
        let sample = shape.count / dims[0]
        let values = Tensor<Double>.randn(shape, seed: 90).scalars.enumerated().map { i, v in
            kind == .batchnorm ? Float(v * [1, 1e9, 1e-6][(i / sample) % 3]) : Float(1e4 + v * [1, 1e3, 1e-2][i % 3])
        }
        let x = Tensor<Float>(uncheckedShape: shape, scalars: values)
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 91).converted()
        let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 92).converted()
        for threads in [1, 3] {
            let batched = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
            let perSet = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads,
                                                   summarizing: true)
            #expect(batched.output == perSet.output, "\(dims), \(threads) threads: y")
            #expect(batched.mean == perSet.mean && batched.variance == perSet.variance, "\(dims), \(threads) threads: μ, σ²")
            // The Float64 statistics too (a difference in their last bits seldom survives rounding to float32).
            #expect(batched.exactMeans == perSet.exactMeans && batched.exactRstds == perSet.exactRstds,
                    "\(dims), \(threads) threads: Float64 μ, rstd")
        }
    }
}
