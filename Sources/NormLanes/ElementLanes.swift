/// The float32 lane loops for runs whose γ and β change from element to element: a statistics set that is one
/// contiguous run of single-element channels (LayerNorm and RMSNorm over the last dims, GroupNorm on (N, C)).
/// Compiled twice, as FloatLanes.swift is (the AVX2 build through a symbolic link), with the same arithmetic rules:
/// lane-wise IEEE operations, no fused multiply-adds, sums in Float32 chunks of at most 8 terms per lane added in
/// Float64. x̂ is formed as (x − μ_high)·rstd − μ_low·rstd, μ_high being μ's nearest Float.
extension FloatLanes {
    /// y = x̂·γ + β, element by element.
    @inline(never)
    public static func applyElementwise(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                        mean: Double, rstd: Double, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) {
        applyElementwiseInline(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta)
    }

    /// `applyElementwise`'s loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func applyElementwiseInline(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, mean: Double,
                                       rstd: Double, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) {
        let (high, low) = split(mean)
        let r = Float(rstd), lr = Float(low * rstd)
        let hi = V(repeating: high), rv = V(repeating: r), lv = V(repeating: lr)
        var i = 0
        while i + 16 <= count {
            store(((load(x + i) - hi) * rv - lv) * load(gamma + i) + load(beta + i), y + i)
            i += 16
        }
        while i < count {
            y[i] = ((x[i] - high) * r - lr) * gamma[i] + beta[i]
            i += 1
        }
    }

    /// `applyElementwise` on this run and `shiftedSum(next, shift)` in one loop (LayerNorm over the last dim: the
    /// next row streams in from memory while this one is normalised and written). The sum repeats `shiftedSum`'s
    /// structure exactly — 16-element steps in chunks of chunk / 2, then four at a time, then one — so a row's
    /// sum has the same bits whichever of the two made it; each y is the same lane-wise expression as there.
    @inline(never)
    public static func applyElementwiseAndShiftedSum(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                                     count: Int, mean: Double, rstd: Double, gamma: UnsafePointer<Float>,
                                                     beta: UnsafePointer<Float>, next: UnsafePointer<Float>,
                                                     shift: Float) -> Double {
        applyElementwiseAndShiftedSum(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta, next: next,
                                      shift: shift, summary: nil)
    }

    /// `applyElementwiseAndShiftedSum` (the same y and sum, bit for bit) that also writes y's summary sums to
    /// `summary` (`RunningSummary.write`).
    @inline(never)
    public static func applyElementwiseAndShiftedSumSummarizing(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, mean: Double, rstd: Double,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, next: UnsafePointer<Float>, shift: Float,
        summary: UnsafeMutablePointer<Double>
    ) -> Double {
        applyElementwiseAndShiftedSum(x, y, count: count, mean: mean, rstd: rstd, gamma: gamma, beta: beta, next: next,
                                      shift: shift, summary: summary)
    }

    /// Both, as `applyAndShiftedSum(…, summary:)` is for per-channel γ and β.
    @inline(__always)
    static func applyElementwiseAndShiftedSum(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                              mean: Double, rstd: Double, gamma: UnsafePointer<Float>,
                                              beta: UnsafePointer<Float>, next: UnsafePointer<Float>, shift: Float,
                                              summary: UnsafeMutablePointer<Double>?) -> Double {
        let (high, low) = split(mean)
        let r = Float(rstd), lr = Float(low * rstd)
        let hi = V(repeating: high), rv = V(repeating: r), lv = V(repeating: lr)
        let k = V(repeating: shift)
        var running = RunningSummary(shift: count > 0 ? ((x[0] - high) * r - lr) * gamma[0] + beta[0] : 0)
        var wide = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var a = V()
            while i < end {
                let v = ((load(x + i) - hi) * rv - lv) * load(gamma + i) + load(beta + i)
                store(v, y + i)
                a += load(next + i) - k
                if summary != nil { running.addByCall(v) }
                i &+= 16
            }
            fold(a, into: &wide)
        }
        var a4 = SIMD4<Float>()
        while i + 4 <= count {
            let h4 = (load4(x + i) - hi.lowHalf.lowHalf) * rv.lowHalf.lowHalf - lv.lowHalf.lowHalf
            let v = h4 * load4(gamma + i) + load4(beta + i)
            store4(v, y + i)
            a4 += load4(next + i) - k.lowHalf.lowHalf
            if summary != nil { for lane in 0..<4 { running.add(v[lane]) } }
            i &+= 4
        }
        wide += widen(a4)
        var total = total(wide)
        while i < count {
            y[i] = ((x[i] - high) * r - lr) * gamma[i] + beta[i]
            total += Double(next[i] - shift)
            if summary != nil { running.add(y[i]) }
            i += 1
        }
        if let summary { running.write(summary) }
        return total
    }

    /// (Σ γ·dy, Σ γ·dy·x̂) over the run.
    @inline(never)
    public static func elementwiseGradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                               gamma: UnsafePointer<Float>, count: Int, mean: Double,
                                               rstd: Double) -> (dy: Double, dyXhat: Double) {
        elementwiseGradientSumsInline(dy, x, gamma: gamma, count: count, mean: mean, rstd: rstd)
    }

    /// `elementwiseGradientSums`' loops, for callers that run many short rows in one call (`SetLanes.swift`).
    @inline(__always)
    static func elementwiseGradientSumsInline(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                              gamma: UnsafePointer<Float>, count: Int, mean: Double,
                                              rstd: Double) -> (dy: Double, dyXhat: Double) {
        let (high, low) = split(mean)
        let r = Float(rstd), lr = Float(low * rstd)
        let hi = H(repeating: high), rv = H(repeating: r), lv = H(repeating: lr)
        var wideD = SIMD4<Double>(), wideDX = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)  // 8 steps of 16: at most 8 terms per lane
            var d0 = H(), d1 = H(), dx0 = H(), dx1 = H()
            while i < end {
                sumsStep(i, dy, x, gamma, hi, rv, lv, &d0, &d1, &dx0, &dx1)
                i &+= 16
            }
            fold8(d0 + d1, into: &wideD)
            fold8(dx0 + dx1, into: &wideDX)
        }
        var sumD = total(wideD), sumDX = total(wideDX)
        while i < count {
            let g = dy[i] * gamma[i]
            sumD += Double(g)
            sumDX += Double(g * ((x[i] - high) * r - lr))
            i += 1
        }
        return (sumD, sumDX)
    }

    /// Sixteen elements of `elementwiseGradientSums`: γ·dy and γ·dy·x̂ into two accumulators each.
    @inline(__always)
    static func sumsStep(_ i: Int, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>,
                         _ hi: H, _ rv: H, _ lv: H, _ d0: inout H, _ d1: inout H, _ dx0: inout H, _ dx1: inout H) {
        let g0 = load8(dy + i) * load8(gamma + i), g1 = load8(dy + i + 8) * load8(gamma + i + 8)
        d0 += g0
        d1 += g1
        dx0 += g0 * ((load8(x + i) - hi) * rv - lv)
        dx1 += g1 * ((load8(x + i + 8) - hi) * rv - lv)
    }

    /// Where a run's terms of dγ (dy·x̂) and dβ (dy) go, element by element.
    protocol ParameterTerms {
        func add(_ dyXhat: H, _ dy: H, at i: Int)
        func add(_ dyXhat: Float, _ dy: Float, at i: Int)
        /// The same terms from element i on.
        func advanced(by i: Int) -> Self
    }

    /// Added into Float64 partial sums (rows of one element per channel: per-chunk sums over many sets).
    struct WideTerms: ParameterTerms {
        let gamma: UnsafeMutablePointer<Double>, beta: UnsafeMutablePointer<Double>

        @inline(__always)
        func advanced(by i: Int) -> WideTerms { WideTerms(gamma: gamma + i, beta: beta + i) }

        @inline(__always)
        func add(_ dyXhat: H, _ dy: H, at i: Int) {
            func add(_ v: SIMD4<Float>, _ target: UnsafeMutablePointer<Double>) {
                UnsafeMutableRawPointer(target).storeBytes(
                    of: UnsafeRawPointer(target).loadUnaligned(as: SIMD4<Double>.self) + widen(v), as: SIMD4<Double>.self)
            }
            add(dyXhat.lowHalf, gamma + i)
            add(dyXhat.highHalf, gamma + i + 4)
            add(dy.lowHalf, beta + i)
            add(dy.highHalf, beta + i + 4)
        }

        @inline(__always)
        func add(_ dyXhat: Float, _ dy: Float, at i: Int) {
            gamma[i] += Double(dyXhat)
            beta[i] += Double(dy)
        }
    }

    /// Added into float32 stages (element-wise γ over a batch: at most eight samples' terms, which the caller then
    /// adds into Float64).
    struct StagedTerms: ParameterTerms {
        let gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>

        @inline(__always)
        func advanced(by i: Int) -> StagedTerms { StagedTerms(gamma: gamma + i, beta: beta + i) }

        @inline(__always)
        func add(_ dyXhat: H, _ dy: H, at i: Int) {
            store8(load8(gamma + i) + dyXhat, gamma + i)
            store8(load8(beta + i) + dy, beta + i)
        }

        @inline(__always)
        func add(_ dyXhat: Float, _ dy: Float, at i: Int) {
            gamma[i] = gamma[i] + dyXhat
            beta[i] = beta[i] + dy
        }
    }

    /// Eight elements of `elementwiseGradient`: dx, and dy·x̂ and dy added into the parameter terms.
    @inline(__always)
    static func gradientStep<Terms: ParameterTerms>(
        _ i: Int, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
        _ gamma: UnsafePointer<Float>, _ terms: Terms, _ hi: H, _ rv: H, _ lv: H, _ mv: H, _ pv: H
    ) {
        let d = load8(dy + i)
        let h = (load8(x + i) - hi) * rv - lv
        store8(rv * ((load8(gamma + i) * d - mv) - h * pv), dx + i)
        terms.add(d * h, d, at: i)
    }

    /// dx = rstd·((γ·dy − meanTerm) − x̂·projection), and dy·x̂ and dy added into per-element Float64 partial sums
    /// of dγ and dβ.
    @inline(never)
    public static func elementwiseGradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                           gamma: UnsafePointer<Float>, count: Int, mean: Double, rstd: Double,
                                           meanTerm: Double, projection: Double,
                                           partialGamma: UnsafeMutablePointer<Double>, partialBeta: UnsafeMutablePointer<Double>) {
        gradient(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd, meanTerm: meanTerm, projection: projection,
                 terms: WideTerms(gamma: partialGamma, beta: partialBeta))
    }

    /// `elementwiseGradient` with dy·x̂ and dy added into float32 stages.
    @inline(never)
    public static func elementwiseGradientStaged(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                                 _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>, count: Int,
                                                 mean: Double, rstd: Double, meanTerm: Double, projection: Double,
                                                 stageGamma: UnsafeMutablePointer<Float>,
                                                 stageBeta: UnsafeMutablePointer<Float>) {
        gradient(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd, meanTerm: meanTerm, projection: projection,
                 terms: StagedTerms(gamma: stageGamma, beta: stageBeta))
    }

    @inline(__always)
    static func gradient<Terms: ParameterTerms>(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double, terms: Terms
    ) {
        let (high, low) = split(mean)
        let r = Float(rstd), lr = Float(low * rstd), mt = Float(meanTerm), p = Float(projection)
        let hi = H(repeating: high), rv = H(repeating: r), lv = H(repeating: lr), mv = H(repeating: mt), pv = H(repeating: p)
        var i = 0
        while i + 8 <= count {
            gradientStep(i, dy, x, dx, gamma, terms, hi, rv, lv, mv, pv)
            i &+= 8
        }
        while i < count {
            let h = (x[i] - high) * r - lr
            dx[i] = r * ((gamma[i] * dy[i] - mt) - h * p)
            terms.add(dy[i] * h, dy[i], at: i)
            i += 1
        }
    }

    /// `elementwiseGradient` on this run and `elementwiseGradientSums` on the next in one loop (the next run's dy
    /// and x stream in while this dx is written). Each dx and each partial sum is the same lane-wise expression as
    /// there, and the next run's sums repeat `elementwiseGradientSums`' structure exactly (16-element steps in
    /// chunks of chunk / 2 into four accumulators, then one at a time), so they have the same bits.
    @inline(never)
    public static func elementwiseGradientAndSums(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double,
        partialGamma: UnsafeMutablePointer<Double>, partialBeta: UnsafeMutablePointer<Double>,
        nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>, nextGamma: UnsafePointer<Float>, nextMean: Double,
        nextRstd: Double
    ) -> (dy: Double, dyXhat: Double) {
        gradientAndSums(dy, x, dx, gamma: gamma, count: count, mean: mean, rstd: rstd, meanTerm: meanTerm,
                        projection: projection, terms: WideTerms(gamma: partialGamma, beta: partialBeta), nextDy: nextDy,
                        nextX: nextX, nextGamma: nextGamma, nextMean: nextMean, nextRstd: nextRstd)
    }

    @inline(__always)
    static func gradientAndSums<Terms: ParameterTerms>(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
        count: Int, mean: Double, rstd: Double, meanTerm: Double, projection: Double, terms: Terms,
        nextDy: UnsafePointer<Float>, nextX: UnsafePointer<Float>, nextGamma: UnsafePointer<Float>, nextMean: Double,
        nextRstd: Double
    ) -> (dy: Double, dyXhat: Double) {
        let (high, low) = split(mean)
        let r = Float(rstd), lr = Float(low * rstd), mt = Float(meanTerm), p = Float(projection)
        let hi = H(repeating: high), rv = H(repeating: r), lv = H(repeating: lr), mv = H(repeating: mt), pv = H(repeating: p)
        let (nextHigh, nextLow) = split(nextMean)
        let nr = Float(nextRstd), nlr = Float(nextLow * nextRstd)
        let nhi = H(repeating: nextHigh), nrv = H(repeating: nr), nlv = H(repeating: nlr)
        @inline(__always) func gradientStep(_ i: Int) {
            FloatLanes.gradientStep(i, dy, x, dx, gamma, terms, hi, rv, lv, mv, pv)
        }
        var wideD = SIMD4<Double>(), wideDX = SIMD4<Double>()
        var i = 0
        while i + 16 <= count {
            let end = i + min(chunk / 2, (count - i) & ~15)
            var d0 = H(), d1 = H(), dx0 = H(), dx1 = H()
            while i < end {
                gradientStep(i)
                gradientStep(i + 8)
                sumsStep(i, nextDy, nextX, nextGamma, nhi, nrv, nlv, &d0, &d1, &dx0, &dx1)
                i &+= 16
            }
            fold8(d0 + d1, into: &wideD)
            fold8(dx0 + dx1, into: &wideDX)
        }
        var sumD = total(wideD), sumDX = total(wideDX)
        var j = i
        while j < count {
            let g = nextDy[j] * nextGamma[j]
            sumD += Double(g)
            sumDX += Double(g * ((nextX[j] - nextHigh) * nr - nlr))
            j += 1
        }
        // The rest of this run: the same per-element steps as `elementwiseGradient`'s.
        gradient(dy + i, x + i, dx + i, gamma: gamma + i, count: count - i, mean: mean, rstd: rstd, meanTerm: meanTerm,
                 projection: projection, terms: terms.advanced(by: i))
        return (sumD, sumDX)
    }
}
