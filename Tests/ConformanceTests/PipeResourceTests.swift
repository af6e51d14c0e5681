// Pipes and adopted descriptors through the runtime: the write queue on a
// pipe, end of file, a raw descriptor reporting readiness, stdin/stdout adoption.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Pipes and adopted descriptors")
struct PipeResourceTests {
    @Test("1 MiB through a pipe: queued writes, whenFlushed, watermarks, end of file", arguments: Backend.underTest)
    func pipeTransfer(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) }
            let (reader, writer) = try PipeEnd.pipe()
            writer.highWatermark = 256 << 10
            writer.lowWatermark = 64 << 10
            var received: [UInt8] = []
            var flushedAt: Int?
            var wentAboveHigh = false
            var writableAgain = 0
            var readerEnded: DisconnectReason?
            let service = ScriptedService()
            service.onStart = { _ in
                writer.write(payload)
                wentAboveHigh = writer.isAboveHighWatermark
                writer.whenFlushed { flushedAt = received.count }
                writer.closeWhenFlushed()
            }
            service.onEvent = { event, id, _ in
                switch event {
                case .received(let bytes): received += bytes
                case .writableAgain: writableAgain += 1
                default: Issue.record("unexpected \(event) from \(id)")
                }
            }
            service.onDisconnect = { id, _, reason, context in
                if id == reader.id || reader.id == nil { readerEnded = reason }
                context.stop()
            }
            try runHere(P.self, service) { context in
                try context.register(reader)
                try context.register(writer)
            }
            #expect(received.count == payload.count)
            // Compared as a Bool: a failing `==` on megabyte arrays makes the
            // test library compute a diff for a very long time.
            let same = received == payload
            #expect(same, "the bytes differ")
            #expect(wentAboveHigh, "1 MiB queued is above a 256 KiB high watermark")
            #expect(writableAgain == 1, "writableAgain once the queue drained to the low watermark")
            let flushed = try #require(flushedAt, "whenFlushed never ran")
            #expect(flushed <= payload.count)
            if case .closed? = readerEnded {} else { Issue.record("the reader should end with closed, got \(String(describing: readerEnded))") }
        }
        try body(pollerType(of: backend))
    }

    @Test("an adopted descriptor reports readable and writable to the Service, which does its own I/O", arguments: Backend.underTest)
    func adoptedDescriptor(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let (local, peer) = try fds.socketPair()
            writeBytes(peer, count: 3)
            let adopted = Resource(fd: fds.release(local), interest: .read)
            var readBytes = 0
            var sawWritable = false
            let service = ScriptedService()
            service.onEvent = { event, _, context in
                switch event {
                case .readable:
                    var buffer = [UInt8](repeating: 0, count: 16)
                    readBytes += buffer.withUnsafeMutableBytes { read(adopted.fd.rawValue, $0.baseAddress, $0.count) }
                    adopted.setInterest(.write)
                case .writable:
                    sawWritable = true
                    context.stop()
                default:
                    Issue.record("unexpected \(event)")
                }
            }
            try runHere(P.self, service) { context in try context.register(adopted) }
            #expect(readBytes == 3)
            #expect(sawWritable)
            #expect(adopted.kind == "descriptor")
        }
        try body(pollerType(of: backend))
    }

    @Test("standard input and output are adopted as duplicates: destroying them leaves fds 0 and 1 open")
    func standardStreams() throws {
        // Non-blocking mode is shared with fds 0 and 1: restore it for the terminal's sake.
        let inputFlags = fcntl(0, F_GETFL), outputFlags = fcntl(1, F_GETFL)
        defer { _ = fcntl(0, F_SETFL, inputFlags); _ = fcntl(1, F_SETFL, outputFlags) }
        let input = try PipeEnd.standardInput()
        let output = try PipeEnd.standardOutput()
        #expect(input.fd.rawValue > 2 && output.fd.rawValue > 2)
        #expect(input.direction == .reading && output.direction == .writing)
        _ = consume input
        _ = consume output
        #expect(fcntl(0, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0, "fds 0 and 1 must stay open")
    }
}
