/// Where one argument of a command lies: `length` bytes at `offset` from
/// the start of the command's bytes (or of the decoded inline arguments).
struct KVSpan {
    var offset: Int
    var length: Int
}

/// Splits a client's bytes into commands, in place: RESP multibulk requests
/// (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every client library sends) and
/// inline ones (`GET k\r\n`, what a person types into telnet).
///
/// The parser never copies a multibulk argument: it records spans into the
/// caller's bytes. It is resumable: when a command is cut short by the end
/// of a read, its state (the spans so far, where to continue) stays valid
/// for the same command start in the next call, so a 100 MB value arriving
/// in 64 KiB reads is scanned once, not once per read; ``needed`` says how
/// many bytes must be buffered before another call can make progress.
///
/// Errors follow Redis 7's `processMultibulkBuffer` / `processInlineBuffer`
/// word for word, including their quirks: lengths are parsed by `string2ll`
/// (no `+`, no leading zeros), the two bytes after a bulk are skipped
/// unchecked, a header line is searched for up to a NUL as `strchr` does,
/// and a count or inline line longer than 64 KiB without its end is refused.
struct KVRequestParser {
    /// What one call found at the start of the bytes it was given.
    enum Outcome: Equatable {
        /// More bytes are needed (at least ``needed`` from the command start).
        case incomplete
        /// A whole command of `consumed` bytes; its arguments are ``spans``.
        case command(consumed: Int)
        /// `consumed` bytes that hold no command (`*0\r\n`, an empty line).
        case nothing(consumed: Int)
        /// The bytes break the protocol; the reply is this message (without
        /// `-ERR `), and the connection is to be closed after it.
        case protocolError([UInt8])
    }

    /// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline line, or count
    /// line, accepted before its end has arrived.
    static let inlineLimit = 64 * 1024

    /// The largest bulk argument accepted (Redis's `proto-max-bulk-len`).
    let maxBulkLength: Int
    /// The arguments of the command being parsed or just parsed: the first
    /// ``spanCount`` elements (the array is overwritten, not emptied, between
    /// commands, so resetting costs nothing).
    private(set) var spans: [KVSpan] = []
    private(set) var spanCount = 0
    /// True when the last command was inline: its arguments, unquoted, are in ``inlineBytes``.
    private(set) var isInline = false
    /// The decoded arguments of an inline command (quotes and escapes resolved).
    private(set) var inlineBytes: [UInt8] = []
    /// Bytes, from the command start, needed before the next call can progress.
    private(set) var needed = 0

    private var expected = 0
    private var cursor = 0
    private var bulkLength = -1

    init(maxBulkLength: Int = 512 << 20) {
        self.maxBulkLength = maxBulkLength
        spans.reserveCapacity(16)
    }

    @inline(__always)
    private mutating func addSpan(_ span: KVSpan) {
        if spanCount < spans.count { spans[spanCount] = span } else { spans.append(span) }
        spanCount += 1
    }

    /// Forgets the command just handled; the next call starts a new one.
    @inline(__always)
    mutating func reset() {
        spanCount = 0
        expected = 0
        cursor = 0
        bulkLength = -1
        needed = 0
        isInline = false
    }

    /// Parses the command at the start of `input` (continuing a partial one).
    @inline(__always)
    mutating func parse(_ input: UnsafeRawBufferPointer) -> Outcome {
        guard input.count > 0, input.count >= needed else { return .incomplete }
        if expected == 0 && input[0] != UInt8(ascii: "*") { return parseInline(input) }
        return parseMultibulk(input)
    }

    private mutating func parseMultibulk(_ input: UnsafeRawBufferPointer) -> Outcome {
        let count = input.count
        if expected == 0 {
            guard let cr = KVRequestParser.findCR(input, from: 0) else {
                if count > KVRequestParser.inlineLimit { return .protocolError(Array("Protocol error: too big mbulk count string".utf8)) }
                return .incomplete
            }
            if cr > count - 2 { return .incomplete }  // the \n has not arrived
            guard let length = KVBytes.parseInt64(UnsafeRawBufferPointer(rebasing: input[1..<cr])), length <= Int64(Int32.max) else {
                return .protocolError(Array("Protocol error: invalid multibulk length".utf8))
            }
            cursor = cr + 2
            if length <= 0 {
                let consumed = cursor
                reset()
                return .nothing(consumed: consumed)
            }
            expected = Int(length)
        }
        while spanCount < expected {
            if bulkLength < 0 {
                guard let cr = KVRequestParser.findCR(input, from: cursor) else {
                    if count - cursor > KVRequestParser.inlineLimit { return .protocolError(Array("Protocol error: too big bulk count string".utf8)) }
                    needed = 0
                    return .incomplete
                }
                if cr > count - 2 { return .incomplete }
                let first = input[cursor]
                guard first == UInt8(ascii: "$") else {
                    // `%c` of a NUL ends Redis's formatted message there.
                    var message = Array("Protocol error: expected '$', got '".utf8)
                    if first != 0 { message += [first, UInt8(ascii: "'")] }
                    return .protocolError(message)
                }
                guard let length = KVBytes.parseInt64(UnsafeRawBufferPointer(rebasing: input[(cursor + 1)..<cr])),
                      length >= 0, length <= Int64(maxBulkLength) else {
                    return .protocolError(Array("Protocol error: invalid bulk length".utf8))
                }
                cursor = cr + 2
                bulkLength = Int(length)
            }
            // The bulk and the two bytes after it (meant to be \r\n; Redis skips them unchecked).
            guard count - cursor >= bulkLength + 2 else {
                needed = cursor + bulkLength + 2
                return .incomplete
            }
            addSpan(KVSpan(offset: cursor, length: bulkLength))
            cursor += bulkLength + 2
            bulkLength = -1
        }
        needed = 0
        return .command(consumed: cursor)
    }

    /// The position of the first `\r` at or after `start`, or nil when there
    /// is none or a NUL comes first (C's `strchr` on Redis's query buffer).
    @inline(__always)
    static func findCR(_ input: UnsafeRawBufferPointer, from start: Int) -> Int? {
        findByte(0x0D, in: input, from: start)
    }

    @inline(__always)
    static func findByte(_ byte: UInt8, in input: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < input.count, let base = input.baseAddress else { return nil }
        // A byte loop: header lines are a few bytes long, shorter than a
        // memchr call's set-up (and two would be needed, for the NUL check).
        var position = start
        let end = input.count
        while position < end {
            let current = base.load(fromByteOffset: position, as: UInt8.self)
            if current == byte { return position }
            if current == 0 { return nil }
            position += 1
        }
        return nil
    }

    // MARK: Inline commands

    private mutating func parseInline(_ input: UnsafeRawBufferPointer) -> Outcome {
        guard let newline = KVRequestParser.findByte(0x0A, in: input, from: 0) else {
            if input.count > KVRequestParser.inlineLimit { return .protocolError(Array("Protocol error: too big inline request".utf8)) }
            return .incomplete
        }
        var end = newline
        if end > 0 && input[end - 1] == 0x0D { end -= 1 }
        spanCount = 0
        inlineBytes.removeAll(keepingCapacity: true)
        guard splitArguments(UnsafeRawBufferPointer(rebasing: input[0..<end])) else {
            return .protocolError(Array("Protocol error: unbalanced quotes in request".utf8))
        }
        let consumed = newline + 1
        if spanCount == 0 {
            reset()
            return .nothing(consumed: consumed)
        }
        isInline = true
        return .command(consumed: consumed)
    }

    /// Redis's `sdssplitargs`: arguments separated by white space, each
    /// either bare or in "double quotes" (with \n \r \t \b \a \xHH escapes)
    /// or 'single quotes' (with \' only); a closing quote must be followed by
    /// a space or the end. Decoded into ``inlineBytes``; false on unbalanced quotes.
    private mutating func splitArguments(_ line: UnsafeRawBufferPointer) -> Bool {
        // The line is a C string to sdssplitargs: it ends at a NUL.
        let length = KVBytes.cString(line).count
        @inline(__always) func at(_ i: Int) -> UInt8 { i < length ? line[i] : 0 }
        var p = 0
        while true {
            while at(p) != 0 && KVRequestParser.isSpace(at(p)) { p += 1 }
            guard at(p) != 0 else { return true }
            let start = inlineBytes.count
            var inDoubleQuotes = false
            var inSingleQuotes = false
            var done = false
            while !done {
                let c = at(p)
                if inDoubleQuotes {
                    if c == UInt8(ascii: "\\") && at(p + 1) == UInt8(ascii: "x"),
                       let high = KVRequestParser.hexValue(at(p + 2)), let low = KVRequestParser.hexValue(at(p + 3)) {
                        inlineBytes.append(high * 16 + low)
                        p += 3
                    } else if c == UInt8(ascii: "\\") && at(p + 1) != 0 {
                        p += 1
                        switch at(p) {
                        case UInt8(ascii: "n"): inlineBytes.append(0x0A)
                        case UInt8(ascii: "r"): inlineBytes.append(0x0D)
                        case UInt8(ascii: "t"): inlineBytes.append(0x09)
                        case UInt8(ascii: "b"): inlineBytes.append(0x08)
                        case UInt8(ascii: "a"): inlineBytes.append(0x07)
                        default: inlineBytes.append(at(p))
                        }
                    } else if c == UInt8(ascii: "\"") {
                        if at(p + 1) != 0 && !KVRequestParser.isSpace(at(p + 1)) { return false }
                        done = true
                    } else if c == 0 {
                        return false
                    } else {
                        inlineBytes.append(c)
                    }
                } else if inSingleQuotes {
                    if c == UInt8(ascii: "\\") && at(p + 1) == UInt8(ascii: "'") {
                        p += 1
                        inlineBytes.append(UInt8(ascii: "'"))
                    } else if c == UInt8(ascii: "'") {
                        if at(p + 1) != 0 && !KVRequestParser.isSpace(at(p + 1)) { return false }
                        done = true
                    } else if c == 0 {
                        return false
                    } else {
                        inlineBytes.append(c)
                    }
                } else {
                    switch c {
                    case UInt8(ascii: " "), 0x0A, 0x0D, 0x09, 0: done = true
                    case UInt8(ascii: "\""): inDoubleQuotes = true
                    case UInt8(ascii: "'"): inSingleQuotes = true
                    default: inlineBytes.append(c)
                    }
                }
                if at(p) != 0 { p += 1 }
            }
            addSpan(KVSpan(offset: start, length: inlineBytes.count - start))
        }
    }

    /// C's `isspace` in the C locale.
    @inline(__always)
    static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D)
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
