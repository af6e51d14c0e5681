// kv against a real redis-server: the same bytes in, the same bytes out.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("kv: byte-for-byte compatibility with redis-server")
struct KVCompatibilityTests {
    @Test("commands, errors, expiry, pipelining, inline and partial frames", arguments: Backend.underTest)
    func sameRepliesAsRedis(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let kv = try KVTestServer(backend: backend)
        defer { kv.stop() }
        // The two servers run the script side by side, so a wait (expiry) is paid once.
        let expected = try KVScriptRunner(port: redis.port)
        let actual = try KVScriptRunner(port: kv.port)
        for step in KVCompatibilityScript.commands + KVCompatibilityScript.addedCommands {
            let redisReplies = try expected.run(step)
            let kvReplies = try actual.run(step)
            #expect(!redisReplies.isEmpty, "step '\(step.name)' got no reply from redis-server")
            kvExpectSame(kvReplies, redisReplies, step: step.name)
            if step.waitAfter > .zero { kvSleep(step.waitAfter) }
        }
        #expect(kv.stop() == nil, "kv did not exit cleanly on SIGTERM")
    }

    @Test("protocol errors and QUIT: the same reply, then the connection closes", arguments: Backend.underTest)
    func sameEndingsAsRedis(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let kv = try KVTestServer(backend: backend)
        defer { kv.stop() }
        for step in KVCompatibilityScript.endings {
            let redisReplies = try KVScriptRunner(port: redis.port).run(step)
            let kvReplies = try KVScriptRunner(port: kv.port).run(step)
            #expect(redisReplies.hasSuffix("<closed>"), "redis-server kept the connection open after '\(step.name)'")
            kvExpectSame(kvReplies, redisReplies, step: step.name)
        }
        // The server is still serving after all that.
        #expect(try KVClient(port: kv.port).call("PING") == "+PONG\r\n")
    }
}

/// Runs script steps on one connection (a new one after a step that closes it).
final class KVScriptRunner {
    let port: UInt16
    private var client: KVClient
    private var markers = 0

    init(port: UInt16) throws {
        self.port = port
        client = try KVClient(port: port)
    }

    /// The replies to `step`, as text (bytes as they came, with `<closed>`
    /// or `<open>` appended for a step that should end the connection).
    func run(_ step: KVStep) throws -> String {
        for (index, chunk) in step.chunks.enumerated() {
            if index > 0 { usleep(30_000) }  // so each chunk arrives in a read of its own
            try client.send(chunk)
        }
        if step.closes {
            let (bytes, closed) = client.readUntilClosed(timeout: .seconds(5))
            client = try KVClient(port: port)
            return String(decoding: bytes, as: UTF8.self) + (closed ? "<closed>" : "<open>")
        }
        // Every reply up to a marker: no reply count to maintain by hand.
        markers += 1
        let marker = "marker-\(markers)"
        let markerReply = Array("$\(marker.utf8.count)\r\n\(marker)\r\n".utf8)
        try client.send(kvCommand("ECHO", marker))
        var replies: [UInt8] = []
        while true {
            let reply = try client.readReplies(1)
            if reply == markerReply { break }
            replies += reply
        }
        return String(decoding: replies, as: UTF8.self)
    }
}

/// Compares two reply streams and, when they differ, says where.
func kvExpectSame(_ actual: String, _ expected: String, step: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual != expected else { return }
    let a = Array(actual.utf8), e = Array(expected.utf8)
    var index = 0
    while index < a.count && index < e.count && a[index] == e[index] { index += 1 }
    let context = max(0, index - 60)
    func show(_ bytes: [UInt8]) -> String {
        String(decoding: bytes[context..<min(bytes.count, index + 80)], as: UTF8.self).debugDescription
    }
    Issue.record("step '\(step)': kv differs from redis-server at byte \(index):\n  kv:    \(show(a))\n  redis: \(show(e))",
                 sourceLocation: sourceLocation)
}
