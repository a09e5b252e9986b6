#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

/// The formats `load` and `save` know, by the path's extension.
enum TensorFileFormat: String {
    case npy, npz, safetensors

    init?(path: String) { self.init(rawValue: PathText.fileExtension(path).lowercased()) }

    var isArchive: Bool { self != .npy }
}

struct Load: Command, Equatable {
    static let help = CommandHelp(
        name: "load", usage: ["load NAME PATH.npy", "load NAME PATH.safetensors|PATH.npz [key=K]", "load PATH.safetensors|PATH.npz"],
        summary: "read tensors from NumPy .npy or .npz files or from .safetensors",
        details: """
        Reads .npy versions 1–3, little-endian float32 and float64 (kept as they are) and integer or bool arrays
        (converted to the session's dtype, with a note), in C order. A .safetensors or .npz file (np.savez or
        np.savez_compressed) holds named tensors: `load NAME PATH key=K` takes one (key= may be left out when
        there is only one), `load PATH` takes them all under their own names. Quote a path with spaces: "my data.npy".
        """,
        examples: ["load x data/x.npy", "load w model.safetensors key=weight", "load sessions/data/pair.npz"],
        completion: .positions([.none, .path]))

    /// Nil: every tensor of an archive, under its own name.
    let name: Located<String>?
    let path: Located<String>
    let key: Located<String>?

    init(name: Located<String>?, path: Located<String>, key: Located<String>? = nil) {
        self.name = name
        self.path = path
        self.key = key
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        if cursor.tokens.count == 1, let only = cursor.peek, TensorFileFormat(path: only.text)?.isArchive == true {
            _ = cursor.next()
            (name, path, key) = (nil, Located(only.text, only.range), nil)
            return
        }
        let name = try cursor.name()
        let path = try cursor.word("a file path")
        var key: Located<String>? = nil
        for (k, value) in try cursor.options() {
            guard k.text == "key" else { throw cursor.error("unknown option \(cursor.describe(k)); the option is key=K", at: k) }
            key = Located(value.text, value.range)
        }
        (self.name, self.path, self.key) = (name, Located(path.text, path.range), key)
    }

    func run(in context: StatementContext) throws -> Report {
        let interpreter = context.interpreter
        let format = TensorFileFormat(path: path.value) ?? .npy
        let data = try interpreter.readFile(interpreter.resolve(path.value), path: path, text: context.text,
                                            what: format.isArchive ? "a .\(format) file" : "a .npy file")
        try MemoryBudget.reserve(data.count * 2, for: "load \(Escaping.visible(path.value))")
        let dtype = context.settings.dtype, limit = context.settings.maxElements
        var loaded: [(name: String, tensor: AnyTensor, note: String?)]
        do {
            if format.isArchive {
                loaded = try TensorArchive.decode(data, fileExtension: format.rawValue, integerTarget: dtype, maxElements: limit)
            } else {
                let one = try NPY.decode(data, integerTarget: dtype, maxElements: limit)
                loaded = [(name?.value ?? "", one.tensor, one.note)]
            }
        } catch let failure as TensorArchive.Failure {
            throw context.error("cannot load \(Escaping.quoted(path.value)): \(failure.message)", at: path.range)
        } catch let failure as NPY.Failure {
            throw context.error("cannot load \(Escaping.quoted(path.value)): \(failure.message)", at: path.range)
        }
        if format.isArchive {
            let keys = loaded.map(\.name)
            if let name {
                if let key {
                    guard let found = loaded.first(where: { $0.name == key.value }) else {
                        throw context.error("\(Escaping.quoted(path.value)) has no tensor \(Escaping.quoted(key.value)); it holds \(keys.map { Escaping.quoted($0) }.joined(separator: ", "))", at: key.range)
                    }
                    loaded = [(name.value, found.tensor, found.note)]
                } else {
                    guard loaded.count == 1 else {
                        throw context.error("\(Escaping.quoted(path.value)) holds \(loaded.count) tensors (\(keys.map { Escaping.quoted($0) }.joined(separator: ", "))): say which with key=", at: path.range)
                    }
                    loaded = [(name.value, loaded[0].tensor, loaded[0].note)]
                }
            } else {
                for entry in loaded where !Names.isValid(entry.name) || Names.reserved.contains(entry.name) {
                    throw context.error("\(Escaping.quoted(entry.name)) in \(Escaping.quoted(path.value)) is not a valid tensor name: load it with `load NAME PATH key=\(entry.name)`", at: path.range)
                }
            }
        }
        var report = Report()
        for entry in loaded {
            context.session[entry.name] = entry.tensor
            if let message = entry.note { report.add(.note(message)) }
            report.line(context.wording.headline(entry.name, entry.tensor) + " loaded from \(Escaping.visible(path.value))")
        }
        return report
    }
}

struct Save: Command, Equatable {
    static let help = CommandHelp(
        name: "save", usage: ["save NAME PATH"],
        summary: "write a tensor to a NumPy .npy or .npz file or to .safetensors (by the extension)",
        details: """
        .npz and .safetensors files hold the tensor under its name (np.load(PATH)["NAME"], safetensors' load_file).
        Writes a temporary file beside PATH and renames it, so a failure never leaves a half-written file.
        """,
        examples: ["save dx dx.npy"], completion: .positions([.tensor, .path]))

    let name: Located<String>
    let path: Located<String>

    init(name: Located<String>, path: Located<String>) {
        self.name = name
        self.path = path
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        (name, path) = try cursor.nameAndPath()
    }

    func run(in context: StatementContext) throws -> Report {
        let tensor = try context.lookup(name)
        let url = context.interpreter.resolve(path.value)
        let directory = url.deletingLastPathComponent()
        guard FileSystem.isDirectory(directory.path) else {
            throw context.error("cannot save to \(Escaping.quoted(path.value)): the folder \(Escaping.quoted(directory.path)) does not exist", at: path.range)
        }
        if FileSystem.isDirectory(url.path) {
            throw context.error("cannot save to \(Escaping.quoted(path.value)): it is a directory", at: path.range)
        }
        try AtomicFile.checkReplaceable(url, path: path, text: context.text)
        guard let format = TensorFileFormat(path: path.value) else {
            throw context.error("save writes .npy, .npz or .safetensors, chosen by the path's extension: give one of them", at: path.range)
        }
        let data = format.isArchive ? TensorArchive.encode([(name.value, tensor)], fileExtension: format.rawValue)! : NPY.encode(tensor)
        do {
            try AtomicFile.write(data, to: url)
        } catch {
            throw context.error("cannot save to \(Escaping.quoted(path.value)): \(error.message)", at: path.range)
        }
        let widened = tensor.dtype == .bfloat16 && format != .safetensors
            ? " (as float32, every value exact: NumPy has no bfloat16; .safetensors keeps BF16)" : ""
        return Report([.text("\(name.value): \(tensor.shape) \(tensor.dtype) saved to \(Escaping.visible(path.value))" + widened)])
    }
}

extension ArgumentCursor {
    /// `NAME PATH` and nothing more (`load`, `save`).
    mutating func nameAndPath() throws -> (Located<String>, Located<String>) {
        let name = try self.name()
        let path = try word("a file path")
        try finish()
        return (name, Located(path.text, path.range))
    }
}

struct RunFile: Command, Equatable {
    static let help = CommandHelp(
        name: "run", usage: ["run FILE"],
        summary: "run the commands in a file",
        details: "Stops at the first error, which names the file and line. Runs may nest up to \(Interpreter.maxRunDepth) deep.",
        examples: ["run sessions/01-first-groupnorm-by-hand.nl"], completion: .positions([.path]))

    let path: Located<String>

    init(path: Located<String>) { self.path = path }

    init(parsing cursor: inout ArgumentCursor) throws {
        let path = try cursor.word("a file path")
        try cursor.finish()
        self.path = Located(path.text, path.range)
    }

    /// The file's statements print as they run; nothing is left to return.
    func run(in context: StatementContext) throws -> Report {
        try context.interpreter.runFile(path, text: context.text, origin: context.origin)
        return .empty
    }
}

struct Export: Command, Equatable {
    static let help = CommandHelp(
        name: "export", usage: ["export numpy|torch PATH.py", "export numpy|torch PATH.py against [y=NAME] [dx=NAME] [dgamma=NAME] [dbeta=NAME]"],
        summary: "write a Python script that recomputes the last pass with NumPy or PyTorch and checks NormLab's results, or yours",
        details: """
        Saves the input, γ, β, the dy of the last backward and NormLab's y, dx, dγ, dβ as .npy files beside PATH and
        writes a script that rebuilds the layer with its conventions, recomputes them (numpy: the formulas in plain
        NumPy; torch: F.group_norm or F.batch_norm with autograd where the conventions are PyTorch's, the formula
        with autograd where they are not) and prints the agreement; it exits 1 when any result differs by more
        than twice what rounding explains for this problem (diagnose's estimate), 0 otherwise. With `against`, the
        script checks your tensors instead of NormLab's: an implementation independent of both.
        """,
        examples: ["export numpy check.py", "export torch check_torch.py", "export numpy mine.py against dx=my_dx"],
        completion: CompletionRule { request in
            switch request.position {
            case 1: return request.matching(ExportTarget.allCases.map(\.rawValue))
            case 2: return .paths
            case 3: return request.matching(["against"])
            default:
                if let (key, prefix) = request.option {
                    guard DiagnosisRole(rawValue: key) != nil else { return .nothing }
                    return Completion.Result(candidates: request.tensorNames.filter { $0.hasPrefix(prefix) }, wantsPaths: false)
                }
                return request.matching(DiagnosisRole.allCases.map { $0.rawValue + "=" })
            }
        })

    let target: ExportTarget
    let path: Located<String>
    /// Your tensors to check instead of NormLab's (empty: NormLab's).
    let against: [DiagnosisRole: Located<String>]

    init(target: ExportTarget, path: Located<String>, against: [DiagnosisRole: Located<String>] = [:]) {
        self.target = target
        self.path = path
        self.against = against
    }

    init(parsing cursor: inout ArgumentCursor) throws {
        target = ExportTarget(rawValue: try cursor.keyword(ExportTarget.allCases.map(\.rawValue), "numpy or torch").text)!
        let path = try cursor.word("a path for the script (….py)")
        self.path = Located(path.text, path.range)
        var against: [DiagnosisRole: Located<String>] = [:]
        if !cursor.isAtEnd {
            _ = try cursor.keyword(["against"], "against")
            for (key, value) in try cursor.options() {
                guard let role = DiagnosisRole(rawValue: key.text) else {
                    throw cursor.error("unknown option \(cursor.describe(key)); options are y=, dx=, dgamma=, dbeta=", at: key)
                }
                try ArgumentCursor.checkName(value, cursor: cursor)
                against[role] = Located(value.text, value.range)
            }
            guard !against.isEmpty else { throw cursor.error("name your tensors after against, e.g. against dx=my_dx", at: nil) }
        }
        self.against = against
    }

    static func == (a: Export, b: Export) -> Bool { a.target == b.target && a.path == b.path && a.against == b.against }

    func run(in context: StatementContext) throws -> Report {
        let layer = try context.currentLayer()
        let record = try context.passRecord("export needs a forward and a backward pass to reproduce: run forward and backward first")
        guard let dyValues = record.dy, let dxValues = record.dx else {
            throw Diagnostic("export needs a forward and a backward pass to reproduce: run forward and backward first")
        }
        if !record.spec.computesExactly && against.isEmpty {
            throw Diagnostic("export's script recomputes the exact pass, and this layer computes with method=\(record.spec.method) accumulate=\(record.spec.accumulate): its results are not meant to match it. Choose the layer without those options to export, or export … against your own tensors")
        }
        let url = context.interpreter.resolve(path.value)
        guard url.pathExtension == "py" else {
            throw context.error("export writes a Python script: give a path ending in .py", at: path.range)
        }
        let directory = url.deletingLastPathComponent()
        guard FileSystem.isDirectory(directory.path) else {
            throw context.error("cannot export to \(Escaping.quoted(path.value)): the folder does not exist", at: path.range)
        }
        try AtomicFile.checkReplaceable(url, path: path, text: context.text)
        let stem = url.deletingPathExtension().lastPathComponent
        let dtype = layer.dtype
        let shape = record.plan.inputShape
        func tensor(_ values: [Double], _ dims: [Int]) throws -> AnyTensor {
            AnyTensor.float64(try Tensor(shape: Shape(dims, maxElements: Int.max), scalars: values)).converted(to: dtype)
        }
        var files: [(String, AnyTensor)] = [("x", try tensor(record.x, shape.dims)), ("dy", try tensor(dyValues, shape.dims))]
        if let affine = record.plan.affineShape, let g = record.gamma {
            files.append(("gamma", try tensor(g, affine.dims)))
            if let b = record.beta { files.append(("beta", try tensor(b, affine.dims))) }  // none for nn.RMSNorm's form
        }
        if record.mode == .eval, let mean = record.mean {
            files += [("running_mean", try tensor(mean, record.plan.statsShape.dims)),
                      ("running_var", try tensor(record.variance, record.plan.statsShape.dims))]
        }
        var results: [(DiagnosisRole, AnyTensor)] = []
        if against.isEmpty {
            results = [(.y, try tensor(record.y, shape.dims)), (.dx, try tensor(dxValues, shape.dims))]
            if let affine = record.plan.affineShape, let dg = record.dgamma {
                results.append((.dgamma, try tensor(dg, affine.dims)))
                if let db = record.dbeta { results.append((.dbeta, try tensor(db, affine.dims))) }
            }
        } else {
            for role in DiagnosisRole.allCases {
                guard let name = against[role] else { continue }
                let value = try context.lookup(name)
                let expected = role == .y || role == .dx ? shape : record.plan.affineShape
                guard let expected, value.shape == expected else {
                    throw context.error("\(name.value) has shape \(value.shape), but the layer's \(role) has shape \(record.plan.affineShape.map { "\($0)" } ?? "none (affine=none)")", at: name.range)
                }
                results.append((role, value))
            }
        }
        // Each checked tensor may differ from the recomputation by its own rounding and the script's.
        let float32 = results.contains { $0.1.dtype == .float32 }
        let narrowest = results.map(\.1.dtype).min { $0.precisionBits < $1.precisionBits }
        let estimates = try Diagnosis.roundingEstimates(spec: record.spec, shape: shape, x: record.x, gamma: record.gamma,
                                                        beta: record.beta, dy: dyValues, float32: float32,
                                                        format: narrowest.flatMap { $0 == .float64 ? nil : $0 })
        let check = PythonExport.Check(
            whose: against.isEmpty ? "NormLab's" : "your (" + results.map { "\($0.0) = \(against[$0.0]!.value)" }.joined(separator: ", ") + ")",
            tolerances: Dictionary(uniqueKeysWithValues: results.map { ($0.0, 2 * (estimates[$0.0] ?? 0)) }))
        files += results.map { ($0.0.rawValue, $0.1) }
        let script = target == .numpy ? PythonExport.numpyScript(spec: record.spec, record: record, stem: stem, check: check)
                                      : PythonExport.torchScript(spec: record.spec, record: record, stem: stem, check: check)
        do {
            // All files or none: a script never sits beside data from another export.
            try AtomicFile.write(files.map { (NPY.encode($0.1), directory.appendingPathComponent("\(stem)_\($0.0).npy")) }
                                 + [(Data(script.utf8), url)])
        } catch {
            throw context.error("cannot export to \(Escaping.quoted(path.value)): \(error.message)", at: path.range)
        }
        let shown = Escaping.visible(path.value)
        let agrees = against.isEmpty ? "with NormLab" : "with your tensors"
        return Report([.text("wrote \(shown) and \(files.count) .npy files beside it (\(Escaping.visible(stem))_x.npy, …); run `python3 \(shown)`: it exits 0 when \(target == .numpy ? "NumPy" : "PyTorch") agrees \(agrees)")])
    }
}
