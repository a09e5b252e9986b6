/// Four Float64 lanes over contiguous elements, then one at a time: the loops of the strided, eval and single-row
/// kernels. Lane-wise IEEE arithmetic, so the same bits as a one-at-a-time loop.
enum WideLanes {
    @inline(__always)
    static func lanes(_ count: Int, four: (Int) -> Void, one: (Int) -> Void) {
        var s = 0
        while s + 4 <= count {
            four(s)
            s += 4
        }
        while s < count {
            one(s)
            s += 1
        }
    }

    @inline(__always)
    static func wide4<S: NormScalar>(_ p: UnsafePointer<S>) -> SIMD4<Double> {
        if S.self == Float.self {
            let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
            return SIMD4<Double>(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]))
        }
        return UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
    }

    @inline(__always)
    static func wide4<S: NormScalar>(_ p: UnsafeMutablePointer<S>) -> SIMD4<Double> { wide4(UnsafePointer(p)) }

    @inline(__always)
    static func narrow4<S: NormScalar>(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<S>) {
        if S.self == Float.self {
            UnsafeMutableRawPointer(p).storeBytes(of: SIMD4<Float>(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3])),
                                                  as: SIMD4<Float>.self)
        } else {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Double>.self)
        }
    }

    @inline(__always)
    static func get4(_ p: UnsafePointer<Double>) -> SIMD4<Double> { UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self) }

    @inline(__always)
    static func get4(_ p: UnsafeMutablePointer<Double>) -> SIMD4<Double> { get4(UnsafePointer(p)) }

    @inline(__always)
    static func put4(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Double>.self)
    }
}
