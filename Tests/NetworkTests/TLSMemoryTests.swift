// What TLS connections cost the server and whether it gets it back: 10,000
// handshakes started and abandoned (every one dropped by the handshake
// timeout, the resources and resident memory back to where they were), and
// the resident memory of 1,000 idle established TLS connections.
//
// Each case runs alone in a child process (MeasuredAlone), whose VmRSS is
// then the server's and its clients'; the clients are raw sockets, or
// engines freed after their handshake, so what grows is the server's.
// Memory "in use" is VmRSS after malloc_trim; without it glibc keeps what
// was freed (reported too).
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("TLS handshake flood and idle memory", .serialized)
struct TLSMemoryTests {
    static let abandoned = 10_000
    /// Connections held at once: both ends are in the process, and the hard descriptor limit here is 20,000.
    static let wave = 5_000
    static let idle = 1_000

    /// Source addresses 127.0.10.1 … 127.0.49.250, one per connection, so no one address runs short of ports.
    static func source(_ n: Int) -> String { "127.0.\(10 + n / 250).\(1 + n % 250)" }

    @Test("10,000 handshakes started and abandoned: all dropped by the handshake timeout, resources and memory back to baseline",
          .enabled(if: TLSLibrary.isBuilt),
          .enabled(if: SanitizerBuild.measuresMemory, "a sanitizer's allocator makes resident memory meaningless"),
          arguments: Backend.underTest)
    func abandonedHandshakes(_ backend: Backend) throws {
        guard try MeasuredAlone.isChosen("TLSMemoryTests/abandonedHandshakes", backend, reports: "tls flood/") else { return }
        try ensureDescriptorLimit(2 * Self.wave + 500)
        let server = try TLSEchoServer(backend, handshakeTimeout: .seconds(1), name: "tls-flood")
        defer { try? server.stop() }
        try expectEcho(port: server.port, tls: TLSFixtures.client())  // first-use allocations before the baseline
        let hello = try clientHello()
        let cleanEndings = server.waitForEndings(1).total
        let baseline = try residentMemoryInUse()
        var peak = baseline
        var unseenEnds = 0
        let start = ContinuousClock.now
        for wave in 0..<(Self.abandoned / Self.wave) {
            var fds: [Int32] = []
            defer { for fd in fds { close(fd) } }
            for i in 0..<Self.wave {
                let n = wave * Self.wave + i
                let fd = try connectToLoopback(port: server.port, from: Self.source(n))
                fds.append(fd)
                if n % 2 == 0 { try sendAll(fd, hello) }  // half send a ClientHello; half only connect
                if fds.count % 250 == 0 {
                    // In batches: wait for the server to take them, so its accept backlog never overflows.
                    let taken = n + 1
                    _ = eventually(within: .seconds(5)) { ((try? server.resourceCount()) ?? 0) - 1 + server.log.value.total - cleanEndings >= taken }
                }
            }
            peak = max(peak, try residentMemory())
            let log = server.waitForEndings(cleanEndings + (wave + 1) * Self.wave, timeout: .seconds(10))
            #expect(log.total - cleanEndings == (wave + 1) * Self.wave, "wave \(wave): \(log.counts)")
            // The runtime closes a descriptor after the batch that reported its disconnect: a moment later.
            _ = eventually(within: .seconds(2)) { countNotEnded(fds) == 0 }
            unseenEnds += countNotEnded(fds)
        }
        let took = elapsed(since: start)
        let log = server.log.value
        var open = 0
        #expect(eventually { open = (try? server.resourceCount()) ?? -1; return open == 1 }, "\(open) resources registered")
        #expect(log.count(containing: "no handshake within 1.0 seconds") == Self.abandoned, "\(log.counts)")
        #expect(unseenEnds == 0, "\(unseenEnds) clients did not see their connection end")
        let untrimmed = try residentMemory()
        let after = try residentMemoryInUse(settle: .seconds(2))
        print("""
            tls flood/\(backend): \(Self.abandoned) abandoned handshakes in \(took); RSS baseline \(megabytes(baseline)), \
            peak \(megabytes(peak)) (+\(megabytes(peak - baseline))), after \(megabytes(untrimmed)) untrimmed, \
            \(megabytes(after)) trimmed (\(megabytes(after - baseline)) over baseline)
            """)
        #expect(after - baseline < 8 << 20, "RSS \(megabytes(after - baseline)) over baseline after every connection was dropped")
        try expectEcho(port: server.port, tls: TLSFixtures.client())
    }

    @Test("memory per idle TLS connection after the handshake: 1,000 held open, beside 1,000 plain ones",
          .enabled(if: TLSLibrary.isBuilt),
          .enabled(if: SanitizerBuild.measuresMemory, "a sanitizer's allocator makes resident memory meaningless"),
          arguments: Backend.underTest)
    func idleConnections(_ backend: Backend) throws {
        guard try MeasuredAlone.isChosen("TLSMemoryTests/idleConnections", backend, reports: "tls idle/") else { return }
        try ensureDescriptorLimit(2 * Self.idle + 500)
        // A handshake timeout of 1 s: the connections are held longer, which it must not end.
        let server = try TLSEchoServer(backend, handshakeTimeout: .seconds(1), plainToo: true, name: "tls-idle")
        defer { try? server.stop() }
        let tls = try TLSFixtures.client()
        try expectEcho(port: server.port, tls: tls)
        let plainPort = server.plainPort
        let plain = try perConnection(count: Self.idle) { n in try connectToLoopback(port: plainPort, from: Self.source(n)) }
        let cost = try perConnection(count: Self.idle) { n in
            let client = try BlockingTLSClient(port: server.port, from: Self.source(Self.idle + n), tls: tls)
            try client.handshake()
            return dup(client.fd)  // the socket stays open; the client's engine is freed
        } whileHeld: {
            usleep(1_500_000)  // past the handshake timeout
            let open = try server.resourceCount()
            #expect(open == server.listeners + Self.idle, "established connections were dropped: \(open) resources registered")
        }
        print("""
            tls idle/\(backend): \(Self.idle) idle TLS connections cost \(cost) bytes each \
            (RSS +\(megabytes(cost * Self.idle))); plain ones \(plain) bytes each (debug build)
            """)
        #expect(cost < 64 << 10, "an idle TLS connection holds \(cost / 1024) KiB")
    }

    /// The resident memory `count` connections made by `connect` add while
    /// held open, per connection; `whileHeld` runs before they close.
    private func perConnection(count: Int, _ connect: (Int) throws -> Int32, whileHeld: () throws -> Void = {}) throws -> Int {
        let baseline = try residentMemoryInUse()
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for n in 0..<count { fds.append(try connect(n)) }
        usleep(300_000)
        try whileHeld()
        return (try residentMemoryInUse() - baseline) / count
    }

    /// How many of `fds` have not seen their peer end the connection
    /// (POLLRDHUP: the peer shut its writing; Swift's Glibc module lacks the name).
    private func countNotEnded(_ fds: [Int32]) -> Int {
        let readHangup: Int16 = 0x2000
        var entries = fds.map { pollfd(fd: $0, events: readHangup, revents: 0) }
        _ = poll(&entries, nfds_t(entries.count), 0)
        return entries.filter { $0.revents & (readHangup | Int16(POLLHUP | POLLERR)) == 0 }.count
    }
}
