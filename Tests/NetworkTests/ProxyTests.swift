// The proxy's edges with real sockets on both sides: an upstream that refuses,
// half-closes passing through in each direction, resets passing through, and
// a client that stops reading while the upstream keeps sending.
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Proxy")
struct ProxyTests {
    static func startProxy(_ backend: Backend, upstream port: UInt16) throws -> ServerThread {
        try ServerThread(backend, name: "proxy-\(backend)", makeService: {
            ProxyService(configuration: ProxyConfiguration(upstream: .loopback(port: port), connectTimeout: .seconds(2)))
        }) { _, context throws(ReactorError) in
            try listen(context).localAddress.port
        }
    }

    /// A port nothing listens on: bound, then closed.
    static func deadPort() throws -> UInt16 {
        let listener = try PlainListener()
        return listener.port
    }

    @Test("an upstream that refuses: the client is reset, not left hanging", arguments: Backend.underTest)
    func refusedUpstream(_ backend: Backend) throws {
        let server = try Self.startProxy(backend, upstream: try Self.deadPort())
        defer { try? server.stop() }
        let client = try LineClient(port: server.port)
        // The client only reads: had it sent first, its send could meet the
        // reset and consume the socket's error, leaving the read a plain end
        // of file (this raced on a slower CI machine).
        let error = #expect(throws: TestFailure.self) { _ = try client.readToEnd() }
        #expect(error?.description.contains("Connection reset by peer") == true, "\(error.map { "\($0)" } ?? "no error")")
        #expect(eventually { (try? server.inspect { $0.resourceCount }) == 1 }, "only the listener remains")
    }

    @Test("half-close passes through: the client finishes first, then the upstream answers and finishes", arguments: Backend.underTest)
    func clientHalfClose(_ backend: Backend) throws {
        let upstream = try PlainListener()
        let server = try Self.startProxy(backend, upstream: upstream.port)
        defer { try? server.stop() }
        let client = try LineClient(port: server.port)
        let far = try upstream.accept()
        try client.send("request")
        client.shutdownWrite()
        #expect(try far.readLine() == "request")
        #expect(try far.readLine() == nil, "the client's end of file reaches the upstream")
        try far.send("reply after the client finished")
        far.shutdownWrite()
        #expect(try client.readLine() == "reply after the client finished")
        #expect(try client.readLine() == nil)
        #expect(eventually { (try? server.inspect { $0.resourceCount }) == 1 }, "both legs closed; only the listener remains")
    }

    @Test("half-close passes through: the upstream finishes first, the client keeps sending", arguments: Backend.underTest)
    func upstreamHalfClose(_ backend: Backend) throws {
        let upstream = try PlainListener()
        let server = try Self.startProxy(backend, upstream: upstream.port)
        defer { try? server.stop() }
        let client = try LineClient(port: server.port)
        let far = try upstream.accept()
        try far.send("banner")
        far.shutdownWrite()
        #expect(try client.readLine() == "banner")
        #expect(try client.readLine() == nil, "the upstream's end of file reaches the client")
        try client.send("still talking")
        #expect(try far.readLine() == "still talking")
        client.shutdownWrite()
        #expect(try far.readLine() == nil)
        #expect(eventually { (try? server.inspect { $0.resourceCount }) == 1 }, "both legs closed; only the listener remains")
    }

    @Test("a reset on one side resets the other", arguments: Backend.underTest)
    func resetPassesThrough(_ backend: Backend) throws {
        let upstream = try PlainListener()
        let server = try Self.startProxy(backend, upstream: upstream.port)
        defer { try? server.stop() }
        let client = try LineClient(port: server.port)
        let far = try upstream.accept()
        try client.send("hello")
        #expect(try far.readLine() == "hello")
        far.reset()
        let error = #expect(throws: TestFailure.self) { _ = try client.readToEnd() }
        #expect(error?.description.contains("Connection reset by peer") == true, "\(error.map { "\($0)" } ?? "no error")")
        #expect(eventually { (try? server.inspect { $0.resourceCount }) == 1 }, "only the listener remains")
    }

    @Test("a client that stops reading: the proxy pauses the upstream instead of buffering without bound", arguments: Backend.underTest)
    func backPressure(_ backend: Backend) throws {
        let upstream = try PlainListener()
        let server = try Self.startProxy(backend, upstream: upstream.port)
        defer { try? server.stop() }
        let client = try LineClient(port: server.port, receiveBuffer: 4096)
        let far = try upstream.accept()
        // The upstream writes 32 MiB without blocking as long as the proxy takes it.
        setNonBlocking(far.fd)
        let block = [UInt8](repeating: 0x61, count: 64 << 10)
        var written = 0
        var largestQueue = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while written < 32 << 20 && ContinuousClock.now < deadline {
            let n = block.withUnsafeBytes { send(far.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { written += n; continue }
            // The upstream's socket is full: is the proxy still taking bytes?
            usleep(20_000)
            largestQueue = max(largestQueue, try largestProxyQueue(server))
            let m = block.withUnsafeBytes { send(far.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if m > 0 { written += m } else { break }
        }
        largestQueue = max(largestQueue, try largestProxyQueue(server))
        print("proxy/\(backend): upstream wrote \(written) bytes before the proxy stopped reading; largest queue \(largestQueue)")
        let bound = StreamOptions().highWatermark + (64 << 10)
        #expect(written < 32 << 20, "the proxy kept reading from the upstream while its client read nothing")
        #expect(largestQueue <= bound, "the client's queue reached \(largestQueue) bytes; bound \(bound)")
        #expect(largestQueue > 0)
        withExtendedLifetime(client) {}
    }

    func largestProxyQueue(_ server: ServerThread) throws -> Int {
        try server.inspect { context in
            context.resources.compactMap { ($0 as? SocketStream)?.queuedByteCount }.max() ?? 0
        }
    }

    func setNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
}
