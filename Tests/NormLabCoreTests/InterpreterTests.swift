import Foundation
import NormKit
import Testing
@testable import NormLabCore

@Suite struct InterpreterTests {
    @Test func forwardMakesTensors() {
        let (i, sink) = makeInterpreter()
        let (out, err) = run(i, sink, "tensor x = randn 2 4 3 3 seed 0", "layer groupnorm 2", "forward")
        #expect(err.isEmpty)
        for name in ["y", "mean", "var", "rstd", "xhat", "xc"] { #expect(i.session[name] != nil, "\(name)") }
        #expect(i.session["mean"]?.shape.dims == [2, 2])
        #expect(out.contains("statistics per (sample, group), over 2 channels × 9 positions = 18 elements: mean, var, rstd of shape (2, 2)"))
        #expect(out.contains("y: (2, 4, 3, 3)  mean 0.0000  std 1.0000  min -2.0780  max 2.3447"))
        run(i, sink, "backward")
        for name in ["dy", "dx", "dgamma", "dbeta"] { #expect(i.session[name] != nil, "\(name)") }
    }

    /// `time` runs on copies: the session's layer keeps its accumulated dγ and dβ, bit for bit, and its count of
    /// backward passes, whatever it times.
    @Test func timingLeavesTheLayerAsItWas() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "set dtype float32", "tensor x = randn 2 4 3 3 seed 0", "layer groupnorm 2 affine=element",
            "forward", "backward", "backward")
        let before = try #require(i.session.layer?.gammaGrad).tensor(as: Float.self).scalars.map(\.bitPattern)
        let beta = try #require(i.session.layer?.betaGrad).tensor(as: Float.self).scalars.map(\.bitPattern)
        for what in ["forward", "backward", "step"] {
            let (out, err) = run(i, sink, "time \(what) runs=3")
            #expect(err.isEmpty && out.contains("time \(what): "), "\(out) \(err)")
        }
        #expect(try #require(i.session.layer?.gammaGrad).tensor(as: Float.self).scalars.map(\.bitPattern) == before)
        #expect(try #require(i.session.layer?.betaGrad).tensor(as: Float.self).scalars.map(\.bitPattern) == beta)
        let (out, _) = run(i, sink, "backward")
        #expect(out.contains("accumulated over 3 backward passes"), "\(out)")
    }

    /// x̂ and x − μ are made when first read, with the values of the forward that named them, even after x changes.
    @Test func intermediatesAreMadeWhenFirstRead() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "set dtype float32", "tensor x = randn 2 4 3 3 seed 0", "layer groupnorm 2", "forward")
        let xhat = try #require(i.session.deferred("xhat")), xc = try #require(i.session.deferred("xc"))
        #expect(!xhat.isMade && !xc.isMade)
        let (listing, _) = run(i, sink, "tensors")
        #expect(listing.contains("xhat  (2, 4, 3, 3)  float32") && !xhat.isMade, "\(listing)")
        let eager = try NormLayer<Float>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        var layer = eager
        let pass = try layer.forward(i.session["x"]!.tensor(as: Float.self))
        run(i, sink, "tensor x = zeros 2 4 3 3")  // a new x must not change what the old forward's x̂ holds
        #expect(i.session["xhat"]!.tensor(as: Float.self).scalars.map(\.bitPattern) == pass.normalized.scalars.map(\.bitPattern))
        #expect(i.session["xc"]!.tensor(as: Float.self).scalars.map(\.bitPattern) == pass.centered.scalars.map(\.bitPattern))
        #expect(xhat.isMade && xc.isMade)
    }

    /// `layer norm over=…` builds the named layers: the same y, bit for bit, and the card says which it is.
    @Test func customLayersAreTheNamedOnes() throws {
        let pairs = [("layer norm over=c,s", "layer layernorm", "This is LayerNorm, preset=torch"),
                     ("layer norm over=c,s groups=2", "layer groupnorm 2", "This is GroupNorm with G = 2, preset=torch"),
                     ("layer norm over=s", "layer instancenorm", "This is InstanceNorm, preset=torch"),
                     ("layer norm over=n,s", "layer batchnorm", "This is BatchNorm, preset=torch"),
                     ("layer norm over=c groups=2 affine=c,s", "layer groupnorm 2 reduce=channels affine=element",
                      "with reduce=channels affine=element"),
                     ("layer norm over=n affine=none eps=1e-3", "layer batchnorm reduce=channels affine=none eps=1e-3",
                      "with reduce=channels affine=none eps=0.001"),
                     ("layer norm over=c,s groups=2 centre=no", "layer rmsnorm 2", "This is RMSNorm with G = 2, preset=torch")]
        for (custom, named, words) in pairs {
            let (i, sink) = makeInterpreter()
            let (card, err) = run(i, sink, "tensor x = randn 3 4 5 seed 2", custom, "forward", "tensor y1 = y")
            #expect(err.isEmpty && card.contains(words), "\(custom): \(card) \(err)")
            run(i, sink, named, "forward")
            #expect(i.session["y"] == i.session["y1"], "\(custom) against \(named)")
        }
        #expect(Completion.complete("layer no", tensorNames: []).candidates == ["norm"])
        #expect(Completion.complete("layer norm ", tensorNames: []).candidates == CustomLayerRequest.keys.map { $0 + "=" })
        #expect(Completion.complete("layer norm over=s a", tensorNames: []).candidates == ["affine=", "accumulate="])
        #expect(Completion.complete("layer norm over=n", tensorNames: []).candidates == ["n,s", "n", "n,c,s", "n,c"])
        #expect(Completion.complete("layer layernorm s", tensorNames: []).candidates == ["shape="])
        let (i, sink) = makeInterpreter()
        for (bad, message) in [("layer norm over=n groups=2", "groups= splits the channels"),
                               ("layer norm", "layer norm needs over=AXES"),
                               ("layer norm over=s groups=2", "groups= splits the channels"),
                               ("layer norm over=c,c", "each at most once"),
                               ("layer norm over=n,s centre=no", "no BatchNorm without centring"),
                               ("layer norm over=s colour=red", "unknown option 'colour' for layer norm")] {
            let (_, err) = run(i, sink, bad)
            #expect(err.contains(message), "\(bad): \(err)")
        }
    }

    /// A failed command leaves the session exactly as it was.
    @Test func failedCommandsChangeNothing() throws {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 2 4 3 seed 0", "layer groupnorm 2", "forward", "backward")
        let before = i.session
        let (_, e1) = run(i, sink, "forward q")
        #expect(e1.contains("no tensor named 'q'"))
        run(i, sink, "tensor bad = zeros 2 3 5")  // fine on its own...
        let (_, e2) = run(i, sink, "forward bad")  // ...but not with this layer: 3 channels, 2 groups
        #expect(e2.contains("The number of channels must be evenly divisible by num_groups: 3 channels, 2 groups"))
        #expect(i.session["y"] == before["y"])
        #expect(i.session.layer?.backwardCount == 1)
        let (_, e3) = run(i, sink, "tensor x = [[1, 2], [3]]")
        #expect(e3.contains("ragged"))
        #expect(i.session["x"] == before["x"])
        let (_, e4) = run(i, sink, "backward zz")
        #expect(e4.contains("no tensor named 'zz'"))
        #expect(i.session["dx"] == before["dx"] && i.session.layer?.backwardCount == 1)
        let (_, e5) = run(i, sink, "del x nothere")
        #expect(e5.contains("no tensor named 'nothere'"))
        #expect(i.session["x"] != nil)
        let (_, e6) = run(i, sink, "set precision 40")
        #expect(e6.contains("precision must be a whole number from 0 to 16, got '40'"))
        #expect(i.session.settings == before.settings)
    }

    @Test func parametersAreCheckedAtForward() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "layer groupnorm 2", "param gamma = full 2 3")
        #expect(out.contains("gamma: (3) set; its shape is checked against the input at the first forward"))
        let (_, err) = run(i, sink, "tensor x = randn 2 4 5", "forward")
        #expect(err.contains("gamma has shape (3) but affine=channel needs one value per channel: (4)"))
        #expect(i.session["y"] == nil)
        run(i, sink, "param gamma = full 2 4", "forward")
        #expect(i.session["y"] != nil)
        let (_, err2) = run(i, sink, "param beta = zeros 4 5")
        #expect(err2.contains("beta has shape (4, 5) but affine=channel needs one value per channel: (4)"))
    }

    @Test func dtypes() {
        let (i, sink) = makeInterpreter()
        run(i, sink, "set dtype float32", "tensor x = randn 2 4 seed 1", "layer layernorm", "forward")
        #expect(i.session["x"]?.dtype == .float32)
        #expect(i.session["y"]?.dtype == .float32)
        #expect(i.session.layer?.dtype == .float32)
        run(i, sink, "set dtype float64", "tensor x = randn 2 4 seed 1")
        let (_, err) = run(i, sink, "forward")
        #expect(err.contains("note: x is float64: the layer's parameters and statistics are converted to float64"))
        #expect(i.session["y"]?.dtype == .float64)
    }

    @Test func reshapeTensorsAndDel() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "tensor a = arange 2 6", "reshape a 3 4", "tensors", "del a", "tensors")
        #expect(out.contains("a: (3, 4) float64"))
        #expect(out.contains("name  shape   dtype    elements\na     (3, 4)  float64        12"))
        #expect(out.hasSuffix("deleted a\nno tensors yet: make one with `tensor x = randn 2 4 3 3`\n"))
        let (_, err) = run(i, sink, "tensor b = ones 4", "reshape b 3")
        #expect(err.contains("cannot reshape (4) (4 elements) to (3) (3 elements)"))
    }

    @Test func elementCap() {
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "set maxelems 100", "tensor x = zeros 11 10")
        #expect(err.contains("shape (11, 10) has 110 elements, more than the limit of 100 (maxelems)"))
        let (_, err2) = run(i, sink, "tensor x = zeros 4294967296 4294967296 4294967296")
        #expect(err2.contains("the product overflows"))
    }

    @Test func statsByGroupChannelSample() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "tensor x = arange 2 4 2", "layer groupnorm 2", "stats x")
        #expect(out.contains("""
        stats of x (2, 4, 2), by group (var is the biased variance):
        sample  group  channels  count     mean      var     std      min      max
             0      0  0–1           4   1.5000   1.2500  1.1180   0.0000   3.0000
             0      1  2–3           4   5.5000   1.2500  1.1180   4.0000   7.0000
             1      0  0–1           4   9.5000   1.2500  1.1180   8.0000  11.0000
             1      1  2–3           4  13.5000   1.2500  1.1180  12.0000  15.0000
           all                      16   7.5000  21.2500  4.6098   0.0000  15.0000
        """))
        let (byChannel, _) = run(i, sink, "stats x by channel")
        #expect(byChannel.contains("      0      4   4.5000  16.2500  4.0311  0.0000   9.0000"))
        let (bySample, _) = run(i, sink, "stats x by sample")
        #expect(bySample.contains("     1      8  11.5000"))
        // The layer's (N, G) statistics are not its input: by channel, not by group.
        let (ofStatistics, _) = run(i, sink, "forward", "stats rstd")
        #expect(ofStatistics.contains("stats of rstd (2, 2), by channel"))
        let (_, err) = run(i, sink, "tensor v = ones 3", "stats v by channel")
        #expect(err.contains("v has rank 1: there is no sample or channel axis"))
        // BatchNorm with grouped channels: a group is its channels in every sample (a set over all positions).
        let (grouped, _) = run(i, sink, "layer norm over=n,c,s groups=2", "stats x")
        #expect(grouped.contains("""
        stats of x (2, 4, 2), by group (var is the biased variance):
        group  channels  count    mean      var     std     min      max
            0  0–1           8  5.5000  17.2500  4.1533  0.0000  11.0000
            1  2–3           8  9.5000  17.2500  4.1533  4.0000  15.0000
          all               16  7.5000  21.2500  4.6098  0.0000  15.0000
        """), "\(grouped)")
    }

    @Test func showGroupsAndLayer() {
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "layer groupnorm 2", "show groups")
        #expect(err.contains("show groups needs the number of channels"))
        let (out, _) = run(i, sink, "tensor x = randn 1 6 2 seed 0", "layer groupnorm 3 preset=pydllib", "show groups", "forward", "layer")
        #expect(out.contains("GroupNorm with G = 3 over C = 6 channels: 2 channels per group\n  group 0: channels 0–1\n  group 1: channels 2–3\n  group 2: channels 4–5"))
        #expect(out.contains("Statistics are taken per (sample, group, position), over 2 channels only = 2 elements."))
        #expect(out.contains("parameters       24 (γ and β of shape (6, 2)); PyDLLib's own nparams reports 12"))
    }

    @Test func batchNormModes() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "tensor x = randn 4 3 2 seed 0", "layer batchnorm", "forward")
        #expect(out.contains("BatchNorm, train mode"))
        #expect(i.session["running_mean"]?.shape.dims == [3])
        let running = i.session["running_mean"]
        let (out2, _) = run(i, sink, "eval", "forward")
        #expect(out2.contains("eval: batchnorm normalises with running_mean and running_var"))
        #expect(out2.contains("running statistics per channel"))
        #expect(i.session["running_mean"] == running)
        let (out3, _) = run(i, sink, "layer groupnorm 1", "eval")
        #expect(out3.contains("only batchnorm uses the mode"))
    }

    @Test func gradientsAccumulateAndZero() {
        let (i, sink) = makeInterpreter()
        run(i, sink, "tensor x = randn 2 4 seed 0", "layer groupnorm 2", "forward", "backward ones")
        let first = i.session["dbeta"]
        let (out, _) = run(i, sink, "backward ones")
        #expect(out.contains("accumulated over 2 backward passes (zero_grad resets)"))
        #expect(i.session["dbeta"]?.doubles == first?.doubles.map { $0 * 2 })
        run(i, sink, "zero_grad")
        #expect(i.session["dbeta"] == nil && i.session.layer?.backwardCount == 0)
        let (_, err) = run(i, sink, "show grad")
        #expect(err.contains("no gradients yet"))
    }

    @Test func warningsReachStandardError() {
        let (i, sink) = makeInterpreter()
        let (_, err) = run(i, sink, "tensor x = randn 2 3 4 seed 0", "layer instancenorm preset=pydllib", "forward")
        #expect(err.contains("warning: every statistics set of this InstanceNorm holds a single element"))
        let (_, err2) = run(i, sink, "tensor c = full 2 1 2 3", "layer layernorm eps=0", "forward c")
        #expect(err2.contains("warning: eps = 0 and 1 statistics set has zero variance"))
        let (out, _) = run(i, sink, "show y")
        #expect(out.contains("y: (1, 2, 3) float64, 6 NaN"))
    }

    @Test func scriptsNestedRunsAndDepth() throws {
        let directory = try makeTemporaryDirectory("normlab-test")
        defer { try? FileManager.default.removeItem(at: directory) }
        try "tensor a = ones 2\nrun inner.nl\n".write(to: directory.appendingPathComponent("outer.nl"), atomically: true, encoding: .utf8)
        try "# inner\nshow a\nshow b\n".write(to: directory.appendingPathComponent("inner.nl"), atomically: true, encoding: .utf8)
        try "run self.nl\n".write(to: directory.appendingPathComponent("self.nl"), atomically: true, encoding: .utf8)
        let sink = BufferSink()
        let i = Interpreter(sink: sink, workingDirectory: directory.path)
        #expect(!i.runScript("run outer.nl\n", source: "main.nl"))
        #expect(sink.error.hasPrefix("inner.nl:3: error: no tensor named 'b'; did you mean 'a'?\n  show b\n       ^\n  in `run` at outer.nl:2\n  in `run` at main.nl:1\n"))
        let sink2 = BufferSink()
        let j = Interpreter(sink: sink2, workingDirectory: directory.path)
        #expect(!j.runScript("run self.nl\n", source: "main.nl"))
        #expect(sink2.error.contains("`run` is nested more than 16 deep (does a script run itself?)"))
        let (_, err) = run(j, sink2, "run missing.nl")
        #expect(err.contains("no such file: 'missing.nl'"))
    }

    @Test func keepGoingAndQuit() {
        let sink = BufferSink()
        let i = Interpreter(sink: sink)
        i.keepGoing = true
        #expect(!i.runScript("show a\ntensor a = ones 1\nshow a; quit\ntensor b = ones 1\n", source: "k.nl"))
        #expect(sink.error.contains("k.nl:1: error"))
        #expect(i.session["a"] != nil && i.session["b"] == nil)
        #expect(i.quitRequested)
    }

    @Test func historyAndHelp() {
        let (i, sink) = makeInterpreter()
        let (out, _) = run(i, sink, "tensor x = ones 2", "tensors", "history")
        #expect(out.hasSuffix("   1  tensor x = ones 2\n   2  tensors\n   3  history\n"))
        let (help, _) = run(i, sink, "help")
        for spec in CommandTable.commands.map({ $0.help }) { #expect(help.contains("  \(spec.name) ")) }
        let (layerHelp, _) = run(i, sink, "help layer")
        #expect(layerHelp.hasPrefix("usage: layer groupnorm G [key=value…]"))
        #expect(layerHelp.contains("Examples:\n  layer groupnorm 2"))
        let (gn, _) = run(i, sink, "help groupnorm")
        #expect(gn.contains("G = 32 is the paper's default"))
        let (conventions, _) = run(i, sink, "help conventions")
        #expect(conventions.contains("preset=pydllib"))
        let (_, err) = run(i, sink, "help forwrd")
        #expect(err.contains("no help for 'forwrd'; did you mean 'forward'?"))
    }
}
