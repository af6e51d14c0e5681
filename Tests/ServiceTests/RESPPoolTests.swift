// RedisPool against a real redis-server, on every backend: 100,000 commands
// spread over 4 connections (each reply checked), the least busy connection
// chosen, one connection killed while commands wait on it, and no
// connection at all.
import Foundation
import ProtocolRESP
import Reactor
import ReactorTestSupport
import Testing

@Suite("RESP pool against redis-server")
struct RESPPoolTests {
    @Test("100,000 commands over a pool of 4: each answered with its own reply, every connection carrying its share",
          arguments: Backend.underTest)
    func spread(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let count = 100_000
        var answered = 0
        var wrong: [String] = []
        var perClient: [UInt64] = []
        var total: RedisClient.Counters?
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(120)) { scenario, context in
            // 100,000 commands go out in one burst and each one's timeout runs
            // from then: the default 5 s is too short for the last of them in a
            // sanitizer build on a busy machine. This test is about who answers
            // what, not how fast; the scenario's 120 s deadline catches a hang.
            let options = RedisClientOptions(commandTimeout: .seconds(100))
            let pool = RedisPool(host: "127.0.0.1", port: redis.port, connections: 4, options: options)
            try! pool.start(context: context)
            scenario.when({ pool.connectedCount == 4 }) {
                for i in 0..<count {
                    pool.send(["ECHO", "e\(i)"]) { result in
                        answered += 1
                        if case .success(.bulkString(let bytes?)) = result, bytes == Array("e\(i)".utf8) {} else if wrong.count < 5 {
                            wrong.append("ECHO e\(i): \(result.text)")
                        }
                        guard answered == count else { return }
                        perClient = pool.clients.map(\.counters.replies)
                        total = pool.counters
                        pool.close()
                        scenario.finish()
                    }
                }
            }
        }
        #expect(finished, "\(answered) of \(count) answered before the deadline")
        #expect(wrong.isEmpty, "\(wrong)")
        // One burst in one callback: no reply comes in between, so the pending counts tie every time and the turn decides.
        #expect(perClient == [25_000, 25_000, 25_000, 25_000])
        let counters = try #require(total)
        #expect(counters.sent == UInt64(count) && counters.replies == UInt64(count) && counters.failed == 0 && counters.connects == 4, "\(counters)")
    }

    @Test("the least busy connection gets each command: one blocked in BLPOP gets none while the others are idle",
          arguments: Backend.underTest)
    func leastBusy(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        var wrong: [String] = []
        var sentPerClient: [UInt64] = []
        var woken: String?
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(60)) { scenario, context in
            let pool = RedisPool(host: "127.0.0.1", port: redis.port, connections: 4)
            try! pool.start(context: context)
            scenario.when({ pool.connectedCount == 4 }) {
                let blocked = pool.clients[2]
                blocked.send(["BLPOP", "wake", "0"]) { result in
                    woken = result.text
                    pool.close()
                    scenario.finish()
                }
                // One command at a time, each from the last one's completion: three connections at 0 pending, one at 1.
                func step(_ i: Int) {
                    pool.send(["ECHO", "\(i)"]) { result in
                        if result.text != "\"\(i)\"" && wrong.count < 5 { wrong.append("ECHO \(i): \(result.text)") }
                        guard i == 999 else { return step(i + 1) }
                        sentPerClient = pool.clients.map(\.counters.sent)
                        pool.send(["RPUSH", "wake", "up"]) { _ in }
                    }
                }
                step(0)
            }
        }
        #expect(finished)
        #expect(wrong.isEmpty, "\(wrong)")
        #expect(sentPerClient.count == 4 && sentPerClient[2] == 1, "the blocked connection got commands: \(sentPerClient)")
        #expect(sentPerClient.enumerated().filter { $0.offset != 2 }.map(\.element).sorted() == [333, 333, 334], "\(sentPerClient)")
        #expect(woken == "[\"wake\", \"up\"]")
    }

    @Test("one connection killed: its waiting commands fail clearly, the others' are answered, and it reconnects and serves again",
          arguments: Backend.underTest)
    func connectionKilled(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let count = 4_000
        let keys = 50
        var succeeded = [Int](repeating: 0, count: keys)
        var failures: [String] = []
        var blpop: String?
        var killed: String?
        var duringOutage: [String] = []
        var stored: [String] = []
        var afterReconnect: [String] = []
        var victimCounters: RedisClient.Counters?
        var othersCounters: [RedisClient.Counters] = []
        var victimServed: UInt64 = 0
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(60)) { scenario, context in
            let options = RedisClientOptions(reconnectDelay: .milliseconds(50), maxReconnectDelay: .milliseconds(200))
            let pool = RedisPool(host: "127.0.0.1", port: redis.port, connections: 4, options: options)
            try! pool.start(context: context)
            let victim = pool.clients[1]
            var done = 0
            func finishing() {
                // The victim is back: the pool uses it again.
                scenario.when({ victim.state == .connected && pool.pendingCount == 0 }) {
                    let before = victim.counters.replies
                    pool.sendAll((0..<400).map { ["ECHO", "again \($0)"] }) { all in
                        afterReconnect = all.map(\.text)
                        victimServed = victim.counters.replies - before
                        victimCounters = victim.counters
                        othersCounters = pool.clients.filter { $0 !== victim }.map(\.counters)
                        pool.clients[0].sendAll((0..<keys).map { ["GET", "key:\($0)"] }) { all in
                            stored = all.map(\.text)
                            pool.close()
                            scenario.finish()
                        }
                    }
                }
            }
            scenario.when({ pool.connectedCount == 4 }) {
                victim.send(["CLIENT", "ID"]) { id in
                    // The victim's pipeline waits behind a BLPOP that never returns: what the pool queues there is still waiting when the kill comes.
                    victim.send(["BLPOP", "never", "0"]) { result in blpop = result.text }
                    for i in 0..<count {
                        pool.send(["INCR", "key:\(i % keys)"]) { result in
                            done += 1
                            switch result {
                            case .success(.integer):
                                succeeded[i % keys] += 1
                            case .success(let value):
                                failures.append("INCR key:\(i % keys): \(value)")
                            case .failure(let error):
                                if failures.isEmpty {
                                    // The victim is down: what is sent now goes to the others.
                                    pool.sendAll((0..<12).map { ["ECHO", "meanwhile \($0)"] }) { all in duringOutage = all.map(\.text) }
                                }
                                failures.append(error.description)
                            }
                            if done == count { finishing() }
                        }
                    }
                    pool.clients[0].send(["CLIENT", "KILL", "ID", "\((try? id.get())?.integer ?? -1)"]) { result in killed = result.text }
                }
            }
        }
        #expect(finished, "the scenario hung: \(succeeded.reduce(0, +)) succeeded, \(failures.count) failed")
        #expect(killed == "(integer) 1")  // the new form of CLIENT KILL counts the clients killed
        // Each burst goes round the four in turn; the victim had one command waiting already, so it takes a quarter less one.
        #expect(failures.count == count / 4 - 1, "\(failures.count) failed")
        #expect(succeeded.reduce(0, +) + failures.count == count)
        let unclear = failures.filter { !($0.hasPrefix("redis INCR key:") && $0.contains("before the reply")) }
        #expect(unclear.isEmpty, "unclear failures: \(unclear.prefix(3))")
        #expect(blpop?.hasPrefix("failure: redis BLPOP never: connection") == true && blpop?.contains("before the reply") == true, "\(blpop ?? "none")")
        #expect(duringOutage == (0..<12).map { "\"meanwhile \($0)\"" })
        // The victim's commands never ran (they waited behind the BLPOP); every other one did, once.
        #expect(stored == succeeded.map { "\"\($0)\"" })
        #expect(afterReconnect == (0..<400).map { "\"again \($0)\"" })
        #expect(victimServed == 100, "the reconnected connection served \(victimServed) of 400")
        let victimTotal = try #require(victimCounters)
        #expect(victimTotal.connects == 2 && victimTotal.failed == UInt64(count / 4), "\(victimTotal)")
        #expect(othersCounters.allSatisfy { $0.connects == 1 && $0.failed == 0 }, "\(othersCounters)")
    }

    @Test("no server: a command fails at once, naming the server and the last failure; before start and after close it says so")
    func noConnection() throws {
        let port = try kvFreePort()
        var firstTry: String?
        var whileDown: String?
        var notStarted: String?
        var afterClose: String?
        var total: RedisClient.Counters?
        let finished = try RESPScenario.run(timeout: .seconds(30)) { scenario, context in
            // A reconnection far away: a command that waited for it would be seen still waiting below.
            let options = RedisClientOptions(reconnectDelay: .seconds(60))
            let pool = RedisPool(host: "127.0.0.1", port: port, connections: 2, options: options)
            pool.send(["PING"]) { result in notStarted = result.text }
            try! pool.start(context: context)
            // Sent while the connections are being made: it waits for one, and fails with its attempt.
            pool.send(["GET", "k"]) { result in
                firstTry = result.text
                scenario.when({ pool.state == .waitingToReconnect }) {
                    pool.send(["GET", "k"]) { result in
                        whileDown = result.text
                        // At once: it failed while the pool still waits to reconnect, not after a new attempt.
                        #expect(pool.state == .waitingToReconnect, "failed only in \(pool.state)")
                        pool.close()
                        pool.send(["GET", "k"]) { result in
                            afterClose = result.text
                            total = pool.counters
                            scenario.finish()
                        }
                    }
                }
            }
        }
        #expect(finished)
        let refused = "connect(127.0.0.1:\(port)): every address failed: 127.0.0.1:\(port) ECONNREFUSED (Connection refused)"
        #expect(notStarted == "failure: redis PING: not connected: the pool was not started")
        #expect(firstTry == "failure: redis GET k: not connected: \(refused)")
        #expect(whileDown == "failure: redis GET k: not connected: none of 2 connections to 127.0.0.1:\(port) is up (\(refused)); retrying")
        #expect(afterClose == "failure: redis GET k: the client was closed before the reply")
        let counters = try #require(total)
        #expect(counters.sent == 1 && counters.failed == 4 && counters.connects == 0, "\(counters)")
    }
}
