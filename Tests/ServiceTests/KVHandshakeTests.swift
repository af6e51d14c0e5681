// The replies that cannot be compared byte for byte with redis-server,
// compared by shape instead: HELLO (whose map carries the client id and the
// version) and TIME (the clock). HELLO's errors are in the byte-for-byte script.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("kv: HELLO and TIME, compared with redis-server by shape")
struct KVHandshakeTests {
    /// A reply with the values that differ by nature replaced by placeholders.
    static func shape(_ reply: String) throws -> String {
        reply.replacing(try Regex(#"\$2\r\nid\r\n:[0-9]+\r\n"#), with: "$2\r\nid\r\n:<id>\r\n")
            .replacing(try Regex(#"\$7\r\nversion\r\n\$[0-9]+\r\n[^\r]*\r\n"#), with: "$7\r\nversion\r\n<version>\r\n")
    }

    @Test("HELLO and HELLO 2 answer the server's map as a flat array, as redis-server does", arguments: Backend.underTest)
    func hello(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let kv = try KVTestServer(backend: backend)
        defer { kv.stop() }
        let expected = try KVClient(port: redis.port)
        let actual = try KVClient(port: kv.port)
        let requests: [[String]] = [["HELLO"], ["HELLO", "2"], ["HELLO", "2", "AUTH", "default", "any", "SETNAME", "tester"],
                                    ["CLIENT", "GETNAME"], ["HELLO", "2", "SETNAME", ""], ["CLIENT", "GETNAME"],
                                    ["HELLO", "2", "setname", "x", "SETNAME", "y"], ["CLIENT", "GETNAME"]]
        for request in requests {
            let redisReply = try Self.shape(expected.call(request))
            let kvReply = try Self.shape(actual.call(request))
            kvExpectSame(kvReply, redisReply, step: request.joined(separator: " "))
        }
        // The id is the connection's, as CLIENT ID reports it.
        let id = try actual.call("CLIENT", "ID").dropFirst().trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try actual.call("HELLO").contains("$2\r\nid\r\n:\(id)\r\n"), "HELLO's id is not CLIENT ID's \(id)")
        #expect(try actual.call("HELLO").contains("$7\r\nversion\r\n$6\r\n7.0.15\r\n"))
    }

    @Test("HELLO 3 is refused with redis-server's own NOPROTO error, and the connection stays in RESP2", arguments: Backend.underTest)
    func helloThree(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let kv = try KVTestServer(backend: backend)
        defer { kv.stop() }
        // RESP3 is not built: kv answers 3 as redis-server answers a version it does not know.
        let redisRefusal = try KVClient(port: redis.port).call("HELLO", "4")
        #expect(redisRefusal == "-NOPROTO unsupported protocol version\r\n")
        let client = try KVClient(port: kv.port)
        #expect(try client.call("HELLO", "3") == redisRefusal)
        #expect(try client.call("HELLO", "3", "SETNAME", "x") == redisRefusal)
        #expect(try client.call("CLIENT", "GETNAME") == "$-1\r\n", "a refused HELLO set the name")
        #expect(try client.call("PING") == "+PONG\r\n")
        #expect(try client.call("HELLO").contains("$5\r\nproto\r\n:2\r\n"))
    }

    /// The seconds and microseconds of a TIME reply, or nil if it is not two bulk strings of digits.
    static func time(_ reply: String) -> (seconds: Int, microseconds: Int)? {
        guard let match = reply.wholeMatch(of: try! Regex(#"\*2\r\n\$([0-9]+)\r\n([0-9]+)\r\n\$([0-9]+)\r\n([0-9]+)\r\n"#)),
              let secondsLength = Int(String(match.output[1].substring ?? "")),
              let secondsText = match.output[2].substring, secondsText.count == secondsLength,
              let microsecondsLength = Int(String(match.output[3].substring ?? "")),
              let microsecondsText = match.output[4].substring, microsecondsText.count == microsecondsLength,
              let seconds = Int(secondsText), let microseconds = Int(microsecondsText) else { return nil }
        return (seconds, microseconds)
    }

    @Test("TIME: Unix seconds and microseconds as two bulk strings, like redis-server's", arguments: Backend.underTest)
    func time(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let kv = try KVTestServer(backend: backend)
        defer { kv.stop() }
        let redisTime = try KVClient(port: redis.port).call("TIME")
        #expect(Self.time(redisTime) != nil, "redis-server's TIME has another shape: \(redisTime.debugDescription)")
        let client = try KVClient(port: kv.port)
        var previous = 0
        for _ in 0..<5 {
            let reply = try client.call("TIME")
            guard let (seconds, microseconds) = Self.time(reply) else {
                Issue.record("TIME's reply is not two bulk strings of digits: \(reply.debugDescription)")
                return
            }
            let now = Date().timeIntervalSince1970
            #expect(abs(Double(seconds) - now) < 5, "TIME says \(seconds), this clock \(now)")
            #expect(microseconds < 1_000_000)
            let instant = seconds * 1_000_000 + microseconds
            #expect(instant >= previous, "TIME went backwards")
            previous = instant
            kvSleep(.milliseconds(2))
        }
    }
}

extension KVClient {
    /// Sends one command given as an array and returns its reply as text.
    func call(_ arguments: [String]) throws -> String {
        try send(kvCommand(arguments.map { Array($0.utf8) }))
        return String(decoding: try readReplies(1), as: UTF8.self)
    }
}
