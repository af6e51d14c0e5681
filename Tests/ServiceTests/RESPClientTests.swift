// The RESP client against a real redis-server started by the test, and
// against the project's own kv example: replies of every type, 100,000
// pipelined commands in order, a server killed mid-pipeline.
import Foundation
import ProtocolRESP
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("RESP client against redis-server and kv")
struct RESPClientTests {
    /// Commands and the replies redis-server gives them, as `RESPValue.description` shows them.
    static let basics: [([String], String)] = [
        (["SET", "k", "v"], "OK"),
        (["GET", "k"], "\"v\""),
        (["GET", "missing"], "(nil)"),
        (["INCR", "n"], "(integer) 1"),
        (["INCRBY", "n", "41"], "(integer) 42"),
        (["SET", "k"], "failure: redis SET k: ERR wrong number of arguments for 'set' command"),
        (["INCR", "k"], "failure: redis INCR k: ERR value is not an integer or out of range"),
        (["SET", "empty", ""], "OK"),
        (["GET", "empty"], "\"\""),
        (["MGET", "k", "missing", "n"], "[\"v\", (nil), \"42\"]"),
        (["DEL", "k", "n", "empty"], "(integer) 3"),
    ]

    @Test("every reply type from redis-server: status, error, integer, bulk, null bulk, arrays nested and null")
    func basicCommands() throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        var results: [Result<RESPValue, RedisError>] = []
        var nested: [Result<RESPValue, RedisError>] = []
        let finished = try RESPScenario.run(timeout: .seconds(30)) { scenario, context in
            let client = RedisClient(host: "127.0.0.1", port: redis.port)
            try! client.start(context: context)
            client.sendAll(Self.basics.map(\.0)) { all in
                results = all
                // A transaction's EXEC is an array of replies; BLPOP that times out is RESP2's null array.
                client.sendAll([["MULTI"], ["RPUSH", "l", "a", "b"], ["LRANGE", "l", "0", "-1"], ["EXEC"], ["BLPOP", "nothing", "0.01"]]) { all in
                    nested = all
                    client.close()
                    scenario.finish()
                }
            }
        }
        #expect(finished, "the scenario did not finish")
        #expect(results.map(\.text) == Self.basics.map(\.1))
        #expect(nested.map(\.text) == ["OK", "QUEUED", "QUEUED", "[(integer) 2, [\"a\", \"b\"]]", "(nil)"])
        if case .success(.array(nil)) = nested.last {} else { Issue.record("BLPOP's timeout is not a null array: \(nested.last?.text ?? "none")") }
    }

    @Test("100,000 pipelined commands are all answered, in order", arguments: ["redis-server", "kv"])
    func pipelined(server: String) throws {
        let redis = server == "redis-server" ? try KVRedisServer() : nil
        let kv = server == "kv" ? try KVTestServer(backend: .epoll) : nil
        defer { redis?.stop(); kv?.stop() }
        let port = redis?.port ?? kv!.port
        let count = 100_000
        var answered = 0
        var outOfOrder: [String] = []
        var seconds = 0.0
        let finished = try RESPScenario.run(timeout: .seconds(120)) { scenario, context in
            let client = RedisClient(host: "localhost", port: port)  // by name: through the resolver's /etc/hosts
            try! client.start(context: context)
            let start = ContinuousClock.now
            for i in 1...count {
                client.send(["INCR", "counter"]) { result in
                    answered += 1
                    if case .success(.integer(let value)) = result, value == Int64(i) {} else if outOfOrder.count < 5 {
                        outOfOrder.append("command \(i): \(result.text)")
                    }
                    if answered == count {
                        seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18 + Double((ContinuousClock.now - start).components.seconds)
                        client.close()
                        scenario.finish()
                    }
                }
            }
        }
        #expect(finished, "\(answered) of \(count) answered before the deadline")
        #expect(answered == count)
        #expect(outOfOrder.isEmpty, "\(outOfOrder)")
        print("RESP client against \(server): \(count) pipelined INCRs in \(String(format: "%.2f", seconds)) s (\(Int(Double(count) / max(seconds, 0.001))) commands/s)")
    }

    @Test("the server killed mid-pipeline: every pending command fails with a clear error, nothing hangs, and the client reconnects")
    func serverKilled() throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let count = 100_000
        var succeeded = 0
        var failures: [String] = []
        var afterKill: String?
        var afterRestart: String?
        var restarted: KVRedisServer?
        defer { restarted?.stop() }
        let finished = try RESPScenario.run(timeout: .seconds(60)) { scenario, context in
            let options = RedisClientOptions(reconnectDelay: .milliseconds(50), maxReconnectDelay: .milliseconds(200))
            let client = RedisClient(host: "127.0.0.1", port: redis.port, options: options)
            try! client.start(context: context)
            var done = 0
            for i in 0..<count {
                client.send(["SET", "key\(i)", "value"]) { result in
                    done += 1
                    switch result {
                    case .success: succeeded += 1
                    case .failure(let error): failures.append(error.description)
                    }
                    // Once the first reply is in, the rest are in flight: kill the server.
                    if done == 1 { kill(redis.child.process.processIdentifier, SIGKILL) }
                    guard done == count else { return }
                    // Now there is no server: a command fails at once, saying so.
                    client.send(["GET", "key0"]) { result in
                        afterKill = result.text
                        // A server on the same port again: the client finds it by itself.
                        restarted = try? KVRedisServer(port: redis.port)
                        func ping() {
                            client.send(["PING"]) { result in
                                guard case .success = result else { return scenario.after(.milliseconds(20), ping) }
                                afterRestart = result.text
                                client.close()
                                scenario.finish()
                            }
                        }
                        ping()
                    }
                }
            }
        }
        #expect(finished, "the scenario hung: \(succeeded) succeeded, \(failures.count) failed")
        #expect(succeeded + failures.count == count)
        #expect(succeeded < count, "the server was killed before it answered everything")
        let unclear = failures.filter { !($0.hasPrefix("redis SET key") && ($0.contains("before the reply") || $0.contains("not connected"))) }
        #expect(unclear.isEmpty, "unclear failures: \(unclear.prefix(3))")
        #expect(failures.first.map { $0.contains("before the reply") } ?? false, "first failure: \(failures.first ?? "none")")
        #expect(afterKill?.hasPrefix("failure: redis GET key0: not connected: 127.0.0.1:\(redis.port) is unreachable") ?? false, "\(afterKill ?? "no reply")")
        #expect(afterRestart == "PONG")
    }

    @Test("a server that stops answering: each command fails at its timeout, and the connection serves again once it resumes")
    func commandTimeout() throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let pid = redis.child.process.processIdentifier
        var timedOut: [String] = []
        var afterResume: String?
        let finished = try RESPScenario.run(timeout: .seconds(30)) { scenario, context in
            let client = RedisClient(host: "127.0.0.1", port: redis.port, options: RedisClientOptions(commandTimeout: .milliseconds(200)))
            try! client.start(context: context)
            client.send(["PING"]) { _ in
                kill(pid, SIGSTOP)  // a hung server: the connection stays up, no reply comes
                client.sendAll([["SET", "k", "v"], ["GET", "k"]]) { all in
                    timedOut = all.map(\.text)
                    kill(pid, SIGCONT)
                    // The late replies are dropped; the next command gets its own.
                    client.send(["ECHO", "fresh"]) { result in
                        afterResume = result.text
                        client.close()
                        scenario.finish()
                    }
                }
            }
        }
        kill(pid, SIGCONT)
        #expect(finished)
        #expect(timedOut == ["failure: redis SET k: no reply within 0.2 seconds", "failure: redis GET k: no reply within 0.2 seconds"])
        #expect(afterResume == "\"fresh\"")
    }

    @Test("the kv example answers the client like redis-server")
    func againstKV() throws {
        let kv = try KVTestServer(backend: .epoll)
        defer { kv.stop() }
        var results: [Result<RESPValue, RedisError>] = []
        let finished = try RESPScenario.run(timeout: .seconds(30)) { scenario, context in
            let client = RedisClient(host: "127.0.0.1", port: kv.port)
            try! client.start(context: context)
            client.sendAll(Self.basics.map(\.0)) { all in
                results = all
                client.close()
                scenario.finish()
            }
        }
        #expect(finished)
        #expect(results.map(\.text) == Self.basics.map(\.1))
    }
}
