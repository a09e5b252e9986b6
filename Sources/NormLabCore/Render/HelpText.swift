import NormKit

/// Topics `help` explains besides the commands.
enum HelpTopics {
    static let topics: [(name: String, summary: String, text: String)] = [
        ("conventions", "the two conventions (torch, pydllib) and every option they set", """
        NormLab computes every layer in two conventions, chosen by `preset=` and adjustable one option at a time.

          preset=torch (the default): the Group Normalization paper (Wu & He 2018) and PyTorch
            reduce=group      μ and σ² per (sample, group), over the group's C/G channels × all positions
            affine=channel    γ and β hold one value per channel: shape (C)
            paramgrad=sum     dγ = Σ dy·x̂ and dβ = Σ dy over the batch: the true gradient of Σ dy·y
            eps=1e-5

          preset=pydllib: what the code of the PyDLLib library's layers computes
            reduce=channels   μ and σ² per (sample, group, position), over the group's C/G channels only
                              (its `.sum(2)` on the (N, G, C/G, *spatial) view)
            affine=element    γ and β of the sample's shape (C, *spatial), though its nparams says 2·C
            paramgrad=mean    dγ, dβ averaged over the batch (`.mean(axis=0)`): the true gradient ÷ N
            eps=1e-6
            batchnorm: per (channel, position) over the batch only, with the unbiased variance (needs N ≥ 2)

        Both accumulate dγ and dβ across backward calls until zero_grad. Without spatial dimensions the two
        reductions coincide. Under pydllib, instancenorm (G = C) has one element per set: y = β and dx = 0.
        variance=unbiased divides Σ(x − μ)² by m − 1 instead of m (a common mistake outside batchnorm's running
        estimate).
        """),
        ("numerics", "float16 and bfloat16, method= and accumulate=, and where normalisation breaks", """
        Formats (set dtype): float64 (53 significant bits), float32 (24), float16 (11 bits, largest finite 65504,
        smallest positive 6e-08) and bfloat16 (8 bits, float32's range). float16 and bfloat16 tensors hold values
        of their format exactly: every way in rounds once to nearest, ties to even, and past the largest finite
        value to ±inf. .npy reads and writes float16; .safetensors reads and writes F16 and BF16 (NumPy has no
        bfloat16, so .npy and .npz get bfloat16 tensors as float32, every value exact).

        How a layer computes (layer … method=M accumulate=A; `layer` shows both):
          method=twopass   μ = Σx/m, then σ² = Σ(x − μ)²/m (the default, and the exact way)
          method=onepass   σ² = Σx²/m − μ² from one pass: cancels when |μ| ≫ σ (μ²/σ² ≈ 10^k costs k digits)
          method=welford   μ and M₂ updated element by element: one pass, and stable
          accumulate=float64   every sum and step in float64 (the default; results rounded once to the dtype)
          accumulate=float32   every sum and step in float32, as PyTorch computes float16 and bfloat16 inputs
          accumulate=storage   every sum and step in the tensors' own format: float16 squares in float16
        Sums run over each set in row-major order, one element at a time, each operation rounded to the chosen
        format; backward's sums too. With the defaults the fast kernels run and y, dx, dγ, dβ are rounded once
        to the dtype; otherwise the emulating kernel does, slowly and exactly.

        Where it breaks (forward and backward say so, with the setting that avoids it):
          overflow        x² or a sum past the format's largest value: σ² = ∞ (float16: |x| above ~256)
          eps rounding    eps = 1e-12 is 0 in float16: a constant set gets rstd = 1/√0 = ∞ and x̂ = NaN
          cancellation    σ² ≤ 0, NaN, or far from the exact value: one-pass variance, or sums in float16
          NaN/inf         how many values of y or dx are not finite although the input is
          storage         y or dx past the format's range when stored
        `explain forward` shows each step as computed beside the exact value, with the digits that agree.
        `diagnose` and `compare` name [onepass-cancellation], [float16-overflow], [eps-underflow] and
        [low-precision-accumulation], and judge [rounding] against the tensor's own format (float16 and bfloat16
        as PyTorch computes them: float32 inside, each result rounded once).
        """),
        ("tour", "the tutorial sessions, in order", Tour.text),
        ("language", "how commands are written", """
        One command per line, or several separated by `;`. `#` starts a comment. A statement with an open `[`
        continues on the next line. Options are written key=value. Names are letters, digits and _, starting
        with a letter or _. Paths with spaces go in double quotes.
        """),
    ]

    static var names: [String] { topics.map(\.name) }
}

enum HelpText {
    static func text(for topic: String?) throws -> String {
        guard let topic else { return overview() }
        if let command = CommandTable.lookup(topic) { return self.command(command.help) }
        if let entry = HelpTopics.topics.first(where: { $0.name == topic }) { return entry.text }
        if let kind = LayerKind(rawValue: topic) { return layer(kind) }
        var message = "no help for \(Escaping.quoted(topic))"
        let candidates = CommandTable.allNames + HelpTopics.names + LayerKind.allCases.map(\.rawValue)
        if let guess = Suggest.closest(to: topic, among: candidates) { message += "; did you mean '\(guess)'?" }
        throw Diagnostic(message + " (`help` lists the commands and topics)")
    }

    static func overview() -> String {
        let width = CommandTable.commands.map { $0.help.name.count }.max() ?? 0
        var lines = ["Commands (`help COMMAND` for details and examples):"]
        for spec in CommandTable.commands.map({ $0.help }) {
            lines.append("  " + spec.name + String(repeating: " ", count: width - spec.name.count + 2) + spec.summary)
        }
        lines.append("Topics: " + HelpTopics.topics.map { "\($0.name) (\($0.summary))" }.joined(separator: "; "))
        lines.append("Layers: " + LayerKind.allCases.map(\.rawValue).joined(separator: ", ") + " (`help groupnorm` …)")
        return lines.joined(separator: "\n")
    }

    static func command(_ spec: CommandHelp) -> String {
        var lines = spec.usage.map { "usage: " + $0 }
        if spec.usage.count > 1 {
            lines = ["usage: " + spec.usage[0]] + spec.usage.dropFirst().map { "       " + $0 }
        }
        lines.append("")
        lines.append(spec.summary.prefix(1).uppercased() + spec.summary.dropFirst() + ".")
        if !spec.details.isEmpty { lines.append(spec.details) }
        if !spec.aliases.isEmpty { lines.append("Also: " + spec.aliases.joined(separator: ", ")) }
        lines.append("Examples:")
        lines += spec.examples.map { "  " + $0 }
        return lines.joined(separator: "\n")
    }

    /// What `help KIND` says of a layer kind.
    static func layer(_ kind: LayerKind) -> String {
        switch kind {
        case .groupnorm:
            return """
            groupnorm G: split the C channels into G groups and normalise each (sample, group) with its own mean and
            variance: y = γ·(x − μ)/√(σ² + eps) + β. G = 1 is LayerNorm, G = C is InstanceNorm.
            G = 32 is the paper's default. It does not depend on the batch: at 2 images per GPU, GN's ImageNet error
            is 24.1% against BatchNorm's 34.7% (Wu & He 2018, ResNet-50).
            Example: layer groupnorm 2 — see `help layer` for the options and `help conventions`.
            """
        case .layernorm:
            return "layernorm: GroupNorm with G = 1: each sample normalised over all its channels and positions. (torch.nn.LayerNorm(C, H, W) has element-wise γ, β: add affine=element.)"
        case .instancenorm:
            return "instancenorm: GroupNorm with G = C: each (sample, channel) normalised over its positions. Under preset=pydllib each set is one element, so y = β and dx = 0."
        case .batchnorm:
            return "batchnorm: per channel over the batch and all positions (torch) or per element over the batch (pydllib). train uses the batch's statistics and updates running_mean, running_var; eval uses them. A new batchnorm starts in train mode."
        case .rmsnorm:
            return "rmsnorm [G]: y = γ·x/√(mean(x²) + eps) + β over each group (G = 1 by default), no mean subtraction."
        }
    }
}

/// The tutorial path in sessions/: each a script and its transcript.
enum Tour {
    static let sessions: [(file: String, summary: String)] = [
        ("01-first-groupnorm-by-hand", "a first GroupNorm: groups, statistics, every forward step by hand, backward"),
        ("02-layernorm-and-instancenorm", "G = 1 is LayerNorm and G = C is InstanceNorm, bit for bit"),
        ("03-batchnorm-depends-on-the-batch", "BatchNorm: a sample's output depends on its batch; train against eval"),
        ("04-statistics-per-group", "where mean, var, rstd, x − μ and x̂ come from, group by group"),
        ("05-deriving-the-backward-pass", "the chain rule step by step, the closed form, and a gradient check"),
        ("06-a-wrong-gradient", "a wrong hand-written dx from .npy: diagnose names the missing term, gradcheck agrees"),
        ("07-eps-constant-inputs-and-precision", "eps, constant inputs, and float32 against float64 at a 1e6 offset"),
        ("08-two-conventions", "preset=torch against preset=pydllib on an image-shaped input"),
        ("09-npy-in-and-out", "tensors from NumPy .npy files in, results out"),
        ("10-debugging-a-backward-pass", "your x, γ, β, dy, y, dx, dγ, dβ from .npy, judged by diagnose"),
        ("11-gradients-accumulate", "dγ, dβ accumulate until zero_grad; run, reshape, del, BatchNorm's modes, history"),
        ("12-float32-rounding-is-not-a-bug", "a correct float32 pass on x ≈ 1000 is rounding; a one-pass variance is a bug"),
        ("13-layernorm-and-rmsnorm-in-a-transformer", "nn.LayerNorm(D) and nn.RMSNorm(D) on (B, T, D) tokens, against the CNN forms"),
        ("14-compute-it-yourself", "exercises: each step of forward and backward computed by you, graded, with hints"),
        ("15-check-a-whole-implementation", "check runs a student's Python GroupNorm on many cases, shrinks the failure, names it"),
        ("16-low-precision-where-normalisation-breaks", "float16 and bfloat16: one-pass variance, overflow, eps = 1e-12, and each fix"),
    ]

    static var text: String {
        var lines = ["The tutorial path (from the repository: `normlab sessions/NAME.nl`, or `run sessions/NAME.nl` here;",
                     "each has its transcript beside it as NAME.out):"]
        let width = sessions.map(\.file.count).max() ?? 0
        for (file, summary) in sessions {
            lines.append("  " + file + String(repeating: " ", count: width - file.count + 2) + summary)
        }
        lines.append("Start with the first; a learner who knows y = γ·(x − μ)/σ + β can follow them in order.")
        return lines.joined(separator: "\n")
    }
}
