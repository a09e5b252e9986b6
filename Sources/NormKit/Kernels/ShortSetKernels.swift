/// Many short statistics sets a call: the per-set path's fixed costs outweigh a short set's arithmetic.
extension FastKernels {
    /// float32 sets this short or shorter run forward in batches (`shortSinglesForward`, `shortRowsForward`) and rows
    /// of one element per channel backward in batches (`singleRowsBackward`).
    static let shortSet = 192

    /// Forward for float32 rows of one element per channel in short sets (GroupNorm on (N, C) with a few channels a
    /// group: 24 elements a set for (4096, 768) with G = 32): batches of up to 64 sets, each batch's statistics in
    /// one call, its square roots and divisions back to back, its y in one call. The per-set path in `forward`
    /// pays a few calls per set and waits on each set's square root and division before writing it, which for short
    /// sets outweighed their arithmetic (6.2 ms against LayerNorm's 0.9 on the same input); each set's numbers are
    /// the same, bit for bit (the same loops, the same Float64 fallbacks past float32's range).
    static func shortSinglesForward(
        range: Range<Int>, width: Int, groups: Int, centre: Bool, m: Double, divisor: Double, eps: Double,
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        statistics out: Statistics.Pointers, summary: UnsafeMutablePointer<SummaryMoments>?
    ) {
        let batch = 64
        withUnsafeTemporaryAllocation(of: Double.self, capacity: batch) { totals in
            var start = range.lowerBound
            while start < range.upperBound {
                let sets = min(batch, range.upperBound - start), first = x + start * width
                FloatKernel.setStatistics(first, count: width, rows: 1, sets: sets, m: m, centre: centre, totals: totals.baseAddress!,
                                          means: out.means + start, squares: out.sumSquares + start)
                for s in 0..<sets {
                    let set = start + s
                    if !out.sumSquares[set].isFinite || (centre && !totals[s].isFinite) {
                        // As the per-set path makes it: each sum in Float64 where the float32 lanes' overflowed.
                        let row = x + set * width
                        var mean = 0.0
                        if centre { mean = Double(row[0]) + (0.0 + Lanes.shiftedSum(row, count: width, shift: row[0])) / m }
                        out.means[set] = mean
                        out.sumSquares[set] = 0.0 + Lanes.centredSquares(row, count: width, mean: mean)
                    }
                    out.variances[set] = out.sumSquares[set] / divisor
                }
                rstds(out, from: start, count: sets, eps: eps)
                FloatKernel.applySets(first, y + start * width, count: width, sets: sets, means: out.means + start,
                                      rstds: out.rstds + start, gamma: gamma, beta: beta, firstGroup: start % groups,
                                      groups: groups)
                if let summary {
                    for set in start..<(start + sets) {
                        (summary + set).initialize(to: SummaryParts.moments(of: UnsafePointer(y)) { $0(set * width, width) })
                    }
                }
                start += sets
            }
        }
    }

    /// Forward for float32 sets of a few short rows with per-channel γ, β (GroupNorm on (1024, 256, 2, 2): eight rows
    /// of four): batches of up to 64 sets — their statistics in one call (each row's sum, row by row, then the set's
    /// squares, as `forward` makes them), rstd four sets at a time, each row's map (`AffineMap`) made here, y in one
    /// call. The same numbers, bit for bit, as `forward`'s per-set path, which made a call or two per row.
    static func shortRowsForward(
        range: Range<Int>, rows: Rows, centre: Bool, m: Double, divisor: Double, eps: Double, x: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>,
        statistics out: Statistics.Pointers
    ) {
        let batch = 64, k = rows.count, spatial = rows.spatial, size = k * spatial
        withUnsafeTemporaryAllocation(of: Double.self, capacity: batch) { totals in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * batch * k) { maps in
            var start = range.lowerBound
            while start < range.upperBound {
                let sets = min(batch, range.upperBound - start), first = x + start * size
                FloatKernel.setStatistics(first, count: size, rows: k, sets: sets, m: m, centre: centre,
                                          totals: totals.baseAddress!, means: out.means + start,
                                          squares: out.sumSquares + start)
                for s in 0..<sets {
                    let set = start + s
                    if !out.sumSquares[set].isFinite || (centre && !totals[s].isFinite) {
                        // As the per-set path makes it: each sum in Float64 where the float32 lanes' overflowed.
                        let at = x + set * size
                        var mean = 0.0
                        if centre {
                            var total = 0.0
                            for r in 0..<k { total += Lanes.shiftedSum(at + r * spatial, count: spatial, shift: at[0]) }
                            mean = Double(at[0]) + total / m
                        }
                        out.means[set] = mean
                        out.sumSquares[set] = 0.0 + Lanes.centredSquares(at, count: size, mean: mean)
                    }
                    out.variances[set] = out.sumSquares[set] / divisor
                }
                rstds(out, from: start, count: sets, eps: eps)
                for s in 0..<sets {
                    let here = rows.locate(start + s), mean = out.means[start + s], rstd = out.rstds[start + s]
                    for r in 0..<k {
                        let c = here.channel(r), map = AffineMap<Float>(mean: mean, rstd: rstd, gamma: gamma[c], beta: beta[c])
                        let at = 3 * (s * k + r)
                        (maps[at], maps[at + 1], maps[at + 2]) = (map.high, map.scale, map.offset)
                    }
                }
                FloatKernel.applyRows(first, y + start * size, count: spatial, rows: sets * k, maps: maps.baseAddress!)
                start += sets
            }
        }}
    }

    /// rstd = 1/√(σ² + eps) for `count` sets from `start`, four at a time in SIMD4 lanes (lane-wise IEEE square roots
    /// and divisions: each lane's bits are the scalar ones), so the slow operations pipeline.
    static func rstds(_ out: Statistics.Pointers, from start: Int, count: Int, eps: Double) {
        var s = start
        while s + 4 <= start + count {
            let variance = UnsafeRawPointer(out.variances + s).loadUnaligned(as: SIMD4<Double>.self)
            let rstd = 1 / (variance + SIMD4(repeating: eps)).squareRoot()
            UnsafeMutableRawPointer(out.rstds + s).storeBytes(of: rstd, as: SIMD4<Double>.self)
            s += 4
        }
        while s < start + count {
            out.rstds[s] = 1 / (out.variances[s] + eps).squareRoot()
            s += 1
        }
    }
}
