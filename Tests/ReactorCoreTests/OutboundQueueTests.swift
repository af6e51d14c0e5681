@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The write queue against a real pipe whose buffer is shrunk, so partial
/// writes and EAGAIN happen for real.
@Suite struct OutboundQueueTests {
    /// Found with fault injection: the chunk an emptied queue keeps for
    /// small writes stayed, empty, ahead of a larger write's own chunk, so
    /// the first buffer a transport was handed described no bytes.
    @Test func aLargeWriteIntoAnEmptiedQueueLeavesNoEmptyBufferAhead() {
        var queue = OutboundQueue()
        var due: [() -> Void] = []
        let small = [UInt8](repeating: 1, count: 100), large = [UInt8](repeating: 2, count: 3 * OutboundQueue.chunkSize)
        small.withUnsafeBytes { queue.append($0) }
        queue.sent(small.count, due: &due)  // emptied: its chunk is kept for the next small write
        large.withUnsafeBytes { queue.append($0) }
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: 8)
        defer { vectors.deallocate() }
        let count = queue.gather(into: vectors)
        #expect(count == 1)
        #expect(vectors[0].iov_len == large.count)
        #expect(vectors[0].iov_base.load(as: UInt8.self) == 2)
        // Small writes after it gather as one buffer too.
        queue.sent(large.count, due: &due)
        small.withUnsafeBytes { queue.append($0) }
        #expect(queue.gather(into: vectors) == 1 && vectors[0].iov_len == small.count)
    }

    @Test func partialWritesResumeExactlyAndNothingIsLost() throws {
        let (reader, writer) = try PipeEnd.pipe()
        _ = fcntl(writer.fd.rawValue, F_SETPIPE_SZ_VALUE, 4096)
        var queue = OutboundQueue()
        var sent: [UInt8] = []
        // Callbacks after every 50th chunk: each must run only once the bytes
        // queued before it are written, and in order.
        final class Log { var ran: [Int] = [] }
        let log = Log()
        var positions: [Int] = []
        for chunk in 0..<200 {
            let bytes = (0..<(1 + chunk * 37 % 900)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ chunk) }
            sent += bytes
            bytes.withUnsafeBytes { queue.append($0) }
            if chunk % 50 == 49 {
                let index = positions.count
                positions.append(sent.count)
                queue.whenWritten { log.ran.append(index) }
            }
        }
        #expect(queue.byteCount == sent.count)
        var received: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { buffer.deallocate() }
        var rounds = 0
        while !queue.isEmpty || received.count < sent.count {
            var due: [() -> Void] = []
            let result = queue.flush(to: writer.fd, due: &due)
            if case .failed(let errno) = result { Issue.record("flush failed: \(errno)"); return }
            let written = sent.count - queue.byteCount
            for callback in due {
                callback()
                #expect(written >= positions[log.ran.last!], "a callback ran before its bytes were written")
            }
            // Drain a little at a time so the writer keeps hitting a full pipe.
            if case .transferred(let n) = Syscall.read(reader.fd, into: buffer) {
                received += buffer[..<n]
            }
            rounds += 1
            if rounds > 100_000 { Issue.record("no progress"); return }
        }
        #expect(received == sent)
        #expect(log.ran == [0, 1, 2, 3])
        #expect(rounds > 10, "the pipe was small enough to force partial writes")
    }
}

/// `F_SETPIPE_SZ` is GNU-only in the Glibc module.
let F_SETPIPE_SZ_VALUE: Int32 = 1031
