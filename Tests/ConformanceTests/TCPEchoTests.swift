// TCP through the runtime on loopback: listener on 127.0.0.1:0, connect,
// a large transfer each way (exercising the write queue), half-close.
import Dispatch
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("TCP echo")
struct TCPEchoTests {
    /// 1 MiB with a pattern that shows misordered or missing bytes.
    static let payload: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }

    @Test("echo in one runtime: client sends 1 MiB and shuts down writing; server sees readClosed, echoes, closes",
          arguments: Backend.underTest)
    func echoWithHalfClose(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let payload = TCPEchoTests.payload
            var listenerID: ResourceID?
            var clientID: ResourceID?
            var serverID: ResourceID?
            var connected = false
            var queuedAtShutdown = 0
            var serverBytes: [UInt8] = []
            var serverSawReadClosed = false
            var serverHadAllBeforeReadClosed = false
            var clientBytes: [UInt8] = []
            var clientFinished = false
            var failures: [String] = []

            let service = ScriptedService()
            service.onStart = { context in
                attempt {
                    let listener = try #require(context.resource(listenerID!, as: SocketListener.self))
                    let port = listener.localAddress.port
                    #expect(port != 0 && listener.localAddress.host == "127.0.0.1")
                    // Small buffers both ways, so 1 MiB cannot go out in one write:
                    // the write queue, write interest and a deferred shutdown are exercised.
                    setBufferSize(listener.fd.rawValue, SO_RCVBUF, 16 * 1024)
                    let client = try SocketStream.connect(to: .loopback(port: port))
                    setBufferSize(client.fd.rawValue, SO_SNDBUF, 16 * 1024)
                    clientID = try context.register(client)
                }
            }
            service.onEvent = { event, id, context in
                switch event {
                case .accepted(let stream):
                    #expect(id == listenerID)
                    #expect(serverID == nil, "one connection only")
                    serverID = stream.id
                case .connected:
                    #expect(id == clientID)
                    connected = true
                    guard let client = context.resource(id, as: SocketStream.self) else { return }
                    client.write(payload)
                    queuedAtShutdown = client.queuedByteCount
                    client.shutdownWrite()
                case .received(let bytes) where id == serverID:
                    serverBytes += bytes
                case .readClosed where id == serverID:
                    serverSawReadClosed = true
                    serverHadAllBeforeReadClosed = serverBytes.count == payload.count
                    guard let server = context.resource(id, as: SocketStream.self) else { return }
                    server.write(serverBytes)  // the write side is still open: half-close
                    server.closeWhenFlushed()
                case .received(let bytes) where id == clientID:
                    clientBytes += bytes
                case .readClosed where id == clientID:
                    clientFinished = true
                    context.stop()
                default:
                    failures.append("\(event) from \(id)")
                }
            }
            service.onDisconnect = { id, _, reason, context in
                if id == clientID {
                    if case .failed = reason { failures.append("client: \(reason)") }
                    clientFinished = true
                    context.stop()
                } else if id == serverID {
                    if case .failed = reason { failures.append("server: \(reason)") }
                } else {
                    failures.append("\(id) disconnected: \(reason)")
                }
            }
            try runHere(P.self, service) { context in
                listenerID = try context.register(try SocketListener(bindingTo: .loopback(port: 0)))
            }
            #expect(failures.isEmpty)
            #expect(connected)
            #expect(queuedAtShutdown > 0, "the payload went out at once: the write queue was not exercised")
            #expect(serverSawReadClosed, "the server never saw the client's half-close")
            #expect(serverHadAllBeforeReadClosed, "readClosed came before all the data (\(serverBytes.count) bytes)")
            #expect(clientFinished)
            // Compared as a Bool: a failing `==` on megabyte arrays makes the
            // test library compute a diff for a very long time.
            #expect(clientBytes.count == payload.count, "echoed \(clientBytes.count) of \(payload.count) bytes")
            let sameEcho = clientBytes == payload
            #expect(sameEcho, "the echo differs from byte \(firstDifference(clientBytes, payload))")
        }
        try body(pollerType(of: backend))
    }

    @Test("echo to a plain blocking client on another thread", arguments: Backend.underTest)
    func echoToExternalClient(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            let port = listener.localAddress.port
            let message = Array("hello through the reactor\n".utf8)
            let reply = Shared<Result<[UInt8], TestFailure>?>(nil)
            var client: TestThread?
            var sawReadClosed = false

            let service = ScriptedService()
            service.onStart = { _ in
                attempt {
                    client = try TestThread {
                        reply.update { $0 = blockingExchange(port: port, sending: message) }
                    }
                }
            }
            service.onEvent = { event, id, context in
                switch event {
                case .accepted(let stream):
                    _ = stream
                case .received(let bytes):
                    context.resource(id, as: SocketStream.self)?.write(bytes.buffer)
                case .readClosed:
                    sawReadClosed = true
                    context.resource(id, as: SocketStream.self)?.closeWhenFlushed()
                    context.stop()  // a graceful stop still flushes the echo
                default:
                    break
                }
            }
            try runHere(P.self, service) { context in try context.register(listener) }
            client?.join()
            #expect(sawReadClosed)
            switch reply.value {
            case .success(let bytes)?: #expect(bytes == message)
            case .failure(let error)?: Issue.record("client: \(error)")
            case nil: Issue.record("the client did not finish")
            }
        }
        try body(pollerType(of: backend))
    }
}

func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
}

func setBufferSize(_ fd: Int32, _ option: Int32, _ size: Int32) {
    var size = size
    setsockopt(fd, SOL_SOCKET, option, &size, socklen_t(MemoryLayout<Int32>.size))
}

/// Connects, sends `bytes`, shuts down writing, and reads until end of file
/// (with a 5 s receive timeout so a broken server cannot hang the test).
func blockingExchange(port: UInt16, sending bytes: [UInt8]) -> Result<[UInt8], TestFailure> {
    let fds = Descriptors()
    defer { fds.closeAll() }
    do {
        let fd = try fds.tcpConnect(port: port)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { return .failure(TestFailure("send returned \(sent)")) }
        shutdown(fd, Int32(SHUT_WR))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return .success(received) }
            if n < 0 { return .failure(TestFailure("recv: errno \(errno) after \(received.count) bytes")) }
            received += buffer[..<n]
        }
    } catch {
        return .failure(TestFailure("\(error)"))
    }
}
