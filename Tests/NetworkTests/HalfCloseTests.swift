// A peer's end of file, as a handler that ignores it sees it: by default the
// stream answers what it was sent, then closes by itself; a stream that
// opts in to half-closure stays open for its handler to finish.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Answers every read with the same bytes and ignores everything else,
/// `.readClosed` included.
final class CarelessEcho: ResourceHandler {
    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        if case .received(let bytes) = event { stream.write(bytes) }
    }
}

/// On `.readClosed`, writes `late` after 20 ms and then closes: possible only
/// on a stream that allows half-closure.
final class LateReplier: ResourceHandler {
    private var pending: [TimerID: SocketStream] = [:]

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .readClosed:
            if let timer = context.schedule(after: .milliseconds(20), for: stream) { pending[timer] = stream }
        case .timerFired(let timer):
            guard let stream = pending.removeValue(forKey: timer) else { return }
            stream.write(Array("late".utf8))
            stream.closeWhenFlushed()
        default:
            break
        }
    }
}

@Suite("Half-close")
struct HalfCloseTests {
    @Test("1,000 connections half-close against a handler that ignores it: each is answered and closed, none is left",
          arguments: Backend.underTest)
    func ignoredReadClosedDoesNotLeak(_ backend: Backend) throws {
        let server = try ServerThread(backend, name: "careless-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: CarelessEcho()).localAddress.port
        }
        defer { try? server.stop() }
        for round in 0..<10 {
            // 100 at a time, all half-closed before any is read: the server sees them together.
            var clients: [Int32] = []
            defer { clients.forEach { _ = close($0) } }
            for i in 0..<100 {
                let fd = try connectToLoopback(port: server.port)
                clients.append(fd)
                var byte = UInt8(truncatingIfNeeded: round * 100 + i)
                _ = send(fd, &byte, 1, Int32(MSG_NOSIGNAL))
                shutdown(fd, Int32(SHUT_WR))
            }
            for (i, fd) in clients.enumerated() {
                // The reply, then the server's end of file: it closed a stream its handler forgot.
                let reply = try readToEnd(fd, timeout: .seconds(10))
                #expect(reply == [UInt8(truncatingIfNeeded: round * 100 + i)])
            }
        }
        var open = -1
        let settled = eventually(within: .seconds(5)) {
            open = (try? server.inspect { $0.resourceCount }) ?? -1
            return open == 1
        }
        #expect(settled, "only the listener should remain; \(open) resources are registered")
    }

    @Test("a stream that allows half-closure stays open after the peer's end of file, for its handler to finish",
          arguments: Backend.underTest)
    func optedInHalfClosureStaysOpen(_ backend: Backend) throws {
        let server = try ServerThread(backend, name: "late-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, options: StreamOptions(allowRemoteHalfClosure: true), handler: LateReplier()).localAddress.port
        }
        defer { try? server.stop() }
        let fd = try connectToLoopback(port: server.port)
        defer { close(fd) }
        shutdown(fd, Int32(SHUT_WR))
        #expect(try readToEnd(fd, timeout: .seconds(10)) == Array("late".utf8))
    }
}
