// Message channels over loopback TCP on every backend: a line server behind
// a listener, a length-prefixed round trip between two channels, and
// oversized frames that end the connection with a clear reason.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("MessageChannel")
struct MessageChannelTests {
    @Test("line server: lines sent in odd chunk sizes come back uppercased, the last one without a newline too",
          arguments: Backend.underTest)
    func lineServer(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            let port = listener.localAddress.port
            let clientCount = 3
            var closes: [DisconnectReason] = []
            var channels: [WeakChannel] = []
            var messagesSeen = 0
            listener.connectionHandler = MessageChannel.connectionHandler(codec: LineCodec(), onMessage: { line, channel, _ in
                messagesSeen += 1
                channel.send(line.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })
            }, onClose: { reason, _, context in
                closes.append(reason)
                if closes.count == clientCount { context.stop() }
            }, configure: { channel in
                channels.append(WeakChannel(channel))
            })

            let lines = MessageChannelTests.lines
            var request = lines.dropLast().map { $0.count % 3 == 0 ? $0 + "\r\n" : $0 + "\n" }.joined()
            request += lines.last!  // ended by the client's half-close, not a newline
            let requestBytes = Array(request.utf8)
            // ASCII letters only, as the server does: "é" stays "é".
            let expected = lines.flatMap { Array($0.utf8).map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 } + [0x0A] }
            let chunkings: [[Int]] = [[1], [1, 2, 3, 5, 7, 11, 13, 17, 31, 64, 127, 1000], [4096, 3, 999]]
            let replies = Shared<[Int: Result<[UInt8], TestFailure>]>([:])
            var clients: [TestThread] = []

            let service = ScriptedService(watchdog: .seconds(20))
            service.onStart = { _ in
                attempt {
                    for index in 0..<clientCount {
                        clients.append(try TestThread {
                            let reply = chunkedExchange(port: port, sending: requestBytes, chunkSizes: chunkings[index])
                            replies.update { $0[index] = reply }
                        })
                    }
                }
            }
            service.onWatchdog = { Issue.record("\(closes.count) of \(clientCount) connections closed") }
            try runHere(P.self, service) { context in try context.register(listener) }
            for client in clients { client.join() }

            #expect(messagesSeen == lines.count * clientCount)
            for index in 0..<clientCount {
                switch replies.value[index] {
                case .success(let reply)?:
                    #expect(reply == expected, "client \(index) (chunks of \(chunkings[index])) got \(String(decoding: reply, as: UTF8.self).debugDescription)")
                case .failure(let error)?: Issue.record("client \(index): \(error)")
                case nil: Issue.record("client \(index) did not finish")
                }
            }
            #expect(closes.count == clientCount)
            for reason in closes {
                if case .failed = reason { Issue.record("a connection ended with \(reason)") }
            }
            #expect(!service.calls.contains { if case .disconnected = $0 { true } else { false } },
                    "a connection's end reached the Service instead of its channel")
            #expect(channels.count == clientCount)
            #expect(channels.allSatisfy { $0.object == nil }, "a channel outlived its connection (a reference cycle)")
        }
        try body(pollerType(of: backend))
    }

    static let lines: [String] = {
        var lines = ["hello", "", "Mixed Case 123", "tabs\tand spaces ", "émoji 🎉 stays"]
        for index in 0..<200 { lines.append("line \(index) " + String(repeating: "abc", count: index % 40)) }
        lines.append(String(repeating: "long", count: 2500))
        lines.append("the end")
        return lines
    }()

    @Test("length-prefixed round trip: 1,000 messages of up to 100 KiB, exact content both ways", arguments: Backend.underTest)
    func lengthPrefixedRoundTrip(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let payloads = MessageChannelTests.payloads
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            let port = listener.localAddress.port
            var serverReceived = 0
            var serverMismatches: [Int] = []
            var serverClose: DisconnectReason?
            var serverChannel = WeakChannel(nil)
            var clientClose: DisconnectReason?
            listener.connectionHandler = MessageChannel.connectionHandler(codec: LengthPrefixedCodec(), onMessage: { payload, channel, _ in
                if serverReceived >= payloads.count || !same(payload, payloads[serverReceived]) {
                    serverMismatches.append(serverReceived)
                }
                serverReceived += 1
                channel.send(payload)  // echo
            }, onClose: { reason, _, context in
                serverClose = reason
                if clientClose != nil { context.stop() }
            }, configure: { channel in
                serverChannel = WeakChannel(channel)
            })

            weak var weakClient: MessageChannel<LengthPrefixedCodec>?
            var sent = 0
            var clientReceived = 0
            var clientMismatches: [Int] = []
            var connected = false
            var pauses = 0

            // Sends until the stream's queue passes its high watermark; resumes on writableAgain.
            func pump(_ channel: MessageChannel<LengthPrefixedCodec>) {
                while sent < payloads.count {
                    if channel.stream.isAboveHighWatermark { pauses += 1; return }
                    channel.send(payloads[sent])
                    sent += 1
                }
            }

            let service = ScriptedService(watchdog: .seconds(60))
            service.onStart = { context in
                attempt {
                    let stream = try SocketStream.connect(to: .loopback(port: port))
                    let channel = MessageChannel(stream: stream, codec: LengthPrefixedCodec(), onMessage: { payload, channel, _ in
                        if clientReceived >= payloads.count || !same(payload, payloads[clientReceived]) {
                            clientMismatches.append(clientReceived)
                        }
                        clientReceived += 1
                        if clientReceived == payloads.count { channel.close() }
                    }, onClose: { reason, _, context in
                        clientClose = reason
                        if serverClose != nil { context.stop() }
                    })
                    channel.onConnected = { _, _ in connected = true }
                    channel.onWritableAgain = { channel, _ in pump(channel) }
                    try context.register(channel.stream)
                    pump(channel)  // queued until the connection completes
                    weakClient = channel
                }
            }
            service.onWatchdog = {
                Issue.record("sent \(sent), server got \(serverReceived), client got \(clientReceived) of \(payloads.count)")
            }
            try runHere(P.self, service) { context in try context.register(listener) }

            #expect(connected)
            #expect(sent == payloads.count)
            #expect(pauses > 0, "the high watermark was never reached: back-pressure went untested")
            #expect(serverReceived == payloads.count)
            #expect(serverMismatches.isEmpty, "the server got wrong messages at \(serverMismatches.prefix(5))")
            #expect(clientReceived == payloads.count)
            #expect(clientMismatches.isEmpty, "the client got wrong echoes at \(clientMismatches.prefix(5))")
            if case .closed? = clientClose {} else { Issue.record("client ended with \(String(describing: clientClose))") }
            if case .closed? = serverClose {} else { Issue.record("server ended with \(String(describing: serverClose))") }
            #expect(weakClient == nil, "the client channel outlived its connection")
            #expect(serverChannel.object == nil, "the server channel outlived its connection")
        }
        try body(pollerType(of: backend))
    }

    /// 1,000 payloads of pseudo-random sizes from 0 to 100 KiB; bytes depend
    /// on index and offset so a misplaced or mixed-up message shows.
    static let payloads: [[UInt8]] = {
        var random = SplitMix64(seed: 0x5EED_C0DE)
        var sizes = (0..<1000).map { _ in Int(random.next() % UInt64(100 * 1024 + 1)) }
        sizes[0] = 0
        sizes[1] = 100 * 1024
        return sizes.enumerated().map { index, size in
            [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                var state = UInt32(truncatingIfNeeded: index &* 2_654_435_761)
                for offset in 0..<size {
                    state = state &* 1_103_515_245 &+ 12345
                    buffer[offset] = UInt8(truncatingIfNeeded: state >> 16)
                }
                count = size
            }
        }
    }()

    @Test("a length-prefixed frame above the maximum ends the connection with the reason", arguments: Backend.underTest)
    func oversizedFrame(_ backend: Backend) throws {
        var request: [UInt8] = [0x00, 0x1E, 0x84, 0x80]  // declares 2,000,000 bytes
        request += [UInt8](repeating: 0x55, count: 1000)
        try oversized(backend, codec: LengthPrefixedCodec(maximumFrameSize: 1_048_576), sending: request,
                      expected: "frame of 2000000 bytes exceeds the maximum of 1048576")
    }

    @Test("a line above the maximum ends the connection before its newline arrives", arguments: Backend.underTest)
    func oversizedLine(_ backend: Backend) throws {
        try oversized(backend, codec: LineCodec(maximumLineLength: 8192), sending: [UInt8](repeating: 0x61, count: 10_000),
                      expected: "line of more than 8192 bytes without a newline")
    }

    /// A raw client sends `bytes`; the server's channel must fail with
    /// `decode(resource #n): <expected>` and the client must see its connection end.
    func oversized<C: Codec>(_ backend: Backend, codec: C, sending bytes: [UInt8], expected: String) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            let port = listener.localAddress.port
            var serverID: ResourceID?
            var serverClose: DisconnectReason?
            var serverMessages = 0
            var serverChannel = WeakChannel(nil)
            var clientID: ResourceID?
            var clientEnded = false
            listener.connectionHandler = MessageChannel.connectionHandler(codec: codec, onMessage: { _, _, _ in
                serverMessages += 1
            }, onClose: { reason, channel, context in
                serverID = channel.id
                serverClose = reason
                if clientEnded { context.stop() }
            }, configure: { channel in
                serverChannel = WeakChannel(channel)
            })

            let service = ScriptedService()
            service.onStart = { context in
                attempt {
                    let client = try SocketStream.connect(to: .loopback(port: port))
                    client.write(bytes)
                    clientID = try context.register(client)
                }
            }
            service.onEvent = { event, id, context in
                guard id == clientID else { return }
                if case .readClosed = event {
                    clientEnded = true
                    context.resource(id)?.close()
                    if serverClose != nil { context.stop() }
                }
            }
            service.onDisconnect = { id, _, reason, context in
                // A reset is as good as end of file: the server closed with our bytes unread.
                guard id == clientID else { Issue.record("\(id) disconnected: \(reason)"); return }
                clientEnded = true
                if serverClose != nil { context.stop() }
            }
            try runHere(P.self, service) { context in try context.register(listener) }

            #expect(serverMessages == 0)
            #expect(clientEnded, "the client's connection did not end")
            guard case .failed(let error)? = serverClose else {
                Issue.record("the server channel ended with \(String(describing: serverClose))")
                return
            }
            #expect(error.operation == "decode")
            #expect(error.detail == expected)
            if let serverID {
                #expect(error.subject == .resource(serverID))
                #expect(error.description == "decode(resource \(serverID)): \(expected)")
            } else {
                Issue.record("the channel had no id in onClose")
            }
            #expect(serverChannel.object == nil, "the server channel outlived its connection")
        }
        try body(pollerType(of: backend))
    }
}

/// A channel held weakly, to check that none outlives its connection.
private struct WeakChannel {
    weak var object: AnyObject?
    init(_ object: AnyObject?) { self.object = object }
}

/// Compares without the test library's diffing (slow on large arrays).
private func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
}

/// A small deterministic generator (SplitMix64), so a failure reproduces.
private struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Connects to 127.0.0.1:`port`, sends `bytes` in chunks of `chunkSizes`
/// (cycling), each its own segment (`TCP_NODELAY`) with a short pause after
/// it so the server tends to read them separately; then shuts down writing
/// and reads until end of file (5 s receive timeout).
private func chunkedExchange(port: UInt16, sending bytes: [UInt8], chunkSizes: [Int]) -> Result<[UInt8], TestFailure> {
    let fds = Descriptors()
    defer { fds.closeAll() }
    do {
        let fd = try fds.tcpConnect(port: port)
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        var chunk = 0
        while offset < bytes.count {
            let size = min(chunkSizes[chunk % chunkSizes.count], bytes.count - offset)
            let sent = bytes[offset..<(offset + size)].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard sent > 0 else { return .failure(TestFailure("send: errno \(errno) at byte \(offset)")) }
            offset += sent
            chunk += 1
            if chunk < 400 { usleep(50) }
        }
        shutdown(fd, Int32(SHUT_WR))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
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
