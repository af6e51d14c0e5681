/// Where one argument of a command lies: `length` bytes at `offset` from
/// the start of the command's bytes (or of the decoded inline arguments).
public struct RESPSpan: Sendable, Equatable {
    /// Where the argument starts.
    public var offset: Int
    /// How many bytes it has.
    public var length: Int

    /// The span of `length` bytes at `offset`.
    @inlinable public init(offset: Int, length: Int) {
        self.offset = offset
        self.length = length
    }
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
public struct RESPRequestParser {
    /// What one call found at the start of the bytes it was given.
    public enum Outcome: Equatable, Sendable {
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
    public static let inlineLimit = 64 * 1024

    /// The largest bulk argument accepted (Redis's `proto-max-bulk-len`).
    public let maxBulkLength: Int
    /// The arguments of the command being parsed or just parsed: the first
    /// ``spanCount`` elements (the array is overwritten, not emptied, between
    /// commands, so resetting costs nothing).
    @inlinable public var spans: [RESPSpan] { _spans }
    /// How many of ``spans`` belong to the command.
    @inlinable public var spanCount: Int { _spanCount }
    /// True when the last command was inline: its arguments, unquoted, are in ``inlineBytes``.
    @inlinable public var isInline: Bool { _isInline }
    /// The decoded arguments of an inline command (quotes and escapes resolved).
    @inlinable public var inlineBytes: [UInt8] { _inlineBytes }
    /// Bytes, from the command start, needed before the next call can progress.
    @inlinable public var needed: Int { _needed }

    // Stored under other names so that the inlinable parse can set them
    // while the caller can only read them.
    @usableFromInline var _spans: [RESPSpan] = []
    @usableFromInline var _spanCount = 0
    @usableFromInline var _isInline = false
    @usableFromInline var _inlineBytes: [UInt8] = []
    @usableFromInline var _needed = 0
    @usableFromInline var expected = 0
    @usableFromInline var cursor = 0
    @usableFromInline var bulkLength = -1

    /// A parser for one connection, refusing bulk arguments over `maxBulkLength` bytes.
    public init(maxBulkLength: Int = 512 << 20) {
        self.maxBulkLength = maxBulkLength
        _spans.reserveCapacity(16)
    }

    @inlinable
    mutating func addSpan(_ span: RESPSpan) {
        if _spanCount < _spans.count { _spans[_spanCount] = span } else { _spans.append(span) }
        _spanCount += 1
    }

    /// Forgets the command just handled; the next call starts a new one.
    @inlinable
    public mutating func reset() {
        _spanCount = 0
        expected = 0
        cursor = 0
        bulkLength = -1
        _needed = 0
        _isInline = false
    }

    /// Parses the command at the start of `input` (continuing a partial one).
    @inlinable
    public mutating func parse(_ input: UnsafeRawBufferPointer) -> Outcome {
        guard input.count > 0, input.count >= _needed else { return .incomplete }
        if expected == 0 && input[0] != UInt8(ascii: "*") { return parseInline(input) }
        return parseMultibulk(input)
    }

    @inlinable
    mutating func parseMultibulk(_ input: UnsafeRawBufferPointer) -> Outcome {
        let count = input.count
        if expected == 0 {
            guard let cr = RESPRequestParser.findCR(input, from: 0) else {
                if count > RESPRequestParser.inlineLimit { return .protocolError(RESPRequestParser.bytes("Protocol error: too big mbulk count string")) }
                return .incomplete
            }
            if cr > count - 2 { return .incomplete }  // the \n has not arrived
            guard let length = RESPInteger.parse(UnsafeRawBufferPointer(rebasing: input[1..<cr])), length <= Int64(Int32.max) else {
                return .protocolError(RESPRequestParser.bytes("Protocol error: invalid multibulk length"))
            }
            cursor = cr + 2
            if length <= 0 {
                let consumed = cursor
                reset()
                return .nothing(consumed: consumed)
            }
            expected = Int(length)
        }
        while _spanCount < expected {
            if bulkLength < 0 {
                guard let cr = RESPRequestParser.findCR(input, from: cursor) else {
                    if count - cursor > RESPRequestParser.inlineLimit { return .protocolError(RESPRequestParser.bytes("Protocol error: too big bulk count string")) }
                    _needed = 0
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
                guard let length = RESPInteger.parse(UnsafeRawBufferPointer(rebasing: input[(cursor + 1)..<cr])),
                      length >= 0, length <= Int64(maxBulkLength) else {
                    return .protocolError(RESPRequestParser.bytes("Protocol error: invalid bulk length"))
                }
                cursor = cr + 2
                bulkLength = Int(length)
            }
            // The bulk and the two bytes after it (meant to be \r\n; Redis skips them unchecked).
            guard count - cursor >= bulkLength + 2 else {
                _needed = cursor + bulkLength + 2
                return .incomplete
            }
            addSpan(RESPSpan(offset: cursor, length: bulkLength))
            cursor += bulkLength + 2
            bulkLength = -1
        }
        _needed = 0
        return .command(consumed: cursor)
    }

    /// The position of the first `\r` at or after `start`, or nil when there
    /// is none or a NUL comes first (C's `strchr` on Redis's query buffer).
    @inlinable
    static func findCR(_ input: UnsafeRawBufferPointer, from start: Int) -> Int? {
        findByte(0x0D, in: input, from: start)
    }

    @inlinable
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

    @usableFromInline
    mutating func parseInline(_ input: UnsafeRawBufferPointer) -> Outcome {
        guard let newline = RESPRequestParser.findByte(0x0A, in: input, from: 0) else {
            if input.count > RESPRequestParser.inlineLimit { return .protocolError(RESPRequestParser.bytes("Protocol error: too big inline request")) }
            return .incomplete
        }
        var end = newline
        if end > 0 && input[end - 1] == 0x0D { end -= 1 }
        _spanCount = 0
        _inlineBytes.removeAll(keepingCapacity: true)
        guard splitArguments(UnsafeRawBufferPointer(rebasing: input[0..<end])) else {
            return .protocolError(RESPRequestParser.bytes("Protocol error: unbalanced quotes in request"))
        }
        let consumed = newline + 1
        if _spanCount == 0 {
            reset()
            return .nothing(consumed: consumed)
        }
        _isInline = true
        return .command(consumed: consumed)
    }

    /// Redis's `sdssplitargs`: arguments separated by white space, each
    /// either bare or in "double quotes" (with \n \r \t \b \a \xHH escapes)
    /// or 'single quotes' (with \' only); a closing quote must be followed by
    /// a space or the end. Decoded into ``inlineBytes``; false on unbalanced quotes.
    mutating func splitArguments(_ line: UnsafeRawBufferPointer) -> Bool {
        // The line is a C string to sdssplitargs: it ends at a NUL.
        let length = RESPInteger.cString(line).count
        @inline(__always) func at(_ i: Int) -> UInt8 { i < length ? line[i] : 0 }
        var p = 0
        while true {
            while at(p) != 0 && RESPRequestParser.isSpace(at(p)) { p += 1 }
            guard at(p) != 0 else { return true }
            let start = _inlineBytes.count
            var inDoubleQuotes = false
            var inSingleQuotes = false
            var done = false
            while !done {
                let c = at(p)
                if inDoubleQuotes {
                    if c == UInt8(ascii: "\\") && at(p + 1) == UInt8(ascii: "x"),
                       let high = RESPRequestParser.hexValue(at(p + 2)), let low = RESPRequestParser.hexValue(at(p + 3)) {
                        _inlineBytes.append(high * 16 + low)
                        p += 3
                    } else if c == UInt8(ascii: "\\") && at(p + 1) != 0 {
                        p += 1
                        switch at(p) {
                        case UInt8(ascii: "n"): _inlineBytes.append(0x0A)
                        case UInt8(ascii: "r"): _inlineBytes.append(0x0D)
                        case UInt8(ascii: "t"): _inlineBytes.append(0x09)
                        case UInt8(ascii: "b"): _inlineBytes.append(0x08)
                        case UInt8(ascii: "a"): _inlineBytes.append(0x07)
                        default: _inlineBytes.append(at(p))
                        }
                    } else if c == UInt8(ascii: "\"") {
                        if at(p + 1) != 0 && !RESPRequestParser.isSpace(at(p + 1)) { return false }
                        done = true
                    } else if c == 0 {
                        return false
                    } else {
                        _inlineBytes.append(c)
                    }
                } else if inSingleQuotes {
                    if c == UInt8(ascii: "\\") && at(p + 1) == UInt8(ascii: "'") {
                        p += 1
                        _inlineBytes.append(UInt8(ascii: "'"))
                    } else if c == UInt8(ascii: "'") {
                        if at(p + 1) != 0 && !RESPRequestParser.isSpace(at(p + 1)) { return false }
                        done = true
                    } else if c == 0 {
                        return false
                    } else {
                        _inlineBytes.append(c)
                    }
                } else {
                    switch c {
                    case UInt8(ascii: " "), 0x0A, 0x0D, 0x09, 0: done = true
                    case UInt8(ascii: "\""): inDoubleQuotes = true
                    case UInt8(ascii: "'"): inSingleQuotes = true
                    default: _inlineBytes.append(c)
                    }
                }
                if at(p) != 0 { p += 1 }
            }
            addSpan(RESPSpan(offset: start, length: _inlineBytes.count - start))
        }
    }

    /// C's `isspace` in the C locale.
    @usableFromInline
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// C's `isspace`.
    @inlinable
    static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
