// The built `http` executable against curl, on every backend: the routes,
// keep-alive, HEAD, uploads with Content-Length and chunked, /stats as JSON.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("http with curl")
struct HTTPCurlTests {
    @Test("GET / answers the greeting with Date and Server, and SIGTERM stops it cleanly", arguments: Backend.underTest)
    func greeting(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        // -i: the head then the body on standard output.
        let result = try runTool("curl", ["-sS", "-i", "--max-time", "10", server.url + "/"])
        #expect(result.status == 0, "curl failed: \(result.errorOutput)")
        let (head, body) = try splitHead(result.output)
        #expect(head.first == "HTTP/1.1 200 OK")
        #expect(body == "Hello, World!")
        let headers = headerMap(head)
        #expect(headers["content-type"] == "text/plain")
        #expect(headers["content-length"] == "13")
        #expect(headers["server"] == "swift-reactor")
        let date = try #require(headers["date"], "no Date header")
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
        #expect(date.range(of: #"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$"#, options: .regularExpression) != nil,
                "Date is not an IMF-fixdate: \(date)")
        #expect(server.stop() == nil, "http did not exit with status 0 on SIGTERM")
    }

    @Test("two URLs in one curl run share one connection", arguments: Backend.underTest)
    func keepAlive(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let result = try runTool("curl", ["-sS", "-v", "--max-time", "10", "-o", "/dev/null", "-o", "/dev/null",
                                          "-w", "%{http_code} %{num_connects}\\n", server.url + "/", server.url + "/stats"])
        #expect(result.status == 0, "curl failed: \(result.errorOutput)")
        // One line per transfer: the second made no new connection.
        #expect(result.output == "200 1\n200 0\n")
        #expect(result.errorOutput.contains("Re-using existing connection"), "curl -v did not reuse the connection: \(result.errorOutput)")
    }

    @Test("HEAD / sends the headers GET would, without the body", arguments: Backend.underTest)
    func head(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let result = try runTool("curl", ["-sS", "-I", "--max-time", "10", server.url + "/"])
        #expect(result.status == 0, "curl failed: \(result.errorOutput)")
        let (head, body) = try splitHead(result.output)
        #expect(head.first == "HTTP/1.1 200 OK")
        #expect(headerMap(head)["content-length"] == "13")
        #expect(body.isEmpty)
    }

    @Test("a chunked upload to /echo comes back byte for byte", arguments: Backend.underTest)
    func chunkedEcho(backend: Backend) throws {
        try echo(backend: backend, size: 300_000, extraArguments: ["-H", "Transfer-Encoding: chunked"])
    }

    @Test("a Content-Length upload to /echo comes back byte for byte, with its Content-Type", arguments: Backend.underTest)
    func contentLengthEcho(backend: Backend) throws {
        try echo(backend: backend, size: 100_000, extraArguments: [])
    }

    private func echo(backend: Backend, size: Int, extraArguments: [String]) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let input = randomBytes(size)
        let inputFile = try temporaryFile(input)
        let outputFile = inputFile.appendingPathExtension("out")
        let headersFile = inputFile.appendingPathExtension("headers")
        defer {
            for file in [inputFile, outputFile, headersFile] { try? FileManager.default.removeItem(at: file) }
        }
        let result = try runTool("curl", ["-sS", "--max-time", "10", "-H", "Content-Type: application/x-test"] + extraArguments
                                     + ["--data-binary", "@" + inputFile.path, "-o", outputFile.path, "-D", headersFile.path,
                                        "-w", "%{http_code}", server.url + "/echo"])
        #expect(result.status == 0, "curl failed: \(result.errorOutput)")
        #expect(result.output == "200")
        let output = [UInt8](try Data(contentsOf: outputFile))
        #expect(output.count == input.count)
        let same = output == input  // as a Bool: a failing `==` on big arrays makes the test library diff them for minutes
        #expect(same, "the echoed body differs from the one sent")
        let head = try String(contentsOf: headersFile, encoding: .utf8).components(separatedBy: "\r\n")
        #expect(headerMap(head)["content-type"] == "application/x-test")
    }

    @Test("/stats is JSON listing the counters, the listener and curl's connection", arguments: Backend.underTest)
    func stats(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let result = try runTool("curl", ["-sS", "--max-time", "10", server.url + "/stats"])
        #expect(result.status == 0, "curl failed: \(result.errorOutput)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
                                "not a JSON object: \(result.output)")
        #expect(json["backend"] as? String == backend.rawValue)
        let statistics = try #require(json["statistics"] as? [String: Any])
        #expect((statistics["eventsDispatched"] as? Int ?? 0) > 0)
        #expect(statistics["loopTurns"] != nil && statistics["timersFired"] != nil)
        let resources = try #require(json["resources"] as? [[String: Any]])
        #expect(resources.contains { $0["kind"] as? String == "tcp-listener" && $0["interest"] as? String == "read" },
                "no listener in \(resources)")
        // curl's own connection: it has sent the request being answered.
        #expect(resources.contains { $0["kind"] as? String == "tcp-stream" && ($0["bytesIn"] as? Int ?? 0) > 0 && $0["fd"] is Int && $0["id"] is Int },
                "no connection with bytes in: \(resources)")
    }

    // MARK: Helpers

    /// curl -i output split into head lines and body.
    private func splitHead(_ output: String) throws -> ([String], String) {
        guard let separator = output.range(of: "\r\n\r\n") else { throw TestFailure("no end of head in: \(output)") }
        return (output[..<separator.lowerBound].components(separatedBy: "\r\n"), String(output[separator.upperBound...]))
    }

    private func headerMap(_ lines: [String]) -> [String: String] {
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return headers
    }
}
