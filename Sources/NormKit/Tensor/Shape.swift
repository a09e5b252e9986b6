/// The dimensions of a tensor: rank 1…8, every dimension ≥ 1, and an element count that fits under a cap.
///
/// A shape is only ever built through the throwing initialiser, so holding a `Shape` means its element count
/// was computed with overflow checks and is at most the cap in force when it was made.
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    /// The most dimensions a tensor may have.
    public static let maxRank = 8
    /// 2^27 elements: 1 GiB of Float64. A session may raise or lower it.
    public static let defaultMaxElements = 1 << 27

    /// The dimensions, outermost first; every one ≥ 1.
    public let dims: [Int]
    /// The number of elements: the product of the dimensions.
    public let count: Int

    /// A shape, refused (not trapped) when a dimension is below 1, the rank is over `maxRank`, the product overflows or exceeds `maxElements`.
    public init(_ dims: [Int], maxElements: Int = Shape.defaultMaxElements) throws(NormError) {
        guard !dims.isEmpty else {
            throw NormError(.invalidShape, "a shape needs at least one dimension")
        }
        guard dims.count <= Shape.maxRank else {
            throw NormError(.invalidShape, "rank \(dims.count) is more than the maximum of \(Shape.maxRank) dimensions")
        }
        if let bad = dims.firstIndex(where: { $0 < 1 }) {
            throw NormError(.invalidShape, "dimension \(bad) is \(dims[bad]); every dimension must be at least 1")
        }
        var product = 1
        for d in dims {
            let (next, overflow) = product.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw NormError(.tooManyElements,
                                "shape \(Shape.format(dims)) has more elements than can be counted (the product overflows)")
            }
            product = next
        }
        guard product <= maxElements else {
            throw NormError(.tooManyElements,
                            "shape \(Shape.format(dims)) has \(product) elements, more than the limit of \(maxElements) (maxelems)")
        }
        self.dims = dims
        self.count = product
    }

    /// The number of dimensions.
    public var rank: Int { dims.count }

    /// Row-major strides, in elements.
    public var strides: [Int] {
        var strides = [Int](repeating: 1, count: dims.count)
        var step = 1
        for axis in stride(from: dims.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= dims[axis]
        }
        return strides
    }

    /// The multi-index of a flat offset (row-major). The offset must be in 0..<count.
    public func multiIndex(ofOffset offset: Int) -> [Int] {
        var rest = offset
        var index = [Int](repeating: 0, count: dims.count)
        for axis in stride(from: dims.count - 1, through: 0, by: -1) {
            index[axis] = rest % dims[axis]
            rest /= dims[axis]
        }
        return index
    }

    /// The flat offset of a multi-index, or nil when it is out of range.
    public func offset(of index: [Int]) -> Int? {
        guard index.count == dims.count else { return nil }
        var offset = 0
        for (i, d) in zip(index, dims) {
            guard i >= 0 && i < d else { return nil }
            offset = offset * d + i
        }
        return offset
    }

    public var description: String { Shape.format(dims) }

    /// "(2, 4, 3)", and "(5)" for one dimension (not Python's "(5,)").
    public static func format(_ dims: [Int]) -> String {
        "(" + dims.map(String.init).joined(separator: ", ") + ")"
    }
}

extension Shape {
    /// For shapes derived from an already validated one (a sub-shape, a statistics shape no larger than its input):
    /// their element count cannot overflow or exceed the cap the parent passed.
    init(derivedFrom dims: [Int]) {
        self.dims = dims
        self.count = dims.reduce(1, *)
    }
}
