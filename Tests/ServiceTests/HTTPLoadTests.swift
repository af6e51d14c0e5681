// The built `http` executable under wrk's load, and with two runtimes.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("http under load and on two threads")
struct HTTPLoadTests {
    @Test("wrk -t1 -c10 -d1s: requests served, no socket errors, only 200s", arguments: Backend.underTest)
    func wrk(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        // Load, not a benchmark: it must work, however fast the machine is.
        let result = try runTool("wrk", ["-t1", "-c10", "-d1s", server.url + "/"], timeout: .seconds(20))
        #expect(result.status == 0, "wrk failed: \(result.errorOutput)")
        let line = try #require(result.output.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") },
                                "no Requests/sec in: \(result.output)")
        let rate = Double(line.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        #expect(rate > 0, "\(line)")
        #expect(!result.output.contains("Socket errors"), "wrk saw socket errors: \(result.output)")
        #expect(!result.output.contains("Non-2xx"), "wrk saw other statuses: \(result.output)")
        #expect(server.stop() == nil, "http did not exit with status 0 on SIGTERM after the load")
    }

    @Test("--threads 2: both runtimes accept on the one port and answer correctly", arguments: Backend.underTest)
    func twoThreads(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend, threads: 2)
        defer { server.stop() }
        var runtimesSeen = Set<Int>()
        // The kernel hashes each connection to a listener: over 32 connections
        // both are all but certain (2^-31 odds otherwise) to get some.
        for _ in 0..<32 {
            let client = try HTTPRawClient(port: server.port)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
            let responses = try client.responses(2)
            #expect(responses[0].bodyText == "Hello, World!")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(responses[1].body)) as? [String: Any])
            #expect(json["threads"] as? Int == 2)
            if let runtime = json["runtime"] as? Int { runtimesSeen.insert(runtime) }
        }
        #expect(runtimesSeen == [0, 1], "connections reached runtimes \(runtimesSeen.sorted())")
        #expect(server.stop() == nil, "http did not exit with status 0 on SIGTERM")
    }
}
