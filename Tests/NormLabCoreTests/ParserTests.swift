import NormKit
import Testing
@testable import NormLabCore

@Suite struct LexerTests {
    @Test func tokens() throws {
        let tokens = try Lexer.tokens("tensor x = [[1, -2e-3], [3, 4]]  # comment")
        #expect(tokens.map(\.text) == ["tensor", "x", "=", "[", "[", "1", ",", "-2e-3", "]", ",", "[", "3", ",", "4", "]", "]"])
        #expect(tokens[1].range == 7..<8)
        let quoted = try Lexer.tokens("load x \"my data.npy\"; show x")
        #expect(quoted[2] == Token(kind: .quoted, text: "my data.npy", range: 7..<20))
        #expect(quoted[3].kind == .semicolon)
        #expect(try Lexer.tokens("layer groupnorm 2 eps=1e-5").map(\.kind) == [.word, .word, .word, .word, .equals, .word])
        #expect(throws: Lexer.Failure(message: "this quote is never closed", range: 5..<6)) { try Lexer.tokens("load \"x") }
    }

    @Test func continuation() {
        #expect(Lexer.openBrackets(in: "tensor x = [[1, 2],") == 1)
        #expect(Lexer.openBrackets(in: "tensor x = [[1, 2], [3, 4]]") == 0)
        #expect(Lexer.openBrackets(in: "tensor x = [1, # [ in a comment\n 2]") == 0)
        #expect(Lexer.openBrackets(in: "load x \"[.npy\"") == 0)
        var accumulator = StatementAccumulator()
        #expect(accumulator.add("tensor x = [[1, 2],", lineNumber: 4) == nil)
        #expect(accumulator.isContinuing)
        #expect(accumulator.add("  [3, 4]]", lineNumber: 5) == StatementAccumulator.Chunk(text: "tensor x = [[1, 2],\n  [3, 4]]", line: 4))
        #expect(!accumulator.isContinuing)
    }
}

@Suite struct ParserTests {
    func parse(_ text: String) throws -> any Command {
        try CommandTable.parse(try Lexer.tokens(text), text: text)
    }

    /// The command `text` parses to, as the declaration it must be.
    func parse<C: Command & Equatable>(_ text: String, as: C.Type) throws -> C? {
        try parse(text) as? C
    }

    @Test func everyCommandParses() throws {
        #expect(try parse("tensor x = randn 2 4 3 3 seed 7", as: MakeTensor.self) == MakeTensor(name: Located("x", 7..<8), source: .random(normal: true, dims: [2, 4, 3, 3], seed: 7)))
        #expect(try parse("tensor x = rand 3", as: MakeTensor.self) == MakeTensor(name: Located("x", 7..<8), source: .random(normal: false, dims: [3], seed: 0)))
        #expect(try parse("tensor z = zeros 2 3", as: MakeTensor.self) == MakeTensor(name: Located("z", 7..<8), source: .zeros([2, 3])))
        #expect(try parse("tensor z = ones 2", as: MakeTensor.self) == MakeTensor(name: Located("z", 7..<8), source: .ones([2])))
        #expect(try parse("tensor z = arange 6", as: MakeTensor.self) == MakeTensor(name: Located("z", 7..<8), source: .arange([6])))
        #expect(try parse("tensor z = full -1.5e2 2 2", as: MakeTensor.self) == MakeTensor(name: Located("z", 7..<8), source: .full(-150, [2, 2])))
        #expect(try parse("tensor z = [[1, -2], [3e1, 4]]", as: MakeTensor.self) == MakeTensor(name: Located("z", 7..<8), source: .literal(
            .list([.list([.number(1), .number(-2)]), .list([.number(30), .number(4)])]))))
        #expect(try parse("tensor z = x", as: MakeTensor.self) == MakeTensor(name: Located("z", 7..<8), source: .copy(Located("x", 11..<12))))
        #expect(try parse("reshape x 2 12", as: Reshape.self) == Reshape(name: Located("x", 8..<9), dims: [2, 12]))
        #expect(try parse("tensors", as: ListTensors.self) == ListTensors())
        #expect(try parse("del a b", as: DeleteTensors.self) == DeleteTensors(names: [Located("a", 4..<5), Located("b", 6..<7)]))
        #expect(try parse("layer", as: ChooseLayer.self) == ChooseLayer(request: nil))
        #expect(try parse("layer groupnorm 4 eps=1e-6 preset=pydllib", as: ChooseLayer.self) == ChooseLayer(request: LayerRequest(
            kind: .groupnorm, groups: Located(4, 16..<17),
            options: [LayerOption(key: .eps, value: Located("1e-6", 22..<26)),
                      LayerOption(key: .preset, value: Located("pydllib", 34..<41))])))
        #expect(try parse("layer rmsnorm", as: ChooseLayer.self) == ChooseLayer(request: LayerRequest(kind: .rmsnorm, groups: nil, options: [])))
        #expect(try parse("param gamma = full 2 4", as: SetParameter.self) == SetParameter(which: .gamma, source: .full(2, [4])))
        #expect(try parse("param beta = b", as: SetParameter.self) == SetParameter(which: .beta, source: .copy(Located("b", 13..<14))))
        #expect(try parse("train", as: TrainMode.self) == TrainMode())
        #expect(try parse("eval", as: EvalMode.self) == EvalMode())
        #expect(try parse("zero_grad", as: ZeroGrad.self) == ZeroGrad())
        #expect(try parse("forward", as: Forward.self) == Forward(input: nil))
        #expect(try parse("forward x2", as: Forward.self) == Forward(input: Located("x2", 8..<10)))
        #expect(try parse("backward", as: Backward.self) == Backward(source: nil))
        #expect(try parse("backward ones", as: Backward.self) == Backward(source: .ones))
        #expect(try parse("backward randn seed 3", as: Backward.self) == Backward(source: .randn(seed: 3)))
        #expect(try parse("backward randn", as: Backward.self) == Backward(source: .randn(seed: 1000)))
        #expect(try parse("backward g", as: Backward.self) == Backward(source: .tensor(Located("g", 9..<10))))
        #expect(try parse("show x", as: Show.self) == Show(target: .tensor(Located("x", 5..<6))))
        #expect(try parse("show grad", as: Show.self) == Show(target: .grad))
        #expect(try parse("show layer", as: Show.self) == Show(target: .layer))
        #expect(try parse("show groups", as: Show.self) == Show(target: .groups))
        #expect(try parse("stats x", as: Stats.self) == Stats(name: Located("x", 6..<7), axis: nil))
        #expect(try parse("stats x by channel", as: Stats.self) == Stats(name: Located("x", 6..<7), axis: .channel))
        #expect(try parse("set dtype float32", as: SetSetting.self) == SetSetting(key: Located("dtype", 4..<9), value: Located("float32", 10..<17)))
        #expect(try parse("set", as: SetSetting.self) == SetSetting())
        #expect(try parse("load x \"a b.npy\"", as: Load.self) == Load(name: Located("x", 5..<6), path: Located("a b.npy", 7..<16)))
        #expect(try parse("save x out.npy", as: Save.self) == Save(name: Located("x", 5..<6), path: Located("out.npy", 7..<14)))
        #expect(try parse("run s.nl", as: RunFile.self) == RunFile(path: Located("s.nl", 4..<8)))
        #expect(try parse("history", as: ShowHistory.self) == ShowHistory())
        #expect(try parse("help", as: ShowHelp.self) == ShowHelp(topic: nil))
        #expect(try parse("help layer", as: ShowHelp.self) == ShowHelp(topic: "layer"))
        #expect(try parse("? layer", as: ShowHelp.self) == ShowHelp(topic: "layer"))
        #expect(try parse("quit", as: Quit.self) == Quit())
        #expect(try parse("exit", as: Quit.self) == Quit())
        #expect(try parse("compare a b rtol=1e-3", as: Compare.self) == Compare(Located("a", 8..<9), Located("b", 10..<11), rtol: 1e-3))
        #expect(try parse("time step runs=5", as: Time.self) == Time(.step, runs: 5))
        #expect(try parse("explain forward", as: Explain.self) == Explain(.forward))
        #expect(try parse("export numpy c.py", as: Export.self) == Export(target: .numpy, path: Located("c.py", 13..<17)))
        #expect(try parse("hist x", as: Histogram.self) == Histogram(names: [Located("x", 5..<6)], group: nil))
        var check = Gradcheck()
        check.targets = [.dx]
        check.sample = 3
        #expect(try parse("gradcheck dx sample=3", as: Gradcheck.self) == check)
    }

    /// Every error names what was wrong and what was expected, with a caret under the token.
    @Test func errorsWithCarets() {
        #expect(parseError("tensr x = zeros 2") == """
        error: unknown command 'tensr'; did you mean 'tensor'?
          tensr x = zeros 2
          ^~~~~
        (`help` lists the commands)

        """)
        #expect(parseError("layer groupnorm abc") == """
        error: groupnorm needs the number of groups G (a whole number ≥ 1), got 'abc'
          layer groupnorm abc
                          ^~~
        usage: layer groupnorm G [key=value…]
               layer layernorm|instancenorm|batchnorm [key=value…]
               layer rmsnorm [G] [key=value…]
               layer layernorm|rmsnorm shape=D[,D…] [key=value…]
               layer norm over=AXES [groups=G] [affine=AXES] [centre=yes|no] [eps=E] [method=M] [accumulate=A]
               layer

        """)
        #expect(parseError("tensor x = zeros 2 0")?.hasPrefix("""
        error: every dimension must be at least 1, got 0
          tensor x = zeros 2 0
                             ^
        """) == true)
        #expect(parseError("tensor 2x = zeros 2")?.contains("'2x' is not a valid name") == true)
        #expect(parseError("tensor grad = zeros 2")?.contains("'grad' is a reserved word") == true)
        #expect(parseError("tensor x zeros 2")?.contains("expected '=' after the name, got 'zeros'") == true)
        #expect(parseError("tensor x =")?.contains("expected randn, rand, zeros, ones, arange, full, a literal [ … ] or a tensor name, got the end of the command") == true)
        #expect(parseError("quit now")?.hasPrefix("error: unexpected 'now': `quit` takes nothing more here\n  quit now\n       ^~~\n") == true)
        #expect(parseError("layer groupnorm 2 foo=1")?.contains("unknown option 'foo'; options are shape, preset, reduce, affine, paramgrad, variance, eps, momentum") == true)
        #expect(parseError("layer groupnorm 2 eps")?.contains("expected '=' after 'eps' (options are written key=value)") == true)
        #expect(parseError("layer groupnorm 2 eps=1 eps=2")?.contains("eps is given twice") == true)
        #expect(parseError("layer layernorm 2")?.contains("layernorm takes no number of groups") == true)
        #expect(parseError("layer groupnorm 0")?.contains("the number of groups must be at least 1, got 0") == true)
        #expect(parseError("layer foonorm")?.contains("expected a layer kind (groupnorm|layernorm|instancenorm|batchnorm|rmsnorm|norm), got 'foonorm'") == true)
        #expect(parseError("stats x by line")?.contains("expected group, channel, sample or row (group|channel|sample|row), got 'line'") == true)
        #expect(parseError("set colour on")?.contains("expected a setting (dtype|precision|color|threshold|maxelems|unicode|threads), got 'colour'") == true)
        #expect(parseError("backward randn seed -1")?.contains("a seed (a whole number ≥ 0) must be at least 0, got -1") == true)
        #expect(parseError("param delta = x")?.contains("expected gamma or beta (gamma|beta), got 'delta'") == true)
        #expect(parseError("show")?.contains("expected a tensor name, grad, layer or groups, got the end of the command") == true)
    }

    @Test func literalErrors() {
        #expect(parseError("tensor x = [1, 2,]")?.contains("expected a number or '[' after ',', got ']'") == true)
        #expect(parseError("tensor x = [1 2]")?.contains("expected ',' or ']', got '2'") == true)
        #expect(parseError("tensor x = [1, abc]")?.contains("expected a number, got 'abc'") == true)
        #expect(parseError("tensor x = []")?.contains("empty list: every dimension must be at least 1") == true)
        #expect(parseError("tensor x = [[[[[[[[[1]]]]]]]]]")?.contains("the literal is nested more than 8 deep") == true)
        #expect(parseError("tensor x = [[1, 2], [3]]")?.contains("the literal is ragged: lists at depth 2 have lengths 1 and 2") == true)
        #expect(parseError("tensor x = [1, 2]]")?.contains("unexpected ']'") == true)
        // An unclosed bracket at the end of a script names the line where the statement began.
        let (interpreter, sink) = makeInterpreter()
        #expect(!interpreter.runScript("tensor a = ones 1\ntensor x = [[1, 2],\n[3, 4]\n", source: "s.nl"))
        #expect(sink.error.hasPrefix("s.nl:2: error: this '[' is never closed before the end of the input\n  tensor x = [[1, 2],\n             ^\n"))
    }

    @Test func multiLineStatementErrorsNameTheFirstLine() {
        let (interpreter, sink) = makeInterpreter()
        #expect(!interpreter.runScript("# comment\ntensor x = [[1, 2],\n  [3, x]]\n", source: "m.nl"))
        #expect(sink.error.hasPrefix("m.nl:2: error: expected a number, got 'x'\n    [3, x]]\n        ^\n"))
    }

    @Test func controlCharactersAreEscapedInMessages() {
        let message = parseError("show a\u{1B}[31mb") ?? ""
        #expect(!message.contains("\u{1B}"))
        #expect(message.contains("\\u{1b}"))
    }

    /// The command table is well formed: unique names, and every command has usage, help and an example that parses.
    @Test func commandTable() throws {
        let names = CommandTable.allNames
        #expect(Set(names).count == names.count)
        for spec in CommandTable.commands.map({ $0.help }) {
            #expect(!spec.usage.isEmpty && !spec.summary.isEmpty && !spec.examples.isEmpty, "\(spec.name)")
            for example in spec.examples {
                #expect(throws: Never.self, "\(example)") { _ = try parse(example) }
            }
        }
    }
}
