/// DEFLATE decompression (RFC 1951), for the members of .npz files written by np.savez_compressed. After
/// zlib's `puff.c`: canonical Huffman codes decoded bit by bit, with every read bounds-checked, so a damaged
/// stream is an error, never a trap, and the output never grows past `limit` bytes.
struct Inflate {
    struct Failure: Error { let message: String }

    private let input: [UInt8]
    private var position = 0
    private var bitBuffer = 0
    private var bitCount = 0
    private var output: [UInt8] = []
    private let limit: Int

    static func decompress(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var inflater = Inflate(input: input, limit: limit)
        try inflater.run()
        return inflater.output
    }

    private init(input: [UInt8], limit: Int) {
        self.input = input
        self.limit = limit
        output.reserveCapacity(min(limit, 1 << 26))
    }

    private mutating func bits(_ count: Int) throws(Failure) -> Int {
        var value = bitBuffer
        while bitCount < count {
            guard position < input.count else { throw Failure(message: "the compressed data ends early") }
            value |= Int(input[position]) << bitCount
            position += 1
            bitCount += 8
        }
        bitBuffer = value >> count
        bitCount -= count
        return value & ((1 << count) - 1)
    }

    private mutating func emit(_ byte: UInt8) throws(Failure) {
        guard output.count < limit else { throw Failure(message: "the data decompresses to more than its stated size") }
        output.append(byte)
    }

    /// A canonical Huffman code: how many codes of each length, and the symbols in code order.
    struct Huffman {
        var count = [Int](repeating: 0, count: 16)
        var symbol: [Int] = []

        init(lengths: [Int]) throws(Failure) {
            for length in lengths { count[length] += 1 }
            var left = 1
            for length in 1...15 {
                left = left * 2 - count[length]
                guard left >= 0 else { throw Failure(message: "a Huffman code is over-subscribed") }
            }
            var offsets = [Int](repeating: 0, count: 16)
            for length in 1..<15 { offsets[length + 1] = offsets[length] + count[length] }
            symbol = [Int](repeating: 0, count: lengths.count)
            for (s, length) in lengths.enumerated() where length != 0 {
                symbol[offsets[length]] = s
                offsets[length] += 1
            }
        }
    }

    private mutating func decode(_ h: Huffman) throws(Failure) -> Int {
        var code = 0, first = 0, index = 0
        for length in 1...15 {
            code |= try bits(1)
            let count = h.count[length]
            if code - count < first { return h.symbol[index + (code - first)] }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw Failure(message: "an invalid Huffman code")
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                               4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    private mutating func run() throws(Failure) {
        var last = 0
        repeat {
            last = try bits(1)
            switch try bits(2) {
            case 0: try stored()
            case 1:
                let literal = try Huffman(lengths: (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 })
                let distance = try Huffman(lengths: [Int](repeating: 5, count: 30))
                try codes(literal, distance)
            case 2: try dynamic()
            default: throw Failure(message: "an invalid block type")
            }
        } while last == 0
    }

    private mutating func stored() throws(Failure) {
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw Failure(message: "the compressed data ends early") }
        let length = Int(input[position]) | Int(input[position + 1]) << 8
        let complement = Int(input[position + 2]) | Int(input[position + 3]) << 8
        guard length == ~complement & 0xFFFF else { throw Failure(message: "a stored block's length does not match its complement") }
        position += 4
        guard position + length <= input.count else { throw Failure(message: "the compressed data ends early") }
        for i in position..<(position + length) { try emit(input[i]) }
        position += length
    }

    private mutating func dynamic() throws(Failure) {
        let literals = try bits(5) + 257, distances = try bits(5) + 1, codeLengths = try bits(4) + 4
        guard literals <= 286, distances <= 30 else { throw Failure(message: "too many codes in a dynamic block") }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var lengths = [Int](repeating: 0, count: 19)
        for i in 0..<codeLengths { lengths[order[i]] = try bits(3) }
        let lengthCode = try Huffman(lengths: lengths)
        var all: [Int] = []
        while all.count < literals + distances {
            let symbol = try decode(lengthCode)
            switch symbol {
            case 0...15: all.append(symbol)
            case 16:
                guard let previous = all.last else { throw Failure(message: "a repeat with no length before it") }
                all += [Int](repeating: previous, count: 3 + (try bits(2)))
            case 17: all += [Int](repeating: 0, count: 3 + (try bits(3)))
            default: all += [Int](repeating: 0, count: 11 + (try bits(7)))
            }
        }
        guard all.count == literals + distances, all[256] != 0 else { throw Failure(message: "invalid code lengths in a dynamic block") }
        try codes(try Huffman(lengths: Array(all[0..<literals])), try Huffman(lengths: Array(all[literals...])))
    }

    private mutating func codes(_ literal: Huffman, _ distance: Huffman) throws(Failure) {
        while true {
            let symbol = try decode(literal)
            if symbol < 256 { try emit(UInt8(symbol)); continue }
            if symbol == 256 { return }
            let index = symbol - 257
            guard index < Self.lengthBase.count else { throw Failure(message: "an invalid length code") }
            let length = Self.lengthBase[index] + (try bits(Self.lengthExtra[index]))
            let d = try decode(distance)
            guard d < Self.distanceBase.count else { throw Failure(message: "an invalid distance code") }
            let back = Self.distanceBase[d] + (try bits(Self.distanceExtra[d]))
            guard back <= output.count else { throw Failure(message: "a distance reaches before the start of the data") }
            for _ in 0..<length { try emit(output[output.count - back]) }
        }
    }
}
