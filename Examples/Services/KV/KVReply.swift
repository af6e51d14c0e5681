#if canImport(Glibc)
import Glibc
#endif

/// The replies of one batch of commands, in RESP2, gathered in one buffer so
/// that the batch leaves in one write.
///
/// One per runtime (the service owns it and lends it to each connection's
/// batch in turn): its memory is reused from batch to batch, so a steady
/// stream of commands formats replies without allocating. Raw memory rather
/// than an Array: no uniqueness or bounds checks on the hot path.
struct KVReply: ~Copyable {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Bytes gathered so far.
    private(set) var count = 0

    /// The size the buffer returns to after a batch with a very large reply.
    static let defaultCapacity = 64 * 1024

    init(capacity: Int = KVReply.defaultCapacity) {
        self.capacity = capacity
        base = malloc(capacity)!
    }

    deinit { free(base) }

    /// The gathered bytes (valid until the next append or reset).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Forgets the gathered bytes. A buffer grown past 1 MiB by a big reply
    /// returns to its default size, so one large GET does not pin memory.
    mutating func reset() {
        count = 0
        if capacity > 1 << 20 {
            free(base)
            capacity = KVReply.defaultCapacity
            base = malloc(capacity)!
        }
    }

    /// Drops everything after the first `length` bytes (undoes a partial reply).
    mutating func truncate(to length: Int) {
        count = min(count, length)
    }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private mutating func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        base = realloc(base, newCapacity)!
        capacity = newCapacity
    }

    // MARK: Raw bytes

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func append(_ text: StaticString) {
        reserve(text.utf8CodeUnitCount)
        (base + count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func appendByte(_ byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func appendCRLF() {
        reserve(2)
        base.storeBytes(of: 0x0A0D, toByteOffset: count, as: UInt16.self)  // "\r\n", little-endian
        count += 2
    }

    /// The decimal digits of `value`, with a sign when negative.
    @inline(__always)
    mutating func appendDecimal(_ value: Int64) {
        reserve(20)
        if value < 0 { appendByte(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits = 1
        var scan = magnitude
        while scan >= 10 { scan /= 10; digits += 1 }
        var position = count + digits - 1
        repeat {
            base.storeBytes(of: UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30, toByteOffset: position, as: UInt8.self)
            magnitude /= 10
            position -= 1
        } while magnitude > 0
        count += digits
    }

    // MARK: RESP2 replies

    /// `:n\r\n`
    @inline(__always)
    mutating func appendInteger(_ value: Int64) {
        appendByte(UInt8(ascii: ":"))
        appendDecimal(value)
        appendCRLF()
    }

    /// `$len\r\nbytes\r\n`
    @inline(__always)
    mutating func appendBulk(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count + 16)
        appendByte(UInt8(ascii: "$"))
        appendDecimal(Int64(bytes.count))
        appendCRLF()
        append(bytes)
        appendCRLF()
    }

    mutating func appendBulk(_ text: String) {
        var text = text
        text.withUTF8 { appendBulk(UnsafeRawBufferPointer($0)) }
    }

    mutating func appendBulk(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { appendBulk($0) }
    }

    /// `$-1\r\n`, RESP2's null bulk string.
    @inline(__always)
    mutating func appendNull() { append("$-1\r\n") }

    /// `*n\r\n`
    @inline(__always)
    mutating func appendArrayHeader(_ count: Int) {
        appendByte(UInt8(ascii: "*"))
        appendDecimal(Int64(count))
        appendCRLF()
    }

    /// `+text\r\n`
    mutating func appendStatus(_ text: String) {
        appendByte(UInt8(ascii: "+"))
        append(text)
        appendCRLF()
    }

    /// `-message\r\n`, with `ERR ` in front unless the message starts with
    /// an error code of its own (`-WRONGTYPE ...`). Carriage returns and line
    /// feeds become spaces, as Redis's `addReplyErrorFormat` does, so that
    /// an argument quoted in a message cannot break the protocol.
    mutating func appendError(_ message: [UInt8]) {
        if message.first == UInt8(ascii: "-") {
            appendSanitized(message)
        } else {
            append("-ERR ")
            appendSanitized(message)
        }
        appendCRLF()
    }

    /// `-ERR message\r\n` for a message built from text.
    mutating func appendError(_ message: String) {
        appendError(Array(message.utf8))
    }

    private mutating func appendSanitized(_ message: [UInt8]) {
        reserve(message.count)
        for byte in message {
            appendByte(byte == 0x0D || byte == 0x0A ? 0x20 : byte)
        }
    }
}
