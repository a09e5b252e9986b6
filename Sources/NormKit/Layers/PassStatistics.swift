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

    /// μ, σ² and rstd in the element type when the pass wrote them but not their Float64 forms (BatchNorm's column
    /// kernels in float32: the Float64 arrays were a third of forward's memory traffic, and only backward in
    /// float64, the diagnosis and `xc` read them).
    struct Narrowed: Sendable {
        let mean: Tensor<Scalar>?
        let variance: Tensor<Scalar>
        let rstd: Tensor<Scalar>
    }

    private let made: Mutex<Values?>
    private let make: (@Sendable () -> Values)?
    private let narrowed: Narrowed?

    init(_ values: Values) {
        made = Mutex(values)
        make = nil
        narrowed = nil
    }

    init(madeWhenRead make: @escaping @Sendable () -> Values) {
        made = Mutex(nil)
        self.make = make
        narrowed = nil
    }

    /// The element type's statistics now; the Float64 ones (and, with them, `values`) made when first read.
    init(_ narrowed: Narrowed, exactMadeWhenRead make: @escaping @Sendable () -> Values) {
        made = Mutex(nil)
        self.make = make
        self.narrowed = narrowed
    }

    var mean: Tensor<Scalar>? { narrowed.map { $0.mean } ?? values.mean }
    var variance: Tensor<Scalar> { narrowed?.variance ?? values.variance }
    var rstd: Tensor<Scalar> { narrowed?.rstd ?? values.rstd }

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
