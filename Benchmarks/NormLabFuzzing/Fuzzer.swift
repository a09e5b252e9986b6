import Foundation
import NormKit
import NormLabCore

/// A deterministic, grammar-aware fuzzer for the command line and the .npy reader: valid commands with mutated
/// numbers, shapes, names, options and brackets; random bytes, NUL and other control characters, invalid UTF-8,
/// ANSI escapes, very long lines and very deep literals; .npy files cut, flipped and inflated. Whatever it makes,
/// NormLab must answer with a result or a message: a Swift runtime trap ends the process, and the test with it.
public struct Fuzzer {
    private var random: SplitMix64
    public private(set) var commandsRun = 0
    public private(set) var filesDecoded = 0
    public private(set) var errorsReported = 0

    public init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func pick<T>(_ items: [T]) -> T { items[random.nextInt(below: items.count)] }
    mutating func chance(_ percent: Int) -> Bool { random.nextInt(below: 100) < percent }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + random.nextInt(below: range.count) }

    static let names = ["x", "y", "dx", "dy", "g", "a", "b", "mean", "var", "rstd", "xhat", "xc", "dgamma", "grad",
                        "seed", "_", "x1", "ones", "Ω", "a\u{1B}[2J", "nul\u{0}x", String(repeating: "n", count: 70)]
    static let numbers = ["0", "1", "2", "3", "-1", "-0", "1e-5", "1e309", "-1e309", "nan", "inf", "-inf", "0.5",
                          "99999999999999999999", "9223372036854775807", "-9223372036854775808", "1e", "--1", "0x10",
                          "+2", "1.5e-320", "4294967296", ".", "e5", "1.7e308", "-1.7e308", "1e308"]

    mutating func number() -> String { chance(70) ? String(int(0...6)) : pick(Self.numbers) }
    mutating func name() -> String { chance(80) ? pick(["x", "y", "dx", "dy", "g", "a"]) : pick(Self.names) }
    mutating func dims() -> String { (0..<int(1...(chance(90) ? 4 : 10))).map { _ in number() }.joined(separator: " ") }

    mutating func literal(depth: Int) -> String {
        if depth <= 0 || chance(30) { return number() }
        let count = chance(90) ? int(1...3) : int(0...5)
        var items = (0..<count).map { _ in literal(depth: depth - 1) }
        if chance(5), !items.isEmpty { items[0] = "[" + items[0] }  // unbalanced
        return "[" + items.joined(separator: chance(95) ? ", " : " ") + "]"
    }

    mutating func option() -> String {
        let key = pick(["eps", "reduce", "affine", "paramgrad", "variance", "momentum", "preset", "n", "g", "p", "c",
                        "runs", "sample", "atol", "rtol", "seed", "bogus", "shape", "over", "groups", "centre",
                        "method", "accumulate"])
        let value = pick(["group", "channels", "channel", "element", "none", "sum", "mean", "biased", "unbiased",
                          "torch", "pydllib", "1e-5", "0", "-1", "2", "nan", "1.5", "", "3,4", "4", "2,0", "c,s", "s",
                          "n,s", "n", "c", "n,c", "n,c,s", "yes", "no", "c,s,c", "twopass", "onepass", "welford", "float32",
                          "float64", "storage"])
        return chance(90) ? "\(key)=\(chance(50) ? value : number())" : "\(key) \(value)"
    }

    /// One command line, valid or nearly so.
    mutating func command() -> String {
        switch int(0...32) {
        case 0, 1: return "tensor \(name()) = \(pick(["randn", "rand", "zeros", "ones", "arange"])) \(dims())\(chance(30) ? " seed \(number())" : "")\(chance(20) ? " \(pick(["scale", "shift"])) \(number())" : "")"
        case 2: return "tensor \(name()) = full \(number()) \(dims())"
        case 3: return "tensor \(name()) = \(literal(depth: chance(95) ? 3 : 12))"
        case 4: return "tensor \(name()) = \(name())"
        case 5: return "layer \(pick(["groupnorm", "layernorm", "instancenorm", "batchnorm", "rmsnorm", "norm", "foo"])) \(chance(70) ? number() : "") \((0..<int(0...3)).map { _ in option() }.joined(separator: " "))"
        case 6, 7: return "forward\(chance(30) ? " " + name() : "")"
        case 8, 9: return "backward\(chance(40) ? " " + pick(["ones", "randn", "randn seed \(number())", name()]) : "")"
        case 10: return "show \(pick(["grad", "layer", "groups", "axes \(option())", name()]))"
        case 11: return "stats \(name())\(chance(50) ? " by " + pick(["group", "channel", "sample", "row"]) : "")"
        case 12: return "explain \(pick(["forward", "backward", "layer", "sideways"])) \((0..<int(0...2)).map { _ in option() }.joined(separator: " "))"
        case 13: return "hist \(name())\(chance(40) ? " " + name() : "")\(chance(30) ? " \(pick(["group", "row"])) \(number())" : "")"
        case 14: return "compare \(name()) \(name())\(chance(30) ? " " + option() : "")"
        case 15: return "gradcheck \(pick(["", "dx", "dgamma", "dbeta", "all", "dx against \(name())"])) sample=\(int(1...4))\(chance(20) ? " " + option() : "")"
        case 16: return "set \(pick(["dtype", "precision", "color", "threshold", "unicode", "threads", "maxelems", "nope"])) \(pick(["float32", "float64", "float16", "bfloat16", "on", "off", number()]))"
        case 17: return "reshape \(name()) \(dims())"
        case 18: return "del \(name())"
        case 19: return "param \(pick(["gamma", "beta", "delta"])) = \(chance(50) ? name() : "full \(number()) \(dims())")"
        case 20: return pick(["train", "eval", "zero_grad", "tensors", "history", "set", "layer", "help", "help \(name())",
                              "help conventions", "help tour", "help numerics", "quit now", "time forward runs=1", "time step runs=\(number())"])
        case 21: return "load \(name()) \(pick(["/nonexistent.npy", "/", "/dev/null", "/dev/zero", "Tests", "\"a b\"", "\"unclosed"]))"
        case 22: return "run \(pick(["/nonexistent.nl", "/", "/dev/null", "/dev/zero"]))"
        case 23: return randomText(length: int(0...80))
        case 24: return String(repeating: pick(["[", "]", ",", "=", ";", "#", "\"", "1"]), count: int(1...300))
        case 25: return command() + "; " + command()
        case 28: return "diagnose " + (0..<int(0...4)).map { _ in "\(pick(["y", "dx", "dgamma", "dbeta", "dz"]))=\(name())" }.joined(separator: " ")
        case 29: return "export \(pick(["numpy", "torch"])) /nonexistent/\(name()).py\(chance(50) ? " against dx=\(name())" : "")"
        case 30: return "exercise \(pick(["forward", "backward", "skip", "stop", "", "sideways"])) \((0..<int(0...2)).map { _ in chance(50) ? "seed=\(number())" : option() }.joined(separator: " "))"
        case 31: return "answer \(pick([number(), name(), literal(depth: 2), ""]))"
        case 32: return pick(["record", "record stop", "record /nonexistent/h.html", "record /dev/null", "record x.txt",
                              "record /nonexistent/h.md answers=\(pick(["no", "yes", "maybe"]))",
                              "check /nonexistent.py", "check /dev/null", "check / \(option())", "explain forward full \(option())"])
        case 26: return "tensor x = " + String(repeating: "[", count: int(1...2000)) + "1" + String(repeating: "]", count: int(0...2000))
        default: return mutate(command())
        }
    }

    mutating func randomText(length: Int) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<length {
            let value: UInt32
            switch int(0...9) {
            case 0: value = UInt32(int(0...31))  // control characters, NUL
            case 1: value = 0x1B
            case 2: value = UInt32(int(0x80...0x2FF))
            case 3: value = UInt32(int(0x1F300...0x1F64F))
            default: value = UInt32(int(32...126))
            }
            if let scalar = Unicode.Scalar(value) { scalars.append(scalar) }
        }
        return String(scalars)
    }

    /// Change one piece of a line: drop, duplicate or swap a character, insert junk.
    mutating func mutate(_ line: String) -> String {
        var characters = Array(line)
        guard !characters.isEmpty else { return randomText(length: 5) }
        let i = int(0...(characters.count - 1))
        switch int(0...4) {
        case 0: characters.remove(at: i)
        case 1: characters.insert(characters[i], at: i)
        case 2: characters[i] = pick(["[", "]", "=", ";", "\u{0}", "\u{1B}", "é", "9", "-", " "])
        case 3: characters.insert(contentsOf: Array(randomText(length: 4)), at: i)
        default: characters = Array(String(decoding: line.utf8.map { $0 ^ (chance(10) ? 0x80 : 0) }, as: UTF8.self))
        }
        return String(characters)
    }

    /// Run `count` generated lines through one interpreter (a new one every 200 lines), in small-tensor settings.
    public mutating func runCommands(_ count: Int) {
        var interpreter = Self.makeInterpreter()
        for i in 0..<count {
            if i % 200 == 0 { interpreter = Self.makeInterpreter() }
            var line = command()
            if chance(1) { line += String(repeating: "9", count: 300_000) }  // very long line
            if !interpreter.execute(line) { errorsReported += 1 }
            // Keep every command cheap: small tensors, one thread.
            interpreter.session.settings.maxElements = min(interpreter.session.settings.maxElements, 4096)
            interpreter.session.settings.threads = 1
            commandsRun += 1
        }
    }

    static func makeInterpreter() -> Interpreter {
        let interpreter = Interpreter(sink: DiscardSink())
        interpreter.session.settings.maxElements = 4096
        interpreter.session.settings.threads = 1
        return interpreter
    }

    /// Decode `count` .npy files made by cutting, flipping and inflating valid ones.
    public mutating func runNPY(_ count: Int) {
        let seeds: [AnyTensor] = [
            .float64(.randn((try? Shape([2, 3]))!, seed: 1)), .float32(.randn((try? Shape([4]))!, seed: 2)),
            .float64(.arange((try? Shape([1, 2, 1, 2, 1]))!)),
            AnyTensor.float64(.randn((try? Shape([3, 2]))!, seed: 3)).converted(to: .float16),
        ]
        for _ in 0..<count {
            var bytes = [UInt8](NPY.encode(pick(seeds)))
            switch int(0...6) {
            case 0: bytes = Array(bytes.prefix(int(0...bytes.count)))
            case 1: for _ in 0..<int(1...8) { bytes[int(0...(bytes.count - 1))] ^= UInt8(int(1...255)) }
            case 2:  // header length
                bytes[8] = UInt8(int(0...255)); bytes[9] = UInt8(int(0...255))
            case 3:  // version
                bytes[6] = UInt8(int(0...4))
            case 4:  // the shape
                let header = String(decoding: bytes[10..<min(bytes.count, 128)], as: UTF8.self)
                let shapes = ["(4294967296, 4294967296)", "(-1,)", "()", "(0,)", "(1, 2, 3, 4, 5, 6, 7, 8, 9)",
                              "(99999999999999999999,)", "(2,3", "(3, 2)", "(a,)"]
                if let range = header.range(of: #"\([^)]*\)"#, options: .regularExpression) {
                    let replaced = header.replacingCharacters(in: range, with: pick(shapes))
                    bytes = Array(bytes[0..<10]) + Array(replaced.utf8) + Array(bytes[min(bytes.count, 128)...])
                }
            case 5:  // descr
                let header = String(decoding: bytes, as: UTF8.self)
                let replaced = header.replacingOccurrences(of: "<f8", with: pick(["<c8", "|O", "<U3", ">i4", "<f2", "<i8", "|b1", "<x9", "'"]))
                bytes = Array(replaced.utf8)
            default:
                bytes += (0..<int(1...64)).map { _ in UInt8(int(0...255)) }
            }
            _ = try? NPY.decode(Data(bytes), maxElements: 1 << 20)
            // The same damage to a .npz or .safetensors holding the tensor.
            let format = pick(["npz", "safetensors"])
            var archive = [UInt8](TensorArchive.encode([("t", pick(seeds))], fileExtension: format) ?? Data())
            switch int(0...3) {
            case 0: archive = Array(archive.prefix(int(0...archive.count)))
            case 1: for _ in 0..<int(1...8) where !archive.isEmpty { archive[int(0...(archive.count - 1))] ^= UInt8(int(1...255)) }
            case 2: if archive.count > 8 { archive[int(0...7)] = UInt8(int(0...255)) }  // header length / zip signature
            default: archive += (0..<int(1...64)).map { _ in UInt8(int(0...255)) }
            }
            _ = try? TensorArchive.decode(Data(archive), fileExtension: format, integerTarget: .float64, maxElements: 1 << 20)
            filesDecoded += 1
        }
    }
}

public final class DiscardSink: OutputSink {
    public init() {}
    public func write(_ text: String, to stream: OutputChannel) {}
}
