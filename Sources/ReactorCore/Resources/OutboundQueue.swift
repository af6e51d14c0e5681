import DequeModule
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Bytes accepted for writing but not yet taken by the kernel, in order,
/// with callbacks that run once the bytes queued before them are written.
/// Flushed with `writev`, up to `IOV_MAX` buffers per system call, resuming a
/// partial write exactly where it stopped.
struct OutboundQueue {
    /// Bytes in memory the queue owns, so their address is stable for
    /// `writev` (an Array's storage is only pinned inside `withUnsafeBytes`).
    /// Small writes are appended to the last chunk while it has room, so a
    /// stream of small messages to a slow peer does not cost an allocation each.
    final class Chunk {
        let storage: UnsafeMutableRawBufferPointer
        // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
        @exclusivity(unchecked) var used = 0
        init(capacity: Int) { storage = .allocate(byteCount: capacity, alignment: 1) }
        deinit { storage.deallocate() }
        var spare: Int { storage.count - used }
        func append(_ source: UnsafeRawBufferPointer) {
            UnsafeMutableRawBufferPointer(rebasing: storage[used..<(used + source.count)]).copyMemory(from: source)
            used += source.count
        }
    }

    /// The smallest chunk allocated: enough for many small messages.
    static let chunkSize = 16 * 1024
    /// Linux's IOV_MAX: the most buffers one writev takes.
    static let maxVectors = 1024

    /// Holds at most one empty chunk, and only while `byteCount` is 0.
    private var chunks = Deque<Chunk>()
    /// Bytes of `chunks.first` already written.
    private var headOffset = 0
    private(set) var byteCount = 0
    /// Bytes ever queued and ever written: callbacks wait for a position.
    private var queuedTotal: UInt64 = 0
    private var writtenTotal: UInt64 = 0
    private var callbacks = Deque<(position: UInt64, callback: () -> Void)>()

    var isEmpty: Bool { byteCount == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if let last = chunks.last, last.spare >= bytes.count {
            last.append(bytes)
        } else {
            // The chunk an emptied queue keeps is too small for these bytes:
            // drop it rather than leave an empty chunk ahead of them. (It was
            // once left there: `gather` then described a zero-length first
            // buffer, which cost a send's single-buffer path and misled a
            // short send injected by fault injection into sending a stale byte.)
            if byteCount == 0 {
                chunks.removeAll(keepingCapacity: true)
                headOffset = 0
            }
            let chunk = Chunk(capacity: max(bytes.count, OutboundQueue.chunkSize))
            chunk.append(bytes)
            chunks.append(chunk)
        }
        byteCount += bytes.count
        queuedTotal &+= UInt64(bytes.count)
    }

    /// Runs `callback` once every byte queued so far has been written.
    mutating func whenWritten(_ callback: @escaping () -> Void) {
        callbacks.append((queuedTotal, callback))
    }

    /// Writes as much as the descriptor takes. Returns `.wouldBlock` when data
    /// remains, `.transferred(total)` when the queue emptied, `.failed` on
    /// error. Callbacks whose bytes went out are returned in `due`, in order,
    /// for the caller to run once the queue is consistent.
    mutating func flush(to fd: FileDescriptor, due: inout [() -> Void]) -> IOResult {
        var total = 0
        defer { collectDue(into: &due) }
        while byteCount > 0 {
            let result = writeSome(to: fd)
            switch result {
            case .transferred(let n):
                total += n
                consume(n)
            case .wouldBlock, .failed, .endOfFile:
                return result
            }
        }
        return .transferred(total)
    }

    /// Describes the queued bytes, oldest first, in up to `vectors.count`
    /// buffers; returns how many it filled. For a transport that sends them
    /// itself (a send request): the bytes stay queued, at stable addresses,
    /// until ``sent(_:due:)`` consumes them, and later appends never touch
    /// bytes already described (they go past a chunk's `used` or into a new chunk).
    func gather(into vectors: UnsafeMutableBufferPointer<iovec>) -> Int {
        let batch = min(chunks.count, vectors.count)
        for index in 0..<batch {
            let chunk = chunks[index]
            let skip = index == 0 ? headOffset : 0
            // Sound: the chunk is owned by `chunks` until `sent` consumes it, and its memory never moves.
            vectors[index] = iovec(iov_base: chunk.storage.baseAddress! + skip, iov_len: chunk.used - skip)
        }
        return batch
    }

    /// Records that a transport sent the first `count` queued bytes;
    /// callbacks whose bytes are all out are returned in `due`.
    mutating func sent(_ count: Int, due: inout [() -> Void]) {
        consume(count)
        collectDue(into: &due)
    }

    private mutating func collectDue(into due: inout [() -> Void]) {
        while let first = callbacks.first, first.position <= writtenTotal {
            due.append(first.callback)
            callbacks.removeFirst()
        }
    }

    private mutating func consume(_ written: Int) {
        var remaining = written
        byteCount -= written
        writtenTotal &+= UInt64(written)
        while remaining > 0, let first = chunks.first {
            let left = first.used - headOffset
            if remaining >= left {
                remaining -= left
                headOffset = 0
                if chunks.count == 1 && first.storage.count == OutboundQueue.chunkSize {
                    // The queue is empty: its one chunk stays, emptied, for
                    // the next write. A stream that queues every reply (over
                    // a completion transport) would otherwise allocate a
                    // chunk per reply (measured: one malloc per echo round
                    // trip on uring) or, kept aside, move it in and out of the
                    // deque (its retains and releases were the largest
                    // user-space cost of that round trip).
                    first.used = 0
                    break
                }
                chunks.removeFirst()
            } else {
                headOffset += remaining
                remaining = 0
            }
        }
    }

    private func writeSome(to fd: FileDescriptor) -> IOResult {
        let batch = min(chunks.count, OutboundQueue.maxVectors)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: batch) { vectors in
            for index in 0..<batch {
                let chunk = chunks[index]
                let skip = index == 0 ? headOffset : 0
                // Sound: each chunk is owned by `chunks`, which is not mutated
                // until writev returns, and a chunk's memory never moves.
                vectors[index] = iovec(iov_base: chunk.storage.baseAddress! + skip, iov_len: chunk.used - skip)
            }
            return Syscall.writev(fd, UnsafeBufferPointer(vectors))
        }
    }
}
