import Foundation
import Testing
@testable import NormLabCore

/// .npz and .safetensors against files NumPy and the safetensors package wrote (scripts/make_archive_fixtures.py),
/// and what NormLab writes read back by them when they are installed.
@Suite struct ArchiveTests {
    static let folder = Repository.fixtures.appendingPathComponent("archives")

    @Test func readsWhatNumPyAndSafetensorsWrote() {
        let (i, sink) = makeInterpreter()
        i.workingDirectory = Self.folder.path
        let (out, err) = run(i, sink, "load savez.npz", "load three.safetensors", "load only one.safetensors", "load w2 three.safetensors key=weight",
                             "load deflated compressed.npz key=x")
        #expect(err.contains("note: 'n.npy' holds") || err.contains("int64") || err.contains("converted"), "\(err)")
        #expect(out.contains("x: (2, 4, 3) float64 loaded from savez.npz") && out.contains("w: (2, 3) float32 loaded from savez.npz"), "\(out)")
        #expect(out.contains("weight: (2, 3) float32 loaded from three.safetensors") && out.contains("only: (2, 3) float32"), "\(out)")
        #expect(i.session["w"] == i.session["weight"] && i.session["weight"] == i.session["w2"] && i.session["only"] == i.session["w"])
        #expect(i.session["x"]?.value(at: 23) == 23.0 / 7 - 1.5)
        #expect(i.session["deflated"] == i.session["x"], "np.savez_compressed's deflated member reads as the stored one")
        #expect(i.session["count"]?.doubles == [1, -2, 3] && i.session["n"]?.doubles == [1, -2, 3])
    }

    /// F16 and BF16 as the safetensors package (with ml_dtypes) wrote them, and float16 .npy as NumPy did: each value
    /// the format's own, subnormals included.
    @Test func readsFloat16AndBfloat16() {
        let (i, sink) = makeInterpreter()
        i.workingDirectory = Self.folder.path
        let (out, err) = run(i, sink, "load halves.safetensors", "load hn half.npy")
        #expect(err.isEmpty, "\(err)")
        #expect(out.contains("h: (5) float16 loaded") && out.contains("b: (5) bfloat16 loaded") && out.contains("hn: (5) float16"), "\(out)")
        #expect(i.session["h"]?.doubles == [1.5, -2, 65504, 0x1p-24, 0.0999755859375])
        #expect(i.session["b"]?.doubles == [1.5, -2, 3.00405527047391e+38, 0.10009765625, 0x1p-130])
        #expect(i.session["hn"] == i.session["h"])
    }

    @Test func deflatedMembersReadAsStoredOnes() {
        let (i, sink) = makeInterpreter()
        i.workingDirectory = Self.folder.path
        let (_, err) = run(i, sink, "load a big.npz key=a", "load r big.npz key=r",
                           "load a2 big_compressed.npz key=a", "load r2 big_compressed.npz key=r")
        #expect(err.isEmpty, "\(err)")
        #expect(i.session["a2"] == i.session["a"] && i.session["r2"] == i.session["r"])
        #expect(i.session["a2"]?.value(at: 19999) == 19999 && i.session["r2"]?.dtype == .float32)
    }

    @Test func refusals() {
        let (i, sink) = makeInterpreter()
        i.workingDirectory = Self.folder.path
        // A deflated member cut short or damaged is an error, never a trap.
        var damaged = [UInt8](try! Data(contentsOf: Self.folder.appendingPathComponent("compressed.npz")))
        damaged[60] ^= 0xFF
        let directory = try! makeTemporaryDirectory("normlab-damaged")
        defer { try? FileManager.default.removeItem(at: directory) }
        try! Data(damaged).write(to: directory.appendingPathComponent("d.npz"))
        let (_, bad) = run(i, sink, "load \(directory.path)/d.npz")
        #expect(bad.contains("cannot load") && bad.contains("corrupt .npz file"), "\(bad)")
        let (_, ambiguous) = run(i, sink, "load t three.safetensors")
        #expect(ambiguous.contains("holds 3 tensors") && ambiguous.contains("say which with key="), "\(ambiguous)")
        let (_, missing) = run(i, sink, "load t three.safetensors key=bias")
        #expect(missing.contains("has no tensor 'bias'"), "\(missing)")
        let (_, unknown) = run(i, sink, "tensor x = ones 2", "save x out.dat")
        #expect(unknown.contains("save writes .npy, .npz or .safetensors"), "\(unknown)")
        let (_, corrupt) = run(i, sink, "load ../float64.npy.safetensors")
        #expect(corrupt.contains("no such file") || corrupt.contains("cannot load"), "\(corrupt)")
    }

    @Test func writesWhatTheyRead() throws {
        let directory = try makeTemporaryDirectory("normlab-archives")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (i, sink) = makeInterpreter()
        i.workingDirectory = directory.path
        let (_, err) = run(i, sink, "tensor x = randn 2 3 seed 1", "set dtype float32", "tensor w = randn 4 seed 2",
                           "save x x.npz", "save x x.safetensors", "save w w.safetensors",
                           "load a x.npz key=x", "load b x.safetensors", "load w_back w.safetensors")
        #expect(err.isEmpty, "\(err)")
        #expect(i.session["a"] == i.session["x"] && i.session["b"] == i.session["x"] && i.session["w_back"] == i.session["w"])
        // NumPy reads the .npz (and the safetensors package the .safetensors, where it is installed).
        let (numpy, _) = runProcess("/usr/bin/env", ["python3", "-c", "import numpy"])
        guard numpy == 0 else {
            print("ArchiveTests: python3 with numpy not found; skipped reading NormLab's .npz with NumPy")
            return
        }
        let check = "import numpy as np, sys; a = np.load(sys.argv[1])['x']; print(a.dtype, a.shape, float(a[1, 2]))"
        let (status, output) = runProcess("/usr/bin/env", ["python3", "-c", check, directory.appendingPathComponent("x.npz").path])
        #expect(status == 0 && output.hasPrefix("float64 (2, 3) \(i.session["x"]!.value(at: 5))"), "\(output)")
        let (hasSafetensors, _) = runProcess("/usr/bin/env", ["python3", "-c", "import safetensors"])
        guard hasSafetensors == 0 else {
            print("ArchiveTests: the safetensors package is not installed (pip install safetensors); skipped reading NormLab's .safetensors with it")
            return
        }
        let readBack = "from safetensors.numpy import load_file; import sys; t = load_file(sys.argv[1])['w']; print(t.dtype, t.shape)"
        let (status2, output2) = runProcess("/usr/bin/env", ["python3", "-c", readBack, directory.appendingPathComponent("w.safetensors").path])
        #expect(status2 == 0 && output2.hasPrefix("float32 (4,)"), "\(output2)")
        // float16 and bfloat16 written by NormLab, read by the safetensors package (BF16 needs ml_dtypes).
        let (hasMLDtypes, _) = runProcess("/usr/bin/env", ["python3", "-c", "import ml_dtypes"])
        guard hasMLDtypes == 0 else {
            print("ArchiveTests: ml_dtypes is not installed (pip install ml_dtypes); skipped reading NormLab's BF16 with safetensors")
            return
        }
        let (_, lowErr) = run(i, sink, "set dtype float16", "tensor h = randn 6 seed 3", "set dtype bfloat16", "tensor b = randn 6 seed 3",
                              "save h h.safetensors", "save b b.safetensors", "save h h.npy")
        #expect(lowErr.isEmpty, "\(lowErr)")
        let readLow = "import ml_dtypes; from safetensors.numpy import load_file; import numpy as np, sys; h = load_file(sys.argv[1])['h']; b = load_file(sys.argv[2])['b']; n = np.load(sys.argv[3]); print(h.dtype, b.dtype, n.dtype, ' '.join(repr(float(v)) for v in list(h) + list(b) + list(n)))"
        let (status3, output3) = runProcess("/usr/bin/env", ["python3", "-c", readLow] + ["h.safetensors", "b.safetensors", "h.npy"].map { directory.appendingPathComponent($0).path })
        let values = (i.session["h"]!.doubles + i.session["b"]!.doubles + i.session["h"]!.doubles).map { "\($0)" }.joined(separator: " ")
        #expect(status3 == 0 && output3.trimmingCharacters(in: .whitespacesAndNewlines) == "float16 bfloat16 float16 " + values, "\(output3)")
    }
}
