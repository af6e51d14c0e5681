// kv under the unmodified redis-benchmark, on one runtime and on two.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("kv: redis-benchmark and threads")
struct KVBenchmarkTests {
    static let tests = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"]

    /// Runs redis-benchmark and checks that every test completed without an error reply.
    static func benchmark(port: UInt16, pipeline: Int, requests: Int = 2000, clients: Int = 50) throws {
        let result = try runTool("redis-benchmark", ["-p", "\(port)", "-t", "ping,set,get,incr,mset", "-n", "\(requests)",
                                                   "-P", "\(pipeline)", "-c", "\(clients)", "--csv"], timeout: .seconds(30))
        #expect(result.status == 0, "redis-benchmark -P \(pipeline) failed: \(result.errorOutput)")
        #expect(!(result.output + result.errorOutput).contains("rror"), "an error reply: \(result.output) \(result.errorOutput)")
        let rows = result.output.split(separator: "\n").map { $0.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) } }
        for test in tests {
            let row = rows.first { $0.first == test }
            #expect(row != nil, "-P \(pipeline): no result for \(test) in \(result.output)")
            if let row, row.count > 1 { #expect((Double(row[1]) ?? 0) > 0, "-P \(pipeline): \(test) reported \(row[1]) requests/s") }
        }
    }

    @Test("-t ping,set,get,incr,mset with -P 1 and -P 16", arguments: Backend.underTest)
    func pipelines(backend: Backend) throws {
        let server = try KVTestServer(backend: backend)
        defer { server.stop() }
        try Self.benchmark(port: server.port, pipeline: 1)
        try Self.benchmark(port: server.port, pipeline: 16)
        // Without -r, redis-benchmark uses one key per command: INCR ran exactly 2 × 2000 times.
        let client = try KVClient(port: server.port)
        #expect(try client.call("GET", "counter:__rand_int__") == "$4\r\n4000\r\n")
        #expect(try client.call("DBSIZE") == ":2\r\n")
        #expect(server.stop() == nil, "kv did not exit cleanly on SIGTERM")
    }

    @Test("--threads 2: one database seen from every connection", arguments: Backend.underTest)
    func twoThreads(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, threads: 2)
        defer { server.stop() }
        // Enough connections that the kernel spreads them over both listeners.
        let clients = try (0..<8).map { _ in try KVClient(port: server.port) }
        #expect(try clients[0].call("SET", "shared", "from client 0") == "+OK\r\n")
        for (index, client) in clients.enumerated() {
            #expect(try client.call("GET", "shared") == "$13\r\nfrom client 0\r\n", "client \(index)")
            #expect(try client.call("INCR", "hits") == ":\(index + 1)\r\n", "client \(index)")
        }
        #expect(try clients[7].call("DEL", "shared") == ":1\r\n")
        #expect(try clients[3].call("EXISTS", "shared") == ":0\r\n")
        // Concurrent increments from 50 connections on both threads: none lost.
        try Self.benchmark(port: server.port, pipeline: 16, requests: 4000)
        #expect(try clients[1].call("GET", "counter:__rand_int__") == "$4\r\n4000\r\n")
        let info = try clients[2].call("INFO", "server")
        #expect(info.contains("executable_threads:2"), "\(info)")
        #expect(server.stop() == nil, "kv did not exit cleanly on SIGTERM")
    }
}
