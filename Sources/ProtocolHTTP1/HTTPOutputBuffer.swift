/// A growable byte buffer that heads (and small bodies) are formatted into,
/// then written with one `write` per batch.
///
/// A server keeps one per runtime, shared by its connections: a connection
/// formats its responses, writes them and resets the buffer before any
/// other connection runs, so one buffer serves them all and steady-state
/// formatting allocates nothing. Raw memory rather than an `Array` keeps
/// appends free of uniqueness checks and bounds checks on the hot path; the
/// appends are inlinable so that crossing into this module costs no call.
public final class HTTPOutputBuffer {
    @usableFromInline var base: UnsafeMutableRawPointer
    @usableFromInline var capacity: Int
    @usableFromInline var used = 0

    /// The number of bytes formatted so far.
    @inlinable public var count: Int { used }

    /// The capacity kept between batches; a larger buffer (a big echo) is
    /// given back once written.
    public static let initialCapacity = 64 << 10

    /// An empty buffer of ``initialCapacity``.
    public init() {
        capacity = HTTPOutputBuffer.initialCapacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// The formatted bytes, valid until the next append or reset.
    @inlinable public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: used) }

    /// Whether nothing is formatted.
    @inlinable public var isEmpty: Bool { used == 0 }

    /// Forgets the bytes (after they were written), shrinking back to the
    /// initial capacity if one large response grew the buffer.
    public func reset() {
        used = 0
        if capacity > HTTPOutputBuffer.initialCapacity * 4 {
            base.deallocate()
            capacity = HTTPOutputBuffer.initialCapacity
            base = .allocate(byteCount: capacity, alignment: 16)
        }
    }

    @inlinable
    func reserve(_ extra: Int) {
        if used + extra > capacity { grow(to: used + extra) }
    }

    @usableFromInline
    func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        grown.copyMemory(from: base, byteCount: used)
        base.deallocate()
        base = grown
        capacity = newCapacity
    }

    /// Appends `bytes`.
    @inlinable
    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + used).copyMemory(from: source, byteCount: bytes.count)
        used += bytes.count
    }

    /// Appends a literal's UTF-8 bytes.
    @inlinable
    public func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends `bytes`.
    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Appends a string's UTF-8 bytes.
    public func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a non-negative integer in decimal, without making a String.
    public func append(decimal value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for any Int
        var length = 0
        withUnsafeMutableBytes(of: &digits) { scratch in
            var rest = UInt(max(value, 0))
            repeat {
                length += 1
                scratch[scratch.count - length] = UInt8(truncatingIfNeeded: rest % 10) + 0x30
                rest /= 10
            } while rest > 0
            append(UnsafeRawBufferPointer(rebasing: scratch[(scratch.count - length)...]))
        }
    }

    /// Appends a non-negative integer in lowercase hexadecimal (a chunk size).
    public func append(hex value: Int) {
        let digits: StaticString = "0123456789abcdef"
        var shift = 60
        while shift > 0 && (value >> shift) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            append(UnsafeRawBufferPointer(start: digits.utf8Start + ((value >> shift) & 0xF), count: 1))
            shift -= 4
        }
    }
}
