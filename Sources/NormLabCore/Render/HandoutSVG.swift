/// Pictures for HTML handouts, as inline SVG (no script, no external file): histograms with their bin edges and
/// counts, and the (N, C, positions) block of `show axes` with the chosen set marked.
enum HandoutSVG {
    /// Bars of `picture` on a scale where `tallest` fills the height: panels drawn with the same `tallest` can be
    /// compared bar for bar.
    static func histogram(_ picture: HistogramPicture, tallest: Int, precision: Int) -> String {
        let width = 360.0, height = 220.0
        let left = 40.0, right = 12.0, top = 28.0, bottom = 40.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(HTML.escape("histogram of " + picture.title))\">"
        svg += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#ffffff\"/>"
        let p = min(precision, 3)
        guard let (low, high) = picture.range, !picture.counts.isEmpty else {
            svg += text(x: width / 2, y: height / 2, "\(picture.title): no finite values", anchor: "middle")
            return svg + "</svg>"
        }
        let finite = picture.total - picture.nonFinite
        svg += text(x: left, y: 18, "\(picture.title): \(finite) values in [\(formatNumber(low, precision: p)), \(formatNumber(high, precision: p))]", bold: true)
        let bins = picture.counts.count
        let barWidth = plotWidth / Double(bins)
        let scale = tallest > 0 ? plotHeight / Double(tallest) : 0
        for (b, count) in picture.counts.enumerated() {
            let h = Double(count) * scale
            let x = left + Double(b) * barWidth
            svg += "<rect class=\"bar\" x=\"\(fmt(x + 0.5))\" y=\"\(fmt(top + plotHeight - h))\" width=\"\(fmt(max(barWidth - 1, 0.5)))\" height=\"\(fmt(h))\" fill=\"#4f6bed\"><title>[\(formatNumber(picture.edges[b], precision: p)), \(formatNumber(picture.edges[b + 1], precision: p))): \(count)</title></rect>"
        }
        // Axes: the count scale on the left, the first, middle and last edges below.
        svg += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(top + plotHeight))\" x2=\"\(fmt(left + plotWidth))\" y2=\"\(fmt(top + plotHeight))\" stroke=\"#1d2330\"/>"
        svg += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(top))\" x2=\"\(fmt(left))\" y2=\"\(fmt(top + plotHeight))\" stroke=\"#1d2330\"/>"
        svg += text(x: left - 4, y: top + 4, "\(tallest)", anchor: "end")
        svg += text(x: left - 4, y: top + plotHeight, "0", anchor: "end")
        let ticks = [0, bins / 2, bins]
        for t in Set(ticks).sorted() {
            let x = left + Double(t) * barWidth
            svg += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(top + plotHeight))\" x2=\"\(fmt(x))\" y2=\"\(fmt(top + plotHeight + 4))\" stroke=\"#1d2330\"/>"
            let anchor = t == 0 ? "start" : t == bins ? "end" : "middle"
            svg += text(x: x, y: top + plotHeight + 17, formatNumber(picture.edges[t], precision: p), anchor: anchor)
        }
        if picture.nonFinite > 0 {
            svg += text(x: left, y: height - 6, "\(picture.nonFinite) NaN/Inf left out")
        }
        return svg + "</svg>"
    }

    /// One panel per shown sample: channels down, positions across; every set in its own pale colour, the chosen
    /// set's cells strong and outlined, a "…" where the window cuts the block.
    static func axes(_ picture: AxesPicture) -> String {
        let cell = 14.0, gap = 22.0, labelWidth = 56.0, top = 40.0
        let positions = picture.positionIndices.count, channels = picture.channelIndices.count
        let panelWidth = Double(positions) * cell
        let width = labelWidth + Double(picture.samples.count) * (panelWidth + gap) + 20
        let height = top + Double(channels) * cell + 24
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(HTML.escape(picture.title))\">"
        svg += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#ffffff\"/>"
        svg += text(x: 4, y: 16, picture.headline + picture.spatialNote, bold: true)
        for (ci, c) in picture.channelIndices.enumerated() {
            svg += text(x: labelWidth - 6, y: top + Double(ci) * cell + cell - 3, "\(picture.channelWord) \(c)", anchor: "end")
        }
        for (ni, n) in picture.samples.enumerated() {
            let x0 = labelWidth + Double(ni) * (panelWidth + gap)
            svg += text(x: x0, y: top - 8, "\(picture.sampleWord) \(n)")
            for ci in 0..<channels {
                for si in 0..<positions {
                    let marked = picture.marked[ni][ci][si]
                    let fill = marked ? "#c2410c" : Self.setColours[picture.sets[ni][ci][si] % Self.setColours.count]
                    let stroke = marked ? " stroke=\"#1d2330\" stroke-width=\"1.5\"" : ""
                    svg += "<rect class=\"\(marked ? "member" : "cell")\" data-set=\"\(picture.sets[ni][ci][si])\" x=\"\(fmt(x0 + Double(si) * cell))\" y=\"\(fmt(top + Double(ci) * cell))\" width=\"\(fmt(cell - 1))\" height=\"\(fmt(cell - 1))\" fill=\"\(fill)\"\(stroke)/>"
                }
            }
            let cutAfter = (picture.positionIndices.last ?? 0) < picture.positions - 1
            if cutAfter { svg += text(x: x0 + panelWidth + 2, y: top + cell - 3, "…") }
        }
        if (picture.channelIndices.last ?? 0) < picture.channels - 1 {
            svg += text(x: labelWidth - 6, y: top + Double(channels) * cell + 14, "…", anchor: "end")
        }
        return svg + "</svg>"
    }

    /// Pale colours for the other sets, so each set's extent shows; the chosen set is the one strong colour.
    static let setColours = ["#dbeafe", "#dcfce7", "#fef9c3", "#f3e8ff", "#cffafe", "#fce7f3", "#e0e7ff", "#ecfccb"]

    static func text(x: Double, y: Double, _ content: String, anchor: String = "start", bold: Bool = false) -> String {
        "<text x=\"\(fmt(x))\" y=\"\(fmt(y))\" font-family=\"system-ui, sans-serif\" font-size=\"12\" text-anchor=\"\(anchor)\"\(bold ? " font-weight=\"600\"" : "") fill=\"#1d2330\">\(HTML.escape(content))</text>"
    }

    /// Coordinates with at most two decimals.
    static func fmt(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}
