/// The buffers the fast kernels share: the statistics they write and the parameters they read.
extension FastKernels {
    struct Statistics {
        var means: [Double]
        var variances: [Double]
        var rstds: [Double]
        var sumSquares: [Double]

        /// Uninitialised: the kernels write every element (zeroing 4 × 802,816 values for PyDLLib's per-position
        /// statistics at (8, 64, 56, 56) cost more than some whole passes).
        init(count: Int) {
            func array() -> [Double] { [Double](unsafeUninitializedCapacity: count) { _, initialized in initialized = count } }
            means = array()
            variances = array()
            rstds = array()
            sumSquares = array()
        }

        /// Raw pointers into the four arrays for the parallel kernels, which write disjoint elements.
        struct Pointers {
            let means, variances, rstds, sumSquares: UnsafeMutablePointer<Double>
        }

        mutating func withPointers(_ body: (Pointers) -> Void) {
            means.withUnsafeMutableBufferPointer { m in
                variances.withUnsafeMutableBufferPointer { v in
                    rstds.withUnsafeMutableBufferPointer { r in
                        sumSquares.withUnsafeMutableBufferPointer { q in
                            body(Pointers(means: m.baseAddress!, variances: v.baseAddress!, rstds: r.baseAddress!,
                                          sumSquares: q.baseAddress!))
                        }
                    }
                }
            }
        }
    }

    /// γ and β as plain pointers (ones and zeros when absent): no optionals or ARC in the element loops.
    struct Parameters: @unchecked Sendable {
        let gamma: UnsafePointer<Double>
        let beta: UnsafePointer<Double>
        private let storage: UnsafeMutablePointer<Double>

        init(gamma: [Double]?, beta: [Double]?, count: Int) {
            storage = .allocate(capacity: 2 * count)
            for i in 0..<count {
                storage[i] = gamma?[i] ?? 1
                storage[count + i] = beta?[i] ?? 0
            }
            self.gamma = UnsafePointer(storage)
            self.beta = UnsafePointer(storage + count)
        }

        func deallocate() { storage.deallocate() }
    }
}
