import DequeModule
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Bytes accepted for writing but not yet taken by the kernel, in order.
/// Flushed with `writev`, several buffers per system call, resuming a partial
/// write exactly where it stopped.
struct OutboundQueue {
    /// A copy of written bytes in memory the queue owns, so its address is
    /// stable for `writev` (an Array's storage is only pinned inside
    /// `withUnsafeBytes`).
    final class Chunk {
        let bytes: UnsafeMutableRawBufferPointer
        init(copying source: UnsafeRawBufferPointer) {
            bytes = .allocate(byteCount: source.count, alignment: 1)
            bytes.copyMemory(from: source)
        }
        deinit { bytes.deallocate() }
    }

    private var chunks = Deque<Chunk>()
    /// Bytes of `chunks.first` already written.
    private var headOffset = 0
    private(set) var byteCount = 0

    var isEmpty: Bool { byteCount == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        chunks.append(Chunk(copying: bytes))
        byteCount += bytes.count
    }

    /// Writes as much as the descriptor takes. Returns `.wouldBlock` when data
    /// remains, `.transferred(total)` when the queue emptied, `.failed` on error.
    mutating func flush(to fd: FileDescriptor) -> IOResult {
        var total = 0
        while !chunks.isEmpty {
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

    private mutating func consume(_ written: Int) {
        var remaining = written
        byteCount -= written
        while remaining > 0, let first = chunks.first {
            let left = first.bytes.count - headOffset
            if remaining >= left {
                remaining -= left
                chunks.removeFirst()
                headOffset = 0
            } else {
                headOffset += remaining
                remaining = 0
            }
        }
    }

    private func writeSome(to fd: FileDescriptor) -> IOResult {
        let batch = min(chunks.count, 64)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: batch) { vectors in
            for index in 0..<batch {
                let chunk = chunks[index].bytes
                let skip = index == 0 ? headOffset : 0
                // Sound: each chunk is owned by `chunks`, which is not mutated
                // until writev returns, and a chunk's memory never moves.
                vectors[index] = iovec(iov_base: chunk.baseAddress! + skip, iov_len: chunk.count - skip)
            }
            return Syscall.writev(fd, UnsafeBufferPointer(vectors))
        }
    }
}
