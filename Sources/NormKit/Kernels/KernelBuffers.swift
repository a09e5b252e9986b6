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

        /// γ and β in Float64, made from the tensors' own values in one pass (element-wise ones are a sample's size).
        init<S: NormScalar>(gamma: [S]?, beta: [S]?, count: Int) {
            storage = .allocate(capacity: 2 * count)
            func fill(_ target: UnsafeMutablePointer<Double>, _ values: [S]?, _ missing: Double) {
                guard let values else { target.initialize(repeating: missing, count: count); return }
                values.withUnsafeBufferPointer { v in
                    for i in 0..<count { target[i] = v[i].asDouble }
                }
            }
            fill(storage, gamma, 1)
            fill(storage + count, beta, 0)
            self.gamma = UnsafePointer(storage)
            self.beta = UnsafePointer(storage + count)
        }

        func deallocate() { storage.deallocate() }
    }

    /// γ and β in Float for the float32 lanes of single-element channels.
    struct FloatParameters: @unchecked Sendable {
        let gamma: UnsafePointer<Float>
        let beta: UnsafePointer<Float>
        private let storage: UnsafeMutablePointer<Float>

        /// From the tensors' own values (float32 ones copied as they are; ones and zeros when absent), or empty when
        /// `count` is 0.
        init<S: NormScalar>(gamma: [S]?, beta: [S]?, count: Int) {
            let storage = UnsafeMutablePointer<Float>.allocate(capacity: max(1, 2 * count))
            if count > 0 {
                Self.fill(storage, from: gamma, count: count, missing: 1)
                Self.fill(storage + count, from: beta, count: count, missing: 0)
            }
            self.storage = storage
            self.gamma = UnsafePointer(storage)
            self.beta = UnsafePointer(storage + count)
        }

        func deallocate() { storage.deallocate() }

        /// `count` values as Float (`missing` when there are none): float32 ones copied as they are.
        static func fill<S: NormScalar>(_ target: UnsafeMutablePointer<Float>, from values: [S]?, count: Int,
                                        missing: Float) {
            guard let values else { target.initialize(repeating: missing, count: count); return }
            values.withUnsafeBufferPointer { v in
                if S.self == Float.self {
                    UnsafeMutableRawPointer(target).copyMemory(from: UnsafeRawPointer(v.baseAddress!),
                                                               byteCount: count * MemoryLayout<Float>.stride)
                } else {
                    for i in 0..<count { target[i] = Float(v[i].asDouble) }
                }
            }
        }
    }

    /// γ and β in the element type (ones and zeros when absent), for kernels whose parameters are per element:
    /// half the bytes of Float64 copies for float32, and no conversion pass (widening a Float is exact).
    struct ScalarParameters<S: NormScalar>: @unchecked Sendable {
        let gamma: UnsafePointer<S>
        let beta: UnsafePointer<S>
        private let storage: UnsafeMutablePointer<S>

        init(gamma: Tensor<S>?, beta: Tensor<S>?, count: Int) {
            let storage = UnsafeMutablePointer<S>.allocate(capacity: 2 * count)
            if let gamma { gamma.scalars.withUnsafeBufferPointer { storage.initialize(from: $0.baseAddress!, count: count) } }
            else { storage.initialize(repeating: 1, count: count) }
            if let beta { beta.scalars.withUnsafeBufferPointer { (storage + count).initialize(from: $0.baseAddress!, count: count) } }
            else { (storage + count).initialize(repeating: 0, count: count) }
            self.storage = storage
            self.gamma = UnsafePointer(storage)
            self.beta = UnsafePointer(storage + count)
        }

        func deallocate() { storage.deallocate() }
    }
}

extension FastKernels {
    /// 1 / divisor when multiplying by it is dividing by divisor (v / 2^k is v · 2^−k, the same real number rounded
    /// once: a batch of 8 or 32 multiplies); nil otherwise.
    static func exactReciprocal(of divisor: Double) -> Double? {
        divisor.significand == 1 && divisor.isNormal && (1 / divisor).isNormal ? 1 / divisor : nil
    }

    /// A statistics array in the tensor's element type, made on the session's threads in one pass that also says
    /// whether every value is finite (PyDLLib's per-position statistics are half as many values as the input, so
    /// a serial map and a separate scan cost more than some whole passes). With `divisor`, each value divided by it
    /// first (paramgrad=mean).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    static func narrowed<Scalar: NormScalar>(_ values: [Double], shape: Shape, threads: Int,
                                             dividedBy divisor: Double = 1) -> (tensor: Tensor<Scalar>, finite: Bool) {
        let count = values.count
        let reciprocal = exactReciprocal(of: divisor)
        let divisors = SIMD4<Double>(repeating: divisor), reciprocals = SIMD4<Double>(repeating: reciprocal ?? 1)
        let chunkSize = 1 << 14
        let chunks = (count + chunkSize - 1) / chunkSize
        let finiteChunks = UnsafeMutablePointer<Bool>.allocate(capacity: max(chunks, 1))
        defer { finiteChunks.deallocate() }
        nonisolated(unsafe) let flags = finiteChunks
        let scalars = values.withUnsafeBufferPointer { source in
            [Scalar](unsafeUninitializedCapacity: count) { target, initialized in
                if let fromBase = source.baseAddress, let toBase = target.baseAddress {
                    nonisolated(unsafe) let from = fromBase, to = toBase
                    parallel(chunks, threads: threads) { range in
                        for chunk in range {
                            let lower = chunk * chunkSize, upper = min(count, lower + chunkSize)
                            var check = SIMD4<Double>()
                            var i = lower
                            while i + 4 <= upper {
                                let v = divisor == 1 ? WideLanes.get4(from + i)
                                    : reciprocal != nil ? WideLanes.get4(from + i) * reciprocals
                                    : WideLanes.get4(from + i) / divisors
                                check += v - v
                                WideLanes.narrow4(v, to + i)
                                i += 4
                            }
                            var tail = 0.0
                            while i < upper {
                                let v = divisor == 1 ? from[i] : reciprocal.map { from[i] * $0 } ?? from[i] / divisor
                                tail += v - v
                                to[i] = Scalar(fromDouble: v)
                                i += 1
                            }
                            flags[chunk] = (check.sum() + tail).isFinite
                        }
                    }
                }
                initialized = count
            }
        }
        let finite = (0..<chunks).allSatisfy { finiteChunks[$0] }
        return (Tensor(uncheckedShape: shape, scalars: scalars), finite)
    }
}
