import Foundation
import NormKit

extension Interpreter {
    func perform(_ command: Command, text: String, origin: Origin) throws {
        switch command {
        case .tensor(let name, let source):
            let tensor = try makeTensor(source, text: text)
            session[name.value] = tensor
            out(headline(name.value, tensor))
        case .reshape(let name, let dims):
            let tensor = try lookup(name, text: text)
            let shape = try Shape(dims, maxElements: session.settings.maxElements)
            session[name.value] = try tensor.reshaped(shape)
            out(headline(name.value, session[name.value]!))
        case .tensors:
            listTensors()
        case .delete(let names):
            for name in names { _ = try lookup(name, text: text) }
            for name in names { session[name.value] = nil }
            out("deleted " + names.map(\.value).joined(separator: ", "))
        case .layer(let request):
            if let request { try makeLayer(request, text: text) } else { try showLayer() }
        case .param(let which, let source):
            try setParameter(which, source: source, text: text)
        case .mode(let mode):
            try setMode(mode)
        case .zeroGrad:
            guard var layer = session.layer else { throw Diagnostic("there is no layer yet: make one with `layer groupnorm 2`") }
            switch layer {
            case .float32(var l): l.zeroGrad(); layer = .float32(l)
            case .float64(var l): l.zeroGrad(); layer = .float64(l)
            }
            session.layer = layer
            session["dgamma"] = nil
            session["dbeta"] = nil
            out("dgamma and dbeta zeroed; the accumulation count is 0")
        case .forward(let name):
            try forward(name, text: text, origin: origin)
        case .backward(let source):
            try backward(source, text: text, origin: origin)
        case .show(let target):
            try show(target, text: text)
        case .stats(let name, let axis):
            try stats(name, by: axis, text: text)
        case .set(let key, let value):
            try set(key, value, text: text)
        case .listSettings:
            listSettings()
        case .load(let name, let path):
            try load(name, path: path, text: text)
        case .save(let name, let path):
            try save(name, path: path, text: text)
        case .run(let path):
            try runFile(path, text: text, origin: origin)
        case .history:
            for (i, line) in session.history.enumerated() {
                out(String(format: "%4d  ", i + 1) + Escaping.visible(line.replacingOccurrences(of: "\n", with: " ")))
            }
        case .help(let topic):
            out(try Help.text(for: topic))
        case .time(let what, let runs):
            try time(what, runs: runs)
        case .export(let target, let path):
            try export(target, path: path, text: text)
        case .explain(let topic, let selector):
            try explain(topic, selector, text: text)
        case .histogram(let names, let group):
            try histogram(names, group: group, text: text)
        case .compare(let a, let b, let rtol, let atol):
            try compare(a, b, rtol: rtol ?? 1e-5, atol: atol ?? 1e-8, text: text)
        case .gradcheck(let request):
            try gradcheck(request, text: text)
        case .quit:
            requestQuit()
        }
    }

    // MARK: - Tensors

    func lookup(_ name: Located<String>, text: String) throws -> AnyTensor {
        guard let tensor = session[name.value] else {
            var message = "no tensor named \(Escaping.quoted(name.value))"
            if let guess = Suggest.closest(to: name.value, among: session.order) {
                message += "; did you mean '\(guess)'?"
            } else if session.order.isEmpty {
                message += " (the session has no tensors yet: make one with `tensor x = randn 2 4 3 3`)"
            } else {
                message += " (`tensors` lists them)"
            }
            throw Diagnostic(message, at: name.range, in: text)
        }
        return tensor
    }

    func makeTensor(_ source: TensorSource, text: String) throws -> AnyTensor {
        let dtype = session.settings.dtype
        let limit = session.settings.maxElements
        func build(_ make: (Shape) -> AnyTensor, _ dims: [Int]) throws -> AnyTensor {
            make(try Shape(dims, maxElements: limit))
        }
        switch source {
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
            return try lookup(name, text: text)
        }
    }

    func headline(_ name: String, _ tensor: AnyTensor) -> String {
        var line = "\(Escaping.visible(name)): \(tensor.shape) \(tensor.dtype)"
        let flags = NonFinite.count(tensor)
        if !flags.isEmpty { line += ", " + flags }
        return line
    }

    func listTensors() {
        guard !session.order.isEmpty else {
            out("no tensors yet: make one with `tensor x = randn 2 4 3 3`")
            return
        }
        var table = TextTable(headers: ["name", "shape", "dtype", "elements"], numericColumns: [3])
        for name in session.order {
            guard let t = session[name] else { continue }
            table.rows.append([name, t.shape.description, t.dtype.rawValue, String(t.count)])
        }
        out(table.render(style: style))
    }

    // MARK: - Settings

    func set(_ key: Located<String>, _ value: Located<String>, text: String) throws {
        func bad(_ expected: String) -> Diagnostic {
            Diagnostic("\(key.value) must be \(expected), got \(Escaping.quoted(value.value))", at: value.range, in: text)
        }
        var settings = session.settings
        switch key.value {
        case "dtype":
            guard let dtype = DType(rawValue: value.value) else { throw bad("float32 or float64") }
            settings.dtype = dtype
        case "precision":
            guard let n = Int(value.value), (0...16).contains(n) else { throw bad("a whole number from 0 to 16") }
            settings.precision = n
        case "color":
            guard ["on", "off"].contains(value.value) else { throw bad("on or off") }
            settings.color = value.value == "on"
        case "threshold":
            guard let n = Int(value.value), n >= 1 else { throw bad("a whole number ≥ 1") }
            settings.threshold = n
        case "threads":
            guard let n = Int(value.value), (1...256).contains(n) else { throw bad("a whole number from 1 to 256") }
            settings.threads = n
        case "unicode":
            guard ["on", "off"].contains(value.value) else { throw bad("on or off") }
            settings.unicode = value.value == "on"
        case "maxelems":
            // 2^28 float64 elements are 2 GiB; a forward pass holds about four tensors of its input's size.
            guard let n = Int(value.value), n >= 1, n <= Shape.defaultMaxElements * 2 else {
                throw bad("a whole number from 1 to \(Shape.defaultMaxElements * 2)")
            }
            settings.maxElements = n
        default:
            throw Diagnostic("unknown setting \(Escaping.quoted(key.value))", at: key.range, in: text)
        }
        session.settings = settings
        out("\(key.value) = \(settingValue(key.value))")
    }

    func settingValue(_ key: String) -> String {
        let s = session.settings
        switch key {
        case "dtype": return s.dtype.rawValue
        case "precision": return String(s.precision)
        case "color": return s.color ? "on" : "off"
        case "threshold": return String(s.threshold)
        case "maxelems": return String(s.maxElements)
        case "unicode": return s.unicode ? "on" : "off"
        case "threads": return String(s.threads)
        default: return "?"
        }
    }

    func listSettings() {
        let meanings = [
            "dtype": "element type of new tensors (float32|float64)",
            "precision": "digits after the point when printing (0–16)",
            "color": "colour on a terminal (on|off)" + (colorAllowed ? "" : "; not a colour terminal now"),
            "threshold": "tensors with more elements print summarised",
            "maxelems": "the largest tensor allowed, in elements",
            "unicode": "μ σ² x̂ γ β Σ ∂ and block characters (on|off; off spells them in ASCII)",
            "threads": "threads for forward and backward (the same bits for any number)",
        ]
        var table = TextTable(headers: ["setting", "value", "meaning"])
        for key in Settings.keys { table.rows.append([key, settingValue(key), meanings[key] ?? ""]) }
        out(table.render(style: style))
        var limits = TextTable(headers: ["limit", "value", "what it bounds (fixed)"])
        limits.rows = [
            ["rank", String(Shape.maxRank), "dimensions of a tensor; a layer's input has at most \(NormPlan.maxSpatialDims) spatial ones"],
            ["literal depth", String(Shape.maxRank), "nesting of a [ … ] literal"],
            ["statement", String(Self.maxStatementLength), "characters in one statement"],
            ["run depth", String(Self.maxRunDepth), "`run` inside `run`"],
            ["time runs", String(Self.maxTimedRuns), "runs=K of `time`"],
            ["gradcheck sample", String(1 << 24), "sample=K of `gradcheck`"],
            ["history", String(Self.maxHistory), "statements `history` keeps"],
        ]
        out(limits.render(style: style))
    }
}

/// Counting NaN and infinite values for summaries ("y: (2, 3) float64, 3 NaN").
enum NonFinite {
    static func count(_ tensor: AnyTensor) -> String {
        var nans = 0, infinities = 0
        switch tensor {
        case .float32(let t): for v in t.scalars where !v.isFinite { if v.isNaN { nans += 1 } else { infinities += 1 } }
        case .float64(let t): for v in t.scalars where !v.isFinite { if v.isNaN { nans += 1 } else { infinities += 1 } }
        }
        var parts: [String] = []
        if nans > 0 { parts.append("\(nans) NaN") }
        if infinities > 0 { parts.append("\(infinities) Inf") }
        return parts.joined(separator: ", ")
    }
}
