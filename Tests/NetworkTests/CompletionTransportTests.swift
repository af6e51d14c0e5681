// The edges a completion transport (io_uring's completion mode) adds to a
// stream: requests in flight at a close, a descriptor number reused at
// once, receive buffers running out, receives cancelled while completions
// race the cancel, one slow reader among many. Each runs on every backend —
// the stream's behaviour must be the same whichever way its bytes move —
// and the first checks that on uring the bytes really moved through the ring.
import Dispatch
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Stream edges of the completion transport", .serialized)
struct CompletionTransportTests {
    @Test("uring moves stream bytes through the ring (completions, no readiness); the others never do", arguments: Backend.underTest)
    func bytesMoveThroughTheRing(_ backend: Backend) throws {
        let server = try ServerThread(backend, name: "ring-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: EchoHandler()).localAddress.port
        }
        defer { try? server.stop() }
        let fd = try connectToLoopback(port: server.port)
        defer { close(fd) }
        for _ in 0..<100 {
            try sendAll(fd, Array("ping".utf8))
            #expect(try readExactly(fd, 4) == Array("ping".utf8))
        }
        let completions = try server.inspect { $0.statistics.streamCompletions }
        if backend == .uring {
            #expect(Backend.uring.modeDescription?.hasPrefix("completion mode") == true, "\(Backend.uring.modeDescription ?? "no mode")")
            // 100 receives and 100 sends at least, plus the accept.
            #expect(completions >= 201, "\(completions) stream completions")
        } else {
            #expect(completions == 0)
        }
    }

    @Test("close with a receive and a send in flight; the descriptor number, reused at once, hears nothing of its predecessor",
          arguments: Backend.underTest)
    func closeInFlightAndReuse(_ backend: Backend) throws {
        let server = try ServerThread(backend, name: "reuse-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: FloodThenEcho()).localAddress.port
        }
        defer { try? server.stop() }
        var reused = 0
        for round in 0..<20 {
            // A: the server floods it (16 MiB: its send stays in flight, A never
            // reads) and closes it as soon as A says "close" (its receive is armed).
            let a = try connectToLoopback(port: server.port, receiveBuffer: 4096)
            try sendAll(a, Array("flood".utf8))
            _ = try readExactly(a, 1)  // the flood has begun: A's stream is registered and writing
            let aFD = try server.inspect { context in context.resources.compactMap { $0 as? SocketStream }.last?.fd.rawValue ?? -1 }
            // B's socket exists before A's server side closes, so that the
            // number freed goes to the server's next accept, not to B.
            let b = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            try sendAll(a, Array("close".utf8))
            #expect(eventually(within: .seconds(5)) { (try? server.inspect { $0.resourceCount }) == 1 }, "round \(round): A's stream did not close")
            // B, at once: most often the same descriptor number on the server.
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = server.port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(b, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(connected == 0, "connect: errno \(errno)")
            #expect(eventually(within: .seconds(5)) { (try? server.inspect { $0.resourceCount }) == 2 })
            let bFD = try server.inspect { context in context.resources.compactMap { $0 as? SocketStream }.last?.fd.rawValue ?? -2 }
            if aFD == bFD { reused += 1 }
            try sendAll(b, Array("hello \(round)".utf8))
            #expect(try readExactly(b, "hello \(round)".utf8.count) == Array("hello \(round)".utf8), "round \(round)")
            close(b)
            close(a)
            #expect(eventually(within: .seconds(5)) { (try? server.inspect { $0.resourceCount }) == 1 })
        }
        #expect(reused > 0, "no descriptor number was reused in 20 rounds: the test did not exercise reuse")
    }

    @Test("receive buffers run out (ENOBUFS): 1,000 streams send 64 KiB at once, every byte comes back", arguments: Backend.underTest)
    func buffersRunOut(_ backend: Backend) throws {
        try ensureDescriptorLimit(2500)
        let server = try ServerThread(backend, name: "nobufs-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: EchoHandler()).localAddress.port
        }
        defer { try? server.stop() }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port), connections: 1000, bytesPerConnection: 64 << 10)
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == 1000)
        if backend == .uring {
            // A quiet spell after the run may have shrunk the ring again (RuntimeOptions.releaseMemoryAfterQuiet).
            let (provided, discarded) = try server.inspect { context in
                let ring = context.streamTransport as? UringPoller
                return (ring?.providedBufferCount ?? 0, ring?.buffersDiscarded ?? 0)
            }
            #expect(provided > 256 || discarded > 0, "the ring never ran out (\(provided) buffers): ENOBUFS was not exercised")
        }
    }

    @Test("a handler that stops and restarts reading on every chunk (the cancel races completions): every byte, in order",
          arguments: Backend.underTest)
    func pauseOnEveryChunk(_ backend: Backend) throws {
        let server = try ServerThread(backend, name: "pause-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: PausingEcho()).localAddress.port
        }
        defer { try? server.stop() }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port), connections: 20, bytesPerConnection: 4 << 20)
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == 20)
        #expect(report.bytesCompared == 20 * (4 << 20))
    }

    /// The flooder's queue is full and stays full; the other 999 must still
    /// be served, each reply the byte it sent. How long they wait behind the
    /// flood is reactor-bench's responsiveness scenario's question.
    @Test("one client that floods and never reads, among 999 in ping-pong: every one of them is answered", arguments: Backend.underTest)
    func slowReaderAmongMany(_ backend: Backend) throws {
        try ensureDescriptorLimit(2500)
        let server = try ServerThread(backend, name: "slow-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: EchoHandler()).localAddress.port
        }
        defer { try? server.stop() }
        let flooder = try connectToLoopback(port: server.port, receiveBuffer: 4096)
        defer { close(flooder) }
        let stop = Shared(false)
        let flood = try TestThread {
            let chunk = [UInt8](repeating: 0x5A, count: 64 << 10)
            var flags = fcntl(flooder, F_GETFL)
            flags |= O_NONBLOCK
            _ = fcntl(flooder, F_SETFL, flags)
            while !stop.value {
                if chunk.withUnsafeBytes({ Glibc.send(flooder, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) < 0 { usleep(1000) }
            }
        }
        usleep(200_000)  // the echo of the flood has filled the server's queue for it
        let clients = try (0..<999).map { _ in try connectToLoopback(port: server.port) }
        defer { clients.forEach { close($0) } }
        var answered = 0
        var wrong: [String] = []
        for round in 0..<5 {
            for (index, fd) in clients.enumerated() {
                try sendAll(fd, [UInt8(round)])
                let reply = try readExactly(fd, 1)
                if reply == [UInt8(round)] { answered += 1 } else { wrong.append("client \(index), round \(round): \(reply)") }
            }
        }
        stop.update { $0 = true }
        flood.join()
        #expect(answered == 5 * 999, "\(wrong.prefix(3))")
        // The flooder was held back, not cut off: its echo waits unread, and no end of file or reset came.
        var byte: UInt8 = 0
        #expect(recv(flooder, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 1 && byte == 0x5A, "the flooder's connection ended (errno \(errno))")
    }
}

/// Floods its stream with 16 MiB on "flood" and closes it on "close"; otherwise echoes.
private final class FloodThenEcho: ResourceHandler {
    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        guard case .received(let bytes) = event else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("flood") {
            stream.write([UInt8](repeating: 0x41, count: 16 << 20))
        } else if text.hasPrefix("close") {
            stream.close()
        } else {
            stream.write(bytes)
        }
    }
}

/// Echoes each chunk, then stops reading until the next turn: every receive
/// is cancelled with completions possibly under way.
private final class PausingEcho: ResourceHandler {
    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            stream.write(bytes)
            stream.setReading(false)
            context.schedule(after: .zero, for: stream)
        case .timerFired:
            stream.setReading(true)
        default:
            break
        }
    }
}

