// The HTTP client against real servers: Debian's nginx (static files
// byte-checked, chunked output from its SSI filter, keep-alive reuse seen in
// its access log), the project's http example (streamed uploads echoed),
// and raw sockets answering malformed responses (a clear error each).
import Foundation
import ProtocolHTTP1
import Reactor
import ReactorTestSupport
import Testing

@Suite("http client", .serialized)
struct HTTPClientTests {
    @Test("nginx: 0 B, 1 KiB and 10 MiB files arrive byte for byte, the 10 MiB one streamed in pieces",
          .enabled(if: Executables.find("nginx") != nil || FileManager.default.fileExists(atPath: "/usr/sbin/nginx")), arguments: Backend.underTest)
    func nginxStaticFiles(_ backend: Backend) throws {
        let nginx = try TestNginx()
        var results: [String: Result<HTTPClientResponse, HTTPClientError>] = [:]
        var pieces = 0, streamed: [UInt8] = []
        var streamResult: Result<HTTPResponseHead, HTTPClientError>?
        try withHTTPClient(backend) { client, done in
            var left = 4
            func finished() { left -= 1; if left == 0 { done() } }
            for name in ["empty", "1k", "10m"] {
                client.get("\(nginx.url)/\(name)") { results[name] = $0; finished() }
            }
            client.execute(HTTPClientRequest(url: HTTPURL("\(nginx.url)/10m")!), body: { bytes in
                pieces += 1
                streamed.append(contentsOf: bytes)
            }, completion: { streamResult = $0; finished() })
        }
        for name in ["empty", "1k", "10m"] {
            let response = try #require(try results[name]?.get())
            #expect(response.status == 200)
            #expect(response.body == nginx.files[name], "\(name): \(response.body.count) bytes, not \(nginx.files[name]!.count)")
        }
        #expect(try streamResult?.get().contentLength == 10 << 20)
        #expect(streamed == nginx.files["10m"])
        #expect(pieces > 10, "10 MiB arrived in only \(pieces) pieces: not streamed")
    }

    @Test("nginx: a chunked response (SSI) is decoded; two requests reuse one connection ($connection in the log)",
          .enabled(if: Executables.find("nginx") != nil || FileManager.default.fileExists(atPath: "/usr/sbin/nginx")), arguments: Backend.underTest)
    func nginxChunkedAndKeepAlive(_ backend: Backend) throws {
        let nginx = try TestNginx()
        var first: Result<HTTPClientResponse, HTTPClientError>?, second: Result<HTTPClientResponse, HTTPClientError>?
        var opened = 0
        try withHTTPClient(backend) { client, done in
            client.get("\(nginx.url)/ssi/page.html") { result in
                first = result
                client.get("\(nginx.url)/1k") { result in
                    second = result
                    opened = client.connectionsOpened
                    done()
                }
            }
        }
        let chunked = try #require(try first?.get())
        #expect(chunked.head.chunked, "nginx did not answer chunked: \(chunked.head.headers)")
        #expect(chunked.body == nginx.files["ssi/page.html"])
        #expect(try second?.get().body == nginx.files["1k"])
        #expect(opened == 1)
        let log = nginx.accessLog()
        #expect(log.count == 2 && Set(log.map { $0.split(separator: " ")[0] }).count == 1, "access log: \(log)")
    }

    @Test("redirects are handed over unless asked for, then followed",
          .enabled(if: Executables.find("nginx") != nil || FileManager.default.fileExists(atPath: "/usr/sbin/nginx")), arguments: Backend.underTest)
    func redirects(_ backend: Backend) throws {
        let nginx = try TestNginx()
        var plain: HTTPClientResponse?, followed: HTTPClientResponse?
        try withHTTPClient(backend) { client, done in
            client.get("\(nginx.url)/moved") { result in
                plain = try? result.get()
                client.get("\(nginx.url)/moved", followRedirects: 2) { result in
                    followed = try? result.get()
                    done()
                }
            }
        }
        #expect(plain?.status == 302)
        #expect(followed?.status == 200 && followed?.body == nginx.files["1k"])
    }

    @Test("the http example: GET /, and POST /echo with streamed bodies (chunked and Content-Length) through the watermarks",
          arguments: Backend.underTest)
    func httpExampleEcho(_ backend: Backend) throws {
        let server = try HTTPTestServer(backend: .epoll, extraArguments: ["--max-body-bytes", "\(16 << 20)"])
        defer { server.stop() }
        let upload = randomBytes(6 << 20)
        var greeting: HTTPClientResponse?
        var echoes: [Int?: Result<HTTPClientResponse, HTTPClientError>] = [:]
        var calls: [Int?: Int] = [:]
        // A small send buffer and low watermarks, so the kernel cannot take the whole body at once.
        var configuration = HTTPClientConfiguration()
        configuration.connect.stream.sendBufferSize = 64 << 10
        configuration.connect.stream.highWatermark = 256 << 10
        configuration.connect.stream.lowWatermark = 64 << 10
        try withHTTPClient(backend, configuration: configuration) { client, done in
            var left = 3
            func finished() { left -= 1; if left == 0 { done() } }
            client.get("\(server.url)/") { greeting = try? $0.get(); finished() }
            for length in [nil, upload.count] as [Int?] {
                var sent = 0
                let body = HTTPRequestBody.stream(length: length) { writer in
                    calls[length, default: 0] += 1
                    while writer.wantsMore && sent < upload.count {
                        let end = min(sent + 64 << 10, upload.count)
                        upload[sent..<end].withUnsafeBytes { writer.write($0) }
                        sent = end
                    }
                    if sent == upload.count { writer.finish() }
                }
                let request = HTTPClientRequest(method: "POST", url: HTTPURL("\(server.url)/echo")!, body: body)
                client.execute(request) { echoes[length] = $0; finished() }
            }
        }
        #expect(greeting?.status == 200 && greeting.map { String(decoding: $0.body, as: UTF8.self) } == "Hello, World!")
        for length in [nil, upload.count] as [Int?] {
            let echo = try #require(try echoes[length]?.get())
            #expect(echo.status == 200 && echo.body == upload, "\(String(describing: length)): \(echo.body.count) bytes back")
            #expect(calls[length, default: 0] > 1, "the producer was never paused by the high watermark")
        }
    }

    @Test("malformed responses end with a clear error each, and nothing crashes", arguments: [
        ("HTTP/1.1 abc\r\n\r\n", "malformed status line 'HTTP/1.1 abc'"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", "bad Content-Length '12x'"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + String(repeating: "z", count: 120), "connection closed after 120 of 1024 body bytes"),
        ("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "b", count: 70_000) + "\r\n\r\n", "response head larger than 65536 bytes"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunked encoding"),
        ("SSH-2.0-OpenSSH_9.2\r\n", "malformed status line 'SSH-2.0-OpenSSH_9.2'"),
    ], Backend.underTest)
    func malformed(_ sample: (response: String, expected: String), backend: Backend) throws {
        let (response, expected) = sample
        let server = try RawHTTPResponder(response: Array(response.utf8))
        let error = try failure(of: "\(server.url)/x", backend: backend)
        #expect(error.description == "GET \(server.url)/x: \(expected)")
    }

    @Test("a server that never answers times out at the first byte; a refused port names the address", arguments: Backend.underTest)
    func timeoutsAndRefusal(_ backend: Backend) throws {
        // Silent until the client gives up (or 30 s pass: then the error would be its close, not the timeout).
        let silent = try RawHTTPResponder(response: [], hold: .seconds(30))
        var configuration = HTTPClientConfiguration()
        configuration.firstByteTimeout = .milliseconds(300)
        let timedOut = try failure(of: "\(silent.url)/x", backend: backend, configuration: configuration)
        #expect(timedOut.kind == .timeout)
        #expect(timedOut.description == "GET \(silent.url)/x: timed out waiting for the first byte after 300 ms")

        let port = try freeLoopbackPort()
        let refused = try failure(of: "http://127.0.0.1:\(port)/", backend: backend)
        #expect(refused.kind == .connect)
        #expect(refused.description.contains("ECONNREFUSED"), "\(refused)")
    }

    /// The error a GET of `url` ends with.
    private func failure(of url: String, backend: Backend,
                         configuration: HTTPClientConfiguration = HTTPClientConfiguration()) throws -> HTTPClientError {
        var outcome: Result<HTTPClientResponse, HTTPClientError>?
        try withHTTPClient(backend, configuration: configuration, timeout: .seconds(20)) { client, done in
            client.get(url) { outcome = $0; done() }
        }
        switch try #require(outcome) {
        case .success(let response): throw TestFailure("\(url) succeeded with \(response.status)")
        case .failure(let error): return error
        }
    }
}
