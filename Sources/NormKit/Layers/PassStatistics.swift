import Synchronization

/// μ, σ² and rstd of one forward pass: as the kernel wrote them, or made when first read. PyDLLib's per-position
/// statistics are half as many values as the input, so writing them (and Float64 copies for backward) at every
/// pass cost several times the normalisation itself; the column kernels make them again, with the same code and
/// so the same bits, only when something reads them.
final class PassStatistics<Scalar: NormScalar>: Sendable {
    struct Values: Sendable {
        let mean: Tensor<Scalar>?
        let variance: Tensor<Scalar>
        let rstd: Tensor<Scalar>
        /// μ and rstd as the engine used them (Float64, before rounding to the element type).
        let exactMeans: [Double]
        let exactRstds: [Double]
    }

    private let made: Mutex<Values?>
    private let make: (@Sendable () -> Values)?

    init(_ values: Values) {
        made = Mutex(values)
        make = nil
    }

    init(madeWhenRead make: @escaping @Sendable () -> Values) {
        made = Mutex(nil)
        self.make = make
    }

    /// Whether the values exist yet (tests; a pass that made them eagerly says true).
    var isMade: Bool { made.withLock { $0 != nil } }

    var values: Values {
        made.withLock { values in
            if let values { return values }
            let fresh = make!()
            values = fresh
            return fresh
        }
    }
}
