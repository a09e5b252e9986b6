import NormKit

/// NumPy-like printing: nested brackets, aligned columns, one number style per tensor, and a summary with `…`
/// past a threshold (the first and last `edgeItems` along each axis). Only the shown elements are formatted, so
/// summarising a 6.4M-element tensor costs what it shows.
struct TensorFormatter {
    var precision = 4
    var threshold = 1000
    var edgeItems = 3
    var lineWidth = 80

    func render(_ tensor: AnyTensor) -> String {
        let dims = tensor.shape.dims
        let summarise = tensor.count > threshold
        let indices = dims.map { shownIndices(length: $0, summarise: summarise) }
        let strides = tensor.shape.strides

        // Collect the shown values once, to choose a style and a width.
        var shown: [Double] = []
        func collect(axis: Int, offset: Int) {
            if axis == dims.count {
                shown.append(tensor.value(at: offset))
                return
            }
            for i in indices[axis] where i >= 0 { collect(axis: axis + 1, offset: offset + i * strides[axis]) }
        }
        collect(axis: 0, offset: 0)
        let style = NumberStyle.choose(for: shown, precision: precision)
        let width = shown.map { style.format($0).count }.max() ?? 1

        func cell(_ offset: Int) -> String {
            let text = style.format(tensor.value(at: offset))
            return String(repeating: " ", count: width - text.count) + text
        }

        func block(axis: Int, offset: Int, indent: Int) -> String {
            if axis == dims.count - 1 {
                var items: [String] = []
                for i in indices[axis] {
                    items.append(i < 0 ? String(repeating: " ", count: max(0, width - 1)) + "…" : cell(offset + i * strides[axis]))
                }
                return "[" + wrap(items, indent: indent + 1) + "]"
            }
            var parts: [String] = []
            let separator = "," + String(repeating: "\n", count: dims.count - axis - 1)
            for i in indices[axis] {
                if i < 0 {
                    parts.append("…")
                } else {
                    parts.append(block(axis: axis + 1, offset: offset + i * strides[axis], indent: indent + 1))
                }
            }
            let pad = String(repeating: " ", count: indent + 1)
            return "[" + parts.enumerated().map { $0.offset == 0 ? $0.element : pad + $0.element }
                .joined(separator: separator) + "]"
        }

        return block(axis: 0, offset: 0, indent: 0)
    }

    /// The indices shown along an axis; -1 stands for the `…`.
    private func shownIndices(length: Int, summarise: Bool) -> [Int] {
        guard summarise, length > 2 * edgeItems else { return Array(0..<length) }
        return Array(0..<edgeItems) + [-1] + Array((length - edgeItems)..<length)
    }

    /// Items joined by ", ", broken into lines no wider than `lineWidth`, continuation lines indented.
    private func wrap(_ items: [String], indent: Int) -> String {
        var lines: [String] = []
        var current = ""
        for (i, item) in items.enumerated() {
            let piece = item + (i == items.count - 1 ? "" : ",")
            if current.isEmpty {
                current = piece
            } else if indent + current.count + 1 + piece.count + 2 > lineWidth {
                lines.append(current)
                current = piece
            } else {
                current += " " + piece
            }
        }
        lines.append(current)
        let pad = String(repeating: " ", count: indent)
        return lines.enumerated().map { $0.offset == 0 ? $0.element : pad + $0.element }.joined(separator: "\n")
    }
}
