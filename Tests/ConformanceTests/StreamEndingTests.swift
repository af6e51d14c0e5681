// How a stream ends, on every backend: each ending asked for while its
// connect is still in progress reaches the peer; a callback's whenFlushed
// never nests; interest changes coalesce within a turn.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An ending a handler can ask of a stream, with or without bytes queued before it.
enum Ending: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case halfClose, halfCloseAfterBytes, closeWhenFlushed, closeWhenFlushedAfterBytes, close, abort
    var testDescription: String { rawValue }
    var sendsBytes: Bool { self == .halfCloseAfterBytes || self == .closeWhenFlushedAfterBytes }
}

@Suite("Stream endings")
struct StreamEndingTests {
    @Test("every ending asked for while the connect is under way reaches the peer", arguments: Backend.underTest, Ending.allCases)
    func endingWhileConnecting(_ backend: Backend, _ ending: Ending) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let listener = try fds.tcpListener()
            var client: SocketStream?
            var peerGot: [UInt8] = []
            var peerResult = ""
            var clientGot: [UInt8] = []
            var clientEnd: String?
            var askedWhileConnecting = false

            let service = ScriptedService()
            service.onEvent = { event, _, context in
                switch event {
                case .received(let bytes): clientGot += bytes
                case .readClosed: clientEnd = "readClosed"
                default: break
                }
            }
            service.onDisconnect = { _, _, reason, context in
                clientEnd = "\(clientEnd ?? "") disconnected: \(reason)"
                context.stop()
            }
            service.onTimer = { _, context in
                // The peer's side, from the kernel's accept queue: what reached it, and how it ended.
                let peer = accept(listener.fd, nil, nil)
                guard peer >= 0 else {
                    peerResult = "no connection"
                    context.stop()
                    return
                }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                do {
                    peerGot = try readToEnd(peer, timeout: .seconds(5))
                    peerResult = "end of file"
                } catch {
                    peerResult = errno == ECONNRESET ? "reset" : "\(error)"
                }
                if ending == .halfClose || ending == .halfCloseAfterBytes {
                    // Only the client's write side is shut: it still hears the peer.
                    _ = send(peer, "back", 4, Int32(MSG_NOSIGNAL))
                }
                _ = Glibc.close(peer)
                if client?.isRegistered != true { context.stop() }
            }
            try runHere(P.self, service) { context in
                try setNonBlocking(listener.fd)
                let stream = try SocketStream.connect(to: .loopback(port: listener.port))
                client = stream
                try context.register(stream)
                askedWhileConnecting = stream.isConnecting
                if ending.sendsBytes { stream.write(Array("hello".utf8)) }
                switch ending {
                case .halfClose, .halfCloseAfterBytes: stream.shutdownWrite()
                case .closeWhenFlushed, .closeWhenFlushedAfterBytes: stream.closeWhenFlushed()
                case .close: stream.close()
                case .abort: stream.abort()
                }
                context.schedule(after: .milliseconds(100))
            }
            #expect(askedWhileConnecting, "the connect had completed before the ending was asked for")
            let stream = try #require(client)
            #expect(!stream.isRegistered && stream.isClosed, "the client stream is still open: \(clientEnd ?? "no end")")
            switch ending {
            case .halfClose, .halfCloseAfterBytes:
                #expect(peerResult == "end of file")
                #expect(peerGot == (ending.sendsBytes ? Array("hello".utf8) : []))
                #expect(clientGot == Array("back".utf8), "the half-closed client no longer heard its peer")
                #expect(clientEnd == "readClosed disconnected: closed by peer")
            case .closeWhenFlushedAfterBytes:
                #expect(peerResult == "end of file")
                #expect(peerGot == Array("hello".utf8))
            case .closeWhenFlushed, .close, .abort:
                // Closed before the handshake was seen: the peer finds nothing, an end of file, or a reset — never bytes.
                #expect(["no connection", "end of file", "reset"].contains(peerResult), "\(peerResult)")
                #expect(peerGot.isEmpty)
                #expect(clientEnd == nil, "a stream its handler closed reports no disconnect")
            }
        }
        try body(pollerType(of: backend))
    }

    @Test("whenFlushed with nothing queued runs after the callback that asked, not inside it", arguments: Backend.underTest)
    func whenFlushedDoesNotNest(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let (local, _) = try fds.socketPair()
            let stream = try PipeEnd(adopting: fds.release(local), direction: .writing)
            var order: [String] = []
            let service = ScriptedService()
            service.onStart = { context in
                stream.whenFlushed {
                    order.append("flushed")
                    context.stop()
                }
                order.append("callback returns")
            }
            try runHere(P.self, service) { context in try context.register(stream) }
            #expect(order == ["callback returns", "flushed"])
        }
        try body(pollerType(of: backend))
    }

    @Test("interest toggled within a turn costs no poller call; a real change costs one", arguments: Backend.underTest)
    func interestChangesCoalesce(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let pipe = try fds.pipe()
            let reader = Resource(fd: fds.release(pipe.reader), interest: .read)
            var updatesAfterToggle: UInt64?
            var readableAfterNone = 0
            let service = ScriptedService()
            service.onStart = { _ in
                reader.setInterest(.both)
                reader.setInterest(.none)
                reader.setInterest(.read)
            }
            service.onEvent = { event, _, _ in if case .readable = event { readableAfterNone += 1 } }
            service.onTurnEnd = { [unowned service] context in
                switch service.turnsEnded {
                case 1:
                    updatesAfterToggle = context.statistics.interestUpdates
                    reader.setInterest(.none)
                    _ = writeBytes(pipe.writer)  // readable now, but nobody asked
                case 4:
                    context.stop()
                default:
                    break
                }
            }
            let runtime = try runHere(P.self, service, options: fastTurns) { context in try context.register(reader) }
            #expect(updatesAfterToggle == 0, "a toggle back to the registered interest reached the poller")
            #expect(runtime.context.statistics.interestUpdates == 1)
            #expect(readableAfterNone == 0, "events arrived after interest went to none")
        }
        try body(pollerType(of: backend))
    }
}

@Suite("Stream socket options")
struct StreamSocketOptionTests {
    @Test("cork holds a header and a body for one segment, uncork sends them; setNoDelay sets TCP_NODELAY", arguments: Backend.underTest)
    func corkAndNoDelay(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let listener = try fds.tcpListener()
            var options: [String: Int32] = [:]
            var peerGot: [UInt8] = []
            let service = ScriptedService()
            service.onEvent = { event, id, context in
                guard case .connected = event, let stream = context.resource(id, as: SocketStream.self) else { return }
                let raw = stream.fd.rawValue
                options["nodelay by default"] = Self.option(raw, Int32(IPPROTO_TCP), TCP_NODELAY)
                stream.setNoDelay(false)
                options["nodelay off"] = Self.option(raw, Int32(IPPROTO_TCP), TCP_NODELAY)
                stream.setNoDelay(true)
                stream.cork()
                options["corked"] = Self.option(raw, Int32(IPPROTO_TCP), TCP_CORK)
                stream.write(Array("HEAD ".utf8))
                stream.write(Array("BODY".utf8))
                stream.uncork()
                options["uncorked"] = Self.option(raw, Int32(IPPROTO_TCP), TCP_CORK)
                stream.closeWhenFlushed()
                // The descriptor closes after this batch: read the peer's side on a later turn.
                context.schedule(after: .milliseconds(10))
            }
            service.onTimer = { _, context in
                attempt {
                    let peer = accept(listener.fd, nil, nil)
                    guard peer >= 0 else { throw TestFailure("accept: errno \(errno)") }
                    defer { _ = Glibc.close(peer) }
                    peerGot = try readToEnd(peer, timeout: .seconds(5))
                }
                context.stop()
            }
            try runHere(P.self, service) { context in
                try context.register(try SocketStream.connect(to: .loopback(port: listener.port)))
            }
            #expect(options["nodelay by default"] == 1 && options["nodelay off"] == 0)
            #expect(options["corked"] == 1 && options["uncorked"] == 0)
            #expect(peerGot == Array("HEAD BODY".utf8), "what was written while corked must still arrive")
        }
        try body(pollerType(of: backend))
    }

    static func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? (value != 0 ? 1 : 0) : -1
    }
}
