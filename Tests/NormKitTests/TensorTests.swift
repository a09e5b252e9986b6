import NormKit
import Testing

@Suite struct ShapeTests {
    @Test func countsAndStrides() throws {
        let shape = try Shape([2, 4, 3, 3])
        #expect(shape.count == 72)
        #expect(shape.strides == [36, 9, 3, 1])
        #expect(shape.description == "(2, 4, 3, 3)")
        #expect(shape.multiIndex(ofOffset: 40) == [1, 0, 1, 1])
        #expect(shape.offset(of: [1, 0, 1, 1]) == 40)
        #expect(shape.offset(of: [2, 0, 0, 0]) == nil)
        #expect(shape.offset(of: [0, 0]) == nil)
    }

    @Test func rankOneToEight() throws {
        #expect(try Shape([5]).rank == 1)
        #expect(try Shape(Array(repeating: 2, count: 8)).count == 256)
        let tooDeep = #expect(throws: NormError.self) { try Shape(Array(repeating: 1, count: 9)) }
        #expect(tooDeep?.message == "rank 9 is more than the maximum of 8 dimensions")
        let empty = #expect(throws: NormError.self) { try Shape([]) }
        #expect(empty?.code == .invalidShape)
    }

    @Test func everyDimensionAtLeastOne() {
        let zero = #expect(throws: NormError.self) { try Shape([2, 0, 3]) }
        #expect(zero?.message == "dimension 1 is 0; every dimension must be at least 1")
        let negative = #expect(throws: NormError.self) { try Shape([-4]) }
        #expect(negative?.code == .invalidShape)
    }

    @Test func overflowIsAnErrorNotATrap() {
        let huge = #expect(throws: NormError.self) { try Shape([Int.max, 2]) }
        #expect(huge?.code == .tooManyElements)
        #expect(huge?.message.contains("overflows") == true)
        let product = #expect(throws: NormError.self) { try Shape([1 << 32, 1 << 32]) }
        #expect(product?.code == .tooManyElements)
    }

    @Test func elementCapIsSettable() throws {
        let capped = #expect(throws: NormError.self) { try Shape([1 << 14, 1 << 14]) }  // 2^28 > 2^27
        #expect(capped?.message == "shape (16384, 16384) has 268435456 elements, more than the limit of 134217728 (maxelems)")
        #expect(try Shape([1 << 14, 1 << 14], maxElements: 1 << 28).count == 1 << 28)
        #expect(throws: NormError.self) { try Shape([11], maxElements: 10) }
        #expect(try Shape([10], maxElements: 10).count == 10)
    }
}

@Suite struct TensorTests {
    @Test func constructors() throws {
        let shape = try Shape([2, 3])
        #expect(Tensor<Double>.zeros(shape).scalars == [0, 0, 0, 0, 0, 0])
        #expect(Tensor<Float>.ones(shape).scalars == [1, 1, 1, 1, 1, 1])
        #expect(Tensor<Double>.full(2.5, shape: shape).scalars == Array(repeating: 2.5, count: 6))
        #expect(Tensor<Float>.arange(shape).scalars == [0, 1, 2, 3, 4, 5])
        #expect(Tensor<Float>.zeros(shape).dtype == .float32)
        #expect(Tensor<Double>.zeros(shape).dtype == .float64)
        #expect(throws: NormError.self) { try Tensor<Double>(shape: shape, scalars: [1, 2]) }
    }

    @Test func nestedLiteral() throws {
        let literal = NestedLiteral.list([
            .list([.number(1), .number(2), .number(3)]),
            .list([.number(-4), .number(5e-1), .number(6)]),
        ])
        let t = try Tensor<Double>(literal: literal)
        #expect(t.dims == [2, 3])
        #expect(t.scalars == [1, 2, 3, -4, 0.5, 6])
        #expect(t.element(at: [1, 1]) == 0.5)
        #expect(t.element(at: [2, 0]) == nil)
        #expect(try Tensor<Float>(literal: .number(7)).dims == [1])
    }

    @Test func literalErrors() {
        let ragged = NestedLiteral.list([.list([.number(1), .number(2)]), .list([.number(3)])])
        let r = #expect(throws: NormError.self) { try Tensor<Double>(literal: ragged) }
        #expect(r?.message == "the literal is ragged: lists at depth 2 have lengths 1 and 2")
        let mixed = NestedLiteral.list([.number(1), .list([.number(2)])])
        let m = #expect(throws: NormError.self) { try Tensor<Double>(literal: mixed) }
        #expect(m?.message == "the literal mixes numbers and lists at depth 2")
        let empty = #expect(throws: NormError.self) { try Tensor<Double>(literal: .list([])) }
        #expect(empty?.code == .invalidShape)
        var deep = NestedLiteral.number(1)
        for _ in 0..<9 { deep = .list([deep]) }
        let d = #expect(throws: NormError.self) { try Tensor<Double>(literal: deep) }
        #expect(d?.message == "the literal is nested more than 8 deep")
        let big = NestedLiteral.list(Array(repeating: .number(0), count: 11))
        #expect(throws: NormError.self) { try Tensor<Double>(literal: big, maxElements: 10) }
    }

    @Test func reshapeAndConvert() throws {
        let t = Tensor<Double>.arange(try Shape([2, 6]))
        let r = try t.reshaped(Shape([3, 4]))
        #expect(r.dims == [3, 4] && r.scalars == t.scalars)
        let bad = #expect(throws: NormError.self) { try t.reshaped(Shape([5])) }
        #expect(bad?.message == "cannot reshape (2, 6) (12 elements) to (5) (5 elements)")
        let f: Tensor<Float> = Tensor<Double>.full(0.1, shape: try Shape([2])).converted()
        #expect(f.scalars == [Float(0.1), Float(0.1)])
    }
}

/// `randn 2 3 seed 0` must give the same numbers on every machine, now and later.
@Suite struct RandomTests {
    /// Values pinned bit for bit: a change here changes every user's `randn … seed …`.
    @Test func pinnedValues() throws {
        let normal = Tensor<Double>.randn(try Shape([2, 3]), seed: 0)
        #expect(normal.scalars == [0.9845279121083984, -0.17586928586197706, -0.712066156240293,
                                   -0.3123445852505078, -0.6223807147869015, 0.5182112468766095])
        let uniform = Tensor<Double>.rand(try Shape([3]), seed: 0)
        #expect(uniform.scalars == [0.8833108082136426, 0.43152799704850997, 0.026433771592597743])
        let uniform32 = Tensor<Float>.rand(try Shape([3]), seed: 0)
        #expect(uniform32.scalars == [0.8833107948303223, 0.4315279722213745, 0.02643376588821411])
        let normal32 = Tensor<Float>.randn(try Shape([2]), seed: 0)
        #expect(normal32.scalars == [Float(0.9845279121083984), Float(-0.17586928586197706)])
    }

    /// The independent Python implementation (with the C library's log) in scripts/make_reference.py.
    @Test(arguments: ["randn_seed0", "randn_seed42", "rand_seed0_float64"])
    func matchesThePythonImplementation(_ key: String) throws {
        let expected = ReferenceData.generatorValues(key)
        let shape = try Shape([expected.count])
        let seed: UInt64 = key.contains("42") ? 42 : 0
        let actual = key.hasPrefix("randn") ? Tensor<Double>.randn(shape, seed: seed) : Tensor<Double>.rand(shape, seed: seed)
        for (a, e) in zip(actual.scalars, expected) {
            #expect(abs(a - e) <= 2 * e.ulp, "\(a) vs \(e)")
        }
    }

    @Test func float32UniformMatchesPython() throws {
        let expected = ReferenceData.generatorValues("rand_seed0_float32")
        let actual = Tensor<Float>.rand(try Shape([expected.count]), seed: 0)
        #expect(actual.scalars.map(Double.init) == expected)
        #expect(actual.scalars.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    @Test func portableLogIsAccurate() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<10_000 {
            let x = generator.nextUniform() * 4 + 1e-300
            let exact = _stdlibLog(x)
            #expect(abs(portableLog(x) - exact) <= 2 * exact.ulp + 1e-300)
        }
        #expect(portableLog(1) == 0)
        #expect(portableLog(0) == -.infinity)
        #expect(portableLog(-1).isNaN)
    }

    @Test func statisticsOfALargeDraw() throws {
        let t = Tensor<Double>.randn(try Shape([100_000]), seed: 3)
        let mean = t.scalars.reduce(0, +) / Double(t.count)
        let variance = t.scalars.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(t.count)
        #expect(abs(mean) < 0.02)
        #expect(abs(variance - 1) < 0.02)
    }

    @Test func seedsDiffer() throws {
        let shape = try Shape([4])
        #expect(Tensor<Double>.randn(shape, seed: 1) != Tensor<Double>.randn(shape, seed: 2))
        #expect(Tensor<Double>.randn(shape, seed: 1) == Tensor<Double>.randn(shape, seed: 1))
    }
}

import Foundation
private func _stdlibLog(_ x: Double) -> Double { Foundation.log(x) }
