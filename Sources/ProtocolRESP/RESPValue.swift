/// One RESP2 value, as a server replies with it. Null bulk strings and null
/// arrays are their own values (`nil` payloads) because Redis means
/// something different by them than by empty ones: `GET missing` is
/// `.bulkString(nil)`, `GET empty` is `.bulkString([])`.
public enum RESPValue: Sendable, Equatable, CustomStringConvertible {
    /// `+OK`: a status line.
    case simpleString(String)
    /// `-ERR message`: the server refused the command. The text is as sent,
    /// its code first (`ERR`, `WRONGTYPE`, …).
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$3\r\nabc`, or `$-1` (nil): binary-safe bytes, copied once out of the read buffer.
    case bulkString([UInt8]?)
    /// `*2\r\n…`, or `*-1` (nil); elements may be arrays themselves.
    case array([RESPValue]?)

    /// The value as text: a simple string, or a bulk string read as UTF-8
    /// (nil for the other cases and for nulls).
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes?): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The value as an integer: an integer reply, or a bulk string holding one
    /// (as `GET counter` answers after `INCR counter`).
    public var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulkString(let bytes?): return bytes.withUnsafeBytes { RESPInteger.parse($0) }
        default: return nil
        }
    }

    /// True for a null bulk string or a null array.
    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): return true
        default: return false
        }
    }

    /// As redis-cli shows it: `OK`, `(error) ERR …`, `(integer) 1`, `"abc"`, `(nil)`, `[…]`.
    public var description: String {
        switch self {
        case .simpleString(let text): return text
        case .error(let text): return "(error) \(text)"
        case .integer(let value): return "(integer) \(value)"
        case .bulkString(nil), .array(nil): return "(nil)"
        case .bulkString(let bytes?): return "\"\(String(decoding: bytes, as: UTF8.self))\""
        case .array(let elements?): return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

/// Encodes commands the way every client library sends them: a RESP array
/// of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), binary safe.
public enum RESPCommand {
    /// Appends `arguments` as one command to `output`.
    public static func encode(_ arguments: [String], into output: inout [UInt8]) {
        appendHeader(UInt8(ascii: "*"), arguments.count, into: &output)
        for argument in arguments {
            appendHeader(UInt8(ascii: "$"), argument.utf8.count, into: &output)
            output.append(contentsOf: argument.utf8)
            output.append(0x0D)
            output.append(0x0A)
        }
    }

    /// Appends `arguments` (raw bytes each) as one command to `output`.
    public static func encode(bytes arguments: [[UInt8]], into output: inout [UInt8]) {
        appendHeader(UInt8(ascii: "*"), arguments.count, into: &output)
        for argument in arguments {
            appendHeader(UInt8(ascii: "$"), argument.count, into: &output)
            output.append(contentsOf: argument)
            output.append(0x0D)
            output.append(0x0A)
        }
    }

    private static func appendHeader(_ kind: UInt8, _ count: Int, into output: inout [UInt8]) {
        output.append(kind)
        output.append(contentsOf: String(count).utf8)
        output.append(0x0D)
        output.append(0x0A)
    }
}
