// The edges a socket can reach (libuv's list): refused, timed out, half-closed
// both ways, aborted, written to from another thread, pushed back, flushed.
import Dispatch
import Reactor
import ReactorTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Socket edges")
struct SocketEdgeTests {
    @Test("connecting to a closed port reports ECONNREFUSED with the address", arguments: Backend.underTest)
    func connectionRefused(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            // A port that was just free: bind, read it back, close.
            let fds = Descriptors()
            let port = try fds.tcpListener().port
            fds.closeAll()
            var reason: DisconnectReason?
            var connected = false
            let service = ScriptedService()
            service.onEvent = { event, _, _ in if case .connected = event { connected = true } }
            service.onDisconnect = { _, _, why, context in reason = why; context.stop() }
            try runHere(P.self, service) { context in
                try context.register(try SocketStream.connect(to: .loopback(port: port)))
            }
            #expect(!connected)
            guard case .failed(let error)? = reason else { Issue.record("expected a failure, got \(String(describing: reason))"); return }
            #expect(error.errno == .connectionRefused)
            #expect(error.description == "connect(127.0.0.1:\(port)): ECONNREFUSED (Connection refused)")
        }
        try body(pollerType(of: backend))
    }

    @Test("a connect that gets no answer fails with ETIMEDOUT after its timeout", arguments: Backend.underTest)
    func connectTimeout(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            // A listener that never accepts, its backlog filled: the kernel
            // drops further SYNs, so the next connect hangs.
            let fds = Descriptors()
            defer { fds.closeAll() }
            let (listener, port) = try fds.tcpListener(backlog: 0)
            _ = listener
            var fillers: [Int32] = []
            for _ in 0..<8 { if let fd = try? fds.tcpConnectNonBlocking(port: port) { fillers.append(fd) } }
            usleep(50_000)
            var reason: DisconnectReason?
            var failedAfter: Duration?
            let start = ContinuousClock.now
            let service = ScriptedService(watchdog: .seconds(30))
            service.onDisconnect = { _, _, why, context in
                reason = why
                failedAfter = elapsed(since: start)
                context.stop()
            }
            try runHere(P.self, service) { context in
                try context.register(try SocketStream.connect(to: .loopback(port: port), timeout: .milliseconds(300)))
            }
            guard case .failed(let error)? = reason else { Issue.record("expected a timeout, got \(String(describing: reason))"); return }
            #expect(error.errno == .timedOut, "\(error)")
            #expect(error.description.contains("no answer within 0.3 seconds"), "\(error)")
            // Never before the timeout (a load only makes it later); the watchdog did not end the run.
            let took = try #require(failedAfter)
            #expect(took >= .milliseconds(290), "timed out after only \(took)")
            #expect(!service.watchdogFired)
        }
        try body(pollerType(of: backend))
    }

    @Test("half-close both ways: each side reads the other's end of file and can still write", arguments: Backend.underTest)
    func halfCloseBothWays(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var clientID: ResourceID?
            var serverID: ResourceID?
            var log: [String] = []
            var clientGot: [UInt8] = []
            var serverGot: [UInt8] = []
            let service = ScriptedService()
            service.onEvent = { event, id, context in
                let side = id == clientID ? "client" : "server"
                switch event {
                case .accepted(let stream):
                    serverID = stream.id
                case .connected:
                    let client = context.resource(id, as: SocketStream.self)
                    client?.write(Array("request".utf8))
                    client?.shutdownWrite()  // the client is done sending, not done reading
                case .received(let bytes):
                    if side == "client" { clientGot += bytes } else { serverGot += bytes }
                case .readClosed:
                    log.append("\(side) readClosed")
                    if side == "server" {
                        // The reply goes out after the client's half-close, then the server half-closes too.
                        let server = context.resource(id, as: SocketStream.self)
                        server?.write(Array("response".utf8))
                        server?.shutdownWrite()
                    } else {
                        context.resource(id, as: SocketStream.self)?.closeWhenFlushed()
                        if let serverID { context.resource(serverID)?.close() }
                        context.stop()
                    }
                default:
                    break
                }
            }
            service.onDisconnect = { id, _, why, _ in log.append("\(id) disconnected: \(why)") }
            try runHere(P.self, service) { context in
                // Both sides opt in: by default a stream closes at the peer's end of file.
                let halfOpen = StreamOptions(allowRemoteHalfClosure: true)
                let listener = try SocketListener(bindingTo: .loopback(port: 0), connectionOptions: halfOpen)
                try context.register(listener)
                clientID = try context.register(try SocketStream.connect(to: .loopback(port: listener.localAddress.port), options: halfOpen))
            }
            #expect(serverGot == Array("request".utf8))
            #expect(clientGot == Array("response".utf8))
            #expect(log == ["server readClosed", "client readClosed"])
        }
        try body(pollerType(of: backend))
    }

    @Test("abort() resets the connection: the peer fails with ECONNRESET", arguments: Backend.underTest)
    func abortResets(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var clientID: ResourceID?
            var reason: DisconnectReason?
            let service = ScriptedService()
            service.onEvent = { event, id, context in
                switch event {
                case .accepted(let stream):
                    stream.write(Array(repeating: 7, count: 100))  // unread by the client: still aborts
                case .connected:
                    // Wait for the server side to exist, then reset from the client.
                    context.schedule(after: .milliseconds(20))
                default:
                    break
                }
            }
            service.onTimer = { _, context in context.resource(clientID!, as: SocketStream.self)?.abort() }
            service.onDisconnect = { id, _, why, context in
                if id != clientID { reason = why; context.stop() }
            }
            try runHere(P.self, service) { context in
                let listener = try SocketListener(bindingTo: .loopback(port: 0))
                try context.register(listener)
                clientID = try context.register(try SocketStream.connect(to: .loopback(port: listener.localAddress.port)))
            }
            guard case .failed(let error)? = reason else { Issue.record("expected a reset, got \(String(describing: reason))"); return }
            #expect(error.errno == .connectionReset, "\(error)")
        }
        try body(pollerType(of: backend))
    }

    @Test("IPv6 listener on ::1; accepted connections inherit the listener's options and handler", arguments: Backend.underTest)
    func ipv6AndInheritance(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let listener: SocketListener
            do {
                listener = try SocketListener(bindingTo: .loopbackIPv6(port: 0),
                                           connectionOptions: StreamOptions(keepAlive: .init(idle: .seconds(30)), highWatermark: 4096, lowWatermark: 1024))
            } catch {
                // Only a machine with IPv6 disabled gets here; say so rather than pass silently.
                Issue.record("IPv6 loopback unavailable: \(error)")
                return
            }
            let handler = RecordingHandler()
            listener.connectionHandler = { _ in handler }
            var accepted: SocketStream?
            var keepAlive: Int32 = 0
            var noDelay: Int32 = 0
            let service = ScriptedService()
            service.onEvent = { event, _, _ in
                if case .accepted(let stream) = event {
                    accepted = stream
                    // Read while the socket is open (the runtime closes it when it ends).
                    var length = socklen_t(4)
                    getsockopt(stream.fd.rawValue, SOL_SOCKET, SO_KEEPALIVE, &keepAlive, &length)
                    getsockopt(stream.fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length)
                }
                if case .connected = event {} else if case .accepted = event {} else { Issue.record("the Service got \(event)") }
            }
            try runHere(P.self, service) { context in
                try context.register(listener)
                let client = try SocketStream.connect(to: .loopbackIPv6(port: listener.localAddress.port))
                client.write(Array("over v6".utf8))
                try context.register(client)
            }
            #expect(listener.localAddress.description == "[::1]:\(listener.localAddress.port)")
            #expect(handler.events == ["over v6"], "the accepted connection's events go to the inherited handler")
            let stream = try #require(accepted)
            #expect(stream.highWatermark == 4096 && stream.lowWatermark == 1024)
            #expect(keepAlive == 1, "keep-alive from the listener's connection options")
            #expect(noDelay == 1, "TCP_NODELAY is on by default")
        }
        try body(pollerType(of: backend))
    }

    @Test("push-back: unconsumed bytes are delivered again, before later data", arguments: Backend.underTest)
    func pushBack(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var deliveries: [String] = []
            var clientID: ResourceID?
            let service = ScriptedService()
            service.onEvent = { event, id, context in
                switch event {
                case .accepted(let stream):
                    _ = stream
                case .connected:
                    context.resource(id, as: SocketStream.self)?.write(Array("one|two".utf8))
                case .received(let bytes) where id != clientID:
                    let text = String(decoding: bytes, as: UTF8.self)
                    deliveries.append(text)
                    let stream = context.resource(id, as: SocketStream.self)
                    if let bar = text.firstIndex(of: "|") {
                        // Consume the first message, hand the rest back.
                        stream?.pushBack(Array(text[text.index(after: bar)...].utf8))
                    } else if text == "two" {
                        context.resource(clientID!, as: SocketStream.self)?.write(Array("three".utf8))
                    } else {
                        context.stop()
                    }
                default:
                    break
                }
            }
            try runHere(P.self, service) { context in
                let listener = try SocketListener(bindingTo: .loopback(port: 0))
                try context.register(listener)
                clientID = try context.register(try SocketStream.connect(to: .loopback(port: listener.localAddress.port)))
            }
            #expect(deliveries == ["one|two", "two", "three"])
        }
        try body(pollerType(of: backend))
    }

    @Test("Controller.write from other threads reaches the connection, in order per thread", arguments: Backend.underTest)
    func writeFromAnotherThread(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let received = Shared<[UInt8]>([])
            let serverSide = Shared<ResourceID?>(nil)
            let controller = try Runtime<P, WriteTarget>.spawn(name: "edge") { WriteTarget(received, serverSide) }
            defer { controller.shutdown(); controller.join(timeout: .seconds(5)) }
            #expect(eventually { serverSide.value != nil }, "the connection was not accepted")
            let id = try #require(serverSide.value)

            // 4 threads × 200 writes, each tagged with its thread and sequence number.
            let threads = try (0..<4).map { thread in
                try TestThread {
                    for sequence in 0..<200 {
                        try? controller.write(Array("\(thread):\(sequence);".utf8), to: id)
                    }
                }
            }
            threads.forEach { $0.join() }
            let expectedLength = (0..<4).reduce(0) { total, thread in
                total + (0..<200).reduce(0) { $0 + "\(thread):\($1);".utf8.count }
            }
            #expect(eventually(within: .seconds(5)) { received.value.count >= expectedLength })
            var next = [Int](repeating: 0, count: 4)
            for item in String(decoding: received.value, as: UTF8.self).split(separator: ";") {
                let parts = item.split(separator: ":").compactMap { Int($0) }
                guard parts.count == 2, (0..<4).contains(parts[0]) else { Issue.record("garbled: \(item)"); return }
                #expect(parts[1] == next[parts[0]], "thread \(parts[0]) out of order")
                next[parts[0]] = parts[1] + 1
            }
            #expect(next == [200, 200, 200, 200])
        }
        try body(pollerType(of: backend))
    }
}

/// Runs a listener and a client to it; publishes the accepted connection's
/// id and collects what the client receives.
private final class WriteTarget: Service {
    let received: Shared<[UInt8]>
    let serverSide: Shared<ResourceID?>
    var clientID: ResourceID?
    init(_ received: Shared<[UInt8]>, _ serverSide: Shared<ResourceID?>) {
        self.received = received
        self.serverSide = serverSide
    }

    func runtimeStarted(context: Context) {
        attempt {
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            try context.register(listener)
            clientID = try context.register(try SocketStream.connect(to: .loopback(port: listener.localAddress.port)))
        }
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        guard let id = resource.id else { return }
        switch event {
        case .accepted(let stream): serverSide.update { $0 = stream.id }
        case .received(let bytes) where id == clientID: received.update { $0 += bytes }
        default: break
        }
    }
}

/// A per-connection handler that records what it receives and stops the runtime.
private final class RecordingHandler: ResourceHandler {
    var events: [String] = []
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        if case .received(let bytes) = event {
            events.append(String(decoding: bytes, as: UTF8.self))
            context.stop()
        }
    }
}
