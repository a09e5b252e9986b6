import Synchronization
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

/// A tensor of any element type, as the session stores it. float16 and bfloat16 tensors hold Float values that are
/// exactly values of their format (every way in rounds), so float32 code reads them as they are.
public enum AnyTensor: Equatable, Sendable {
    case float32(Tensor<Float>)
    case float64(Tensor<Double>)
    /// float16 or bfloat16, in Float.
    case reduced(Tensor<Float>, DType)

    public init<S: NormScalar>(_ tensor: Tensor<S>) {
        if let t = tensor as? Tensor<Float> {
            self = .float32(t)
        } else {
            self = .float64(tensor.converted())
        }
    }

    /// A tensor the engine already holds as `storage`: a float16/bfloat16 layer's parameters and results, whose
    /// every way in rounds (so no second pass over y here; debug builds check the values are the format's).
    public init<S: NormScalar>(_ tensor: Tensor<S>, storage: DType) {
        if storage.isReduced {
            let values = tensor.converted(to: Float.self)
            assert(values.scalars.allSatisfy { storage.represents(Double($0)) }, "a \(storage) tensor holds a value outside \(storage)")
            self = .reduced(values, storage)
        } else {
            self = AnyTensor(tensor).converted(to: storage)
        }
    }

    public var shape: Shape {
        switch self {
        case .float32(let t), .reduced(let t, _): t.shape
        case .float64(let t): t.shape
        }
    }

    public var dtype: DType {
        switch self {
        case .float32: .float32
        case .float64: .float64
        case .reduced(_, let format): format
        }
    }

    public var count: Int { shape.count }

    public func converted(to dtype: DType) -> AnyTensor {
        converting(to: dtype).tensor
    }

    /// The tensor in another type, with how many finite values became ±∞ (past float16's 65504).
    public func converting(to dtype: DType) -> (tensor: AnyTensor, overflowed: Int) {
        guard dtype != self.dtype else { return (self, 0) }
        switch (self, dtype) {
        case (.float64(let t), .float32): return (.float32(t.converted()), 0)
        case (.float32(let t), .float64), (.reduced(let t, _), .float64): return (.float64(t.converted()), 0)
        case (.reduced(let t, _), .float32): return (.float32(t), 0)
        case (_, .float16), (_, .bfloat16):
            // From Double directly: one rounding, never double rounding through float32.
            let doubles = doubles
            var overflowed = 0
            let values = doubles.map { value -> Float in
                let r = dtype.round(value)
                if r.isInfinite && value.isFinite { overflowed += 1 }
                return Float(r)
            }
            return (.reduced(Tensor<Float>(uncheckedShapeFrom: shape, scalars: values), dtype), overflowed)
        default: return (self, 0)
        }
    }

    public func tensor<S: NormScalar>(as _: S.Type = S.self) -> Tensor<S> {
        switch self {
        case .float32(let t), .reduced(let t, _): t.converted()
        case .float64(let t): t.converted()
        }
    }

    /// The element at a flat offset, widened to Double.
    public func value(at offset: Int) -> Double {
        switch self {
        case .float32(let t), .reduced(let t, _): Double(t.scalars[offset])
        case .float64(let t): t.scalars[offset]
        }
    }

    public var doubles: [Double] {
        switch self {
        case .float32(let t), .reduced(let t, _): t.scalars.map(Double.init)
        case .float64(let t): t.scalars
        }
    }

    public func reshaped(_ shape: Shape) throws(NormError) -> AnyTensor {
        switch self {
        case .float32(let t): .float32(try t.reshaped(shape))
        case .float64(let t): .float64(try t.reshaped(shape))
        case .reduced(let t, let format): .reduced(try t.reshaped(shape), format)
        }
    }
}

/// The current layer, in the element type of the last input it saw.
public enum AnyLayer: Sendable {
    case float32(NormLayer<Float>)
    case float64(NormLayer<Double>)

    public var spec: LayerSpec {
        switch self {
        case .float32(let l): l.spec
        case .float64(let l): l.spec
        }
    }

    /// The type of its tensors: float64, float32, or float16/bfloat16 held in Float.
    public var dtype: DType {
        switch self {
        case .float32(let l): l.storage
        case .float64: .float64
        }
    }

    public func converted(to dtype: DType) -> AnyLayer {
        guard dtype != self.dtype else { return self }
        switch (self, dtype) {
        case (.float32(let l), .float64): return .float64(l.converted())
        case (.float64(let l), _): return .float32(l.converted(to: Float.self).stored(as: dtype))
        case (.float32(let l), _): return .float32(l.stored(as: dtype))
        }
    }

    public var mode: Mode {
        switch self {
        case .float32(let l): l.mode
        case .float64(let l): l.mode
        }
    }

    public var sampleShape: [Int]? {
        switch self {
        case .float32(let l): l.sampleShape
        case .float64(let l): l.sampleShape
        }
    }

    public var backwardCount: Int {
        switch self {
        case .float32(let l): l.backwardCount
        case .float64(let l): l.backwardCount
        }
    }

    public var parameterCount: Int? {
        switch self {
        case .float32(let l): l.parameterCount
        case .float64(let l): l.parameterCount
        }
    }

    public var pydllibReportedParameterCount: Int? {
        switch self {
        case .float32(let l): l.pydllibReportedParameterCount
        case .float64(let l): l.pydllibReportedParameterCount
        }
    }

    /// The input of the last forward pass, in the layer's element type.
    public var lastInput: AnyTensor? {
        switch self {
        case .float32(let l): l.lastForward.map { AnyTensor($0.input, storage: l.storage) }
        case .float64(let l): l.lastForward.map { AnyTensor($0.input) }
        }
    }

    public var hasForward: Bool {
        switch self {
        case .float32(let l): l.lastForward != nil
        case .float64(let l): l.lastForward != nil
        }
    }

    public var gammaGrad: AnyTensor? {
        switch self {
        case .float32(let l): l.gammaGrad.map { AnyTensor($0, storage: l.storage) }
        case .float64(let l): l.gammaGrad.map(AnyTensor.init)
        }
    }

    public var betaGrad: AnyTensor? {
        switch self {
        case .float32(let l): l.betaGrad.map { AnyTensor($0, storage: l.storage) }
        case .float64(let l): l.betaGrad.map(AnyTensor.init)
        }
    }

    public var gamma: AnyTensor? {
        switch self {
        case .float32(let l): l.gamma.map { AnyTensor($0, storage: l.storage) }
        case .float64(let l): l.gamma.map(AnyTensor.init)
        }
    }

    public var beta: AnyTensor? {
        switch self {
        case .float32(let l): l.beta.map { AnyTensor($0, storage: l.storage) }
        case .float64(let l): l.beta.map(AnyTensor.init)
        }
    }
}

/// A session tensor made when it is first read. forward's x̂ and x − μ each cost a pass over the input and a
/// tensor of its size, and most forwards never read them; what they will hold is fixed when forward runs (the
/// closure keeps that pass's result), so reading later gives the same values. Shared between copies of a session
/// (the interpreter's rollback copy): it is made once.
public final class DeferredTensor: Sendable {
    public let shape: Shape
    public let dtype: DType
    private let make: @Sendable () -> AnyTensor
    private let made = Mutex<AnyTensor?>(nil)

    public init(shape: Shape, dtype: DType, make: @escaping @Sendable () -> AnyTensor) {
        self.shape = shape
        self.dtype = dtype
        self.make = make
    }

    /// The tensor, made on the first call.
    public var value: AnyTensor {
        made.withLock { cached in
            if let cached { return cached }
            let value = make()
            cached = value
            return value
        }
    }

    /// Whether it has been made (for tests: forward alone must not make it).
    public var isMade: Bool { made.withLock { $0 != nil } }
}

/// Everything a user has made: named tensors (in the order they were first made), the layer and the settings.
/// A value type, so the interpreter can keep a copy and put it back when a command fails halfway.
public struct Session: Sendable {
    private var entries: [String: Entry] = [:]
    public private(set) var order: [String] = []
    public var layer: AnyLayer?
    public var settings = Settings()
    public var history: [String] = []
    /// The exercise being worked on (`exercise`, `answer`).
    public var exercise: Exercise?

    enum Entry: Sendable {
        case made(AnyTensor)
        case deferred(DeferredTensor)
    }

    public init() {}

    /// Every tensor, made if it was deferred.
    public var tensors: [String: AnyTensor] { entries.mapValues { entry in entry.value } }

    public subscript(name: String) -> AnyTensor? {
        get { entries[name]?.value }
        set {
            if let newValue {
                store(.made(newValue), as: name)
            } else if entries.removeValue(forKey: name) != nil {
                order.removeAll { $0 == name }
            }
        }
    }

    /// Name a tensor that is made when first read.
    public mutating func setDeferred(_ tensor: DeferredTensor, as name: String) {
        store(.deferred(tensor), as: name)
    }

    /// Shape and dtype without making a deferred tensor (`tensors` lists them).
    public func shapeAndType(of name: String) -> (shape: Shape, dtype: DType)? {
        switch entries[name] {
        case .made(let t): (t.shape, t.dtype)
        case .deferred(let d): (d.shape, d.dtype)
        case nil: nil
        }
    }

    /// The deferred tensor under `name`, if that is what it is.
    public func deferred(_ name: String) -> DeferredTensor? {
        if case .deferred(let d) = entries[name] { return d }
        return nil
    }

    private mutating func store(_ entry: Entry, as name: String) {
        if entries[name] == nil { order.append(name) }
        entries[name] = entry
    }
}

extension Session.Entry {
    var value: AnyTensor {
        switch self {
        case .made(let t): t
        case .deferred(let d): d.value
        }
    }
}
