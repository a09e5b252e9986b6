import NormKit

extension Interpreter {
    func gradcheck(_ request: GradcheckRequest, text: String) throws {
        let layer = try currentLayer()
        guard layer.hasForward, let y = session["y"] else {
            throw Diagnostic("gradcheck needs a forward pass first: run forward (and backward, for its dy), then gradcheck")
        }
        var options = GradcheckOptions()
        if let step = request.step { options.step = step }
        if let atol = request.atol { options.atol = atol }
        if let rtol = request.rtol { options.rtol = rtol }
        if let seed = request.seed { options.seed = seed }
        options.sampleSize = request.sample
        options.full = request.full

        var targets = request.targets.isEmpty ? GradTarget.allCases : request.targets
        if layer.spec.affine == .none && request.targets.isEmpty { targets = [.dx] }
        var supplied: [GradTarget: AnyTensor] = [:]
        if let against = request.against {
            guard targets.count == 1, let target = targets.first else {
                throw Diagnostic("`against` checks one gradient: say which (gradcheck dx against \(against.value))", at: against.range, in: text)
            }
            supplied[target] = try lookup(against, text: text)
        }

        let dy: AnyTensor
        let dySource: String
        if let last = session["dy"], last.shape == y.shape {
            dy = last
            dySource = "dy (the last backward's)"
        } else {
            dy = AnyTensor.float64(.randn(y.shape, seed: Self.defaultUpstreamSeed))
            dySource = "randn seed \(Self.defaultUpstreamSeed) (no backward yet)"
        }

        let reports: [GradcheckReport]
        let cancel = isCancelled
        switch layer {
        case .float32(let l):
            reports = try l.gradcheck(outputGradient: dy.tensor(), targets: targets,
                                      supplied: supplied.mapValues { $0.tensor() }, options: options, isCancelled: cancel)
        case .float64(let l):
            reports = try l.gradcheck(outputGradient: dy.tensor(), targets: targets,
                                      supplied: supplied.mapValues { $0.tensor() }, options: options, isCancelled: cancel)
        }
        out("gradcheck: L = Σ dy·y with dy = \(dySource); central differences in float64, h = \(formatOption(options.step)); pass when |a − n| ≤ \(formatOption(options.atol)) + \(formatOption(options.rtol))·|n|")
        let precision = max(session.settings.precision, 6)
        for report in reports {
            let what = report.supplied ? "\(request.against?.value ?? "?") (as \(report.target))" : "\(report.target) (the engine's backward)"
            let verdict = report.passed ? style.note("PASS") : style.error("FAIL")
            out("\(what): \(verdict) — \(report.failures) of \(report.checked) checked elements fail; max abs err \(formatNumber(report.maxAbsError, precision: 2)), max rel err \(formatNumber(report.maxRelError, precision: 2))")
            for note in report.notes { out("  " + note) }
            guard !report.worst.isEmpty else { continue }
            var table = TextTable(headers: ["  worst", "analytic", "numeric", "abs err", "rel err"], numericColumns: [1, 2, 3, 4])
            let values = NumberStyle.choose(for: report.worst.flatMap { [$0.analytic, $0.numeric] }, precision: precision)
            for element in report.worst {
                table.rows.append(["  " + Shape.format(element.index),
                                   values.format(element.analytic),
                                   values.format(element.numeric),
                                   formatNumber(element.absError, precision: 2),
                                   formatNumber(element.relError, precision: 2)])
            }
            out(table.render(style: style))
        }
    }
}
