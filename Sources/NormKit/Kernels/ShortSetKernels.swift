/// Many short statistics sets a call: the per-set path's fixed costs outweigh a short set's arithmetic.
extension FastKernels {
    /// float32 sets this short or shorter run forward in batches (`shortSinglesForward`, `shortRowsForward`); sets of
    /// any size whose rows are shorter than 32 do too, forward when no summary is asked for and backward
    /// (`shortRowsBackward`). No summary line is summed by the kernels for sets under `SummaryParts.shortestSet`.
    static let shortSet = 192

    /// Float32 rows of one element per channel run backward set by set in batches (`FloatLanes.gradientSets`: the
    /// set's sums, then its dx reading the set again) when a set's dy and x (128 KB at this length) stay in L2.
    static let rowsInCache = 16_384

    /// Forward for float32 rows of one element per channel in short sets (GroupNorm on (N, C) with a few channels a
    /// group: 24 elements a set for (4096, 768) with G = 32): batches of up to 64 sets, each batch's statistics in
    /// one call, its square roots and divisions back to back, its y in one call. The per-set path in `forward`
    /// pays a few calls per set and waits on each set's square root and division before writing it, which for short
    /// sets outweighed their arithmetic (6.2 ms against LayerNorm's 0.9 on the same input); each set's numbers are
    /// the same, bit for bit (the same loops, the same Float64 fallbacks past float32's range).
    static func shortSinglesForward(
        range: Range<Int>, width: Int, groups: Int, centre: Bool, m: Double, divisor: Double, eps: Double,
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        statistics out: Statistics.Pointers
    ) {
        let batch = 64
        withUnsafeTemporaryAllocation(of: Double.self, capacity: batch) { totals in
            var start = range.lowerBound
            while start < range.upperBound {
                let sets = min(batch, range.upperBound - start), first = x + start * width
                batchStatistics(x, sets: start..<(start + sets), rows: 1, spatial: width, centre: centre, m: m,
                                divisor: divisor, eps: eps, totals: totals.baseAddress!, statistics: out)
                FloatKernel.applySets(first, y + start * width, count: width, sets: sets, means: out.means + start,
                                      rstds: out.rstds + start, gamma: gamma, beta: beta, firstGroup: start % groups,
                                      groups: groups)
                start += sets
            }
        }
    }

    /// Forward for float32 sets of short rows with per-channel γ, β (GroupNorm on (1024, 256, 2, 2): eight rows of
    /// four; LayerNorm there: 256 rows of four): batches of up to 64 sets (at most 2,048 rows) — their statistics
    /// (`batchStatistics`), each row's map (`AffineMap`) made here, y in one call. The same numbers, bit for bit, as
    /// `forward`'s per-set path, which made a call or two per row.
    static func shortRowsForward(
        range: Range<Int>, rows: Rows, centre: Bool, m: Double, divisor: Double, eps: Double, x: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>,
        statistics out: Statistics.Pointers
    ) {
        let k = rows.count, spatial = rows.spatial, size = k * spatial, batch = max(1, min(64, 2048 / k))
        withUnsafeTemporaryAllocation(of: Double.self, capacity: batch) { totals in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * batch * k) { maps in
            var start = range.lowerBound
            while start < range.upperBound {
                let sets = min(batch, range.upperBound - start), first = x + start * size
                batchStatistics(x, sets: start..<(start + sets), rows: k, spatial: spatial, centre: centre, m: m,
                                divisor: divisor, eps: eps, totals: totals.baseAddress!, statistics: out)
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

    /// Forward for BatchNorm per channel on float32 rows shorter than 32 (small positions): the channels of `range`
    /// side by side, sample by sample — every row's Σ(x − x₀) (x₀ its channel's first element) in one call a sample,
    /// added in sample order into its channel's total, then every row's Σ(x − μ)² likewise, then every row's y in one
    /// call a sample — the per-set path's operations in its order (a call or three per row there): the same bits.
    static func batchNormShortRowsForward(
        range: Range<Int>, rows: Rows, m: Double, divisor: Double, eps: Double, x: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>,
        statistics out: Statistics.Pointers
    ) {
        let channels = rows.channels, spatial = rows.spatial, batch = rows.count
        let first = range.lowerBound, width = range.count
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * width) { sums in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * width) { floats in
            let totals = sums.baseAddress! + width, shifts = floats.baseAddress!, maps = floats.baseAddress! + width
            for j in 0..<width { (shifts + j).initialize(to: x[(first + j) * spatial]) }
            totals.initialize(repeating: 0, count: width)
            func rowAt(_ n: Int, _ j: Int) -> UnsafePointer<Float> { x + (n * channels + first + j) * spatial }
            for n in 0..<batch {
                FloatKernel.rowShiftedSums(rowAt(n, 0), count: spatial, rows: width, shifts: shifts, sums: sums.baseAddress!)
                for j in 0..<width {
                    let sum = sums[j]
                    totals[j] += sum.isFinite ? sum : Lanes.wideShiftedSum(rowAt(n, j), count: spatial, shift: shifts[j])
                }
            }
            for j in 0..<width { out.means[first + j] = Double(shifts[j]) + totals[j] / m }
            totals.update(repeating: 0, count: width)
            for n in 0..<batch {
                FloatKernel.rowCentredSquares(rowAt(n, 0), count: spatial, rows: width, means: out.means + first,
                                              squares: sums.baseAddress!)
                for j in 0..<width {
                    let squares = sums[j]
                    totals[j] += squares.isFinite ? squares
                        : Lanes.wideSquares(rowAt(n, j), count: spatial, mean: out.means[first + j])
                }
            }
            for j in 0..<width { (out.variances[first + j], out.sumSquares[first + j]) = (totals[j] / divisor, totals[j]) }
            rstds(out, from: first, count: width, eps: eps)
            for j in 0..<width {
                let c = first + j
                let map = AffineMap<Float>(mean: out.means[c], rstd: out.rstds[c], gamma: gamma[c], beta: beta[c])
                (maps[3 * j], maps[3 * j + 1], maps[3 * j + 2]) = (map.high, map.scale, map.offset)
            }
            for n in 0..<batch {
                let at = (n * channels + first) * spatial
                FloatKernel.applyRows(x + at, y + at, count: spatial, rows: width, maps: maps)
            }
        }}
    }

    /// Backward for float32 sets of rows shorter than 32 with per-channel γ: batches of up to 64 sets (at most 2,048
    /// rows) — every row's (Σ dy, Σ dy·(x − μ)) in one call, each set's Σ γ·dy and Σ γ·dy·x̂ and the per-(sample,
    /// channel) parts of dγ, dβ made here row by row as `backward` makes them, every row's dx in one call. The same
    /// bits as `backward`'s per-set path, which made a call or two per row.
    static func shortRowsBackward(
        range: Range<Int>, rows: Rows, centre: Bool, m: Double, divisor: Double, dy: UnsafePointer<Float>,
        x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, means: UnsafePointer<Double>, rstds: UnsafePointer<Double>,
        gamma: UnsafePointer<Double>, partialGamma: UnsafeMutablePointer<Double>?, partialBeta: UnsafeMutablePointer<Double>?
    ) {
        let k = rows.count, spatial = rows.spatial, size = k * spatial, batch = max(1, min(64, 2048 / k))
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * batch * k) { sums in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 5 * batch * k) { constants in
            var start = range.lowerBound
            while start < range.upperBound {
                let sets = min(batch, range.upperBound - start), at = start * size
                FloatKernel.gradientSumsRows(dy + at, x + at, count: spatial, rows: sets * k, rowsPerSet: k,
                                             means: means + start, sums: sums.baseAddress!)
                for s in 0..<sets {
                    let set = start + s, here = rows.locate(set), mean = means[set], rstd = rstds[set]
                    var sumD = 0.0, sumDX = 0.0
                    for r in 0..<k {
                        let c = here.channel(r), n = here.sample(r), row = s * k + r
                        let base = here.offset(r)
                        let rowSums = rowGradientSums(sums.baseAddress!, row, dy: dy + base, x: x + base, count: spatial,
                                                      mean: mean)
                        let gc = gamma[c]
                        sumD += gc * rowSums.dy
                        sumDX += gc * rstd * rowSums.dyCentred
                        if let partialGamma, let partialBeta {
                            partialGamma[n * rows.channels + c] = rstd * rowSums.dyCentred
                            partialBeta[n * rows.channels + c] = rowSums.dy
                        }
                    }
                    let meanTerm = centre ? sumD / m : 0, projection = sumDX / divisor
                    for r in 0..<k {
                        let at = 5 * (s * k + r)
                        (constants[at], constants[at + 1], constants[at + 2]) = (mean, rstd, gamma[here.channel(r)])
                        (constants[at + 3], constants[at + 4]) = (meanTerm, projection)
                    }
                }
                FloatKernel.gradientRows(dy + at, x + at, dx + at, count: spatial, rows: sets * k,
                                         constants: constants.baseAddress!)
                start += sets
            }
        }}
    }

    /// Backward for BatchNorm per channel on float32 rows shorter than 32 (small positions): the channels of `range`
    /// side by side, sample by sample — a sample's rows of those channels are contiguous — every row's (Σ dy,
    /// Σ dy·(x − μ)) in one call a sample, each channel's Σ γ·dy, Σ γ·dy·x̂ and per-(sample, channel) parts of dγ, dβ
    /// added in sample order as `backward`'s per-set path adds them, then every row's dx in one call a sample. The
    /// same bits as that path, which made a call or two per row.
    static func batchNormShortRowsBackward(
        range: Range<Int>, rows: Rows, centre: Bool, m: Double, divisor: Double, dy: UnsafePointer<Float>,
        x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, means: UnsafePointer<Double>, rstds: UnsafePointer<Double>,
        gamma: UnsafePointer<Double>, partialGamma: UnsafeMutablePointer<Double>?, partialBeta: UnsafeMutablePointer<Double>?
    ) {
        let channels = rows.channels, spatial = rows.spatial, batch = rows.count
        let first = range.lowerBound, width = range.count
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * width) { sums in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * width) { totals in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 5 * width) { constants in
            totals.initialize(repeating: 0)
            for n in 0..<batch {
                let at = (n * channels + first) * spatial
                FloatKernel.gradientSumsRows(dy + at, x + at, count: spatial, rows: width, rowsPerSet: 1,
                                             means: means + first, sums: sums.baseAddress!)
                for j in 0..<width {
                    let c = first + j, rstd = rstds[c]
                    let base = at + j * spatial
                    let rowSums = rowGradientSums(sums.baseAddress!, j, dy: dy + base, x: x + base, count: spatial,
                                                  mean: means[c])
                    totals[2 * j] += gamma[c] * rowSums.dy
                    totals[2 * j + 1] += gamma[c] * rstd * rowSums.dyCentred
                    if let partialGamma, let partialBeta {
                        partialGamma[n * channels + c] = rstd * rowSums.dyCentred
                        partialBeta[n * channels + c] = rowSums.dy
                    }
                }
            }
            for j in 0..<width {
                let c = first + j, at = 5 * j
                (constants[at], constants[at + 1], constants[at + 2]) = (means[c], rstds[c], gamma[c])
                (constants[at + 3], constants[at + 4]) = (centre ? totals[2 * j] / m : 0, totals[2 * j + 1] / divisor)
            }
            for n in 0..<batch {
                let at = (n * channels + first) * spatial
                FloatKernel.gradientRows(dy + at, x + at, dx + at, count: spatial, rows: width,
                                         constants: constants.baseAddress!)
            }
        }}}
    }

    /// Row `row`'s (Σ dy, Σ dy·(x − μ)) from a `gradientSumsRows` call's `sums`, or — past float32's range — made
    /// again in Float64 from the row at `dy`, `x`, as the per-set path falls back to them.
    @inline(__always)
    static func rowGradientSums(_ sums: UnsafePointer<Double>, _ row: Int, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                count: Int, mean: Double) -> (dy: Double, dyCentred: Double) {
        let made = (dy: sums[2 * row], dyCentred: sums[2 * row + 1])
        return made.dy.isFinite && made.dyCentred.isFinite ? made : Lanes.gradientSums(dy, x, count: count, mean: mean)
    }

    /// μ, σ², rstd and Σ(x − μ)² of the consecutive `sets`, each `rows` rows of `spatial` (`FloatLanes.setStatistics`),
    /// as the per-set path makes them: a set whose float32 sums overflowed made again with the Float64 fallbacks
    /// (each row's sum, row by row, then the set's squares). `totals` holds at least `sets.count` values.
    static func batchStatistics(
        _ x: UnsafePointer<Float>, sets: Range<Int>, rows k: Int, spatial: Int, centre: Bool, m: Double, divisor: Double,
        eps: Double, totals: UnsafeMutablePointer<Double>, statistics out: Statistics.Pointers
    ) {
        let size = k * spatial, start = sets.lowerBound
        FloatKernel.setStatistics(x + start * size, count: size, rows: k, sets: sets.count, m: m, centre: centre,
                                  totals: totals, means: out.means + start, squares: out.sumSquares + start)
        for set in sets {
            if !out.sumSquares[set].isFinite || (centre && !totals[set - start].isFinite) {
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
        rstds(out, from: start, count: sets.count, eps: eps)
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
