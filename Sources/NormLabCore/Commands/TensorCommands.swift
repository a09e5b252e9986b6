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

    static let constructors = ["randn", "rand", "zeros", "ones", "arange", "full"]

    /// `randn|rand D… [seed S]`, `zeros|ones|arange D…`, `full V D…`, `[ … ]`, or a tensor's name.
    init(parsing cursor: inout ArgumentCursor) throws {
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
        let dtype = context.settings.dtype
        let limit = context.settings.maxElements
        func build(_ make: (Shape) -> AnyTensor, _ dims: [Int]) throws -> AnyTensor {
            let shape = try Shape(dims, maxElements: limit)
            try context.reserve(elements: shape.count, bytesEach: dtype.byteSize, copies: 1, for: "a tensor of shape \(shape)")
            return make(shape)
        }
        switch self {
        case .random(let normal, let dims, let seed):
            return try build({ shape in
                switch (dtype, normal) {
                case (.float32, true): .float32(.randn(shape, seed: seed))
                case (.float32, false): .float32(.rand(shape, seed: seed))
                case (.float64, true): .float64(.randn(shape, seed: seed))
                case (.float64, false): .float64(.rand(shape, seed: seed))
                }
            }, dims)
        case .zeros(let dims): return try build({ dtype == .float32 ? .float32(.zeros($0)) : .float64(.zeros($0)) }, dims)
        case .ones(let dims): return try build({ dtype == .float32 ? .float32(.ones($0)) : .float64(.ones($0)) }, dims)
        case .arange(let dims): return try build({ dtype == .float32 ? .float32(.arange($0)) : .float64(.arange($0)) }, dims)
        case .full(let value, let dims):
            return try build({ dtype == .float32 ? .float32(.full(Float(value), shape: $0)) : .float64(.full(value, shape: $0)) }, dims)
        case .literal(let literal):
            return dtype == .float32
                ? .float32(try Tensor<Float>(literal: literal, maxElements: limit))
                : .float64(try Tensor<Double>(literal: literal, maxElements: limit))
        case .copy(let name):
            return try context.lookup(name)
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
        usage: ["tensor NAME = randn|rand D… [seed S]", "tensor NAME = zeros|ones|arange D…",
                "tensor NAME = full V D…", "tensor NAME = [[1, 2], [3, 4]]", "tensor NAME = OTHER"],
        summary: "make a named tensor",
        details: """
        Makes a tensor in the session's dtype (see `set dtype`). randn draws standard normal numbers and rand
        uniform ones in [0, 1), from a portable generator: the same seed gives the same numbers on every
        machine (seed 0 when none is given). arange counts 0, 1, 2, … in row-major order. A literal is a
        nested list of numbers (negative, with exponents, nan, inf), and may continue over several lines while
        a '[' is open. `tensor z = x` copies x.
        """,
        examples: ["tensor x = randn 2 4 3 3 seed 0", "tensor x = [[1, 2, 3], [4, 5, 6]]", "tensor g = full 0.5 4"],
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
        return Report([.text(context.wording.headline(name.value, tensor))])
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
