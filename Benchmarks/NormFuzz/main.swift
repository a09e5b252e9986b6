import Foundation
import NormLabFuzzing

// The long fuzz run: swift run -c release normlab-fuzz [N] [SEED]
// N inputs (9 in 10 command lines, 1 in 10 .npy files) from a seed; a trap would end the process with a
// non-zero status. Progress goes to standard error every 50,000 inputs.
let arguments = CommandLine.arguments
let total = arguments.count > 1 ? Int(arguments[1]) ?? 500_000 : 500_000
let seed = arguments.count > 2 ? UInt64(arguments[2]) ?? 1 : 1
var fuzzer = Fuzzer(seed: seed)
let clock = ContinuousClock()
let start = clock.now
var done = 0
while done < total {
    let batch = min(50_000, total - done)
    fuzzer.runCommands(batch * 9 / 10)
    fuzzer.runNPY(batch - batch * 9 / 10)
    done += batch
    FileHandle.standardError.write(Data("\(done) inputs\n".utf8))
}
print("normlab-fuzz: \(fuzzer.commandsRun) command lines and \(fuzzer.filesDecoded) .npy files from seed \(seed), \(fuzzer.errorsReported) answered with an error message, no trap, in \(clock.now - start)")
