@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The write queue against a real pipe whose buffer is shrunk, so partial
/// writes and EAGAIN happen for real.
@Suite struct OutboundQueueTests {
    @Test func partialWritesResumeExactlyAndNothingIsLost() throws {
        let (reader, writer) = try PipeEnd.pipe()
        _ = fcntl(writer.fd.rawValue, F_SETPIPE_SZ_VALUE, 4096)
        var queue = OutboundQueue()
        var sent: [UInt8] = []
        for chunk in 0..<200 {
            let bytes = (0..<(1 + chunk * 37 % 900)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ chunk) }
            sent += bytes
            bytes.withUnsafeBytes { queue.append($0) }
        }
        #expect(queue.byteCount == sent.count)
        var received: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { buffer.deallocate() }
        var rounds = 0
        while !queue.isEmpty || received.count < sent.count {
            let result = queue.flush(to: writer.fd)
            if case .failed(let errno) = result { Issue.record("flush failed: \(errno)"); return }
            // Drain a little at a time so the writer keeps hitting a full pipe.
            if case .transferred(let n) = Syscall.read(reader.fd, into: buffer) {
                received += buffer[..<n]
            }
            rounds += 1
            if rounds > 100_000 { Issue.record("no progress"); return }
        }
        #expect(received == sent)
        #expect(rounds > 10, "the pipe was small enough to force partial writes")
    }
}

/// `F_SETPIPE_SZ` is GNU-only in the Glibc module.
let F_SETPIPE_SZ_VALUE: Int32 = 1031
