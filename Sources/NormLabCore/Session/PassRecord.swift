import NormKit

/// The last forward (and backward) pass of the current layer, widened to Double, for `explain`, `show axes` and
/// `hist`: what the engine computed, read back, never recomputed differently.
struct PassRecord {
    let spec: LayerSpec
    let plan: NormPlan
    let mode: Mode
    let dtype: DType
    let x: [Double]
    let mean: [Double]?
    let variance: [Double]
    let rstd: [Double]
    let xhat: [Double]
    let y: [Double]
    let gamma: [Double]?
    let beta: [Double]?
    /// The upstream gradient the backward after this forward used (not whatever `dy` names now).
    let dy: [Double]?
    let dx: [Double]?
    let dgamma: [Double]?
    let dbeta: [Double]?

    init?<S: NormScalar>(_ layer: NormLayer<S>) {
        guard let f = layer.lastForward else { return nil }
        spec = f.spec
        plan = f.plan
        mode = f.mode
        dtype = f.storage
        x = f.input.scalars.map(\.asDouble)
        mean = f.mean?.scalars.map(\.asDouble)
        variance = f.variance.scalars.map(\.asDouble)
        rstd = f.rstd.scalars.map(\.asDouble)
        xhat = f.normalized.scalars.map(\.asDouble)
        y = f.output.scalars.map(\.asDouble)
        gamma = layer.gamma?.scalars.map(\.asDouble)
        beta = layer.beta?.scalars.map(\.asDouble)
        // Gradients belong to this pass only if backward ran after it.
        let g = layer.lastGradients.flatMap { $0.dx.shape == f.input.shape ? $0 : nil }
        dx = g?.dx.scalars.map(\.asDouble)
        dy = g == nil ? nil : layer.lastOutputGradient?.scalars.map(\.asDouble)
        dgamma = g?.dgamma?.scalars.map(\.asDouble)
        dbeta = g?.dbeta?.scalars.map(\.asDouble)
    }

    /// The index of γ and β for an element offset.
    func parameterIndex(ofOffset offset: Int) -> Int {
        let c = (offset / plan.spatial) % plan.channels
        return spec.affine == .element ? c * plan.spatial + offset % plan.spatial : c
    }
}

extension AnyLayer {
    var passRecord: PassRecord? {
        switch self {
        case .float32(let l): PassRecord(l)
        case .float64(let l): PassRecord(l)
        }
    }
}
