import NormKit
import NormLanesAVX2

/// The AVX2 build of NormKit's float32 lane loops, for the executables: `NormKitAVX2.install()` at start-up makes
/// NormKit use it on CPUs that have AVX2 (the same bits, about 1.3× faster on cache-resident shapes). It lives
/// apart from NormKit because its loops are compiled with `-target-cpu haswell`, a flag SwiftPM does not allow in
/// a library that others depend on by version.
package enum NormKitAVX2 {
    package static func install() {
        FloatKernel.install(FloatLaneTable(
            shiftedSum: { FloatLanes.shiftedSum($0, count: $1, shift: $2) },
            applyAndShiftedSum: { high, scale, offset, x, y, count, next, shift in
                FloatLanes.applyAndShiftedSum(FloatMap(high: high, scale: scale, offset: offset), x, y, count: count, next: next, shift: shift)
            },
            applyAndShiftedSumSummarizing: { high, scale, offset, x, y, count, next, shift, summary in
                FloatLanes.applyAndShiftedSumSummarizing(FloatMap(high: high, scale: scale, offset: offset), x, y, count: count,
                                                         next: next, shift: shift, summary: summary)
            },
            centredSquares: { FloatLanes.centredSquares($0, count: $1, mean: $2) },
            apply: { high, scale, offset, x, y, count in
                FloatLanes.apply(FloatMap(high: high, scale: scale, offset: offset), x, y, count: count)
            },
            gradientSums: { dy, x, count, mean, out in
                let sums = FloatLanes.gradientSums(dy, x, count: count, mean: mean)
                storePair(sums.dy, sums.dyCentred, out)
            },
            gradientAndSums: { dy, x, dx, count, mean, rstd, gamma, meanTerm, projection, nextDy, nextX, nextMean, out in
                let sums = FloatLanes.gradientAndSums(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma, meanTerm: meanTerm,
                                                      projection: projection, nextDy: nextDy, nextX: nextX, nextMean: nextMean)
                storePair(sums.dy, sums.dyCentred, out)
            },
            gradient: { dy, x, dx, count, mean, rstd, gamma, meanTerm, projection in
                FloatLanes.gradient(dy, x, dx, count: count, mean: mean, rstd: rstd, gamma: gamma, meanTerm: meanTerm, projection: projection)
            },
            applyElementwise: { x, y, count, mean, rstd, gamma, beta in
                FloatLanes.applyElementwise(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
            },
            applyElementwiseAndShiftedSum: { x, y, count, mean, rstd, gamma, beta, next, shift in
                FloatLanes.applyElementwiseAndShiftedSum(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta,
                                                         next: next, shift: shift)
            },
            applyElementwiseAndShiftedSumSummarizing: { x, y, count, mean, rstd, gamma, beta, next, shift, summary in
                FloatLanes.applyElementwiseAndShiftedSumSummarizing(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma,
                                                                    beta: beta, next: next, shift: shift, summary: summary)
            },
            elementwiseGradientSums: { dy, x, gamma, count, mean, rstd, out in
                let sums = FloatLanes.elementwiseGradientSums(dy, x, gamma: gamma, count: count, mean: mean, rstd: rstd)
                storePair(sums.dy, sums.dyXhat, out)
            },
            elementwiseGradient: { dy, x, dx, gamma, count, mean, rstd, meanTerm, projection, partialGamma, partialBeta in
                FloatLanes.elementwiseGradient(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd, meanTerm: meanTerm,
                                               projection: projection, partialGamma: partialGamma, partialBeta: partialBeta)
            },
            elementwiseGradientAndSums: { dy, x, dx, gamma, count, mean, rstd, meanTerm, projection, pg, pb, nextDy, nextX,
                                          nextGamma, nextMean, nextRstd, out in
                let sums = FloatLanes.elementwiseGradientAndSums(
                    dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd, meanTerm: meanTerm, projection: projection,
                    partialGamma: pg, partialBeta: pb, nextDy: nextDy, nextX: nextX, nextGamma: nextGamma, nextMean: nextMean,
                    nextRstd: nextRstd)
                storePair(sums.dy, sums.dyXhat, out)
            },
            elementwiseGradientStaged: { dy, x, dx, gamma, count, mean, rstd, meanTerm, projection, stageGamma, stageBeta in
                FloatLanes.elementwiseGradientStaged(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd,
                                                     meanTerm: meanTerm, projection: projection, stageGamma: stageGamma,
                                                     stageBeta: stageBeta)
            },
            setStatistics: { x, count, rows, sets, m, centre, totals, means, squares in
                FloatLanes.setStatistics(x, count: count, rows: rows, sets: sets, m: m, centre: centre, totals: totals,
                                         means: means, squares: squares)
            },
            applySets: { x, y, count, sets, means, rstds, gamma, beta, firstGroup, groups in
                FloatLanes.applySets(x, y, count: count, sets: sets, means: means, rstds: rstds, gamma: gamma, beta: beta,
                                     firstGroup: firstGroup, groups: groups)
            },
            applyRows: { x, y, count, rows, maps in FloatLanes.applyRows(x, y, count: count, rows: rows, maps: maps) },
            gradientSumsRows: { dy, x, count, rows, rowsPerSet, means, sums in
                FloatLanes.gradientSumsRows(dy, x, count: count, rows: rows, rowsPerSet: rowsPerSet, means: means, sums: sums)
            },
            gradientRows: { dy, x, dx, count, rows, constants in
                FloatLanes.gradientRows(dy, x, dx, count: count, rows: rows, constants: constants)
            },
            rowShiftedSums: { x, count, rows, shifts, sums in
                FloatLanes.rowShiftedSums(x, count: count, rows: rows, shifts: shifts, sums: sums)
            },
            rowCentredSquares: { x, count, rows, means, squares in
                FloatLanes.rowCentredSquares(x, count: count, rows: rows, means: means, squares: squares)
            },
            gradientSets: { dy, x, dx, count, sets, means, rstds, gamma, sg, sb, firstGroup, groups, m, divisor, centre in
                FloatLanes.gradientSets(dy, x, dx, count: count, sets: sets, means: means, rstds: rstds, gamma: gamma,
                                        stageGamma: sg, stageBeta: sb, firstGroup: firstGroup, groups: groups, m: m,
                                        divisor: divisor, centre: centre)
            },
            moments: { x, count, shift, out in
                let m = FloatLanes.moments(x, count: count, shift: shift)
                (out[0], out[1], out[2], out[3]) = (m.sum, m.squares, m.low, m.high)
            }))
    }
}

/// A pair of sums handed back through `out` in one 16-byte store: the caller reads the pair as one 16-byte value, and
/// two 8-byte stores cannot be forwarded to that load (a stall on every call, which rows of 49 made a quarter of
/// GroupNorm 32's backward at (32, 512, 7, 7)).
@inline(__always)
private func storePair(_ first: Double, _ second: Double, _ out: UnsafeMutablePointer<Double>) {
    UnsafeMutableRawPointer(out).storeBytes(of: SIMD2(first, second), as: SIMD2<Double>.self)
}
