import Foundation
import NormKit
import Testing
@testable import NormLabCore

/// The reader and writer against files written by NumPy (scripts/make_npy_fixtures.py).
@Suite struct NPYTests {
    func decode(_ name: String, integerTarget: DType = .float64) throws -> NPY.Loaded {
        let data = try Data(contentsOf: Repository.fixtures.appendingPathComponent(name))
        return try NPY.decode(data, integerTarget: integerTarget)
    }

    func failure(_ name: String) -> String? {
        do {
            _ = try decode(name)
            return nil
        } catch let error as NPY.Failure {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func floats() throws {
        let f64 = try decode("float64.npy")
        #expect(f64.tensor == .float64(try Tensor(shape: Shape([2, 3]), scalars: [-0.5, -0.25, 0, 0.25, 0.5, 0.75])))
        #expect(f64.note == nil)
        let f32 = try decode("float32.npy")
        #expect(f32.tensor == .float32(try Tensor(shape: Shape([2, 3]), scalars: [1.5, -2.25, 3e-3, 4e4, -5.5, 6])))
        let rank5 = try decode("rank5.npy")
        #expect(rank5.tensor.shape.dims == [2, 2, 2, 2, 2] && rank5.tensor.value(at: 31) == 31)
        #expect(try decode("version2.npy").tensor == f64.tensor)
        #expect(try decode("version3.npy").tensor == f64.tensor.converted(to: .float32))
    }

    @Test func integersAreConvertedWithANote() throws {
        let ints = try decode("int64.npy")
        #expect(ints.tensor.doubles == [1, -2, 3, 4, 5, -6])
        #expect(ints.note == "an integer (<i8) array, converted to float64")
        #expect(try decode("int64.npy", integerTarget: .float32).tensor.dtype == .float32)
        #expect(try decode("uint8.npy").tensor.doubles == [0, 7, 255])
        #expect(try decode("int16.npy").tensor.doubles == [-32768, 5, 32767])
        let bools = try decode("bool.npy")
        #expect(bools.tensor.doubles == [1, 0, 1])
        #expect(bools.note == "a bool array, converted to float64")
    }

    /// float16 arrays load as float16 tensors, and save back to the same bytes NumPy wrote.
    @Test func float16RoundTrips() throws {
        let half = try decode("float16.npy")
        #expect(half.tensor.dtype == .float16 && half.tensor.doubles == [1, 2] && half.note == nil)
        let again = try NPY.decode(NPY.encode(half.tensor))
        #expect(again.tensor == half.tensor)
    }

    @Test func refusals() {
        #expect(failure("fortran.npy")?.hasPrefix("the array is stored in Fortran order (fortran_order: True)") == true)
        #expect(failure("bigendian.npy")?.hasPrefix("the array is big-endian (>f8)") == true)
        #expect(failure("complex.npy") == "complex arrays (<c16) are not supported: NormLab tensors are real")
        #expect(failure("object.npy") == "object arrays (|O) are not supported: save a numeric array")
        #expect(failure("scalar.npy")?.hasPrefix("the array is 0-dimensional (shape ())") == true)
        #expect(failure("empty.npy") == "dimension 1 of shape (2, 0) is 0; every dimension must be at least 1")
        #expect(failure("truncated.npy") == "the data (43 bytes) is shorter than the shape says: (2, 3) of <f8 needs 48 bytes")
        #expect(failure("short_payload.npy") == "the data (48 bytes) is shorter than the shape says: (2, 9) of <f8 needs 144 bytes")
        #expect(failure("truncated_header.npy")?.hasPrefix("truncated .npy file: the header should be 118 bytes") == true)
        #expect(failure("not_npy.npy") == "not a .npy file (it does not start with \\x93NUMPY)")
        #expect(failure("overflow.npy")?.contains("more elements than can be counted") == true)
    }

    /// What NormLab writes is byte for byte what NumPy writes.
    @Test func writesWhatNumPyWrites() throws {
        for name in ["float64.npy", "float32.npy", "rank5.npy"] {
            let data = try Data(contentsOf: Repository.fixtures.appendingPathComponent(name))
            let tensor = try NPY.decode(data).tensor
            #expect(NPY.encode(tensor) == data, "\(name)")
        }
        let one = AnyTensor.float64(.arange(try Shape([3])))
        #expect(try NPY.decode(NPY.encode(one)).tensor == one)
    }

    @Test func loadAndSaveCommands() throws {
        let (i, sink) = makeInterpreter()
        let directory = try makeTemporaryDirectory("normlab-npy")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("x.npy").path
        let (out, _) = run(i, sink, "tensor x = randn 2 3 seed 4", "save x \(target)", "load x2 \(target)")
        #expect(out.contains("x: (2, 3) float64 saved to \(target)"))
        #expect(i.session["x2"] == i.session["x"])
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["x.npy"])

        let (_, e1) = run(i, sink, "save x \(directory.path)/missing/x.npy")
        #expect(e1.contains("the folder"))
        #expect(e1.contains("does not exist"))
        let (_, e2) = run(i, sink, "save x \(directory.path)")
        #expect(e2.contains("it is a directory"))
        let (_, e3) = run(i, sink, "load y Tests/NormLabCoreTests/Fixtures/fortran.npy")
        #expect(e3.contains("cannot load 'Tests/NormLabCoreTests/Fixtures/fortran.npy': the array is stored in Fortran order"))
        #expect(i.session["y"] == nil)
        let (_, e4) = run(i, sink, "load y \(directory.path)")
        #expect(e4.contains("is a directory, not a .npy file"))
        let (_, e5) = run(i, sink, "load y nowhere.npy")
        #expect(e5.contains("no such file: 'nowhere.npy'"))
    }
}
