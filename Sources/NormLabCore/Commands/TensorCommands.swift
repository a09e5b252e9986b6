import NormKit

/// How a tensor is made.
public enum TensorSource: Equatable, Sendable {
    case random(normal: Bool, dims: [Int], seed: UInt64)
    case zeros([Int])
    case ones([Int])
    case arange([Int])
    case full(Double, [Int])
    case literal(NestedLiteral)
    case copy(Located<String>)
    /// Another constructor's values times `scale` plus `shift`, computed in float64 and rounded once.
    indirect case affine(TensorSource, scale: Double, shift: Double)

    static let constructors = ["randn", "rand", "zeros", "ones", "arange", "full"]

    /// `randn|rand D… [seed S]`, `zeros|ones|arange D…`, `full V D…`, `[ … ]`, or a tensor's name; the
    /// constructors may end in `scale S` and `shift M` (x·S + M).
    init(parsing cursor: inout ArgumentCursor) throws {
        try self.init(constructor: &cursor)
        if case .copy = self { return }
        if case .literal = self { return }
        var scale = 1.0, shift = 0.0, given = false
        while let word = cursor.peek, word.kind == .word, word.text == "scale" || word.text == "shift" {
            _ = cursor.next()
            let value = try cursor.number(word.text == "scale" ? "the scale" : "the shift")
            guard value.isFinite else { throw cursor.error("\(word.text) must be a finite number", at: nil) }
            if word.text == "scale" { scale = value } else { shift = value }
            given = true
        }
        if given { self = .affine(self, scale: scale, shift: shift) }
    }

    private init(constructor cursor: inout ArgumentCursor) throws {
        guard let token = cursor.peek else {
            throw cursor.error("expected randn, rand, zeros, ones, arange, full, a literal [ … ] or a tensor name, got the end of the command", at: nil)
        }
        if token.kind == .openBracket { self = .literal(try cursor.literal()); return }
        switch token.text {
        case "randn", "rand":
            _ = cursor.next()
            let dims = try cursor.dims()
            var seed: UInt64 = 0
            if let s = cursor.peek, s.kind == .word, s.text == "seed" {
                _ = cursor.next()
                seed = UInt64(try cursor.integer("a seed (a whole number ≥ 0)", minimum: 0).value)
            }
            self = .random(normal: token.text == "randn", dims: dims, seed: seed)
        case "zeros": _ = cursor.next(); self = .zeros(try cursor.dims())
        case "ones": _ = cursor.next(); self = .ones(try cursor.dims())
        case "arange": _ = cursor.next(); self = .arange(try cursor.dims())
        case "full":
            _ = cursor.next()
            let value = try cursor.number("the fill value")
            self = .full(value, try cursor.dims())
        default:
            self = .copy(try cursor.name("randn, rand, zeros, ones, arange, full, a literal [ … ] or a tensor name"))
        }
    }

    /// The tensor, in the session's dtype and within its element limit.
    func make(in context: StatementContext) throws -> AnyTensor {
        try make(in: context, dtype: context.settings.dtype)
    }

    private func make(in context: StatementContext, dtype: DType) throws -> AnyTensor {
        let limit = context.settings.maxElements
        func build(_ make: (Shape) -> AnyTensor, _ dims: [Int]) throws -> AnyTensor {
            let shape = try Shape(dims, maxElements: limit)
            try context.reserve(elements: shape.count, bytesEach: dtype.memoryBytes, copies: dtype.isReduced ? 3 : 1, for: "a tensor of shape \(shape)")
            return make(shape)
        }
        // float16 and bfloat16 round from float64 values: one rounding, as NumPy's astype does from float64.
        let built = dtype == .float32 ? DType.float32 : .float64
        func typed<S: NormScalar>(_ make: @escaping (Shape) -> Tensor<S>) -> (Shape) -> AnyTensor {
            { shape in AnyTensor(make(shape)).converted(to: dtype) }
        }
        func made(_ float32: @escaping (Shape) -> Tensor<Float>, _ float64: @escaping (Shape) -> Tensor<Double>) -> (Shape) -> AnyTensor {
            built == .float32 ? typed(float32) : typed(float64)
        }
        switch self {
        case .random(let normal, let dims, let seed):
            return try build(normal ? made({ .randn($0, seed: seed) }, { .randn($0, seed: seed) })
                                    : made({ .rand($0, seed: seed) }, { .rand($0, seed: seed) }), dims)
        case .zeros(let dims): return try build(made({ .zeros($0) }, { .zeros($0) }), dims)
        case .ones(let dims): return try build(made({ .ones($0) }, { .ones($0) }), dims)
        case .arange(let dims): return try build(made({ .arange($0) }, { .arange($0) }), dims)
        case .full(let value, let dims):
            return try build(made({ .full(Float(value), shape: $0) }, { .full(value, shape: $0) }), dims)
        case .literal(let literal):
            return built == .float32
                ? .float32(try Tensor<Float>(literal: literal, maxElements: limit))
                : AnyTensor.float64(try Tensor<Double>(literal: literal, maxElements: limit)).converted(to: dtype)
        case .copy(let name):
            return try context.lookup(name)
        case .affine(let source, let scale, let shift):
            let values = try source.make(in: context, dtype: .float64)
            guard case .float64(let t) = values else { return values }
            return AnyTensor.float64(t.map { $0 * scale + shift }).converted(to: dtype)
        }
    }
}

/// Completion after `tensor NAME =` and `param gamma =`: a constructor or a tensor's name.
let sourceCompletion = CompletionRule { request in
    guard let equals = request.arguments.firstIndex(of: "=") else { return .nothing }
    return equals == request.arguments.count - 1 ? request.matching(TensorSource.constructors + request.tensorNames) : .nothing
}

struct MakeTensor: Command, Equatable {
    static let help = CommandHelp(
        name: "tensor",
        usage: ["tensor NAME = randn|rand D… [seed S] [scale S] [shift M]",
                "tensor NAME = zeros|ones|arange D… [scale S] [shift M]", "tensor NAME = full V D…", "tensor NAME = [[1, 2], [3, 4]]", "tensor NAME = OTHER"],
        summary: "make a named tensor",
        details: """
        Makes a tensor in the session's dtype (see `set dtype`). randn draws standard normal numbers and rand
        uniform ones in [0, 1), from a portable generator: the same seed gives the same numbers on every
        machine (seed 0 when none is given). arange counts 0, 1, 2, … in row-major order. A literal is a
        nested list of numbers (negative, with exponents, nan, inf), and may continue over several lines while
        a '[' is open. `tensor z = x` copies x. `scale S` and `shift M` after a constructor make v·S + M,
        computed in float64 and rounded once to the dtype: `randn 5 4 shift 2000` is PyTorch's randn(5, 4) + 2000,
        `arange 2 16 scale 1e-3 shift 100` rows of 100, 100.001, ….
        """,
        examples: ["tensor x = randn 2 4 3 3 seed 0", "tensor x = [[1, 2, 3], [4, 5, 6]]", "tensor g = full 0.5 4",
                   "tensor x = randn 5 4 seed 0 shift 2000", "tensor r = arange 4 16 scale 1e-3 shift 100"],
        completion: sourceCompletion)

    let name: Located<String>
    let source: TensorSource

    init(name: Located<String>, source: TensorSource) {
        self.name = name
        self.source = source
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        name = try cursor.name()
        try cursor.expect(.equals, "'=' after the name")
        source = try TensorSource(parsing: &cursor)
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        let tensor = try source.make(in: context)
        context.session[name.value] = tensor
        var report = Report([.text(context.wording.headline(name.value, tensor))])
        if tensor.dtype.isReduced, case .copy = source {} else if tensor.dtype.isReduced {
            let infinite = tensor.doubles.filter(\.isInfinite).count
            if infinite > 0 {
                report.add(.warning("\(infinite) value\(infinite == 1 ? "" : "s") went past \(tensor.dtype)'s largest finite value \(NormWarning.number(tensor.dtype.largestFinite)) and became ±∞ (or were ±∞ already); make the tensor in float32 (set dtype float32)", origin: context.origin))
            }
        }
        return report
    }
}

struct Reshape: Command, Equatable {
    static let help = CommandHelp(
        name: "reshape", usage: ["reshape NAME D…"],
        summary: "give a tensor another shape with the same number of elements",
        details: "The values keep their row-major order.",
        examples: ["reshape x 2 36"], completion: .tensorsAnd())

    let name: Located<String>
    let dims: [Int]

    init(name: Located<String>, dims: [Int]) {
        self.name = name
        self.dims = dims
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        name = try cursor.name()
        dims = try cursor.dims()
        try cursor.finish()
    }

    func run(in context: StatementContext) throws -> Report {
        let tensor = try context.lookup(name)
        let shape = try Shape(dims, maxElements: context.settings.maxElements)
        let reshaped = try tensor.reshaped(shape)
        context.session[name.value] = reshaped
        return Report([.text(context.wording.headline(name.value, reshaped))])
    }
}

struct ListTensors: Command, Equatable {
    static let help = CommandHelp(
        name: "tensors", usage: ["tensors"],
        summary: "list the session's tensors with their shapes and dtypes", examples: ["tensors"])

    init() {}
    init(parsing cursor: inout ArgumentCursor) throws { try cursor.finish() }

    func run(in context: StatementContext) throws -> Report {
        let session = context.session
        guard !session.order.isEmpty else {
            return Report([.text("no tensors yet: make one with `tensor x = randn 2 4 3 3`")])
        }
        var table = TextTable(headers: ["name", "shape", "dtype", "elements"], numericColumns: [3])
        for name in session.order {
            guard let t = session.shapeAndType(of: name) else { continue }
            table.rows.append([name, t.shape.description, t.dtype.rawValue, String(t.shape.count)])
        }
        return Report([.table(table)])
    }
}

struct DeleteTensors: Command, Equatable {
    static let help = CommandHelp(
        name: "del", usage: ["del NAME…"],
        summary: "delete tensors from the session", examples: ["del y xhat"], completion: .tensorsAnd())

    let names: [Located<String>]

    init(names: [Located<String>]) { self.names = names }

    init(parsing cursor: inout ArgumentCursor) throws {
        var names = [try cursor.name()]
        while !cursor.isAtEnd { names.append(try cursor.name()) }
        self.names = names
    }

    func run(in context: StatementContext) throws -> Report {
        for name in names { _ = try context.lookup(name) }
        for name in names { context.session[name.value] = nil }
        return Report([.text("deleted " + names.map(\.value).joined(separator: ", "))])
    }
}
