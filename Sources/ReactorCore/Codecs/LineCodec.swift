#if canImport(Glibc)
import Glibc
#endif

/// Newline-delimited messages: each line ends with `\n`, and a `\r` just
/// before it (CRLF, as telnet and many text protocols send) is dropped.
///
/// Messages are `[UInt8]`, not `String`: a line protocol carries whatever
/// bytes the peer sends — Latin-1, invalid UTF-8, binary junk — and bytes
/// pass through exactly and without a validation pass, whereas a `String`
/// would repair (alter) invalid UTF-8. Text is one step away:
/// `String(decoding: line, as: UTF8.self)` and `Array(text.utf8)`.
///
/// A line longer than ``maximumLineLength`` fails as soon as that many bytes
/// have arrived without a newline, so a peer that never sends one cannot
/// make the connection buffer without bound.
public struct LineCodec: Codec, Sendable {
    /// A line's bytes without its `\n`.
    public typealias Inbound = [UInt8]
    /// A line's bytes; ``encode(_:into:)`` adds the `\n`.
    public typealias Outbound = [UInt8]

    /// The longest line accepted, in bytes, not counting its `\r\n` or `\n`.
    public var maximumLineLength: Int
    /// Readable bytes already searched for a newline without finding one, so
    /// a long line arriving in many reads is scanned once, not once per read.
    private var scanned = 0

    /// A codec that accepts lines of up to `maximumLineLength` bytes (64 KiB by default).
    public init(maximumLineLength: Int = 64 << 10) {
        precondition(maximumLineLength >= 0, "a negative maximum line length")
        self.maximumLineLength = maximumLineLength
    }

    /// Takes the next whole line; see ``Codec/decode(_:)``.
    public mutating func decode(_ buffer: inout InboundBuffer) throws(CodecError) -> [UInt8]? {
        let readable = buffer.readableBytes
        // A buffer not decoded by this codec before (or emptied behind its back): scan it all.
        if scanned > readable { scanned = 0 }
        guard readable > scanned else { return nil }
        let limit = maximumLineLength
        let from = scanned
        let newline: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard let hit = memchr(bytes.baseAddress! + from, 0x0A, readable - from) else { return nil }
            return bytes.baseAddress!.distance(to: UnsafeRawPointer(hit))
        }
        guard let newline else {
            scanned = readable
            // One byte of slack: a trailing `\r` may be half of a `\r\n` that does not count.
            if readable > limit && !(readable == limit + 1 && buffer[readable - 1] == 0x0D) {
                throw CodecError(.frameTooLarge(size: readable, maximum: limit),
                                 description: "line of more than \(limit) bytes without a newline")
            }
            return nil
        }
        scanned = 0
        let line = try takeLine(from: &buffer, length: newline)
        buffer.consume(1)  // the newline
        return line
    }

    /// Like ``decode(_:)``; at the end of the stream the bytes after the last
    /// newline are a final line, as most line readers treat them.
    public mutating func decodeLast(_ buffer: inout InboundBuffer) throws(CodecError) -> [UInt8]? {
        if let line = try decode(&buffer) { return line }
        guard buffer.readableBytes > 0 else { return nil }
        scanned = 0
        return try takeLine(from: &buffer, length: buffer.readableBytes)
    }

    /// Appends `message` and a `\n`. A `\n` inside `message` is not escaped:
    /// the peer reads it as two lines.
    public mutating func encode(_ message: [UInt8], into output: inout [UInt8]) {
        output.append(contentsOf: message)
        output.append(0x0A)
    }

    /// Copies and consumes the `length` bytes before a line end, dropping a trailing `\r`.
    private func takeLine(from buffer: inout InboundBuffer, length: Int) throws(CodecError) -> [UInt8] {
        let content = length > 0 && buffer[length - 1] == 0x0D ? length - 1 : length
        if content > maximumLineLength {
            throw CodecError.frameTooLarge(size: content, maximum: maximumLineLength, noun: "line")
        }
        let line = buffer.readBytes(content)
        buffer.consume(length - content)
        return line
    }
}
