import Foundation
import NormKit

extension Interpreter {
    /// A picture of the (N, C, positions) block with one statistics set marked, after Figure 2 of the Group
    /// Normalization paper (Wu & He 2018).
    func showAxes(_ selector: SetSelector, text: String) throws {
        let layer = try currentLayer()
        let record: PassRecord
        if let r = layer.passRecord {
            record = r
        } else {
            throw Diagnostic("show axes needs the input's shape: run forward first")
        }
        let plan = record.plan
        let (_, label, members) = try selectSet(selector, record: record, text: text)
        let marked = Set(members)
        let samples = min(plan.batch, 4), channels = min(plan.channels, 16), positions = min(plan.spatial, 24)
        out("\(LayerDescription.title(record.spec, mode: record.mode))")
        out("N × C × positions = \(plan.batch) × \(plan.channels) × \(plan.spatial)" + (plan.spatialDims.count > 1 ? " (\(plan.spatialDims.map(String.init).joined(separator: "×")) flattened)" : ""))
        let width = max(positions, 8)
        var header = "        "
        for n in 0..<samples {
            let title = "sample \(n)"
            header += title + String(repeating: " ", count: max(1, width + 3 - title.count))
        }
        if plan.batch > samples { header += "…" }
        out(header.trimmingTrailingSpaces())
        for c in 0..<channels {
            var row = "  c \(c)" + String(repeating: " ", count: max(1, 6 - "  c \(c)".count + 2))
            for n in 0..<samples {
                var cells = ""
                for s in 0..<positions {
                    let offset = (n * plan.channels + c) * plan.spatial + s
                    cells += marked.contains(offset) ? style.group("■", 0) : "."
                }
                if plan.spatial > positions { cells += "…" }
                row += cells + String(repeating: " ", count: max(1, width + 3 - positions - (plan.spatial > positions ? 1 : 0)))
            }
            out(row.trimmingTrailingSpaces())
        }
        if plan.channels > channels { out("  …") }
        out("■ = the \(members.count) elements that share one \(record.spec.centres ? "mean and variance" : "mean square"): \(label).")
        out("Every other set has the same shape: " + LayerDescription.conventions(record.spec)[0].1 + ".")
    }

    /// A histogram of a tensor's values, or of two side by side.
    func histogram(_ names: [Located<String>], group: Located<Int>?, text: String) throws {
        var columns: [[String]] = []
        for name in names {
            let tensor = try lookup(name, text: text)
            var values = tensor.doubles
            var title = name.value
            if let group {
                guard let spec = session.layer?.spec, tensor.shape.rank >= 2,
                      let plan = try? NormPlan(spec: spec, inputShape: tensor.shape), spec.kind != .batchnorm else {
                    throw Diagnostic("`group` needs a layer with groups and a tensor of its input's shape (N, C, …)", at: group.range, in: text)
                }
                guard group.value >= 0 && group.value < plan.groups else {
                    throw Diagnostic("group \(group.value) is out of range: the groups run from 0 to \(plan.groups - 1)", at: group.range, in: text)
                }
                let channels = plan.channels(ofGroup: group.value)
                values = values.enumerated().filter { channels.contains(($0.offset / plan.spatial) % plan.channels) }.map(\.element)
                title += " group \(group.value)"
            }
            columns.append(histogramLines(title: title, values: values))
        }
        if columns.count == 1 {
            columns[0].forEach(out)
        } else {
            let width = columns[0].map(\.count).max() ?? 0
            for i in 0..<max(columns[0].count, columns[1].count) {
                let left = i < columns[0].count ? columns[0][i] : ""
                let right = i < columns[1].count ? columns[1][i] : ""
                out((left + String(repeating: " ", count: width - left.count + 4) + right).trimmingTrailingSpaces())
            }
        }
    }

    func histogramLines(title: String, values: [Double], bins: Int = 12, barWidth: Int = 24) -> [String] {
        let finite = values.filter(\.isFinite)
        let nonFinite = values.count - finite.count
        guard let low = finite.min(), let high = finite.max() else {
            return ["\(title): no finite values (\(values.count) NaN or Inf)"]
        }
        var counts = [Int](repeating: 0, count: bins)
        let span = high - low
        for v in finite {
            let index = span == 0 ? 0 : min(bins - 1, Int((v - low) / span * Double(bins)))
            counts[index] += 1
        }
        let shownBins = span == 0 ? 1 : bins
        let most = counts.max() ?? 1
        let p = min(session.settings.precision, 3)
        let edges = (0...shownBins).map { low + span * Double($0) / Double(bins) }
        let labels = (0..<shownBins).map { formatNumber(edges[$0], precision: p) }
        let labelWidth = labels.map(\.count).max() ?? 0
        var lines = ["\(title): \(finite.count) values in [\(formatNumber(low, precision: p)), \(formatNumber(high, precision: p))]" + (nonFinite > 0 ? ", \(nonFinite) NaN/Inf left out" : "")]
        let eighths = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
        for b in 0..<shownBins {
            let length = Double(counts[b]) / Double(most) * Double(barWidth)
            let full = Int(length)
            let part = Int((length - Double(full)) * 8)
            let bar = String(repeating: "█", count: full) + eighths[part]
            let label = String(repeating: " ", count: labelWidth - labels[b].count) + labels[b]
            let padded = bar + String(repeating: " ", count: max(0, barWidth + 1 - full - (part > 0 ? 1 : 0)))
            lines.append("  \(label) │\(padded)\(counts[b])")
        }
        return lines
    }

    /// Two tensors side by side: equal bit for bit, close, and where they differ most.
    func compare(_ a: Located<String>, _ b: Located<String>, rtol: Double, atol: Double, text: String) throws {
        let left = try lookup(a, text: text), right = try lookup(b, text: text)
        guard left.shape == right.shape else {
            throw Diagnostic("\(a.value) has shape \(left.shape) and \(b.value) has shape \(right.shape): compare needs equal shapes (it does not broadcast)", at: b.range, in: text)
        }
        let x = left.doubles, y = right.doubles
        let bitwise = left.dtype == right.dtype && left == right
        var far = 0, worstAbs = 0.0, worstAbsAt = 0, worstRel = 0.0, worstRelAt = 0
        for i in 0..<x.count {
            let diff = abs(x[i] - y[i])
            let sameSpecial = (x[i].isNaN && y[i].isNaN) || x[i] == y[i]
            if !sameSpecial && !(diff <= atol + rtol * abs(y[i])) { far += 1 }
            let absDiff = sameSpecial ? 0 : (diff.isNaN ? .infinity : diff)
            if absDiff > worstAbs { worstAbs = absDiff; worstAbsAt = i }
            let rel = sameSpecial ? 0 : (y[i] == 0 ? .infinity : absDiff / abs(y[i]))
            if rel > worstRel { worstRel = rel; worstRelAt = i }
        }
        let shape = left.shape
        let p = max(session.settings.precision, 6)
        out("compare \(a.value) \(b.value): \(shape), \(x.count) elements, \(left.dtype) and \(right.dtype)")
        out("  bitwise equal: " + (bitwise ? "yes" : "no"))
        out("  allclose (|a − b| ≤ \(formatOption(atol)) + \(formatOption(rtol))·|b|): " + (far == 0 ? "yes" : "no — \(far) of \(x.count) elements differ by more"))
        if worstAbs > 0 {
            out("  max abs diff \(formatNumber(worstAbs, precision: 2)) at \(Shape.format(shape.multiIndex(ofOffset: worstAbsAt))): \(a.value) = \(formatNumber(x[worstAbsAt], precision: p)), \(b.value) = \(formatNumber(y[worstAbsAt], precision: p))")
            out("  max rel diff \(formatNumber(worstRel, precision: 2)) at \(Shape.format(shape.multiIndex(ofOffset: worstRelAt))) (relative to \(b.value))")
        }
        for hint in compareHints(x, y, names: (a.value, b.value), shape: shape) {
            out("  hint: " + hint)
        }
    }
}
