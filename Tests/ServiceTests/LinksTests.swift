// The links shortener as a user runs it: the built executable, a real
// redis-server started here, and curl.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

/// A running `links --redis localhost:PORT --port 0 --threads N`: the redis
/// host goes by name, so every start resolves it through the runtime's resolver.
final class LinksTestServer {
    let child: ChildProcess
    let port: UInt16

    init(redisPort: UInt16, threads: Int = 2, backend: Backend = .epoll) throws {
        child = try ChildProcess(executable: try Executables.product("links"), arguments: [
            "--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "\(threads)",
            "--redis", "localhost:\(redisPort)", "--redis-timeout-ms", "2000",
        ], standardError: .file)
        port = try child.readListeningPort("links", suffix: " (backend \(backend.rawValue), \(threads) threads, redis localhost:\(redisPort))").port
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// `curl -si` of `path` (a POST of `body`, when given): the status, the headers (lowercased names) and the body.
    func curl(_ path: String, post body: String? = nil) throws -> (status: Int, headers: [String: String], body: String) {
        let result = try runTool("curl", ["-si", "--max-time", "10"] + (body.map { ["--data-binary", $0] } ?? []) + [url + path])
        guard result.status == 0, let split = result.output.range(of: "\r\n\r\n") else {
            throw TestFailure("curl \(path) failed (\(result.status)): \(result.errorOutput)\(result.output)")
        }
        let lines = result.output[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers, String(result.output[split.upperBound...]))
    }

    @discardableResult
    func stop() -> Bool {
        guard child.stop(timeout: .seconds(10)) else { return false }
        return child.process.terminationReason == .exit && child.process.terminationStatus == 0
    }
}

@Suite("links: the URL shortener against redis-server and curl")
struct LinksTests {
    @Test("create, redirect (302 with Location), unknown code 404, a bad URL 400, hits in /stats", arguments: Backend.underTest)
    func createAndRedirect(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let links = try LinksTestServer(redisPort: redis.port, backend: backend)
        defer { links.stop() }

        let created = try links.curl("/links", post: "https://example.com/some/page?q=1")
        #expect(created.status == 201, "\(created)")
        #expect(created.headers["content-type"] == "application/json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: String], "\(created.body)")
        let code = try #require(json["code"])
        #expect(json["url"] == "https://example.com/some/page?q=1")

        let redirect = try links.curl("/\(code)")
        #expect(redirect.status == 302)
        #expect(redirect.headers["location"] == "https://example.com/some/page?q=1")
        _ = try links.curl("/\(code)")

        let second = try links.curl("/links", post: "http://other.example/")
        #expect(second.status == 201 && !second.body.contains("\"code\":\"\(code)\""), "a new link got the same code: \(second.body)")

        #expect(try links.curl("/zzzz").status == 404)
        #expect(try links.curl("/not-a-code!").status == 404)
        let bad = try links.curl("/links", post: "javascript:alert(1)")
        #expect(bad.status == 400 && bad.body.contains("http:// or https:// URL"), "\(bad)")
        #expect(try links.curl("/links").status == 405)

        // The hits were counted in redis (after each redirect was sent, hence eventually).
        #expect(eventually(within: .seconds(5)) {
            (try? links.curl("/stats").body.hasPrefix("{\"hits\":2,")) ?? false
        }, "hits not 2: \((try? links.curl("/stats").body) ?? "")")
        let stats = try #require(try JSONSerialization.jsonObject(with: Data(links.curl("/stats").body.utf8)) as? [String: Any])
        let client = try #require(stats["redis"] as? [String: Any])
        #expect(client["state"] as? String == "connected")
        #expect((stats["runtime"] as? [String: Any])?["loopTurns"] is Int)
        #expect(links.stop(), "links did not exit cleanly on SIGTERM: \(links.child.readStandardError())")
    }

    @Test("pipelined requests answered after their redis replies come back in request order, Connection: close last",
          arguments: Backend.underTest)
    func pipelinedInOrder(backend: Backend) throws {
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let links = try LinksTestServer(redisPort: redis.port, threads: 1, backend: backend)
        defer { links.stop() }
        let client = try HTTPRawClient(port: links.port)
        // A local answer (405) between two that wait for redis, a body in the middle, and a close at the end.
        try client.send("POST /links HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nhttps://example.com/"
                        + "GET /links HTTP/1.1\r\nHost: x\r\n\r\n"
                        + "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                        + "GET /zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let responses = try client.responses(4)
        #expect(responses.map(\.status) == [201, 405, 302, 404])
        #expect(responses[2].headers["location"] == "https://example.com/")
        #expect(responses[3].headers["connection"] == "close")
        try client.expectEndOfFile()
    }

    @Test("redis down: 503 with a body that says why; links recovers when redis returns", arguments: Backend.underTest)
    func redisDown(backend: Backend) throws {
        let redis = try KVRedisServer()
        let links = try LinksTestServer(redisPort: redis.port, backend: backend)
        defer { links.stop() }
        let created = try links.curl("/links", post: "https://example.com/")
        #expect(created.status == 201)

        redis.stop()
        let down = try links.curl("/links", post: "https://example.com/again")
        #expect(down.status == 503, "\(down)")
        #expect(down.body.contains("storage unavailable") && down.body.contains("redis INCR links:next: "), "\(down.body)")
        #expect(down.body.contains("not connected") || down.body.contains("before the reply"), "\(down.body)")
        let redirectDown = try links.curl("/1")
        #expect(redirectDown.status == 503 && redirectDown.body.contains("redis GET links:code:1"), "\(redirectDown)")
        #expect(try links.curl("/stats").body.hasPrefix("{\"hits\":null,"))

        // The same port again (an empty redis: the old link is gone, new ones work).
        let again = try KVRedisServer(port: redis.port)
        defer { again.stop() }
        #expect(eventually(within: .seconds(10)) { (try? links.curl("/links", post: "https://example.com/back").status) == 201 },
                "links did not recover after redis came back")
        // Every runtime's client reconnects, not only the one that answered first.
        for _ in 0..<10 { #expect(try links.curl("/links", post: "https://example.com/each").status == 201) }
    }

    @Test("1,000 concurrent clients are all redirected")
    func concurrentClients() throws {
        try ensureDescriptorLimit(4096)
        let redis = try KVRedisServer()
        defer { redis.stop() }
        let links = try LinksTestServer(redisPort: redis.port)
        defer { links.stop() }
        let created = try links.curl("/links", post: "https://example.com/hot")
        let code = try #require((try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: String])?["code"])
        let clients = 1_000
        // curl runs at most 300 transfers at once (--parallel-max's ceiling): four curls of 250 each,
        // side by side, every transfer on a connection of its own.
        let processes = 4
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("links-\(UUID().uuidString).curl")
        defer { try? FileManager.default.removeItem(at: config) }
        try String(repeating: "url = \"\(links.url)/\(code)\"\noutput = \"/dev/null\"\n", count: clients / processes)
            .write(to: config, atomically: true, encoding: .utf8)
        let outputs = Shared<[String]>([])
        let start = ContinuousClock.now
        let threads = try (0..<processes).map { _ in
            try TestThread {
                let result = try? runTool("curl", ["-s", "--max-time", "60", "--parallel", "--parallel-immediate", "--parallel-max",
                                                   "\(clients / processes)", "-w", "%{http_code}\n", "-K", config.path], timeout: .seconds(120))
                outputs.update { $0.append(result.map { $0.status == 0 ? $0.output : "curl failed: \($0.errorOutput)" } ?? "curl did not run") }
            }
        }
        for thread in threads { thread.join() }
        let seconds = elapsed(since: start)
        let statuses = outputs.value.joined().split(separator: "\n")
        #expect(statuses.count == clients)
        #expect(statuses.allSatisfy { $0 == "302" }, "not all 302: \(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
        print("links: \(clients) concurrent clients redirected in \(seconds)")
        #expect(eventually(within: .seconds(10)) { (try? links.curl("/stats").body.hasPrefix("{\"hits\":\(clients),")) ?? false })
    }
}
