/// A growable byte buffer that responses are formatted into, then written
/// with one `write` per batch of pipelined requests.
///
/// One per runtime, shared by its connections: a connection formats its
/// responses, writes them and resets the buffer before any other connection
/// runs, so one buffer serves them all and steady-state formatting allocates
/// nothing. Raw memory rather than an `Array` keeps appends free of
/// uniqueness checks and bounds checks on the hot path.
final class HTTPOutputBuffer {
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    /// The bytes formatted so far.
    private(set) var count = 0

    /// The capacity kept between batches; a larger buffer (a big echo) is
    /// given back once written.
    static let initialCapacity = 64 << 10

    init() {
        capacity = HTTPOutputBuffer.initialCapacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// The formatted bytes, valid until the next append or reset.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    var isEmpty: Bool { count == 0 }

    /// Forgets the bytes (after they were written), shrinking back to the
    /// initial capacity if one large response grew the buffer.
    func reset() {
        count = 0
        if capacity > HTTPOutputBuffer.initialCapacity * 4 {
            base.deallocate()
            capacity = HTTPOutputBuffer.initialCapacity
            base = .allocate(byteCount: capacity, alignment: 16)
        }
    }

    @inline(__always)
    private func reserve(_ extra: Int) {
        if count + extra > capacity { grow(to: count + extra) }
    }

    private func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        grown.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = grown
        capacity = newCapacity
    }

    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a non-negative integer in decimal, without making a String.
    func append(decimal value: Int) {
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
}
