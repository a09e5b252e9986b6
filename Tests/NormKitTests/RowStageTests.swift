@testable import NormKit
import Testing

/// Rows of one element per channel (LayerNorm and RMSNorm over the last dims, GroupNorm on (N, C)) in float32: each
/// element's dβ terms go into a float32 stage for at most eight sets of one of the 16 fixed chunks, then into the
/// chunk's Float64 sum; the chunks are added in order. dβ's terms are dy itself, so its bits can be made here from
/// that rule alone, on dy for which a stage of more or fewer terms rounds otherwise.
@Suite struct RowStageTests {
    static func expectedDbeta(dy: [Float], sets: Int, groups: Int, width: Int) -> [Float] {
        let chunks = min(sets, 16), channels = groups * width
        var total = [Double](repeating: 0, count: channels)
        for chunk in 0..<chunks {
            var partial = [Double](repeating: 0, count: channels)
            var stage = [Float](repeating: 0, count: channels)
            var staged = [Int](repeating: 0, count: groups)
            for set in (sets * chunk / chunks)..<(sets * (chunk + 1) / chunks) {
                let group = set % groups
                for k in 0..<width { stage[group * width + k] += dy[set * width + k] }
                staged[group] += 1
                if staged[group] == 8 {
                    for k in 0..<width {
                        partial[group * width + k] += Double(stage[group * width + k])
                        stage[group * width + k] = 0
                    }
                    staged[group] = 0
                }
            }
            for c in 0..<channels { partial[c] += Double(stage[c]); total[c] += partial[c] }
        }
        return total.map { Float($0) }
    }

    /// Sets up to `FastKernels.rowsInCache` run in batches (`gradientSets`), longer ones by spans of their width
    /// (`longSetsBackward`), which takes a chunk's one term, or one fold, into the total directly: 144 sets of 16,385
    /// put nine sets in a chunk (a fold mid-chunk), 80 sets in two groups two or three of a group (chunks of five
    /// that start mid-group), 63 in three groups one or two, 6 sets one.
    @Test(arguments: [([300, 20], 1, true), ([150, 6], 3, false), ([37, 33], 1, true), ([9, 4], 2, false),
                      ([144, FastKernels.rowsInCache + 1], 1, true), ([40, 2 * (FastKernels.rowsInCache + 1)], 2, false),
                      ([21, 3 * (FastKernels.rowsInCache + 1)], 3, false), ([6, FastKernels.rowsInCache + 3], 1, true)])
    func dbetaFollowsItsStages(_ dims: [Int], _ groups: Int, _ lastDims: Bool) throws {
        let shape = try Shape(dims)
        let spec = lastDims ? try LayerSpec(kind: .layernorm, normalizedShape: [dims[1]])
                            : try LayerSpec(kind: .groupnorm, groups: groups)
        let x: Tensor<Float> = Tensor<Double>.randn(shape, seed: 71).converted()
        // ±10⁴ in samples 6k and 6k + 3 (cancelling exactly) over terms near 10⁻²: a stage holding 10⁴ rounds the small
        // terms to 10⁻³, so which samples share a stage shows in nearly every dβ (a sum near 0.1).
        let small = Tensor<Double>.randn(shape, seed: 73).scalars
        let dy = Tensor<Float>(uncheckedShape: shape, scalars: small.indices.map { i in
            let sample = i / dims[1]
            return Float(small[i] * 1e-2) + (sample % 6 == 0 ? 1e4 : sample % 6 == 3 ? -1e4 : 0)
        })
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let gamma: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 74).converted()
        let beta: Tensor<Float> = Tensor<Double>.randn(plan.affineShape!, seed: 75).converted()
        let expected = Self.expectedDbeta(dy: dy.scalars, sets: dims[0] * groups, groups: groups, width: dims[1] / groups)
        for threads in [1, 2, 3] {
            let forward = try Normalization.forward(spec: spec, input: x, gamma: gamma, beta: beta, threads: threads)
            let grads = try Normalization.backward(forward: forward, gamma: gamma, outputGradient: dy, threads: threads)
            let dbeta = try #require(grads.dbeta).scalars
            let differing = zip(dbeta, expected).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(dims), \(threads) threads: \(differing) of \(expected.count) dβ differ")
        }
    }
}
