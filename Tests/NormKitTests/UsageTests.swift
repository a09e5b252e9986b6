import NormKit
import Testing

/// README's "Using NormKit" snippet, compiled and run as a client sees the library (no @testable): the lines
/// between the markers must be README's, character for character (ReadmeTests checks).
@Suite struct UsageTests {
    @Test func readmeSnippetRuns() throws {
        // README snippet begins
        let x = Tensor<Double>.randn(try Shape([2, 4, 3, 3]), seed: 0)
        var layer = try NormLayer<Double>(spec: LayerSpec(kind: .groupnorm, groups: 2))
        let pass = try layer.forward(x)
        let gradients = try layer.backward(Tensor<Double>.randn(x.shape, seed: 1000))
        print(pass.output.shape, pass.mean!.shape, gradients.dx.shape, layer.gammaGrad!.shape)
        // README snippet ends
        #expect(pass.output.shape.dims == [2, 4, 3, 3] && pass.mean!.shape.dims == [2, 2])
        #expect(gradients.dx.shape == x.shape && layer.gammaGrad!.shape.dims == [4])
    }
}
