/// The reduction of the parameter gradients over the batch for channel-wise γ on the row kernels (element-wise γ
/// sums its dγ, dβ in its own loops: `ElementAffineRows.swift`).
extension FastKernels {
    /// dγ, dβ from per (sample, channel) partial sums, summed over the batch in sample order.
    static func reduceParameterGradients(plan: NormPlan, partialGamma: [Double], partialBeta: [Double],
                                         dgamma: inout [Double], dbeta: inout [Double]) {
        let channels = plan.channels, batch = plan.batch
        guard !partialGamma.isEmpty else { return }
        // Sample by sample along contiguous memory; each channel still sums over n in order (the same bits).
        for c in 0..<channels {
            dgamma[c] = 0
            dbeta[c] = 0
        }
        partialGamma.withUnsafeBufferPointer { pg in
            partialBeta.withUnsafeBufferPointer { pb in
                for n in 0..<batch {
                    let row = n * channels
                    for c in 0..<channels {
                        dgamma[c] += pg[row + c]
                        dbeta[c] += pb[row + c]
                    }
                }
            }
        }
    }
}
