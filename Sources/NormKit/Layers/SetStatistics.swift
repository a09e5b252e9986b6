/// The general path's statistics and its walk over the elements with their sets: shared by the reference pass, the
/// emulating kernel (whose sums follow this walk's row-major order) and its cancellation check.
extension Normalization {
    /// Per statistics set: the mean (zero when not centring) and Σ(x − μ)². Two passes, Float64 accumulators.
    static func statistics<Scalar: NormScalar>(
        of input: Tensor<Scalar>, plan: NormPlan, centre: Bool
    ) -> (means: [Double], sumSquares: [Double]) {
        let count = plan.statsShape.count
        var sums = [Double](repeating: 0, count: count)
        var lows = [Double](repeating: .infinity, count: count)
        var highs = [Double](repeating: -.infinity, count: count)
        var squares = [Double](repeating: 0, count: count)
        var means = [Double](repeating: 0, count: count)
        input.scalars.withUnsafeBufferPointer { x in
            if centre {
                forEachElement(plan) { offset, stat in
                    let v = x[offset].asDouble
                    sums[stat] += v
                    lows[stat] = min(lows[stat], v)
                    highs[stat] = max(highs[stat], v)
                }
                let m = Double(plan.setSize)
                for i in 0..<count {
                    // A constant set gets its value exactly, so x − μ is exactly 0 there (sum/m may round).
                    means[i] = lows[i] == highs[i] ? lows[i] : sums[i] / m
                }
            }
            forEachElement(plan) { offset, stat in
                let d = x[offset].asDouble - means[stat]
                squares[stat] += d * d
            }
        }
        return (means, squares)
    }

    @inline(__always)
    static func forEachElement(_ plan: NormPlan, _ body: (_ offset: Int, _ stat: Int) -> Void) {
        for n in 0..<plan.batch {
            for c in 0..<plan.channels {
                let start = (n * plan.channels + c) * plan.spatial
                for s in 0..<plan.spatial {
                    body(start + s, plan.statIndex(sample: n, channel: c, position: s))
                }
            }
        }
    }
}
