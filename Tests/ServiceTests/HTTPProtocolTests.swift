// The built `http` executable over raw sockets, on every backend: pipelining,
// each error status, 100-continue, and which responses close the connection.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("http protocol over raw sockets")
struct HTTPProtocolTests {
    @Test("three pipelined requests in one write get three responses, in order, on an open connection", arguments: Backend.underTest)
    func pipelining(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                        + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-a\r\nContent-Length: 5\r\n\r\nfirst"
                        + "HEAD /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        let responses = try client.responses(3, headOnly: { $0 == 2 })
        #expect(responses.map(\.status) == [200, 200, 200])
        #expect(responses[0].bodyText == "Hello, World!")
        #expect(responses[1].bodyText == "first" && responses[1].headers["content-type"] == "text/x-a")
        #expect(responses[2].headers["content-type"] == "application/json")
        #expect(Int(responses[2].headers["content-length"] ?? "") ?? 0 > 0)
        #expect(responses[2].body.isEmpty, "HEAD got a body")
        // Still open: a fourth request on the same connection.
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try client.response().bodyText == "Hello, World!")
    }

    @Test("a malformed request line gets 400 and the connection closes", arguments: Backend.underTest)
    func badRequestLine(backend: Backend) throws {
        try expectRejection(backend: backend, request: "GARBAGE\r\n\r\n", status: 400)
        try expectRejection(backend: backend, request: "GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", status: 400)
    }

    @Test("a malformed header gets 400 and the connection closes", arguments: Backend.underTest)
    func badHeader(backend: Backend) throws {
        try expectRejection(backend: backend, request: "GET / HTTP/1.1\r\nHost t\r\n\r\n", status: 400)
        try expectRejection(backend: backend, request: "GET / HTTP/1.1\r\nHost : t\r\n\r\n", status: 400)
        try expectRejection(backend: backend, request: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n", status: 400)
    }

    @Test("headers over 8 KiB get 431 and the connection closes", arguments: Backend.underTest)
    func headersTooLarge(backend: Backend) throws {
        let big = String(repeating: "a", count: 9000)
        try expectRejection(backend: backend, request: "GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(big)\r\n\r\n", status: 431)
    }

    @Test("a body over the limit gets 413 without 100 Continue, and the connection closes", arguments: Backend.underTest)
    func bodyTooLarge(backend: Backend) throws {
        // --max-body-bytes 1000: announced 5000 is refused before the body is read.
        try expectRejection(backend: backend, request: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
                            status: 413, arguments: ["--max-body-bytes", "1000"])
        // Chunked: refused as soon as a chunk size takes the body over the limit.
        try expectRejection(backend: backend, request: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n"
                            + String(repeating: "x", count: 1024) + "\r\n", status: 413, arguments: ["--max-body-bytes", "1000"])
    }

    @Test("half a request gets 408 after the request timeout, and the connection closes (slowloris)", arguments: Backend.underTest)
    func slowRequest(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend, extraArguments: ["--request-timeout-ms", "300"])
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        let started = ContinuousClock.now
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n")
        // Dripping more bytes does not buy more time: a header line every 100 ms
        // would keep a timeout that restarts on each byte from ever firing, so the
        // drip goes on until the 408 arrives (a watchdog ends it after 30 s).
        var dripped = 0
        var entry = pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
        while poll(&entry, 1, 100) == 0 && dripped < 300 {
            dripped += 1
            // The server may answer and close between the poll and this send: the 408 is still there to read.
            guard (try? client.send("X-Slow-\(dripped): 1\r\n")) != nil else { break }
        }
        let response = try client.response(timeout: .seconds(10))
        let waited = ContinuousClock.now - started
        #expect(response.status == 408, "after \(dripped) header lines dripped")
        #expect(response.headers["connection"] == "close")
        #expect(waited >= .milliseconds(290), "408 after only \(waited)")
        try client.expectEndOfFile()
    }

    @Test("an idle keep-alive connection is closed after the idle timeout, without a response", arguments: Backend.underTest)
    func idleTimeout(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend, extraArguments: ["--idle-timeout-ms", "300"])
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try client.response().status == 200)
        try client.expectEndOfFile(timeout: .seconds(3))
    }

    @Test("an unknown path gets 404 and the connection stays open", arguments: Backend.underTest)
    func notFound(backend: Backend) throws {
        try expectKeptOpen(backend: backend, request: "GET /nowhere?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", status: 404)
    }

    @Test("another method on a known path gets 405 with Allow, and the connection stays open", arguments: Backend.underTest)
    func methodNotAllowed(backend: Backend) throws {
        let response = try expectKeptOpen(backend: backend, request: "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n", status: 405)
        #expect(response.headers["allow"] == "GET, HEAD")
        let echo = try expectKeptOpen(backend: backend, request: "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", status: 405)
        #expect(echo.headers["allow"] == "POST")
    }

    @Test("Connection: close and HTTP/1.0 close after the response; HTTP/1.0 keep-alive stays open", arguments: Backend.underTest)
    func connectionClose(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        for request in ["GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"] {
            let client = try HTTPRawClient(port: server.port)
            try client.send(request)
            let response = try client.response()
            #expect(response.status == 200 && response.headers["connection"] == "close")
            try client.expectEndOfFile()
        }
        let client = try HTTPRawClient(port: server.port)
        try client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let response = try client.response()
        #expect(response.status == 200 && response.headers["connection"] == "keep-alive")
        try client.send("GET / HTTP/1.0\r\n\r\n")
        #expect(try client.response().bodyText == "Hello, World!")
        try client.expectEndOfFile()
    }

    @Test("Expect: 100-continue is answered before the body is sent", arguments: Backend.underTest)
    func expectContinue(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        #expect(try client.response().status == 100)
        try client.send("hello world")
        let response = try client.response()
        #expect(response.status == 200 && response.bodyText == "hello world")
    }

    @Test("a chunked body with extensions and trailers is decoded", arguments: Backend.underTest)
    func chunkedWithTrailers(backend: Backend) throws {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n")
        usleep(20_000)  // the body in two reads: the decoder resumes where it stopped
        try client.send("A\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n")
        let response = try client.response()
        #expect(response.status == 200 && response.bodyText == "abc0123456789")
    }

    // MARK: Helpers

    /// Sends `request` on a new connection and expects `status`, `Connection: close`, then end of file.
    private func expectRejection(backend: Backend, request: String, status: Int, arguments: [String] = []) throws {
        let server = try HTTPTestServer(backend: backend, extraArguments: arguments)
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        try client.send(request)
        let response = try client.response()
        #expect(response.status == status, "\(request.debugDescription) got \(response.status), not \(status)")
        #expect(response.headers["connection"] == "close")
        try client.expectEndOfFile()
    }

    /// Sends `request` and expects `status`, then a second request answered on the same connection.
    @discardableResult
    private func expectKeptOpen(backend: Backend, request: String, status: Int) throws -> HTTPTestResponse {
        let server = try HTTPTestServer(backend: backend)
        defer { server.stop() }
        let client = try HTTPRawClient(port: server.port)
        try client.send(request)
        let response = try client.response()
        #expect(response.status == status)
        #expect(response.headers["connection"] == nil)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try client.response().bodyText == "Hello, World!")
        return response
    }
}
