import CVectorMath

/// The backward's two chains of float32 sums, eight units at a time in the lanes of one vector
/// (`normlab_emulated_chains8_f32`): each lane adds its unit's elements in row-major order with the operations of
/// `step`, so a unit's sums have the same bits as on the scalar walk. For accumulate=float32 on float32 storage (or
/// float16/bfloat16 held in Float): the formats that round after each operation keep the scalar walk.
struct EightLanes {
    let offsets: UnsafeMutablePointer<Int>
    let means: UnsafeMutablePointer<Float>
    let rstds: UnsafeMutablePointer<Float>
    let gammas: UnsafeMutablePointer<UnsafePointer<Float>?>
    let rows: Int

    init(rows: Int) {
        self.rows = rows
        offsets = .allocate(capacity: 8 * rows)
        means = .allocate(capacity: 8 * rows)
        rstds = .allocate(capacity: 8 * rows)
        gammas = .allocate(capacity: 8 * rows)
        gammas.initialize(repeating: nil, count: 8 * rows)
    }

    func free() { offsets.deallocate(); means.deallocate(); rstds.deallocate(); gammas.deallocate() }

    /// Runs the kernel over `count` elements per row and hands each lane's (a, b) to `finish`.
    func run(kind: Int32, x: UnsafeRawPointer, dy: UnsafeRawPointer, count: Int, gammaStride: Int,
             _ finish: (_ lane: Int, _ a: Float, _ b: Float) -> Void) {
        var a = SIMD8<Float>(), b = SIMD8<Float>()
        withUnsafeMutableBytes(of: &a) { aOut in withUnsafeMutableBytes(of: &b) { bOut in
            UnsafeRawPointer(gammas).withMemoryRebound(to: UnsafePointer<Float>?.self, capacity: 8 * rows) { gamma in
                normlab_emulated_chains8_f32(kind, x.assumingMemoryBound(to: Float.self), dy.assumingMemoryBound(to: Float.self),
                                             offsets, rows, count, means, rstds, gamma, gammaStride,
                                             aOut.baseAddress!.assumingMemoryBound(to: Float.self),
                                             bOut.baseAddress!.assumingMemoryBound(to: Float.self))
            }
        }}
        for lane in 0..<8 { finish(lane, a[lane], b[lane]) }
    }
}

extension GradientSumsChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        guard F.self == Float32Format.self, Scalar.self == Float.self else { return false }
        let lanes = EightLanes(rows: units.rowsPerUnit)
        defer { lanes.free() }
        var gammaStride = 0
        for lane in 0..<8 {
            for r in 0..<lanes.rows {
                let row = units.row(unit: first + lane, r), at = 8 * r + lane
                let (gamma, stride) = terms.affine.gammaRow(row.channel)
                lanes.offsets[at] = row.offset
                lanes.means[at] = unsafeBitCast(means[first + lane], to: Float.self)
                lanes.rstds[at] = unsafeBitCast(rstds[first + lane], to: Float.self)
                lanes.gammas[at] = UnsafeRawPointer(gamma).assumingMemoryBound(to: Float.self)
                gammaStride = stride
            }
        }
        lanes.run(kind: 0, x: UnsafeRawPointer(terms.x.base), dy: UnsafeRawPointer(terms.dy.base), count: units.spatial,
                  gammaStride: gammaStride) { lane, g, gh in
            let index = first + lane
            finish((unsafeBitCast(g, to: F.Value.self), unsafeBitCast(gh, to: F.Value.self), means[index], rstds[index]),
                   index)
        }
        return true
    }
}

extension ParameterChain {
    func walkEight(_ units: EmulatedUnits, first: Int) -> Bool {
        // Each row's μ and rstd constant along it (not per-position statistics).
        guard F.self == Float32Format.self, Scalar.self == Float.self, terms.layout.positionStride == 0 else { return false }
        let lanes = EightLanes(rows: units.rowsPerUnit)
        defer { lanes.free() }
        for lane in 0..<8 {
            for r in 0..<lanes.rows {
                let row = units.row(unit: first + lane, r), at = 8 * r + lane
                lanes.offsets[at] = row.offset
                lanes.means[at] = unsafeBitCast(means[row.firstStat], to: Float.self)
                lanes.rstds[at] = unsafeBitCast(rstds[row.firstStat], to: Float.self)
            }
        }
        lanes.run(kind: 1, x: UnsafeRawPointer(terms.x.base), dy: UnsafeRawPointer(terms.dy.base), count: units.spatial,
                  gammaStride: 0) { lane, dgamma, dbeta in
            finish((unsafeBitCast(dgamma, to: F.Value.self), unsafeBitCast(dbeta, to: F.Value.self)), first + lane)
        }
        return true
    }
}
