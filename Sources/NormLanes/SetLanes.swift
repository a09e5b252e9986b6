/// Many short sets in one call — rows of one element per channel split into groups of a few channels (GroupNorm on
/// (N, C) inputs, 24 elements a set for (4096, 768) with G = 32), and sets of a few short rows (GroupNorm on
/// (1024, 256, 2, 2): eight rows of four) — where a call, a square root and a division per set
/// through the per-set path cost more than the set's arithmetic. Each set runs the same loops as the per-set calls
/// (`shiftedSumInline`, `centredSquaresInline`, `applyElementwiseInline`), so its numbers have the same bits; the
/// square roots of a batch of sets run back to back in the caller, where they pipeline.
extension FloatLanes {
    /// For `sets` consecutive sets of `count` elements from `x`, each `rows` rows of count / rows: Σ(x − x₀) (x₀ the
    /// set's first element) as 0 + the float32 lanes' sum of each row, row by row, into `totals`, and with
    /// μ = x₀ + total/m (or 0 when not `centre`) the lanes' Σ(x − μ)² over the whole set into `squares` and μ into
    /// `means`. A row's sum or a set's squares past float32's range leave a total or squares that are not finite:
    /// the caller makes that set again with the Float64 fallbacks.
    @inline(never)
    public static func setStatistics(_ x: UnsafePointer<Float>, count: Int, rows: Int, sets: Int, m: Double, centre: Bool,
                                     totals: UnsafeMutablePointer<Double>, means: UnsafeMutablePointer<Double>,
                                     squares: UnsafeMutablePointer<Double>) {
        let length = count / rows
        for s in 0..<sets {
            var mean = 0.0
            if centre {
                let set = x + s * count, shift = set[0]
                var total = 0.0
                for r in 0..<rows { total += shiftedSumInline(set + r * length, count: length, shift: shift) }
                totals[s] = total
                mean = Double(shift) + total / m
            }
            means[s] = mean
        }
        // Σ(x − μ)² four sets at a time: each set's last elements are a chain of Float64 additions (all of a set
        // shorter than 32), and four sets' chains side by side run four times as fast as one after another.
        var s = 0
        while s + 4 <= sets {
            let rows = (x + s * count, x + (s + 1) * count, x + (s + 2) * count, x + (s + 3) * count)
            let split0 = split(means[s]), split1 = split(means[s + 1]), split2 = split(means[s + 2])
            let split3 = split(means[s + 3])
            var t0 = centredSquaresHead(rows.0, count: count, high: split0.high)
            var t1 = centredSquaresHead(rows.1, count: count, high: split1.high)
            var t2 = centredSquaresHead(rows.2, count: count, high: split2.high)
            var t3 = centredSquaresHead(rows.3, count: count, high: split3.high)
            var i = squaresTail(count)
            while i < count {
                let d0 = rows.0[i] - split0.high, d1 = rows.1[i] - split1.high
                let d2 = rows.2[i] - split2.high, d3 = rows.3[i] - split3.high
                t0 += Double(d0 * d0)
                t1 += Double(d1 * d1)
                t2 += Double(d2 * d2)
                t3 += Double(d3 * d3)
                i += 1
            }
            let c = Double(count)
            squares[s] = 0.0 + max(0, t0 - c * split0.low * split0.low)
            squares[s + 1] = 0.0 + max(0, t1 - c * split1.low * split1.low)
            squares[s + 2] = 0.0 + max(0, t2 - c * split2.low * split2.low)
            squares[s + 3] = 0.0 + max(0, t3 - c * split3.low * split3.low)
            s += 4
        }
        while s < sets {
            squares[s] = 0.0 + centredSquaresInline(x + s * count, count: count, mean: means[s])
            s += 1
        }
    }

    /// y = (x − high)·scale + offset for `rows` consecutive rows of `count` elements, row r with its map's three
    /// numbers at maps[3r ..< 3r + 3] (per-channel γ, β: a row is a channel of a set).
    @inline(never)
    public static func applyRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, rows: Int,
                                 maps: UnsafePointer<Float>) {
        for r in 0..<rows {
            let map = FloatMap(high: maps[3 * r], scale: maps[3 * r + 1], offset: maps[3 * r + 2])
            applyInline(map, x + r * count, y + r * count, count: count)
        }
    }

    /// y = x̂·γ + β for `sets` consecutive sets of `count` elements, set s with μ and rstd at index s and γ, β at
    /// ((firstGroup + s) mod groups)·count.
    @inline(never)
    public static func applySets(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, sets: Int,
                                 means: UnsafePointer<Double>, rstds: UnsafePointer<Double>, gamma: UnsafePointer<Float>,
                                 beta: UnsafePointer<Float>, firstGroup: Int, groups: Int) {
        var group = firstGroup
        for s in 0..<sets {
            let at = s * count, parameters = group * count
            applyElementwiseInline(x + at, y + at, count: count, mean: means[s], rstd: rstds[s], gamma: gamma + parameters,
                                   beta: beta + parameters)
            group = group + 1 == groups ? 0 : group + 1
        }
    }

    /// Backward for `sets` consecutive sets of `count` elements, set s with μ and rstd at index s and γ at
    /// ((firstGroup + s) mod groups)·count: its Σγ·dy and Σγ·dy·x̂, meanTerm = Σγ·dy / m (0 when not `centre`) and
    /// projection = Σγ·dy·x̂ / divisor, then dx, with dy·x̂ and dy added into the float32 stages at the set's γ —
    /// the per-set loops (`elementwiseGradientSums`, `elementwiseGradientStaged`), so the same bits.
    @inline(never)
    public static func gradientSets(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    count: Int, sets: Int, means: UnsafePointer<Double>, rstds: UnsafePointer<Double>,
                                    gamma: UnsafePointer<Float>, stageGamma: UnsafeMutablePointer<Float>,
                                    stageBeta: UnsafeMutablePointer<Float>, firstGroup: Int, groups: Int, m: Double,
                                    divisor: Double, centre: Bool) {
        var group = firstGroup
        for s in 0..<sets {
            let at = s * count, parameters = group * count
            let sums = elementwiseGradientSumsInline(dy + at, x + at, gamma: gamma + parameters, count: count, mean: means[s],
                                                     rstd: rstds[s])
            let meanTerm = centre ? sums.dy / m : 0, projection = sums.dyXhat / divisor
            gradient(dy + at, x + at, dx + at, gamma: gamma + parameters, count: count, mean: means[s], rstd: rstds[s],
                     meanTerm: meanTerm, projection: projection,
                     terms: StagedTerms(gamma: stageGamma + parameters, beta: stageBeta + parameters))
            group = group + 1 == groups ? 0 : group + 1
        }
    }

    /// (Σ dy, Σ dy·(x − μ)) of `rows` consecutive rows of `count` elements (`gradientSums`' loops), row r with μ at
    /// means[r / rowsPerSet], into sums[2r] and sums[2r + 1].
    @inline(never)
    public static func gradientSumsRows(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int, rows: Int,
                                        rowsPerSet: Int, means: UnsafePointer<Double>, sums: UnsafeMutablePointer<Double>) {
        for r in 0..<rows {
            let row = gradientSumsInline(dy + r * count, x + r * count, count: count, mean: means[r / rowsPerSet])
            (sums[2 * r], sums[2 * r + 1]) = (row.dy, row.dyCentred)
        }
    }

    /// dx of `rows` consecutive rows of `count` elements (`gradient`'s loops), row r with its μ, rstd, γ, meanTerm and
    /// projection at constants[5r ..< 5r + 5].
    @inline(never)
    public static func gradientRows(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    count: Int, rows: Int, constants: UnsafePointer<Double>) {
        for r in 0..<rows {
            let c = constants + 5 * r, at = r * count
            gradientInline(dy + at, x + at, dx + at, count: count, mean: c[0], rstd: c[1], gamma: c[2], meanTerm: c[3],
                           projection: c[4])
        }
    }

    /// `shiftedSum` of each of `rows` consecutive rows of `count` elements, row r shifted by shifts[r] (BatchNorm's
    /// channels side by side in one sample: each row shifted by its own set's first element), into sums[r].
    @inline(never)
    public static func rowShiftedSums(_ x: UnsafePointer<Float>, count: Int, rows: Int, shifts: UnsafePointer<Float>,
                                      sums: UnsafeMutablePointer<Double>) {
        for r in 0..<rows { sums[r] = shiftedSumInline(x + r * count, count: count, shift: shifts[r]) }
    }

    /// `centredSquares` of each of `rows` consecutive rows of `count` elements, row r about means[r], into squares[r].
    @inline(never)
    public static func rowCentredSquares(_ x: UnsafePointer<Float>, count: Int, rows: Int, means: UnsafePointer<Double>,
                                         squares: UnsafeMutablePointer<Double>) {
        for r in 0..<rows { squares[r] = centredSquaresInline(x + r * count, count: count, mean: means[r]) }
    }
}
