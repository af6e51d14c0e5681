#if canImport(Glibc)
import Glibc
#endif

/// Received bytes waiting to be decoded: a byte buffer with a reader index,
/// for a ``Codec`` to look at and consume whole frames from.
///
/// Bytes are appended at the end and consumed from the front. Consuming only
/// moves the reader index; when an append finds no room at the end, the
/// unread bytes are first moved to the front (a `memmove` of what is left of
/// one partial frame) and only if they still do not fit does the storage
/// grow, doubling. So once the buffer has grown to the largest frame in
/// flight, appending and consuming allocate nothing.
///
/// The buffer is a collection of its readable bytes (index 0 is the next
/// unread byte), which makes small parsers and tests easy to write; hot
/// parsers use ``withUnsafeReadableBytes(_:)`` instead. Consuming shifts the
/// indices: an index is valid only until the next mutation.
///
/// A copy shares storage until one side writes (copy-on-write), like an Array.
public struct InboundBuffer {
    /// Owned memory; a class so that it is freed with the last copy of the buffer.
    final class Storage {
        let base: UnsafeMutableRawPointer
        let capacity: Int
        /// 1 for a buffer's first storage, one more for each replacement:
        /// lets tests see a reallocation, which a reused address would hide.
        let generation: Int

        init(capacity: Int, generation: Int = 1) {
            self.capacity = capacity
            self.generation = generation
            base = .allocate(byteCount: capacity, alignment: 16)
        }

        deinit { base.deallocate() }
    }

    /// Nil until the first append: an idle connection's buffer costs nothing.
    private(set) var storage: Storage?
    /// Bytes viewed in place instead of owned (see ``lend(_:)``). While set,
    /// the readable bytes are `lent[readerIndex..<writerIndex]`.
    private var lent: UnsafeRawBufferPointer?
    private(set) var readerIndex = 0
    private var writerIndex = 0

    /// The smallest allocation: enough for typical small frames without a regrowth.
    static let minimumCapacity = 1024

    /// An empty buffer; nothing is allocated until bytes are appended.
    public init() {}

    /// An empty buffer with room for `capacity` bytes already allocated.
    public init(capacity: Int) {
        if capacity > 0 { storage = Storage(capacity: capacity) }
    }

    /// The number of bytes appended and not yet consumed.
    public var readableBytes: Int { writerIndex - readerIndex }

    /// How many bytes fit before the buffer must compact or grow.
    public var capacity: Int { storage?.capacity ?? 0 }

    /// Calls `body` with the readable bytes, in place, without copying. The
    /// pointer is valid only inside `body`: the next append may move the bytes.
    @inlinable
    public func withUnsafeReadableBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(unsafeReadableBytes)
    }

    /// The readable bytes, in place. Internal: the pointer dies with the next mutation.
    @usableFromInline
    var unsafeReadableBytes: UnsafeRawBufferPointer {
        if let lent {
            return UnsafeRawBufferPointer(rebasing: lent[readerIndex..<writerIndex])
        }
        guard let storage else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: storage.base + readerIndex, count: writerIndex - readerIndex)
    }

    /// Appends `bytes` after the readable bytes, compacting or growing the
    /// storage if there is no room at the end.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if lent != nil { stopBorrowing() }
        reserveSpace(bytes.count)
        // Sound: reserveSpace left a uniquely referenced storage with room for bytes.count.
        (storage!.base + writerIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writerIndex += bytes.count
    }

    /// Appends the bytes of an array, a string's UTF-8 view or any other sequence.
    public mutating func append<Bytes: Sequence>(contentsOf bytes: Bytes) where Bytes.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) != nil { return }
        Array(bytes).withUnsafeBytes { append($0) }
    }

    /// Marks the first `count` readable bytes as read.
    public mutating func consume(_ count: Int) {
        precondition(count >= 0 && count <= readableBytes,
                     "consume(\(count)) with \(readableBytes) readable bytes")
        readerIndex += count
        if readerIndex == writerIndex, lent == nil {
            // Empty: start over at the front, so the common case (whole frames
            // per read) never needs to move bytes.
            readerIndex = 0
            writerIndex = 0
        }
    }

    /// Copies the first `count` readable bytes into a new array and consumes them.
    public mutating func readBytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0 && count <= readableBytes,
                     "readBytes(\(count)) with \(readableBytes) readable bytes")
        let bytes = Array(UnsafeRawBufferPointer(rebasing: unsafeReadableBytes[..<count]))
        consume(count)
        return bytes
    }

    /// Discards every readable byte, keeping the storage for reuse.
    public mutating func removeAll() {
        lent = nil
        readerIndex = 0
        writerIndex = 0
    }

    // MARK: Decoding in place

    /// Makes the buffer, which must be empty, view `bytes` in place instead of
    /// copying them: a codec then decodes straight from the runtime's read
    /// buffer. The caller must call ``stopBorrowing()`` before `bytes` becomes
    /// invalid; an ``append(_:)`` in between copies first, so it stays safe.
    mutating func lend(_ bytes: UnsafeRawBufferPointer) {
        precondition(readableBytes == 0, "lend(_:) on a buffer holding \(readableBytes) unread bytes")
        lent = bytes
        readerIndex = 0
        writerIndex = bytes.count
    }

    /// Copies what is left of lent bytes into owned storage (only the
    /// leftover partial frame, usually nothing), so they outlive the lender.
    mutating func stopBorrowing() {
        guard let view = lent else { return }
        let left = UnsafeRawBufferPointer(rebasing: view[readerIndex..<writerIndex])
        lent = nil
        readerIndex = 0
        writerIndex = 0
        append(left)
    }

    /// True while the readable bytes are viewed in place rather than owned.
    var isBorrowing: Bool { lent != nil }

    /// Makes room for `extra` bytes at the end: compacts when the unread
    /// bytes plus `extra` fit the current capacity, grows otherwise.
    private mutating func reserveSpace(_ extra: Int) {
        let readable = readableBytes
        let needed = readable + extra
        // Uniqueness first: binding `current` before the check would itself
        // be a second reference, and every compaction would become a copy.
        if isKnownUniquelyReferenced(&storage), let current = storage {
            if writerIndex + extra <= current.capacity { return }
            if needed <= current.capacity {
                // Compacting reuses the memory; a partial frame is all it moves.
                memmove(current.base, current.base + readerIndex, readable)
                readerIndex = 0
                writerIndex = readable
                return
            }
        }
        var newCapacity = Swift.max(capacity, InboundBuffer.minimumCapacity)
        while newCapacity < needed { newCapacity *= 2 }
        let grown = Storage(capacity: newCapacity, generation: (storage?.generation ?? 0) + 1)
        if let old = storage, readable > 0 {
            grown.base.copyMemory(from: old.base + readerIndex, byteCount: readable)
        }
        storage = grown
        readerIndex = 0
        writerIndex = readable
    }
}

extension InboundBuffer: RandomAccessCollection {
    /// Always 0: the next unread byte.
    public var startIndex: Int { 0 }
    /// The number of readable bytes.
    public var endIndex: Int { readableBytes }
    /// The readable byte at `position` (0 is the next unread byte).
    public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < readableBytes, "index \(position) out of 0..<\(readableBytes)")
        return unsafeReadableBytes[position]
    }
    /// The number of readable bytes (the same as ``readableBytes``).
    public var count: Int { readableBytes }
}
