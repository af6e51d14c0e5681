// kv under clients that pipeline GETs of a 4 KiB value and read nothing:
// the server stops reading them at its high watermark (and at the output
// budget), so its memory stays bounded, others are served promptly, and
// every reply still arrives once the client reads. Each test prints what it
// measured; run with KV_EXECUTABLE=.build/release/kv to measure the release build.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

// Sound: a flood client is used by one thread at a time, handed over when
// its pouring thread starts and taken back when it is joined.
extension KVFloodClient: @unchecked Sendable {}

@Suite("kv: back-pressure on clients that pipeline without reading", .serialized)
struct KVBackPressureTests {
    static let value: [UInt8] = (0..<4096).map { UInt8(ascii: "a") + UInt8($0 % 26) }
    static let reply: [UInt8] = Array("$4096\r\n".utf8) + value + [13, 10]
    static let request = kvCommand("GET", "k")
    /// What each client tries to send: 3 million GETs, 12 GB of replies.
    static let offered = 64 << 20

    /// A server holding `k`, and its process id.
    static func server(_ backend: Backend, threads: Int = 1) throws -> (server: KVTestServer, pid: Int32) {
        let server = try KVTestServer(backend: backend, threads: threads)
        let client = try KVClient(port: server.port)
        try client.send(kvCommand([Array("SET".utf8), Array("k".utf8), value]))
        #expect(try client.readReplies(1) == Array("+OK\r\n".utf8))
        return (server, server.child.process.processIdentifier)
    }

    /// Round-trip times of `count` PINGs.
    static func pings(_ client: KVClient, count: Int) throws -> [Duration] {
        var latencies: [Duration] = []
        for _ in 0..<count {
            let start = ContinuousClock.now
            let reply = try client.call("PING")
            latencies.append(ContinuousClock.now - start)
            guard reply == "+PONG\r\n" else { throw TestFailure("PING answered \(reply.debugDescription)") }
        }
        return latencies
    }

    // How long the PINGs wait behind a flood is reactor-bench's responsiveness
    // scenario's question; here, that every one is answered while it lasts.
    @Test("one client: 64 MiB of pipelined GETs unread grow the server by at most 4 MB, PINGs are answered, no reply is lost",
          arguments: Backend.underTest)
    func oneClient(backend: Backend) throws {
        let (server, pid) = try Self.server(backend)
        defer { server.stop() }
        let pinger = try KVClient(port: server.port)
        let flood = try KVFloodClient(port: server.port, request: Self.request)
        _ = try Self.pings(pinger, count: 20)  // both connections accepted, the server warm
        let baseline = try kvResidentMemory(of: pid).current
        try kvResetPeakMemory(of: pid)

        let finished = Shared(false)
        let pourer = try TestThread {
            KVFloodClient.pourUntilStalled([flood], limit: Self.offered)
            finished.update { $0 = true }
        }
        var latencies: [Duration] = []
        while !finished.value { latencies += try Self.pings(pinger, count: 1) }
        pourer.join()
        latencies += try Self.pings(pinger, count: 300)
        let memory = try kvResidentMemory(of: pid)
        let p99 = kvQuantile(latencies, 0.99)
        print("kv back-pressure, 1 client (\(backend)): sent \(flood.sentBytes) of \(Self.offered) bytes (\(flood.requestsBegun) GETs); "
              + "RSS growth peak \(kvMegabytes(memory.peak - baseline)), now \(kvMegabytes(memory.current - baseline)); "
              + "PING p99 \(p99) over \(latencies.count)")

        #expect(flood.failure == nil, "the server ended the connection: \(flood.failure ?? "")")
        #expect(flood.sentBytes < Self.offered / 4, "the server kept reading: \(flood.sentBytes) bytes taken")
        // kv is built with the tests' sanitizer, if any, whose allocator makes its RSS meaningless.
        if SanitizerBuild.measuresMemory {
            #expect(memory.peak - baseline <= 4_000_000, "RSS grew by \(kvMegabytes(memory.peak - baseline)) at its peak")
        }
        // Now it reads: every reply arrives, the ones to requests read but not yet run included.
        let replies = try flood.drain(expecting: Self.reply)
        #expect(replies == flood.requestsBegun)
        #expect(try pinger.call("DBSIZE") == ":1\r\n")
    }

    @Test("100 clients at once grow the server by at most 64 MB; PINGs are answered, and readers among them are not starved",
          arguments: Backend.underTest)
    func hundredClients(backend: Backend) throws {
        // Two runtimes (the default on two cores), each with its own budget.
        let (server, pid) = try Self.server(backend, threads: 2)
        defer { server.stop() }
        let pinger = try KVClient(port: server.port)
        let floods = try (0..<100).map { _ in try KVFloodClient(port: server.port, request: Self.request) }
        _ = try Self.pings(pinger, count: 20)
        let baseline = try kvResidentMemory(of: pid).current
        try kvResetPeakMemory(of: pid)

        let took = KVFloodClient.pourUntilStalled(floods, limit: Self.offered)
        let latencies = try Self.pings(pinger, count: 300)
        let memory = try kvResidentMemory(of: pid)
        let sent = floods.reduce(0) { $0 + $1.sentBytes }
        print("kv back-pressure, 100 clients (\(backend)): sent \(sent) bytes in \(took); "
              + "RSS growth peak \(kvMegabytes(memory.peak - baseline)), now \(kvMegabytes(memory.current - baseline)); "
              + "PING p99 \(kvQuantile(latencies, 0.99))")

        #expect(floods.allSatisfy { $0.failure == nil }, "the server ended connections: \(floods.compactMap(\.failure).prefix(3))")
        if SanitizerBuild.measuresMemory {  // as above: a sanitizer's allocator makes kv's RSS meaningless
            #expect(memory.peak - baseline <= 64_000_000, "RSS grew by \(kvMegabytes(memory.peak - baseline)) at its peak")
        }
        // Five start reading while the other 95 hold their unsent replies: the five get everything.
        for flood in floods.prefix(5) {
            #expect(try flood.drain(expecting: Self.reply) == flood.requestsBegun)
        }
        #expect(try pinger.call("PING") == "+PONG\r\n")
    }
}
