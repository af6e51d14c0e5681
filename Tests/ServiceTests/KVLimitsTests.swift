// kv's limits and lifecycle: protocol errors close, a client past the
// output-buffer limit is cut off, idle clients time out, expired keys are
// collected without being touched, and SIGTERM lets queued replies finish.
// (Back-pressure, which normally stops a client long before the output
// limit, has its own tests in KVBackPressureTests.swift.)
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("kv: limits and lifecycle")
struct KVLimitsTests {
    @Test("an oversized or malformed length gets Redis's error, then the close", arguments: Backend.underTest)
    func protocolErrors(backend: Backend) throws {
        let server = try KVTestServer(backend: backend)
        defer { server.stop() }
        let cases: [(request: String, reply: String)] = [
            ("*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
            ("*1\r\n$12abc\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
            ("*2\r\n$3\r\nGET\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
            ("*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
            ("*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
            ("*1\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"),
        ]
        for (request, reply) in cases {
            let client = try KVClient(port: server.port)
            try client.send(Array(request.utf8))
            let (bytes, closed) = client.readUntilClosed(timeout: .seconds(5))
            #expect(String(decoding: bytes, as: UTF8.self) == reply, "\(request.debugDescription)")
            #expect(closed, "the connection stayed open after \(request.debugDescription)")
        }
        // A bulk of exactly 512 MiB is accepted (it just has not arrived yet).
        let patient = try KVClient(port: server.port)
        try patient.send(Array("*2\r\n$4\r\nECHO\r\n$536870912\r\n".utf8))
        let (bytes, closed) = patient.readUntilClosed(timeout: .milliseconds(300))
        #expect(bytes.isEmpty && !closed, "a 512 MiB bulk length was refused: \(String(decoding: bytes, as: UTF8.self))")
        #expect(try KVClient(port: server.port).call("PING") == "+PONG\r\n")
    }

    @Test("a client that pipelines big GETs without reading is disconnected at the output-buffer limit, the hard cap",
          arguments: Backend.underTest)
    func outputBufferLimit(backend: Backend) throws {
        // The high watermark above the limit, so that the limit is what the client meets.
        let server = try KVTestServer(backend: backend, extraArguments: ["--output-buffer-limit", "\(1 << 20)",
                                                                         "--high-watermark", "\(8 << 20)"])
        defer { server.stop() }
        let value = String(repeating: "v", count: 100_000)
        let setter = try KVClient(port: server.port)
        #expect(try setter.call("SET", "big", value) == "+OK\r\n")
        // 2000 GETs of 100 KB, a few per read, never reading: 200 MB of replies.
        let greedy = try KVClient(port: server.port)
        var sendFailed = false
        for _ in 0..<400 {
            do {
                try greedy.send(Array(repeating: kvCommand("GET", "big"), count: 5).flatMap { $0 })
            } catch {
                sendFailed = true  // the server already reset the connection
                break
            }
        }
        let (bytes, closed) = greedy.readUntilClosed(timeout: .seconds(10))
        #expect(closed || sendFailed, "the connection is still open")
        #expect(bytes.count < 50 << 20, "received \(bytes.count) bytes of replies")
        // Everyone else is still served, the big value included.
        let other = try KVClient(port: server.port)
        #expect(try other.call("STRLEN", "big") == ":100000\r\n")
        #expect(try other.call("GET", "big").utf8.count == "$100000\r\n".utf8.count + 100_000 + 2)
        #expect(server.stop() == nil, "kv did not exit cleanly on SIGTERM")
    }

    @Test("a single reply larger than the output-buffer limit disconnects the client that asked for it", arguments: Backend.underTest)
    func replyOverLimit(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, extraArguments: ["--output-buffer-limit", "\(1 << 20)"])
        defer { server.stop() }
        let setter = try KVClient(port: server.port)
        #expect(try setter.call("SET", "huge", String(repeating: "h", count: 2 << 20)) == "+OK\r\n")
        let asker = try KVClient(port: server.port)
        try asker.send(kvCommand("GET", "huge"))
        let (bytes, closed) = asker.readUntilClosed(timeout: .seconds(10))
        #expect(closed && bytes.isEmpty, "received \(bytes.count) bytes, connection \(closed ? "closed" : "open")")
        #expect(try setter.call("STRLEN", "huge") == ":2097152\r\n")
    }

    @Test("--idle-timeout closes silent clients and spares active ones", arguments: Backend.underTest)
    func idleTimeout(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, extraArguments: ["--idle-timeout", "1"])
        defer { server.stop() }
        let silent = try KVClient(port: server.port)
        let active = try KVClient(port: server.port)
        for round in 0..<6 {
            #expect(try active.call("PING") == "+PONG\r\n")
            kvSleep(.milliseconds(250))
            if round == 1 {
                // Half a second in: still open.
                #expect(!silent.readUntilClosed(timeout: .milliseconds(1)).closed, "closed before the timeout")
            }
        }
        let (bytes, closed) = silent.readUntilClosed(timeout: .seconds(3))
        #expect(closed && bytes.isEmpty, "the idle client was not closed silently")
        #expect(try active.call("PING") == "+PONG\r\n", "the active client was closed")
    }

    @Test("keys with a deadline are removed without being accessed", arguments: Backend.underTest)
    func activeExpiry(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, threads: 2)
        defer { server.stop() }
        let client = try KVClient(port: server.port)
        var requests: [UInt8] = []
        // 2 s to live: long enough that DBSIZE below still counts every key in a
        // sanitizer build on a busy machine (50 ms was not), short enough to watch them go.
        for index in 0..<500 { requests += kvCommand("SET", "short:\(index)", "v", "PX", "2000") }
        requests += kvCommand("SET", "lasting", "v")
        try client.send(requests)
        _ = try client.readReplies(501)
        #expect(try client.call("DBSIZE") == ":501\r\n")
        let deadline = ContinuousClock.now + .seconds(20)
        var size = ""
        repeat {
            kvSleep(.milliseconds(100))
            size = try client.call("DBSIZE")
        } while size != ":1\r\n" && ContinuousClock.now < deadline
        #expect(size == ":1\r\n", "the expired keys were not collected")
        let stats = try client.call("INFO", "stats")
        #expect(stats.contains("expired_keys:500"), "\(stats)")
    }

    @Test("SIGTERM: queued replies are delivered before the exit", arguments: Backend.underTest)
    func gracefulShutdown(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, threads: 2)
        defer { server.stop() }
        let client = try KVClient(port: server.port)
        let value = String(repeating: "z", count: 8 << 20)
        #expect(try client.call("SET", "huge", value) == "+OK\r\n")
        // Three 8 MB replies, mostly still queued in kv when the signal arrives.
        try client.send(kvPipeline(["GET", "huge"], ["GET", "huge"], ["GET", "huge"]))
        kvSleep(.milliseconds(100))
        server.child.process.terminate()
        let replies = try client.readReplies(3, timeout: .seconds(20))
        #expect(replies.count == 3 * ("$8388608\r\n".utf8.count + value.utf8.count + 2))
        #expect(server.child.waitForExit(timeout: .seconds(10)) == 0, "kv did not exit with status 0")
    }
}
