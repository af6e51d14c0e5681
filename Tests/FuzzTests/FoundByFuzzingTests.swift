// What the fuzz targets found, each pinned by a test of its own (the inputs
// are also in the seed corpora, named found-...).
import PollEpoll
import ProtocolHTTP1
import ReactorCore
import ReactorNames
import ReactorTLS
import Testing

@Suite("Bugs the fuzzers found")
struct FoundByFuzzingTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("a request target that is only a query is refused, not routed on an empty path")
    func queryOnlyTarget() {
        for request in ["POST ?c HTTP/1.1\r\nHost: x\r\n\r\n", "GET ? HTTP/1.1\r\nHost: x\r\n\r\n"] {
            let result = Self.bytes(request).withUnsafeBytes { HTTPHeadParser.parse($0, maxHeaderBytes: 8192) }
            guard case .invalid(.badRequest) = result else { Issue.record("\(request.debugDescription): \(result)"); continue }
        }
        let fine = Self.bytes("GET /?c HTTP/1.1\r\nHost: x\r\n\r\n").withUnsafeBytes { HTTPHeadParser.parse($0, maxHeaderBytes: 8192) }
        guard case .complete(let head) = fine else { Issue.record("\(fine)"); return }
        #expect(head.path == 4..<5)
    }

    @Test("a control byte in a response's reason phrase makes the status line malformed")
    func controlInReason() {
        for line in ["HTTP/1.0 302 Found\roa", "HTTP/1.1 200 O\u{1}K", "HTTP/1.1 200 \u{7F}"] {
            let result = Self.bytes(line + "\r\n\r\n").withUnsafeBytes { HTTPResponseHeadParser.parse($0, maxHeaderBytes: 8192) }
            guard case .invalid(let reason) = result else { Issue.record("\(line.debugDescription): \(result)"); continue }
            #expect(reason.hasPrefix("malformed status line"), "\(reason)")
        }
        let tab = Self.bytes("HTTP/1.1 200 All\tfine\r\n\r\n").withUnsafeBytes { HTTPResponseHeadParser.parse($0, maxHeaderBytes: 8192) }
        guard case .complete(let head) = tab else { Issue.record("\(tab)"); return }
        #expect(head.reason == "All\tfine")
    }

    @Test("HOST:PORT takes an IPv6 address only in brackets, and a port only in digits")
    func hostAndPort() {
        #expect(HostAndPort("localhost:6379") == HostAndPort(host: "localhost", port: 6379))
        #expect(HostAndPort("[::1]:6379") == HostAndPort(host: "::1", port: 6379))
        #expect(HostAndPort("[fe80::1%lo]:1") == HostAndPort(host: "fe80::1%lo", port: 1))
        for refused in ["localhost::43644", "::1:6379", "a:b:80", "[localhost]:80", "h:+80", "h:0", "h:65536", "h: 80", "h:",
                        "a b:80", "a\u{0}b:80", "[::1:80", "::1]:80", ":80", "[]:80", "x]:y:80"] {
            #expect(HostAndPort(refused) == nil, "\(refused.debugDescription)")
        }
        #expect(HostAndPort("[::1]:80")?.description == "[::1]:80")
    }

    @Test("an HTTP URL with a bracket, space or control character in its host or target is refused")
    func urls() throws {
        for refused in ["http://a:b:80/", "http://x]:y:80/", "http://[abc]/", "http://a\u{0}b/", "http://a b/",
                        "http://h/a \u{301}b", "http://h/\u{7F}", "http://h:+80/", "http://h:0/"] {
            #expect(HTTPURL(refused) == nil, "\(refused.debugDescription)")
        }
        // A combining mark after the slash must not hide it (the path would become part of the host).
        let marked = try #require(HTTPURL("http://example.test/\u{07ED}4i"))
        #expect(marked.host == "example.test" && marked.target == "/\u{07ED}4i")
        #expect(HTTPURL(marked.description) == marked)
        #expect(marked.resolving("/\u{301}x")?.target == "/\u{301}x")
        #expect(marked.resolving("x#\u{301}y")?.target == "/x")
        #expect(HTTPURL("HTTP\u{1A}//x/") == nil && HTTPURL("HTTPS://x/")?.secure == true)
        let url = try #require(HTTPURL("http://[::1]:8080/a/b?q#frag"))
        #expect(url.description == "http://[::1]:8080/a/b?q")
        #expect(url.resolving("/a b") == nil)
        #expect(url.resolving("c d") == nil)
        #expect(url.resolving("/y#frag")?.target == "/y")
        #expect(url.resolving("c")?.target == "/a/c")
    }

    @Test("a numeric address or a host name with a NUL byte inside is refused, not cut short")
    func nulInAddress() throws {
        #expect(throws: ReactorError.self) { try SocketAddress(host: "127.0.0.1\u{0}junk", port: 80) }
        #expect(throws: ReactorError.self) { try SocketAddress(host: "::1\u{0}", port: 80) }
        #expect(try SocketAddress(host: "127.0.0.1", port: 80).description == "127.0.0.1:80")

        final class Quiet: Service { func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {} }
        let runtime = try Runtime<EpollPoller, Quiet>(service: Quiet())
        let context = runtime.context
        var outcome = ""
        context.resolver.resolve("127.0.0.1\u{0}.evil.test", port: 80) { result in
            outcome = "\(result)"
            context.stop()
        }
        try runtime.run()
        #expect(outcome.contains("a host name cannot contain a NUL byte"), "\(outcome)")
    }

    @Test("a Unix socket file whose name starts with @ is a path, not the abstract name after the @")
    func atSignPath() throws {
        let file = try SocketAddress.unix(path: "@\u{1A}")
        #expect(file.path == "@\u{1A}")
        let abstract = try SocketAddress.abstract(name: "\u{1A}")
        #expect(abstract.path == nil)
        #expect(file != abstract)
        #expect(Set([file, abstract, try SocketAddress.unix(path: "@\u{1A}")]).count == 2)
        #expect(try SocketAddress(host: "fe80::1", port: 1) == SocketAddress(host: "fe80::1", port: 1))
        #expect(try SocketAddress(host: "127.0.0.1", port: 1) != SocketAddress(host: "127.0.0.1", port: 2))
    }

    @Test("a TLS client's server name with a NUL byte is refused, not sent and verified cut short")
    func nulInServerName() throws {
        guard TLSLibrary.isBuilt else { return }
        let configuration = try TLSConfiguration(client: TLSClientOptions(verification: .none))
        #expect(throws: TLSError.self) { try TLSEngine(configuration: configuration, serverName: "good.test\u{0}other.test") }
        _ = try TLSEngine(configuration: configuration, serverName: "good.test")
    }
}
