/// An N-dimensional array of Float32 or Float64, contiguous and row-major.
///
/// A value type: copies share storage until one of them is written (copy on write, through `Array`).
public struct Tensor<Scalar: NormScalar>: Sendable, Equatable {
    /// The tensor's shape.
    public let shape: Shape
    /// The elements in row-major (C) order.
    public private(set) var scalars: [Scalar]

    /// Fails when the number of scalars is not the shape's element count.
    public init(shape: Shape, scalars: [Scalar]) throws(NormError) {
        guard scalars.count == shape.count else {
            throw NormError.mismatch("\(scalars.count) values cannot fill shape \(shape), which holds \(shape.count)")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// For callers that already know the count matches (a conversion of another tensor of this shape).
    public init(uncheckedShapeFrom shape: Shape, scalars: [Scalar]) {
        precondition(scalars.count == shape.count)
        self.init(uncheckedShape: shape, scalars: scalars)
    }

    init(uncheckedShape shape: Shape, scalars: [Scalar]) {
        self.shape = shape
        self.scalars = scalars
    }

    /// float32 or float64.
    public var dtype: DType { Scalar.dtype }
    /// The number of elements.
    public var count: Int { shape.count }
    /// The dimensions.
    public var dims: [Int] { shape.dims }
    /// The number of dimensions.
    public var rank: Int { shape.rank }

    /// The element at a multi-index, or nil when the index does not fit the shape.
    public func element(at index: [Int]) -> Scalar? {
        shape.offset(of: index).map { scalars[$0] }
    }

    /// The elements for writing in place, without copying.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Scalar>) throws -> R
    ) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }

    /// Replace one element in place (offset must be in range).
    mutating func set(offset: Int, to value: Scalar) { scalars[offset] = value }

    /// The same values under another shape with the same element count.
    public func reshaped(_ newShape: Shape) throws(NormError) -> Tensor {
        guard newShape.count == shape.count else {
            throw NormError.mismatch("cannot reshape \(shape) (\(shape.count) elements) to \(newShape) (\(newShape.count) elements)")
        }
        return Tensor(uncheckedShape: newShape, scalars: scalars)
    }

    /// The values rounded (or widened) to another element type.
    public func converted<Other: NormScalar>(to _: Other.Type = Other.self) -> Tensor<Other> {
        if let same = self as? Tensor<Other> { return same }
        return Tensor<Other>(uncheckedShape: shape, scalars: scalars.map { Other(fromDouble: $0.asDouble) })
    }

    /// The same shape, each element transformed.
    public func map(_ transform: (Scalar) -> Scalar) -> Tensor {
        Tensor(uncheckedShape: shape, scalars: scalars.map(transform))
    }
}

// MARK: - Constructors

extension Tensor {
    /// Every element `value`.
    public static func full(_ value: Scalar, shape: Shape) -> Tensor {
        Tensor(uncheckedShape: shape, scalars: [Scalar](repeating: value, count: shape.count))
    }

    /// Every element 0.
    public static func zeros(_ shape: Shape) -> Tensor { full(0, shape: shape) }
    /// Every element 1.
    public static func ones(_ shape: Shape) -> Tensor { full(1, shape: shape) }

    /// 0, 1, 2, … in row-major order. Above 2²⁴ (Float32) or 2⁵³ (Float64) the integers round.
    public static func arange(_ shape: Shape) -> Tensor {
        Tensor(uncheckedShape: shape, scalars: (0..<shape.count).map { Scalar(fromDouble: Double($0)) })
    }

    /// Uniform in [0, 1) from `SplitMix64(seed:)`; see `SplitMix64` for the exact recipe.
    public static func rand(_ shape: Shape, seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        var scalars = [Scalar]()
        scalars.reserveCapacity(shape.count)
        for _ in 0..<shape.count {
            if Scalar.dtype == .float32 {
                scalars.append(Scalar(fromDouble: Double(generator.nextUniformFloat())))
            } else {
                scalars.append(Scalar(fromDouble: generator.nextUniform()))
            }
        }
        return Tensor(uncheckedShape: shape, scalars: scalars)
    }

    /// Standard normal from `NormalGenerator(seed:)`; Float32 rounds the Float64 deviates.
    public static func randn(_ shape: Shape, seed: UInt64) -> Tensor {
        var generator = NormalGenerator(seed: seed)
        var scalars = [Scalar]()
        scalars.reserveCapacity(shape.count)
        for _ in 0..<shape.count { scalars.append(Scalar(fromDouble: generator.next())) }
        return Tensor(uncheckedShape: shape, scalars: scalars)
    }

    /// A tensor from a nested list literal such as `[[1, 2, 3], [4, 5, 6]]`. Every list at one depth must have the
    /// same length, and the nesting may be at most `Shape.maxRank` deep.
    public init(literal: NestedLiteral, maxElements: Int = Shape.defaultMaxElements) throws(NormError) {
        let dims = try literal.inferredDims()
        let shape = try Shape(dims.isEmpty ? [1] : dims, maxElements: maxElements)
        var scalars = [Scalar]()
        scalars.reserveCapacity(shape.count)
        literal.appendLeaves(to: &scalars)
        self.init(uncheckedShape: shape, scalars: scalars)
    }
}

/// A nested list of numbers, as a user writes it: a number or a list of literals.
public indirect enum NestedLiteral: Sendable, Equatable {
    case number(Double)
    case list([NestedLiteral])

    /// The rectangular shape of the literal, or an error naming the first ragged or empty list.
    func inferredDims() throws(NormError) -> [Int] {
        var dims: [Int] = []
        var level: [NestedLiteral] = [self]
        while true {
            var lengths: Set<Int> = []
            var next: [NestedLiteral] = []
            var numbers = 0
            for node in level {
                switch node {
                case .number: numbers += 1
                case .list(let items):
                    lengths.insert(items.count)
                    next.append(contentsOf: items)
                }
            }
            if numbers == level.count { return dims }
            guard numbers == 0 else {
                throw NormError(.invalidShape, "the literal mixes numbers and lists at depth \(dims.count + 1)")
            }
            guard lengths.count == 1, let length = lengths.first else {
                let sorted = lengths.sorted().map(String.init).joined(separator: " and ")
                throw NormError(.invalidShape, "the literal is ragged: lists at depth \(dims.count + 1) have lengths \(sorted)")
            }
            guard length > 0 else {
                throw NormError(.invalidShape, "the literal has an empty list at depth \(dims.count + 1); every dimension must be at least 1")
            }
            dims.append(length)
            guard dims.count <= Shape.maxRank else {
                throw NormError(.invalidShape, "the literal is nested more than \(Shape.maxRank) deep")
            }
            level = next
        }
    }

    func appendLeaves<S: NormScalar>(to scalars: inout [S]) {
        var stack: [NestedLiteral] = [self]
        var ordered: [Double] = []
        // Iterative depth-first walk, so a hostile nesting depth cannot exhaust the call stack.
        while let node = stack.popLast() {
            switch node {
            case .number(let value): ordered.append(value)
            case .list(let items): stack.append(contentsOf: items.reversed())
            }
        }
        scalars.append(contentsOf: ordered.map { S(fromDouble: $0) })
    }
}
