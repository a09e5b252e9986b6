import NormKit

/// A value with the place in the statement it came from, so that errors found while running can point at it.
public struct Located<Value: Equatable & Sendable>: Equatable, Sendable {
    public let value: Value
    public let range: Range<Int>

    public init(_ value: Value, _ range: Range<Int>) {
        self.value = value
        self.range = range
    }
}

/// How a tensor is made.
public enum TensorSource: Equatable, Sendable {
    case random(normal: Bool, dims: [Int], seed: UInt64)
    case zeros([Int])
    case ones([Int])
    case arange([Int])
    case full(Double, [Int])
    case literal(NestedLiteral)
    case copy(Located<String>)
}

/// The upstream gradient of `backward`.
public enum UpstreamSource: Equatable, Sendable {
    case tensor(Located<String>)
    case ones
    case randn(seed: UInt64)
}

public enum ShowTarget: Equatable, Sendable {
    case tensor(Located<String>)
    case grad
    case layer
    case groups
    case axes(SetSelector)
}

public enum StatsAxis: String, Equatable, Sendable, CaseIterable {
    case group, channel, sample
}

public enum Parameter: String, Equatable, Sendable, CaseIterable {
    case gamma, beta
}

/// A layer as the user asked for it; built into a `LayerSpec` when run.
public struct LayerRequest: Equatable, Sendable {
    public var kind: LayerKind
    public var groups: Located<Int>?
    public var options: [LayerOption]
}

public struct LayerOption: Equatable, Sendable {
    public enum Key: String, CaseIterable, Sendable {
        case preset, reduce, affine, paramgrad, variance, eps, momentum
    }
    public let key: Key
    public let value: Located<String>
}

/// One parsed command: the output of the parser and the input of the interpreter.
public enum Command: Equatable, Sendable {
    case tensor(name: Located<String>, source: TensorSource)
    case reshape(name: Located<String>, dims: [Int])
    case tensors
    case delete([Located<String>])
    case layer(LayerRequest?)
    case param(Parameter, TensorSource)
    case mode(Mode)
    case zeroGrad
    case forward(Located<String>?)
    case backward(UpstreamSource?)
    case show(ShowTarget)
    case stats(name: Located<String>, by: StatsAxis?)
    case set(key: Located<String>, value: Located<String>)
    case listSettings
    case load(name: Located<String>, path: Located<String>)
    case save(name: Located<String>, path: Located<String>)
    case run(path: Located<String>)
    case history
    case help(String?)
    case gradcheck(GradcheckRequest)
    case explain(ExplainTopic, SetSelector)
    case time(TimedStep, runs: Int?)
    case export(ExportTarget, path: Located<String>)
    case histogram([Located<String>], group: Located<Int>?)
    case compare(Located<String>, Located<String>, rtol: Double?, atol: Double?)
    case quit
}

/// `gradcheck [dx|dgamma|dbeta|all] [against NAME] [eps=… atol=… rtol=… seed=…] [sample=K | full]`
public struct GradcheckRequest: Equatable, Sendable {
    /// Empty means all of the layer's gradients.
    public var targets: [GradTarget] = []
    public var against: Located<String>?
    public var step: Double?
    public var atol: Double?
    public var rtol: Double?
    public var sample: Int?
    public var seed: UInt64?
    public var full = false

    public init() {}
}
