import ProtocolRESP

/// The client's RESP reply parser, fed the way RedisClient feeds it: the
/// replies waiting at the front of its input, parsed again from the start of
/// a reply as bytes arrive (it is not resumable), no sooner than `needed`.
///
/// Checks: in one piece and in reads, the same replies, errors and leftover;
/// the limits (depth, elements, bulk and line lengths) hold for every value
/// accepted; and what the reply encoder (`RESPReplyBuffer`) writes of a value
/// parses back to that value, and is the very bytes it was parsed from
/// whenever those were canonical RESP2 with valid UTF-8 in their lines.
enum RESPReplyFuzz {
    enum Item: Equatable {
        case value(RESPValue, consumed: Int)
        case error(String)
        case incomplete(left: Int)
    }

    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let parser = RESPReplyParser(
            maxBulkLength: choices.oneIn(2) ? 512 << 20 : choices.pick(0...64),
            maxDepth: choices.oneIn(2) ? 32 : choices.pick(1...4),
            maxElements: choices.oneIn(2) ? 1 << 24 : choices.pick(0...8),
            maxLineLength: choices.oneIn(2) ? 64 * 1024 : choices.pick(0...32))
        let whole = try parseAll(data, pieces: [data.count], parser: parser)
        let pieces = choices.pieces(of: data.count)
        let split = try parseAll(data, pieces: pieces, parser: parser)
        try require(whole == split, "in one piece: \(whole)\nin reads of \(pieces): \(split)")

        var offset = 0
        for case .value(let value, let consumed) in whole {
            try checkLimits(value, parser, depth: 1)
            let raw = Array(data.slice(offset..<(offset + consumed)))
            offset += consumed
            var buffer = RESPReplyBuffer(capacity: 64)
            encode(value, into: &buffer)
            let encoded = Array(buffer.bytes)
            let reparsed = try encoded.withBytes { bytes throws(FuzzFailure) in
                try parseAll(bytes, pieces: [bytes.count], parser: RESPReplyParser(maxDepth: 64))
            }
            try require(reparsed == [.value(value, consumed: encoded.count)],
                        "\(value) encoded as \(shown(encoded)) parsed back as \(reparsed)")
            if !value.hasRepairedText {
                try require(encoded == raw, "\(shown(raw)) parsed as \(value), which encodes as \(shown(encoded))")
            }
        }
    }

    /// Every reply the parser finds in `data` delivered in reads of `pieces` bytes.
    static func parseAll(_ data: UnsafeRawBufferPointer, pieces: [Int], parser: RESPReplyParser) throws(FuzzFailure) -> [Item] {
        var parser = parser
        var items: [Item] = []
        var start = 0
        var available = 0
        var nextPiece = 0
        while true {
            let input = data.slice(start..<available)
            let result: (value: RESPValue, consumed: Int)?
            do {
                result = try parser.parse(input)
            } catch {
                // The connection cannot be trusted after a protocol error.
                items.append(.error(error.description))
                return items
            }
            if let result {
                try require(result.consumed > 0 && result.consumed <= input.count, "consumed \(result.consumed) of \(input.count)")
                items.append(.value(result.value, consumed: result.consumed))
                start += result.consumed
                continue
            }
            try require(parser.needed == 0 || parser.needed > input.count, "nil with \(input.count) bytes, needing only \(parser.needed)")
            guard nextPiece < pieces.count else {
                if available > start { items.append(.incomplete(left: available - start)) }
                return items
            }
            available += pieces[nextPiece]
            nextPiece += 1
        }
    }

    static func checkLimits(_ value: RESPValue, _ parser: RESPReplyParser, depth: Int) throws(FuzzFailure) {
        switch value {
        case .simpleString(let text), .error(let text):
            try require(!text.utf8.contains(0x0D) && !text.utf8.contains(0x0A), "a line holding CR or LF: \(text.debugDescription)")
        case .bulkString(let bytes?):
            try require(bytes.count <= parser.maxBulkLength, "a bulk of \(bytes.count) bytes, over \(parser.maxBulkLength)")
        case .array(let elements?):
            try require(depth <= parser.maxDepth, "arrays nested \(depth) deep, over \(parser.maxDepth)")
            try require(elements.count <= parser.maxElements, "\(elements.count) elements, over \(parser.maxElements)")
            for element in elements { try checkLimits(element, parser, depth: depth + 1) }
        case .integer, .bulkString(nil), .array(nil):
            break
        }
    }

    /// RESP2 for `value`, through the encoder servers reply with.
    static func encode(_ value: RESPValue, into buffer: inout RESPReplyBuffer) {
        switch value {
        case .simpleString(let text): buffer.appendStatus(text)
        // A leading `-` keeps the message's own code instead of adding `ERR `.
        case .error(let text): buffer.appendError(Array(("-" + text).utf8))
        case .integer(let number): buffer.appendInteger(number)
        case .bulkString(nil): buffer.appendNull()
        case .bulkString(let bytes?): buffer.appendBulk(bytes)
        case .array(nil): buffer.append("*-1\r\n")
        case .array(let elements?):
            buffer.appendArrayHeader(elements.count)
            for element in elements { encode(element, into: &buffer) }
        }
    }
}

extension RESPValue {
    /// Whether a line's text lost bytes to UTF-8 repair (so its encoding differs from what was received).
    var hasRepairedText: Bool {
        switch self {
        case .simpleString(let text), .error(let text): return text.unicodeScalars.contains("\u{FFFD}")
        case .array(let elements?): return elements.contains { $0.hasRepairedText }
        default: return false
        }
    }
}
