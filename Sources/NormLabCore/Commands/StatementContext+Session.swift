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

/// What handlers need from the session, with errors that point at the statement's tokens.
extension StatementContext {
    var session: Session {
        get { interpreter.session }
        // In place: a get-then-set would copy the session's dictionary on every `session[name] = …`.
        nonmutating _modify { yield &interpreter.session }
    }

    var settings: Settings { interpreter.session.settings }

    var wording: Wording { Wording(precision: settings.precision, threads: settings.threads) }

    func lookup(_ name: Located<String>) throws -> AnyTensor {
        let session = interpreter.session
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

    func currentLayer() throws -> AnyLayer {
        guard let layer = interpreter.session.layer else {
            throw Diagnostic("there is no layer yet: make one with `layer groupnorm 2` (see `help layer`)")
        }
        return layer
    }

    /// The last forward pass (and the backward after it, if any), read back from the layer in Float64.
    func passRecord(_ missing: String) throws -> PassRecord {
        let layer = try currentLayer()
        guard let input = layer.lastInput else { throw Diagnostic(missing) }
        // x, x̂, y, dy, dx widened to Float64, and what is computed from them: about ten tensors of 8 bytes.
        try reserve(elements: input.count, bytesEach: 8, copies: 10, for: "reading the last pass back in float64")
        guard let record = layer.passRecord else { throw Diagnostic(missing) }
        return record
    }

    func error(_ message: String, at range: Range<Int>) -> Diagnostic {
        Diagnostic(message, at: range, in: text)
    }
}

/// Words numbers and tensors into prose at the session's precision.
struct Wording {
    let precision: Int
    /// For the summary of a large tensor.
    var threads = 1
    /// Lists in full (`explain … full`).
    var full = false

    func number(_ value: Double) -> String { formatNumber(value, precision: precision) }

    /// `a + b = sum` with enough digits that the sum differs from `a` where it does: at 4 digits
    /// 0.8694 + 1e-05 would read "= 0.8694", hiding what the step did.
    func sum(_ a: Double, plus b: Double, bText: String) -> String {
        let total = a + b
        var digits = precision
        while digits < 17 && total != a && formatNumber(a, precision: digits) == formatNumber(total, precision: digits) {
            digits += 1
        }
        return "\(formatNumber(a, precision: digits)) + \(bText) = \(formatNumber(total, precision: digits))"
    }

    /// A list of numbers, all of them up to 8 (or with `full`), else the first 4, …, the last 2, and the count.
    func list(_ values: [Double]) -> String {
        if values.count <= 8 || full { return "[" + values.map(number).joined(separator: ", ") + "]" }
        return "[" + values.prefix(4).map(number).joined(separator: ", ") + ", …, " + values.suffix(2).map(number).joined(separator: ", ") + "]  (\(values.count) values)"
    }

    /// "y: (2, 4, 3, 3) float64", with NaN and Inf counts.
    func headline(_ name: String, _ tensor: AnyTensor) -> String {
        var line = "\(Escaping.visible(name)): \(tensor.shape) \(tensor.dtype)"
        let flags = NonFinite.count(tensor)
        if !flags.isEmpty { line += ", " + flags }
        return line
    }

    /// "y: (2, 4, 3, 3)  mean …  std …  min …  max …", over the finite values; in one pass over the tensor's own
    /// scalars (no copy: a 6.4M-element y is summarised after every forward), or none when the kernel that made the
    /// tensor summed it on the way (`moments`); a second, careful pass only when some value is not finite.
    func summaryLine(_ name: String, _ tensor: AnyTensor, moments: SummaryMoments? = nil) -> String {
        switch tensor {
        case .float32(let t), .reduced(let t, _): summaryLine(name, t, moments: moments)
        case .float64(let t): summaryLine(name, t, moments: moments)
        }
    }

    private func summaryLine<S: NormScalar>(_ name: String, _ tensor: Tensor<S>, moments: SummaryMoments?) -> String {
        var count = 0, sum = 0.0, low = Double.infinity, high = -Double.infinity, nans = 0, infinities = 0
        var squares = 0.0
        tensor.scalars.withUnsafeBufferPointer { values in
            let fast = moments ?? SummaryMoments.of(values, threads: threads)
            if fast.isFinite && fast.count == values.count {
                (count, sum, squares, low, high) = (fast.count, fast.sum, fast.squares, fast.low, fast.high)
                return
            }
            for v in values {
                guard v.isFinite else { if v.isNaN { nans += 1 } else { infinities += 1 }; continue }
                let d = v.asDouble
                count += 1
                sum += d
                low = min(low, d)
                high = max(high, d)
            }
            guard count > 0 else { return }
            let mean = sum / Double(count)
            for v in values where v.isFinite {
                let d = v.asDouble - mean
                squares += d * d
            }
        }
        var line = "\(name): \(tensor.shape)"
        if count > 0 {
            let mean = sum / Double(count)
            let variance = squares / Double(count)
            let scale = max(abs(low), abs(high)) * NoiseFloor.relative(S.dtype)
            let f = { (x: Double) in formatNumber(x, precision: precision, scale: scale) }
            line += "  mean \(f(mean))  std \(f(variance.squareRoot()))  min \(f(low))  max \(f(high))"
        }
        var flags: [String] = []
        if nans > 0 { flags.append("\(nans) NaN") }
        if infinities > 0 { flags.append("\(infinities) Inf") }
        if !flags.isEmpty {
            line += "  (" + flags.joined(separator: ", ") + (count == 0 ? "" : "; mean, std, min, max of the finite values") + ")"
        }
        return line
    }
}

/// Counting NaN and infinite values for summaries ("y: (2, 3) float64, 3 NaN").
enum NonFinite {
    static func count(_ tensor: AnyTensor) -> String {
        var nans = 0, infinities = 0
        switch tensor {
        case .float32(let t), .reduced(let t, _): for v in t.scalars where !v.isFinite { if v.isNaN { nans += 1 } else { infinities += 1 } }
        case .float64(let t): for v in t.scalars where !v.isFinite { if v.isNaN { nans += 1 } else { infinities += 1 } }
        }
        var parts: [String] = []
        if nans > 0 { parts.append("\(nans) NaN") }
        if infinities > 0 { parts.append("\(infinities) Inf") }
        return parts.joined(separator: ", ")
    }
}

func plural(_ count: Int, _ one: String, _ many: String) -> String {
    "\(count) \(count == 1 ? one : many)"
}
