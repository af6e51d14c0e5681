#if canImport(Glibc)
import Glibc
#endif

/// Replies (or commands) in RESP2, gathered in one buffer so that a batch
/// leaves in one write.
///
/// A server keeps one per runtime (the kv service owns it and lends it to
/// each connection's batch in turn): its memory is reused from batch to batch, so a steady
/// stream of commands formats replies without allocating. Raw memory rather
/// than an Array: no uniqueness or bounds checks on the hot path.
public struct RESPReplyBuffer: ~Copyable {
    @usableFromInline var base: UnsafeMutableRawPointer
    @usableFromInline var capacity: Int
    /// Bytes gathered so far.
    @usableFromInline var _count = 0

    /// Bytes gathered so far.
    @inlinable public var count: Int { _count }

    /// The size the buffer returns to after a batch with a very large reply.
    public static let defaultCapacity = 64 * 1024

    /// An empty buffer of `capacity` bytes (it grows as needed).
    public init(capacity: Int = RESPReplyBuffer.defaultCapacity) {
        self.capacity = capacity
        base = malloc(capacity)!
    }

    deinit { free(base) }

    /// The gathered bytes (valid until the next append or reset).
    @inlinable public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: _count) }

    /// Forgets the gathered bytes. A buffer grown past 1 MiB by a big reply
    /// returns to its default size, so one large GET does not pin memory.
    public mutating func reset() {
        _count = 0
        if capacity > 1 << 20 {
            free(base)
            capacity = RESPReplyBuffer.defaultCapacity
            base = malloc(capacity)!
        }
    }

    /// Drops everything after the first `length` bytes (undoes a partial reply).
    public mutating func truncate(to length: Int) {
        _count = min(_count, length)
    }

    @inlinable
    mutating func reserve(_ extra: Int) {
        if _count + extra > capacity { grow(_count + extra) }
    }

    @usableFromInline
    mutating func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        base = realloc(base, newCapacity)!
        capacity = newCapacity
    }

    // MARK: Raw bytes

    /// Appends raw bytes.
    @inlinable
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + _count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        _count += bytes.count
    }

    /// Appends a literal's UTF-8.
    @inlinable
    public mutating func append(_ text: StaticString) {
        reserve(text.utf8CodeUnitCount)
        (base + _count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        _count += text.utf8CodeUnitCount
    }

    /// Appends raw bytes.
    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Appends a string's UTF-8.
    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends one byte.
    @inlinable
    public mutating func appendByte(_ byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: _count, as: UInt8.self)
        _count += 1
    }

    /// Appends `\r\n`.
    @inlinable
    public mutating func appendCRLF() {
        reserve(2)
        base.storeBytes(of: 0x0A0D, toByteOffset: _count, as: UInt16.self)  // "\r\n", little-endian
        _count += 2
    }

    /// The decimal digits of `value`, with a sign when negative.
    @inlinable
    public mutating func appendDecimal(_ value: Int64) {
        reserve(20)
        if value < 0 { appendByte(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits = 1
        var scan = magnitude
        while scan >= 10 { scan /= 10; digits += 1 }
        var position = _count + digits - 1
        repeat {
            base.storeBytes(of: UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30, toByteOffset: position, as: UInt8.self)
            magnitude /= 10
            position -= 1
        } while magnitude > 0
        _count += digits
    }

    // MARK: RESP2 replies

    /// `:n\r\n`
    @inlinable
    public mutating func appendInteger(_ value: Int64) {
        appendByte(UInt8(ascii: ":"))
        appendDecimal(value)
        appendCRLF()
    }

    /// `$len\r\nbytes\r\n`
    @inlinable
    public mutating func appendBulk(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count + 16)
        appendByte(UInt8(ascii: "$"))
        appendDecimal(Int64(bytes.count))
        appendCRLF()
        append(bytes)
        appendCRLF()
    }

    /// `$len\r\ntext\r\n`
    public mutating func appendBulk(_ text: String) {
        var text = text
        text.withUTF8 { appendBulk(UnsafeRawBufferPointer($0)) }
    }

    /// `$len\r\nbytes\r\n`
    public mutating func appendBulk(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { appendBulk($0) }
    }

    /// `$-1\r\n`, RESP2's null bulk string.
    @inlinable
    public mutating func appendNull() { append("$-1\r\n") }

    /// `*n\r\n`
    @inlinable
    public mutating func appendArrayHeader(_ count: Int) {
        appendByte(UInt8(ascii: "*"))
        appendDecimal(Int64(count))
        appendCRLF()
    }

    /// `+text\r\n`
    public mutating func appendStatus(_ text: String) {
        appendByte(UInt8(ascii: "+"))
        append(text)
        appendCRLF()
    }

    /// `-message\r\n`, with `ERR ` in front unless the message starts with
    /// an error code of its own (`-WRONGTYPE ...`). Carriage returns and line
    /// feeds become spaces, as Redis's `addReplyErrorFormat` does, so that
    /// an argument quoted in a message cannot break the protocol.
    public mutating func appendError(_ message: [UInt8]) {
        if message.first == UInt8(ascii: "-") {
            appendSanitized(message)
        } else {
            append("-ERR ")
            appendSanitized(message)
        }
        appendCRLF()
    }

    /// `-ERR message\r\n` for a message built from text.
    public mutating func appendError(_ message: String) {
        appendError(Array(message.utf8))
    }

    mutating func appendSanitized(_ message: [UInt8]) {
        reserve(message.count)
        for byte in message {
            appendByte(byte == 0x0D || byte == 0x0A ? 0x20 : byte)
        }
    }
}
