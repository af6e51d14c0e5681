/// Why a server's bytes are not RESP: what was wrong, and where, e.g.
/// `malformed RESP reply at byte 12: bulk length '-5' is not a length`.
public struct RESPProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The sentence that says what was wrong.
    public var description: String

    /// An error that says `description`.
    public init(_ description: String) { self.description = description }

    static func at(_ offset: Int, _ problem: String) -> RESPProtocolError {
        RESPProtocolError("malformed RESP reply at byte \(offset): \(problem)")
    }
}

/// Takes RESP2 replies off the front of a client's input: simple strings,
/// errors, integers, bulk strings (null included) and arrays (nested, null
/// included), within limits so that a broken or hostile server cannot make
/// the client allocate without bound or recurse without end.
///
/// It is not resumable inside a value: a reply cut short by the end of a read
/// is parsed again from its start when more bytes arrive. ``needed`` keeps
/// that cheap for the common large case, a big bulk string: once its length
/// is known, the caller waits for all of it instead of re-parsing per read.
/// (A huge array arriving over many reads is re-scanned per read; replies of
/// the size that matters here — one value per command — are small.)
public struct RESPReplyParser: Sendable {
    /// The largest bulk string accepted (Redis's own `proto-max-bulk-len` default, 512 MiB).
    public var maxBulkLength: Int
    /// The deepest nesting of arrays accepted (an array of arrays is depth 2).
    public var maxDepth: Int
    /// The most elements one array may announce.
    public var maxElements: Int
    /// The most bytes a header line (`+…`, `-…`, `:…`, `$n`, `*n`) may take before its `\r\n`.
    public var maxLineLength: Int
    /// Bytes the reply at the front needs before parsing again can succeed
    /// (0: unknown, try whenever bytes arrive).
    public private(set) var needed = 0

    /// A parser with these limits.
    public init(maxBulkLength: Int = 512 << 20, maxDepth: Int = 32, maxElements: Int = 1 << 24, maxLineLength: Int = 64 * 1024) {
        self.maxBulkLength = maxBulkLength
        self.maxDepth = maxDepth
        self.maxElements = maxElements
        self.maxLineLength = maxLineLength
    }

    /// The reply at the front of `input` and how many bytes it took, or nil
    /// when it has not fully arrived. Throws when the bytes break RESP or a
    /// limit; the connection cannot be trusted after that.
    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(RESPProtocolError) -> (value: RESPValue, consumed: Int)? {
        guard input.count > 0, input.count >= needed else { return nil }
        var cursor = 0
        var minimum = 0
        guard let value = try parseValue(input, at: &cursor, depth: 1, minimum: &minimum) else {
            needed = max(minimum, input.count + 1)
            return nil
        }
        needed = 0
        return (value, cursor)
    }

    /// One value at `cursor`, advancing it; nil (with `minimum` set to the
    /// fewest bytes that could complete it) when it is incomplete.
    private func parseValue(_ input: UnsafeRawBufferPointer, at cursor: inout Int, depth: Int,
                            minimum: inout Int) throws(RESPProtocolError) -> RESPValue? {
        let start = cursor
        guard start < input.count else { return nil }
        guard let line = try line(input, from: start + 1) else { return nil }
        let text = UnsafeRawBufferPointer(rebasing: input[(start + 1)..<line])
        let next = line + 2
        switch input[start] {
        case UInt8(ascii: "+"):
            cursor = next
            return .simpleString(String(decoding: text, as: UTF8.self))
        case UInt8(ascii: "-"):
            cursor = next
            return .error(String(decoding: text, as: UTF8.self))
        case UInt8(ascii: ":"):
            guard let value = RESPInteger.parse(text) else {
                throw .at(start, "integer '\(Self.show(text))' is not a decimal integer")
            }
            cursor = next
            return .integer(value)
        case UInt8(ascii: "$"):
            let length = try Self.length(text, at: start, kind: "bulk")
            if length < 0 { cursor = next; return .bulkString(nil) }
            guard length <= maxBulkLength else {
                throw .at(start, "bulk string of \(length) bytes exceeds the maximum of \(maxBulkLength)")
            }
            let end = next + length
            guard input.count >= end + 2 else { minimum = end + 2; return nil }
            guard input[end] == 0x0D, input[end + 1] == 0x0A else {
                throw .at(end, "bulk string of \(length) bytes is not followed by \\r\\n")
            }
            cursor = end + 2
            return .bulkString(Array(UnsafeRawBufferPointer(rebasing: input[next..<end])))
        case UInt8(ascii: "*"):
            let count = try Self.length(text, at: start, kind: "array")
            if count < 0 { cursor = next; return .array(nil) }
            guard count <= maxElements else {
                throw .at(start, "array of \(count) elements exceeds the maximum of \(maxElements)")
            }
            guard depth <= maxDepth else {
                throw .at(start, "arrays nested deeper than the maximum of \(maxDepth)")
            }
            var elements: [RESPValue] = []
            // At least 4 bytes per element (`:0\r\n`), so a bogus count cannot reserve much more than arrived.
            elements.reserveCapacity(min(count, (input.count - next) / 4 + 1))
            var position = next
            for _ in 0..<count {
                guard let element = try parseValue(input, at: &position, depth: depth + 1, minimum: &minimum) else { return nil }
                elements.append(element)
            }
            cursor = position
            return .array(elements)
        default:
            throw .at(start, "unknown reply type '\(Self.show(UnsafeRawBufferPointer(rebasing: input[start...(start)])))'")
        }
    }

    /// Where the `\r` of the line starting at `from` is, or nil when the line
    /// has not fully arrived (its `\n` included).
    private func line(_ input: UnsafeRawBufferPointer, from: Int) throws(RESPProtocolError) -> Int? {
        var position = from
        while position < input.count {
            if input[position] == 0x0D {
                guard position + 1 < input.count else { return nil }
                guard input[position + 1] == 0x0A else { throw .at(position, "\\r not followed by \\n") }
                return position
            }
            if input[position] == 0x0A { throw .at(position, "\\n without \\r before it") }
            position += 1
            if position - from > maxLineLength {
                throw .at(from - 1, "line longer than the maximum of \(maxLineLength) bytes")
            }
        }
        return nil
    }

    private static func length(_ text: UnsafeRawBufferPointer, at offset: Int, kind: String) throws(RESPProtocolError) -> Int {
        guard let value = RESPInteger.parse(text), value >= -1, value <= Int64(Int32.max) else {
            throw .at(offset, "\(kind) length '\(show(text))' is not a length")
        }
        return Int(value)
    }

    /// At most 32 bytes of `bytes`, printable, for an error message.
    private static func show(_ bytes: UnsafeRawBufferPointer) -> String {
        String(bytes.prefix(32).map { $0 >= 0x20 && $0 < 0x7F ? Character(UnicodeScalar($0)) : "?" })
    }
}
