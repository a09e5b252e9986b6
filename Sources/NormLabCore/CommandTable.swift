import NormKit

/// One command of the language: its name, grammar, help text, examples, and the parser that turns its tokens into
/// a `Command`. The same table drives parsing, dispatch, `help`, README's command list and tab completion.
public struct CommandSpec: Sendable {
    public let name: String
    public let aliases: [String]
    public let usage: [String]
    public let summary: String
    public let details: String
    public let examples: [String]
    /// Words that may follow the command name, for completion.
    public let subwords: [String]
    /// What the arguments are, for completion: tensor names, file paths, or nothing special.
    public let argumentKind: ArgumentKind
    let parse: @Sendable (inout ArgumentCursor) throws -> Command

    public enum ArgumentKind: Sendable {
        case none, tensorName, path, tensorThenPath
    }
}

public enum CommandTable {
    public static let commands: [CommandSpec] = [
        CommandSpec(
            name: "tensor", aliases: [],
            usage: ["tensor NAME = randn|rand D… [seed S]", "tensor NAME = zeros|ones|arange D…",
                    "tensor NAME = full V D…", "tensor NAME = [[1, 2], [3, 4]]", "tensor NAME = OTHER"],
            summary: "make a named tensor",
            details: """
            Makes a tensor in the session's dtype (see `set dtype`). randn draws standard normal numbers and rand
            uniform ones in [0, 1), from a portable generator: the same seed gives the same numbers on every
            machine (seed 0 when none is given). arange counts 0, 1, 2, … in row-major order. A literal is a
            nested list of numbers (negative, with exponents, nan, inf), and may continue over several lines while
            a '[' is open. `tensor z = x` copies x.
            """,
            examples: ["tensor x = randn 2 4 3 3 seed 0", "tensor x = [[1, 2, 3], [4, 5, 6]]", "tensor g = full 0.5 4"],
            subwords: ["randn", "rand", "zeros", "ones", "arange", "full"], argumentKind: .tensorName,
            parse: { cursor in
                let name = try cursor.name()
                try cursor.expect(.equals, "'=' after the name")
                let source = try parseSource(&cursor)
                try cursor.finish()
                return .tensor(name: name, source: source)
            }),
        CommandSpec(
            name: "reshape", aliases: [], usage: ["reshape NAME D…"],
            summary: "give a tensor another shape with the same number of elements",
            details: "The values keep their row-major order.",
            examples: ["reshape x 2 36"], subwords: [], argumentKind: .tensorName,
            parse: { cursor in
                let name = try cursor.name()
                let dims = try cursor.dims()
                try cursor.finish()
                return .reshape(name: name, dims: dims)
            }),
        CommandSpec(
            name: "tensors", aliases: [], usage: ["tensors"],
            summary: "list the session's tensors with their shapes and dtypes",
            details: "", examples: ["tensors"], subwords: [], argumentKind: .none,
            parse: { cursor in try cursor.finish(); return .tensors }),
        CommandSpec(
            name: "del", aliases: [], usage: ["del NAME…"],
            summary: "delete tensors from the session",
            details: "", examples: ["del y xhat"], subwords: [], argumentKind: .tensorName,
            parse: { cursor in
                var names = [try cursor.name()]
                while !cursor.isAtEnd { names.append(try cursor.name()) }
                return .delete(names)
            }),
        CommandSpec(
            name: "layer", aliases: [],
            usage: ["layer groupnorm G [key=value…]", "layer layernorm|instancenorm|batchnorm [key=value…]",
                    "layer rmsnorm [G] [key=value…]", "layer"],
            summary: "choose the normalisation layer, or show the current one",
            details: """
            Options (a preset first sets all of them; options after it change single conventions):
              preset=torch|pydllib       paper and PyTorch (default), or the PyDLLib library's code
              reduce=group|channels      statistics over the whole group, or per spatial position (pydllib);
                                         for batchnorm: per channel, or per element over the batch (pydllib)
              affine=channel|element|none  γ, β of shape (C), of the sample's shape (C, *spatial), or none
              paramgrad=sum|mean         dγ, dβ summed over the batch, or averaged (pydllib)
              variance=biased|unbiased   divide Σ(x − μ)² by m or by m − 1 (pydllib's batchnorm)
              eps=1e-5                   added to the variance (torch 1e-5, pydllib 1e-6)
              momentum=0.1               batchnorm's running-statistics update
            A new layer replaces the old one, with fresh parameters and gradients. `help conventions` explains them.
            """,
            examples: ["layer groupnorm 2", "layer groupnorm 32 preset=pydllib", "layer batchnorm momentum=0.01",
                       "layer layernorm affine=none eps=1e-6"],
            subwords: LayerKind.allCases.map(\.rawValue) + LayerOption.Key.allCases.map { $0.rawValue + "=" },
            argumentKind: .none,
            parse: { cursor in
                guard !cursor.isAtEnd else { return .layer(nil) }
                let kindToken = try cursor.keyword(LayerKind.allCases.map(\.rawValue), "a layer kind")
                let kind = LayerKind(rawValue: kindToken.text)!
                var groups: Located<Int>? = nil
                if let next = cursor.peek, next.kind == .word, Int(next.text) != nil {
                    guard kind == .groupnorm || kind == .rmsnorm else {
                        throw cursor.error("\(kind) takes no number of groups", at: next)
                    }
                    groups = try cursor.integer("the number of groups", minimum: 1, maximum: 1 << 30)
                } else if kind == .groupnorm {
                    throw cursor.error("groupnorm needs the number of groups G (a whole number ≥ 1), got \(cursor.describe(cursor.peek))", at: cursor.peek)
                }
                var options: [LayerOption] = []
                for (key, value) in try cursor.options() {
                    guard let optionKey = LayerOption.Key(rawValue: key.text) else {
                        throw cursor.error("unknown option \(cursor.describe(key)); options are \(LayerOption.Key.allCases.map(\.rawValue).joined(separator: ", "))", at: key)
                    }
                    if options.contains(where: { $0.key == optionKey }) {
                        throw cursor.error("\(key.text) is given twice", at: key)
                    }
                    options.append(LayerOption(key: optionKey, value: Located(value.text, value.range)))
                }
                return .layer(LayerRequest(kind: kind, groups: groups, options: options))
            }),
        CommandSpec(
            name: "param", aliases: [], usage: ["param gamma|beta = SOURCE"],
            summary: "set the layer's γ or β",
            details: """
            SOURCE is anything `tensor` accepts (a name, a literal, full V D…, …). Before the first forward pass the
            shape cannot be checked yet: it is checked at forward, against (C) for affine=channel or the sample's
            shape (C, *spatial) for affine=element.
            """,
            examples: ["param gamma = full 2 4", "param beta = [0.1, 0.2, 0.3, 0.4]", "param gamma = g"],
            subwords: ["gamma", "beta"], argumentKind: .none,
            parse: { cursor in
                let which = try cursor.keyword(["gamma", "beta"], "gamma or beta")
                try cursor.expect(.equals, "'=' after \(which.text)")
                let source = try parseSource(&cursor)
                try cursor.finish()
                return .param(Parameter(rawValue: which.text)!, source)
            }),
        CommandSpec(
            name: "train", aliases: [], usage: ["train"],
            summary: "batchnorm: normalise with the batch's statistics and update the running ones",
            details: "A new batchnorm starts in train mode. The other layers have no modes.",
            examples: ["train"], subwords: [], argumentKind: .none,
            parse: { cursor in try cursor.finish(); return .mode(.train) }),
        CommandSpec(
            name: "eval", aliases: [], usage: ["eval"],
            summary: "batchnorm: normalise with the running statistics",
            details: "", examples: ["eval"], subwords: [], argumentKind: .none,
            parse: { cursor in try cursor.finish(); return .mode(.eval) }),
        CommandSpec(
            name: "zero_grad", aliases: [], usage: ["zero_grad"],
            summary: "forget the accumulated dγ and dβ",
            details: "backward adds into dγ and dβ, as PyTorch's .grad does, until zero_grad.",
            examples: ["zero_grad"], subwords: [], argumentKind: .none,
            parse: { cursor in try cursor.finish(); return .zeroGrad }),
        CommandSpec(
            name: "forward", aliases: [], usage: ["forward [X]"],
            summary: "run the layer on X (default x)",
            details: """
            Makes y, mean, var, rstd, xhat and xc (x − mean) session tensors (RMSNorm has no mean or xc) and prints a
            summary of y. batchnorm also makes running_mean and running_var.
            """,
            examples: ["forward", "forward x2"], subwords: [], argumentKind: .tensorName,
            parse: { cursor in
                let name = cursor.isAtEnd ? nil : try cursor.name()
                try cursor.finish()
                return .forward(name)
            }),
        CommandSpec(
            name: "backward", aliases: [], usage: ["backward [DY | ones | randn [seed S]]"],
            summary: "back-propagate an upstream gradient dy through the last forward pass",
            details: """
            With no argument dy is randn of y's shape with seed 1000 (not 0, which would copy an x made with seed 0;
            ones would make dx vanish for most layers, which hides the interesting part). `randn` alone also uses
            seed 1000. Makes dy, dx, dgamma and dbeta session tensors; dgamma and dbeta are the
            accumulated gradients (see `show grad` and zero_grad).
            """,
            examples: ["backward", "backward ones", "backward randn seed 3", "backward g"],
            subwords: ["ones", "randn"], argumentKind: .tensorName,
            parse: { cursor in
                guard let token = cursor.peek else { return .backward(nil) }
                let source: UpstreamSource
                if token.kind == .word && token.text == "ones" {
                    _ = cursor.next()
                    source = .ones
                } else if token.kind == .word && token.text == "randn" {
                    _ = cursor.next()
                    var seed = Interpreter.defaultUpstreamSeed
                    if let s = cursor.peek, s.kind == .word, s.text == "seed" {
                        _ = cursor.next()
                        seed = UInt64(try cursor.integer("a seed (a whole number ≥ 0)", minimum: 0).value)
                    }
                    source = .randn(seed: seed)
                } else {
                    source = .tensor(try cursor.name("a tensor name, ones or randn"))
                }
                try cursor.finish()
                return .backward(source)
            }),
        CommandSpec(
            name: "show", aliases: [], usage: ["show NAME", "show grad", "show layer", "show groups", "show axes [n=I g=J p=K c=C]"],
            summary: "print a tensor, the gradients, the layer, which channels form which group, or a picture of the sets",
            details: """
            Tensors print like NumPy: nested brackets, aligned columns, one format for the whole tensor, `set
            precision` digits; past `set threshold` elements only the first and last 3 along each axis.
            """,
            examples: ["show x", "show grad", "show groups", "show axes g=1"], subwords: ["grad", "layer", "groups", "axes"],
            argumentKind: .tensorName,
            parse: { cursor in
                let token = try cursor.word("a tensor name, grad, layer or groups")
                let target: ShowTarget
                switch token.text {
                case "grad": target = .grad
                case "layer": target = .layer
                case "groups": target = .groups
                case "axes": target = .axes(try parseSelector(&cursor))
                default:
                    try ArgumentCursor.checkName(token, cursor: cursor)
                    target = .tensor(Located(token.text, token.range))
                }
                try cursor.finish()
                return .show(target)
            }),
        CommandSpec(
            name: "stats", aliases: [], usage: ["stats NAME [by group|channel|sample]"],
            summary: "count, mean, var, std, min and max per group, channel or sample, and overall",
            details: """
            By group when NAME has the layer's input shape and the layer has groups, else by channel for rank ≥ 2,
            else overall only. var is the biased variance (divided by the count), as normalisation uses.
            """,
            examples: ["stats x", "stats y by channel"], subwords: ["by", "group", "channel", "sample"],
            argumentKind: .tensorName,
            parse: { cursor in
                let name = try cursor.name()
                var axis: StatsAxis? = nil
                if !cursor.isAtEnd {
                    _ = try cursor.keyword(["by"], "by")
                    axis = StatsAxis(rawValue: try cursor.keyword(StatsAxis.allCases.map(\.rawValue), "group, channel or sample").text)
                }
                try cursor.finish()
                return .stats(name: name, by: axis)
            }),
        CommandSpec(
            name: "set", aliases: [], usage: ["set KEY VALUE", "set"],
            summary: "change a setting, or list them all",
            details: """
              dtype float32|float64    element type of new tensors (default float64)
              precision N              digits after the point when printing (0–16, default 4)
              color on|off             colour on a terminal
              threshold N              print tensors of more elements summarised (default 1000)
              maxelems N               the largest tensor allowed (default 134217728 = 2^27)
              unicode on|off           μ, σ², x̂ … or their ASCII spelling
              threads N                threads for forward and backward (default: the cores)
            """,
            examples: ["set dtype float32", "set precision 6", "set"], subwords: Settings.keys,
            argumentKind: .none,
            parse: { cursor in
                guard !cursor.isAtEnd else { return .listSettings }
                let key = try cursor.keyword(Settings.keys, "a setting")
                let value = try cursor.word("a value for \(key.text)")
                try cursor.finish()
                return .set(key: Located(key.text, key.range), value: Located(value.text, value.range))
            }),
        CommandSpec(
            name: "load", aliases: [], usage: ["load NAME PATH"],
            summary: "read a NumPy .npy file into a tensor",
            details: """
            Reads .npy versions 1–3, little-endian float32 and float64 (kept as they are) and integer or bool arrays
            (converted to the session's dtype, with a note), in C order. Quote a path with spaces: "my data.npy".
            """,
            examples: ["load x data/x.npy"], subwords: [], argumentKind: .tensorThenPath,
            parse: { cursor in
                let name = try cursor.name()
                let path = try cursor.word("a file path")
                try cursor.finish()
                return .load(name: name, path: Located(path.text, path.range))
            }),
        CommandSpec(
            name: "save", aliases: [], usage: ["save NAME PATH"],
            summary: "write a tensor to a NumPy .npy file",
            details: "Writes a temporary file beside PATH and renames it, so a failure never leaves a half-written file.",
            examples: ["save dx dx.npy"], subwords: [], argumentKind: .tensorThenPath,
            parse: { cursor in
                let name = try cursor.name()
                let path = try cursor.word("a file path")
                try cursor.finish()
                return .save(name: name, path: Located(path.text, path.range))
            }),
        CommandSpec(
            name: "run", aliases: [], usage: ["run FILE"],
            summary: "run the commands in a file",
            details: "Stops at the first error, which names the file and line. Runs may nest up to \(Interpreter.maxRunDepth) deep.",
            examples: ["run sessions/01-first-groupnorm-by-hand.nl"], subwords: [], argumentKind: .path,
            parse: { cursor in
                let path = try cursor.word("a file path")
                try cursor.finish()
                return .run(path: Located(path.text, path.range))
            }),
        CommandSpec(
            name: "gradcheck", aliases: [],
            usage: ["gradcheck [dx|dgamma|dbeta|all] [against NAME] [eps=H atol=A rtol=R] [sample=K | full]"],
            summary: "check gradients against central finite differences in float64",
            details: """
            Differentiates L = Σ dy·y numerically, (L(v + h) − L(v − h)) / 2h for every checked element v of x, γ or
            β, on the last forward pass's input and the last backward's dy (randn seed 1000 if there was none),
            and compares with the layer's own backward pass, or with NAME: a gradient computed elsewhere. An
            element passes when |analytic − numeric| ≤ atol + rtol·|numeric| (torch.autograd.gradcheck's rule
            and defaults: eps (the step h) 1e-6, atol 1e-5, rtol 1e-3). Tensors of more than 4096 elements are
            checked on a random sample of 512 (sample=K for another size, seed=S for another draw, full for
            all). Under paramgrad=mean the numeric dγ, dβ are divided by N, as the convention defines them.
            Ctrl-C stops it.
            """,
            examples: ["gradcheck", "gradcheck dx against mydx", "gradcheck dgamma atol=1e-8", "gradcheck dx sample=100"],
            subwords: GradTarget.allCases.map(\.rawValue) + ["all", "against", "full", "eps=", "atol=", "rtol=", "sample=", "seed="],
            argumentKind: .tensorName,
            parse: { cursor in
                var request = GradcheckRequest()
                while let token = cursor.next() {
                    if let target = GradTarget(rawValue: token.text) {
                        guard request.targets.isEmpty else { throw cursor.error("name one gradient or all", at: token) }
                        request.targets = [target]
                    } else if token.text == "all" {
                        guard request.targets.isEmpty else { throw cursor.error("name one gradient or all", at: token) }
                        request.targets = GradTarget.allCases
                    } else if token.text == "against" {
                        request.against = try cursor.name("the name of the gradient to check")
                    } else if token.text == "full" {
                        request.full = true
                    } else if token.kind == .word, let equals = cursor.peek, equals.kind == .equals {
                        _ = cursor.next()
                        switch token.text {
                        case "eps": request.step = try cursor.number("a step h > 0")
                        case "atol": request.atol = try cursor.number("a tolerance ≥ 0")
                        case "rtol": request.rtol = try cursor.number("a tolerance ≥ 0")
                        case "sample": request.sample = try cursor.integer("a sample size", minimum: 1, maximum: 1 << 24).value
                        case "seed": request.seed = UInt64(try cursor.integer("a seed (a whole number ≥ 0)", minimum: 0).value)
                        default:
                            throw cursor.error("unknown option \(cursor.describe(token)); options are eps, atol, rtol, sample, seed", at: token)
                        }
                    } else {
                        throw cursor.error("expected dx, dgamma, dbeta, all, against NAME, full or an option, got \(cursor.describe(token))", at: token)
                    }
                }
                if request.full && request.sample != nil {
                    throw cursor.error("give sample=K or full, not both", at: nil)
                }
                return .gradcheck(request)
            }),
        CommandSpec(
            name: "explain", aliases: [],
            usage: ["explain forward [n=I g=J p=K c=C]", "explain backward [n=I g=J p=K c=C]", "explain layer [n=I g=J p=K c=C]"],
            summary: "derive the last forward or backward pass step by step, with its numbers",
            details: """
            Picks one statistics set (default the first): n= sample and g= group, p= position for per-position
            statistics (reduce=channels), c= channel for batchnorm. forward: μ, x − μ, its squares, σ², rstd, x̂ and
            y = γ·x̂ + β, in the order the seed layer computes them. backward: the chain rule back through the same
            steps, then the closed form of dx, both checked against the engine's dx, and dγ, dβ with their batch
            reduction. layer: the same as `show axes`. Every number shown is the engine's own (or computed from
            its values, where the engine does not keep it).
            """,
            examples: ["explain forward", "explain backward n=1 g=1", "explain forward c=2"],
            subwords: ExplainTopic.allCases.map(\.rawValue) + ["n=", "g=", "p=", "c="], argumentKind: .none,
            parse: { cursor in
                let topic = ExplainTopic(rawValue: try cursor.keyword(ExplainTopic.allCases.map(\.rawValue), "forward, backward or layer").text)!
                return .explain(topic, try parseSelector(&cursor))
            }),
        CommandSpec(
            name: "hist", aliases: [], usage: ["hist NAME [group J]", "hist A B [group J]"],
            summary: "a histogram of a tensor's values, or of two side by side",
            details: "With two tensors (say x and y) the histograms stand side by side: normalisation happening. `group J` keeps the elements of the layer's group J.",
            examples: ["hist x", "hist x y", "hist x y group 1"], subwords: ["group"], argumentKind: .tensorName,
            parse: { cursor in
                var names = [try cursor.name()]
                if let next = cursor.peek, next.kind == .word, next.text != "group" { names.append(try cursor.name()) }
                var group: Located<Int>? = nil
                if !cursor.isAtEnd {
                    _ = try cursor.keyword(["group"], "group")
                    group = try cursor.integer("a group number", minimum: 0)
                }
                try cursor.finish()
                return .histogram(names, group: group)
            }),
        CommandSpec(
            name: "compare", aliases: [], usage: ["compare A B [rtol=R atol=A]"],
            summary: "compare two tensors: bitwise equal, close, and where they differ most",
            details: "allclose is NumPy's rule, |a − b| ≤ atol + rtol·|b|, with its defaults rtol 1e-5 and atol 1e-8. The shapes must be equal: compare does not broadcast.",
            examples: ["compare dx mydx", "compare y y_ref rtol=1e-3"], subwords: ["rtol=", "atol="], argumentKind: .tensorName,
            parse: { cursor in
                let a = try cursor.name(), b = try cursor.name()
                var rtol: Double? = nil, atol: Double? = nil
                for (key, value) in try cursor.options() {
                    guard let number = ArgumentCursor.parseNumber(value.text), number >= 0, number.isFinite else {
                        throw cursor.error("\(key.text) must be a number ≥ 0, got \(cursor.describe(value))", at: value)
                    }
                    switch key.text {
                    case "rtol": rtol = number
                    case "atol": atol = number
                    default: throw cursor.error("unknown option \(cursor.describe(key)); options are rtol, atol", at: key)
                    }
                }
                return .compare(a, b, rtol: rtol, atol: atol)
            }),
        CommandSpec(
            name: "export", aliases: [], usage: ["export numpy PATH.py", "export torch PATH.py"],
            summary: "write a Python script that recomputes the last pass with NumPy or PyTorch and checks NormLab",
            details: """
            Saves the input, γ, β, dy and NormLab's y, dx, dγ, dβ as .npy files beside PATH and writes a script that
            rebuilds the layer with its conventions, recomputes them (numpy: the formulas in plain NumPy; torch:
            F.group_norm or F.batch_norm with autograd where the conventions are PyTorch's, the formula with autograd
            where they are not) and prints the agreement; it exits 1 when any result differs by more than 1e-12
            (float64) or 1e-5 (float32) relative to the tensor's largest magnitude, 0 otherwise.
            """,
            examples: ["export numpy check.py", "export torch check_torch.py"],
            subwords: ExportTarget.allCases.map(\.rawValue), argumentKind: .path,
            parse: { cursor in
                let target = ExportTarget(rawValue: try cursor.keyword(ExportTarget.allCases.map(\.rawValue), "numpy or torch").text)!
                let path = try cursor.word("a path for the script (….py)")
                try cursor.finish()
                return .export(target, path: Located(path.text, path.range))
            }),
        CommandSpec(
            name: "time", aliases: [], usage: ["time forward|backward|step [runs=K]"],
            summary: "time the layer on the last forward's input: median, min, max and bandwidth",
            details: """
            Like IPython's %timeit: one warm-up run, then K timed runs (by default as many as fit in about a second,
            at most \(Interpreter.maxTimedRuns)). step is forward then backward. The effective bandwidth is the
            bytes that must move (forward: read x, write y; backward: read dy and x̂, write dx) divided by the median.
            Uses `set threads`; the session is not changed. Ctrl-C stops it.
            """,
            examples: ["time step", "time forward runs=50"], subwords: TimedStep.allCases.map(\.rawValue) + ["runs="],
            argumentKind: .none,
            parse: { cursor in
                let what = TimedStep(rawValue: try cursor.keyword(TimedStep.allCases.map(\.rawValue), "forward, backward or step").text)!
                var runs: Int? = nil
                for (key, value) in try cursor.options() {
                    guard key.text == "runs" else { throw cursor.error("unknown option \(cursor.describe(key)); the option is runs=K", at: key) }
                    guard let n = Int(value.text), n >= 1, n <= Interpreter.maxTimedRuns else {
                        throw cursor.error("runs must be a whole number from 1 to \(Interpreter.maxTimedRuns), got \(cursor.describe(value))", at: value)
                    }
                    runs = n
                }
                return .time(what, runs: runs)
            }),
        CommandSpec(
            name: "history", aliases: [], usage: ["history"],
            summary: "list the commands run so far in this session",
            details: "", examples: ["history"], subwords: [], argumentKind: .none,
            parse: { cursor in try cursor.finish(); return .history }),
        CommandSpec(
            name: "help", aliases: ["?"], usage: ["help", "help COMMAND", "help TOPIC"],
            summary: "list the commands, or explain one command or topic",
            details: "Topics: \(HelpTopics.names.joined(separator: ", ")).",
            examples: ["help", "help layer", "help conventions"],
            subwords: [], argumentKind: .none,
            parse: { cursor in
                let topic = cursor.isAtEnd ? nil : try cursor.word("a command or topic").text
                try cursor.finish()
                return .help(topic)
            }),
        CommandSpec(
            name: "quit", aliases: ["exit"], usage: ["quit", "exit"],
            summary: "leave NormLab",
            details: "", examples: ["quit"], subwords: [], argumentKind: .none,
            parse: { cursor in try cursor.finish(); return .quit }),
    ]

    public static func lookup(_ name: String) -> CommandSpec? {
        commands.first { $0.name == name || $0.aliases.contains(name) }
    }

    public static var allNames: [String] { commands.flatMap { [$0.name] + $0.aliases } }

    /// `n=I g=J p=K c=C` in any order.
    static func parseSelector(_ cursor: inout ArgumentCursor) throws -> SetSelector {
        var selector = SetSelector()
        for (key, value) in try cursor.options() {
            guard let number = Int(value.text), number >= 0 else {
                throw cursor.error("\(key.text)= takes a whole number ≥ 0, got \(cursor.describe(value))", at: value)
            }
            let located = Located(number, value.range)
            switch key.text {
            case "n": selector.sample = located
            case "g": selector.group = located
            case "p": selector.position = located
            case "c": selector.channel = located
            default: throw cursor.error("unknown option \(cursor.describe(key)); options are n= (sample), g= (group), p= (position), c= (channel)", at: key)
            }
        }
        return selector
    }

    static func parseSource(_ cursor: inout ArgumentCursor) throws -> TensorSource {
        guard let token = cursor.peek else {
            throw cursor.error("expected randn, rand, zeros, ones, arange, full, a literal [ … ] or a tensor name, got the end of the command", at: nil)
        }
        if token.kind == .openBracket { return .literal(try cursor.literal()) }
        switch token.text {
        case "randn", "rand":
            _ = cursor.next()
            let dims = try cursor.dims()
            var seed: UInt64 = 0
            if let s = cursor.peek, s.kind == .word, s.text == "seed" {
                _ = cursor.next()
                seed = UInt64(try cursor.integer("a seed (a whole number ≥ 0)", minimum: 0).value)
            }
            return .random(normal: token.text == "randn", dims: dims, seed: seed)
        case "zeros": _ = cursor.next(); return .zeros(try cursor.dims())
        case "ones": _ = cursor.next(); return .ones(try cursor.dims())
        case "arange": _ = cursor.next(); return .arange(try cursor.dims())
        case "full":
            _ = cursor.next()
            let value = try cursor.number("the fill value")
            return .full(value, try cursor.dims())
        default:
            return .copy(try cursor.name("randn, rand, zeros, ones, arange, full, a literal [ … ] or a tensor name"))
        }
    }
}
