import Foundation
import NormKit
import Testing
@testable import NormLabCore

/// Every number `explain` prints is the engine's own value at the printed precision.
@Suite struct ExplainTests {
    static let setups: [String] = [
        "tensor x = randn 2 4 3 3 seed 0; layer groupnorm 2",
        "tensor x = randn 2 4 3 3 seed 1; layer groupnorm 2 preset=pydllib",
        "tensor x = randn 3 6 seed 2; layer groupnorm 3",
        "tensor x = randn 2 5 4 seed 3; layer layernorm",
        "tensor x = randn 2 3 5 seed 4; layer instancenorm",
        "tensor x = randn 4 3 2 seed 5; layer batchnorm",
        "tensor x = randn 4 3 2 seed 6; layer batchnorm preset=pydllib",
        "tensor x = randn 2 4 3 seed 7; layer rmsnorm 2",
        "tensor x = randn 2 4 3 seed 8; layer groupnorm 2 variance=unbiased affine=none",
        "set dtype float32; tensor x = randn 2 4 3 seed 9; layer groupnorm 2",
    ]

    func format(_ v: Double) -> String { formatNumber(v, precision: 4) }

    /// How `explain` abbreviates a list.
    func expectedList(_ values: [Double]) -> String {
        if values.count <= 8 { return "[" + values.map(format).joined(separator: ", ") + "]" }
        return "[" + values.prefix(4).map(format).joined(separator: ", ") + ", …, " + values.suffix(2).map(format).joined(separator: ", ") + "]"
    }

    func value(after marker: String, in text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) else { return nil }
        return line.components(separatedBy: " = ").last.map { String($0.split(separator: " ").first ?? "") }
    }

    func list(after marker: String, in text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }),
              let open = line.lastIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
        return String(line[open...close])
    }

    @Test(arguments: setups)
    func forwardNumbersAreTheEngines(_ setup: String) throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, setup, "forward", "backward")
        let (text, err) = run(i, sink, "explain forward")
        #expect(err.isEmpty, "\(err)")
        let record = try #require(i.session.layer?.passRecord)
        let members = record.plan.memberOffsets(ofStat: 0)
        if record.spec.centres {
            #expect(value(after: "1. μ", in: text) == format(record.mean![0]), "\(text)")
            #expect(value(after: "σ² = Σ", in: text) == format(record.variance[0]), "\(text)")
        } else {
            #expect(value(after: "ms = Σx² / m", in: text) == format(record.variance[0]), "\(text)")
        }
        #expect(value(after: "rstd = (", in: text) == format(record.rstd[0]), "\(text)")
        #expect(list(after: "x̂ = ", in: text) == expectedList(members.map { i.session["xhat"]!.value(at: $0) }), "\(text)")
        #expect(list(after: "  x = ", in: text) == expectedList(members.map { i.session["x"]!.value(at: $0) }))
        if record.spec.affine == .none {
            #expect(list(after: "y = x̂ (affine=none)", in: text) == expectedList(members.map { i.session["y"]!.value(at: $0) }))
        }
    }

    @Test(arguments: setups)
    func backwardNumbersAreTheEngines(_ setup: String) throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, setup, "forward", "backward")
        let (text, err) = run(i, sink, "explain backward")
        #expect(err.isEmpty, "\(err)")
        let record = try #require(i.session.layer?.passRecord)
        let members = record.plan.memberOffsets(ofStat: 0)
        let dx = members.map { i.session["dx"]!.value(at: $0) }
        let marker = record.mode == .eval ? "dx = ∂x̂·rstd" : (record.spec.centres ? "dx = ∂(x − μ) + ∂μ/m" : "dx = ∂x̂·rstd + 2x/m·∂ms")
        #expect(list(after: marker, in: text) == expectedList(dx), "\(text)")
        #expect(list(after: "  dy = ", in: text) == expectedList(members.map { i.session["dy"]!.value(at: $0) }))
        // The chain rule and the closed form, computed from the engine's forward values, land on the engine's dx.
        for line in text.split(separator: "\n") where line.contains("agrees with the engine's dx") {
            guard !line.hasSuffix("exactly") else { continue }
            let number = line.components(separatedBy: "to within ").last!
            #expect(Double(number)! <= (setup.contains("float32") ? 1e-5 : 1e-12), "\(line)")
        }
        if let dgamma = i.session["dgamma"], record.spec.affine == .channel {
            let channels = Array(Set(members.map { ($0 / record.plan.spatial) % record.plan.channels })).sorted()
            #expect(list(after: "dγ = [", in: text) == expectedList(channels.map { dgamma.value(at: $0) }))
        }
    }

    @Test func selectingASet() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2 preset=pydllib", "forward")
        let (text, _) = run(i, sink, "explain forward n=1 g=1 p=2")
        #expect(text.contains("the set: sample n = 1, group g = 1 (channels 2–3), position p = 2; m = 2 elements"))
        let record = try #require(i.session.layer?.passRecord)
        let stat = (1 * 2 + 1) * 3 + 2
        #expect(value(after: "1. μ", in: text) == format(record.mean![stat]))
        let (_, e1) = run(i, sink, "explain forward g=5")
        #expect(e1.contains("g=5 is out of range: the group runs from 0 to 1"))
        let (_, e2) = run(i, sink, "explain forward c=1")
        #expect(e2.contains("c= does not apply: use g= for the group"))
        let (_, e3) = run(i, sink, "explain backward")
        #expect(e3.contains("explain backward needs a backward pass after the last forward"))
        run(i, sink, "layer batchnorm", "forward")
        let (bn, _) = run(i, sink, "explain forward c=3")
        #expect(bn.contains("the set: channel c = 3; m = 6 elements"))
    }

    @Test func axesPictureMarksTheSet() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward")
        let (torch, _) = run(i, sink, "show axes g=1")
        #expect(torch.contains("  c 1   ...        ...\n  c 2   ■■■        ...\n  c 3   ■■■        ..."), "\(torch)")
        run(i, sink, "layer groupnorm 2 preset=pydllib", "forward")
        let (pydllib, _) = run(i, sink, "explain layer")
        #expect(pydllib.contains("  c 0   ■..        ...\n  c 1   ■..        ...\n  c 2   ...        ..."), "\(pydllib)")
        run(i, sink, "layer batchnorm", "forward")
        let (bn, _) = run(i, sink, "show axes c=2")
        #expect(bn.contains("  c 1   ...        ...\n  c 2   ■■■        ■■■"), "\(bn)")
    }

    /// Whatever set is chosen, the picture's window holds it (before, n=7 g=30 on (8, 64, 7, 7) drew samples
    /// 0–3 and channels 0–15: nothing marked).
    @Test func axesPictureAlwaysShowsTheChosenSet() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 8 64 7 7 seed 0", "layer groupnorm 32", "forward")
        let (gn, _) = run(i, sink, "show axes n=7 g=30")
        #expect(gn.contains("… sample 4") && gn.contains("sample 7"), "\(gn)")
        #expect(gn.contains("  c 60") && gn.contains("  c 61") && gn.contains("■"), "\(gn)")
        #expect(gn.split(separator: "\n").filter { $0.contains("■■") }.count == 2, "\(gn)")
        run(i, sink, "layer batchnorm preset=pydllib", "forward")
        let (bn, _) = run(i, sink, "show axes c=40 p=30")
        #expect(bn.split(separator: "\n").filter { $0.hasPrefix("  c 40") && $0.contains("■") }.count == 1, "\(bn)")
    }

    @Test func shapeFormExplainsRows() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 2 3 4 seed 0", "layer layernorm shape=4", "forward")
        let (axes, _) = run(i, sink, "show axes n=4")
        #expect(axes.contains("rows × normalised = 6 × 4") && axes.contains("row n = 4, leading index (1, 1)"), "\(axes)")
        let (explained, _) = run(i, sink, "explain forward n=5")
        #expect(explained.contains("the set: row n = 5, leading index (1, 2), over the last dims (4); m = 4 elements"), "\(explained)")
        #expect(explained.contains("γ and β element by element along the last dims (4)"), "\(explained)")
        let (_, refused) = run(i, sink, "explain forward g=1")
        #expect(refused.contains("g= does not apply: with shape= there are no groups"), "\(refused)")
        let (rows, _) = run(i, sink, "stats x")
        #expect(rows.contains("stats of x (2, 3, 4), by row") && rows.split(separator: "\n").count == 9, "\(rows)")
        let rowMean = i.session["mean"]!.value(at: 4)
        let row4 = rows.split(separator: "\n").first { $0.hasPrefix("  4 ") } ?? ""
        #expect(row4.split(separator: " ").dropFirst(2).first.map(String.init) == formatNumber(rowMean, precision: 4), "\(rows)")
        run(i, sink, "layer rmsnorm shape=3,4", "forward")
        let (rms, _) = run(i, sink, "explain forward n=1")
        #expect(rms.contains("ms = Σx² / m") && rms.contains("y = γ·x̂ (no β)") && !rms.contains("changed"), "\(rms)")
    }

    @Test func asciiFallback() {
        let (i, sink) = makeInterpreter()
        let (text, _) = run(i, sink, "set unicode off", "tensor x = randn 2 4 seed 0", "layer groupnorm 2", "forward", "explain forward", "hist x")
        #expect(text.allSatisfy { $0.isASCII }, "\(text.filter { !$0.isASCII })")
        #expect(text.contains("1. mu = sum x / m"))
    }

    @Test func histogramsSideBySide() {
        let (i, sink) = makeInterpreter()
        let (text, _) = run(i, sink, "tensor x = randn 2 4 8 seed 0", "layer groupnorm 2", "forward", "hist x y group 1")
        #expect(text.contains("x group 1: 32 values in ["))
        #expect(text.contains("y group 1: 32 values in ["))
        let rows = text.split(separator: "\n").filter { $0.contains("│") }
        #expect(rows.count == 12)
        #expect(rows.allSatisfy { $0.filter { $0 == "│" }.count == 2 })
    }
}
