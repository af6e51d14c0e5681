import ProtocolRESP

/// The server's RESP request parser, fed the way the kv service feeds it:
/// the bytes from the start of the current command, growing read by read,
/// `reset()` after each command.
///
/// Checks: the input parsed in one piece and cut into reads gives the same
/// commands, the same errors and the same leftover; every span lies inside
/// the bytes the command consumed; a command parses the same from its own
/// bytes alone (no look-ahead); and what `RESPCommand.encode` writes of its
/// arguments parses back to the same arguments, byte for byte.
enum RESPRequestFuzz {
    /// What one call to the parser settled, comparable between feedings.
    enum Item: Equatable {
        case command(arguments: [[UInt8]], inline: Bool, consumed: Int)
        case nothing(consumed: Int)
        case protocolError(String)
        /// The input ended inside a command; this many bytes wait.
        case incomplete(left: Int)
    }

    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let maxBulkLength = choices.oneIn(2) ? 512 << 20 : choices.pick(0...64)
        let whole = try parseAll(data, pieces: [data.count], maxBulkLength: maxBulkLength)
        let pieces = choices.pieces(of: data.count)
        let split = try parseAll(data, pieces: pieces, maxBulkLength: maxBulkLength)
        try require(whole == split, "in one piece: \(whole)\nin reads of \(pieces): \(split)")

        var offset = 0
        for item in whole {
            guard case .command(let arguments, _, let consumed) = item else {
                if case .nothing(let consumed) = item { offset += consumed }
                continue
            }
            // The command's own bytes, and nothing after them, make the same command.
            let alone = try parseAll(data.slice(offset..<(offset + consumed)), pieces: [consumed], maxBulkLength: maxBulkLength)
            try require(alone == [item], "the command at byte \(offset) alone parsed as \(alone), not \(item)")
            offset += consumed
            try roundTrip(arguments)
        }
    }

    /// `RESPCommand.encode(bytes:)` of `arguments` parses back to them, consuming exactly what was written.
    static func roundTrip(_ arguments: [[UInt8]]) throws(FuzzFailure) {
        var encoded: [UInt8] = []
        RESPCommand.encode(bytes: arguments, into: &encoded)
        let longest = arguments.map(\.count).max() ?? 0
        let parsed = try encoded.withBytes { bytes throws(FuzzFailure) in
            try parseAll(bytes, pieces: [bytes.count], maxBulkLength: max(longest, 1))
        }
        let expected = Item.command(arguments: arguments, inline: false, consumed: encoded.count)
        try require(parsed == [expected], "encoded \(shown(encoded)) parsed as \(parsed)")
    }

    /// Every item the parser finds in `data` delivered in reads of `pieces` bytes.
    static func parseAll(_ data: UnsafeRawBufferPointer, pieces: [Int], maxBulkLength: Int) throws(FuzzFailure) -> [Item] {
        var parser = RESPRequestParser(maxBulkLength: maxBulkLength)
        var items: [Item] = []
        var start = 0        // where the current command starts
        var available = 0    // bytes received so far
        var nextPiece = 0
        while true {
            let input = data.slice(start..<available)
            // As the service does: no call until the bytes the parser asked for are here.
            let outcome: RESPRequestParser.Outcome = input.count > 0 && input.count >= parser.needed ? parser.parse(input) : .incomplete
            switch outcome {
            case .incomplete:
                guard nextPiece < pieces.count else {
                    if available > start { items.append(.incomplete(left: available - start)) }
                    return items
                }
                available += pieces[nextPiece]
                nextPiece += 1
            case .command(let consumed):
                try require(consumed > 0 && consumed <= input.count, "consumed \(consumed) of \(input.count) bytes")
                try require(parser.spanCount > 0, "a command without arguments")
                var arguments: [[UInt8]] = []
                for span in parser.spans.prefix(parser.spanCount) {
                    if parser.isInline {
                        let bytes = parser.inlineBytes
                        try require(span.offset >= 0 && span.length >= 0 && span.offset + span.length <= bytes.count,
                                    "inline span \(span) outside \(bytes.count) decoded bytes")
                        arguments.append(Array(bytes[span.offset..<(span.offset + span.length)]))
                    } else {
                        try require(span.offset >= 0 && span.length >= 0 && span.offset + span.length <= consumed,
                                    "span \(span) outside the \(consumed) bytes consumed")
                        arguments.append(Array(input.slice(span.offset..<(span.offset + span.length))))
                    }
                }
                items.append(.command(arguments: arguments, inline: parser.isInline, consumed: consumed))
                start += consumed
                parser.reset()
            case .nothing(let consumed):
                try require(consumed > 0 && consumed <= input.count, "consumed \(consumed) of \(input.count) bytes for nothing")
                items.append(.nothing(consumed: consumed))
                start += consumed
            case .protocolError(let message):
                // The connection ends after the reply: nothing more is parsed.
                items.append(.protocolError(String(decoding: message, as: UTF8.self)))
                return items
            }
        }
    }
}
