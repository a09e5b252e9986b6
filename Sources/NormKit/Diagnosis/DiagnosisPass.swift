/// One training pass in Float64, element by element, with everything a diagnosis compares against: the
/// statistics set and the γ index of every element, x̂, μ and rstd per set, and the gradients.
struct DiagnosisPass {
    let spec: LayerSpec
    let plan: NormPlan
    let x: [Double]
    let gamma: [Double]?
    let beta: [Double]?
    let dy: [Double]
    /// The statistics set of each element, and the index of its γ and β.
    let setOf: [Int]
    let parameterOf: [Int]
    /// The members of each set.
    let sets: [[Int]]
    var mean: [Double]
    var rstd: [Double]
    var xhat: [Double]
    var y: [Double]
    var dx: [Double]
    var dgamma: [Double]?
    var dbeta: [Double]?

    /// NormKit's own pass: the reference.
    init(spec: LayerSpec, shape: Shape, x: [Double], gamma: [Double]?, beta: [Double]?, dy: [Double]) throws(NormError) {
        // The reference is the exact pass, whatever method= and accumulate= the layer computes with.
        var spec = spec
        spec.method = .twopass
        spec.accumulate = .float64
        let input = try Tensor<Double>(shape: shape, scalars: x)
        let plan = try NormPlan(spec: spec, inputShape: shape)
        let g = try gamma.map { v throws(NormError) in try Tensor<Double>(shape: plan.affineShape ?? shape, scalars: v) }
        let b = try beta.map { v throws(NormError) in try Tensor<Double>(shape: plan.affineShape ?? shape, scalars: v) }
        let forward = try Normalization.computeForward(spec: spec, input: input, gamma: g, beta: b, mode: .train,
                                                       running: nil, threads: 1, allowFastPath: false)
        let grads = try Normalization.computeBackward(forward: forward, gamma: g, outputGradient: Tensor(shape: shape, scalars: dy),
                                                      threads: 1, allowFastPath: false)
        self.spec = spec
        self.plan = plan
        self.x = x
        self.gamma = gamma
        self.beta = beta
        self.dy = dy
        (setOf, parameterOf, sets) = Self.layout(spec: spec, plan: plan)
        mean = forward.exactMeans
        rstd = forward.exactRstds
        xhat = forward.normalized.scalars
        y = forward.output.scalars
        dx = grads.dx.scalars
        dgamma = grads.dgamma?.scalars
        dbeta = grads.dbeta?.scalars
    }

    static func layout(spec: LayerSpec, plan: NormPlan) -> (setOf: [Int], parameterOf: [Int], sets: [[Int]]) {
        var setOf = [Int](repeating: 0, count: plan.inputShape.count)
        var parameterOf = [Int](repeating: 0, count: plan.inputShape.count)
        var sets = [[Int]](repeating: [], count: plan.statsShape.count)
        for n in 0..<plan.batch {
            for c in 0..<plan.channels {
                for s in 0..<plan.spatial {
                    let i = (n * plan.channels + c) * plan.spatial + s
                    let k = plan.statIndex(sample: n, channel: c, position: s)
                    setOf[i] = k
                    sets[k].append(i)
                    parameterOf[i] = spec.affine == .element ? c * plan.spatial + s : c
                }
            }
        }
        return (setOf, parameterOf, sets)
    }

    var count: Int { x.count }
    var m: Double { Double(plan.setSize) }
    /// The divisor of Σ(x − μ)²: m, or m − 1 for the unbiased variance.
    var divisor: Double { spec.variance == .unbiased ? m - 1 : m }
    func gammaAt(_ i: Int) -> Double { gamma?[parameterOf[i]] ?? 1 }
    func betaAt(_ i: Int) -> Double { beta?[parameterOf[i]] ?? 0 }

    /// ∂x̂ = dy·γ (or dy alone).
    func dxhat(useGamma: Bool = true) -> [Double] {
        (0..<count).map { dy[$0] * (useGamma ? gammaAt($0) : 1) }
    }

    /// The three terms of the closed form, per element: dx = T1 + T2 + T3 with T1 = rstd·∂x̂,
    /// T2 = −rstd·mean(∂x̂) (zero for RMSNorm) and T3 = −rstd·x̂·Σ(∂x̂·x̂)/d.
    /// `xhat`, `rstd`: another pass's (a hypothesis about the user's forward); this pass's by default.
    func terms(_ g: [Double], xhat: [Double]? = nil, rstd: [Double]? = nil) -> (t1: [Double], t2: [Double], t3: [Double]) {
        let xhat = xhat ?? self.xhat, rstd = rstd ?? self.rstd
        var t1 = [Double](repeating: 0, count: count), t2 = t1, t3 = t1
        for (k, members) in sets.enumerated() {
            var sumG = 0.0, sumGH = 0.0
            for i in members { sumG += g[i]; sumGH += g[i] * xhat[i] }
            let r = rstd[k]
            for i in members {
                t1[i] = r * g[i]
                t2[i] = spec.centres ? -r * sumG / m : 0
                t3[i] = -r * xhat[i] * sumGH / divisor
            }
        }
        return (t1, t2, t3)
    }

    /// dγ = Σ dy·v and dβ = Σ dy over the batch (and positions for channel-wise γ), reduced as the spec says.
    func parameterGradient(_ v: [Double]?) -> [Double]? {
        guard let shape = plan.affineShape else { return nil }
        var out = [Double](repeating: 0, count: shape.count)
        for i in 0..<count { out[parameterOf[i]] += dy[i] * (v?[i] ?? 1) }
        let scale = spec.paramGrad == .mean ? 1 / Double(plan.batch) : 1
        return out.map { $0 * scale }
    }

    var values: PassValues { PassValues(y: y, dx: dx, dgamma: dgamma, dbeta: dbeta) }

    /// y = γ·x̂ + β for another x̂.
    func output(_ h: [Double]) -> [Double] {
        (0..<count).map { gammaAt($0) * h[$0] + betaAt($0) }
    }
}

/// The four results of a pass: NormKit's, or those of a hypothesis about the user's implementation.
struct PassValues {
    var y: [Double]
    var dx: [Double]
    var dgamma: [Double]?
    var dbeta: [Double]?
}
