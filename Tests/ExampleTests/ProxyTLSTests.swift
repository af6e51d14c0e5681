// The built `proxy` with TLS on either side, on every backend: terminating
// TLS in front of its echo (openssl s_client in), originating TLS to
// openssl s_server and to the http example's TLS port (a plain client in).
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("proxy with TLS", .enabled(if: TLSLibrary.isBuilt))
struct ProxyTLSTests {
    @Test("proxy --echo --tls-cert --tls-key: s_client's lines come back through the TLS listener", arguments: Backend.underTest)
    func terminates(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let proxy = try ExampleServer("proxy", arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--echo"]
                                          + certificates.serverArguments(tlsPort: false))
        defer { proxy.child.stop() }
        // Standard input on a pipe, so the test decides when s_client's input
        // ends (-no_ign_eof: then it sends close_notify and exits).
        let input = Pipe()
        let client = try ChildProcess(executable: try Executables.tool("openssl"),
                                      arguments: ["s_client", "-connect", "127.0.0.1:\(proxy.port)", "-CAfile", certificates.caCertificate,
                                                  "-servername", "localhost", "-verify_return_error", "-quiet", "-no_ign_eof"],
                                      standardInput: input.fileHandleForReading, standardError: .file)
        defer { client.stop() }
        try input.fileHandleForReading.close()
        for line in ["hello through TLS", String(repeating: "x", count: 10_000), "and back"] {
            input.fileHandleForWriting.write(Data((line + "\n").utf8))
            let echoed = try readLine(client.standardOutput, timeout: .seconds(10))
            #expect(echoed == line, "stderr: \(client.readStandardError())")
        }
        try input.fileHandleForWriting.close()
        #expect(client.waitForExit(timeout: .seconds(10)) == 0, "s_client: \(client.readStandardError())")
        #expect(proxy.child.stop(), "proxy did not exit on SIGTERM")
    }

    @Test("proxy --upstream-tls --upstream-ca in front of openssl s_server -rev: plain in, TLS out, verified by IP address",
          arguments: Backend.underTest)
    func originatesToSServer(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let upstream = try OpenSSLServer(certificate: certificates.server, ["-rev"])
        defer { upstream.stop() }
        // No --upstream-name: the certificate must name the upstream host, 127.0.0.1 (it does, as an IP address).
        let proxy = try ExampleServer("proxy", arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0",
                                                           "--upstream", "127.0.0.1:\(upstream.port)",
                                                           "--upstream-tls", "--upstream-ca", certificates.caCertificate])
        defer { proxy.child.stop() }
        // Half-closing after the lines: the proxy passes it on as close_notify, s_server closes, and so does the proxy.
        let received = try exchange(port: proxy.port, chunks: [Array("hello\n".utf8), Array("through tls\n".utf8)],
                                    timeout: .seconds(10))
        #expect(String(decoding: received, as: UTF8.self) == "olleh\nslt hguorht\n")
        #expect(proxy.child.stop(), "proxy did not exit on SIGTERM")
    }

    @Test("proxy --upstream-tls --upstream-name localhost in front of the http example's TLS port", arguments: Backend.underTest)
    func originatesToHTTP(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let http = try ChildProcess(executable: try Executables.product("http"),
                                    arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "1"]
                                        + certificates.serverArguments(certificates.ecdsa))
        defer { http.stop() }
        _ = try http.readListeningPort("http")
        let tlsPort = try http.readListeningPort("http", suffix: " (backend \(backend.rawValue), 1 threads, tls)").port
        let proxy = try ExampleServer("proxy", arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0",
                                                           "--upstream", "127.0.0.1:\(tlsPort)", "--upstream-tls",
                                                           "--upstream-ca", certificates.caCertificate, "--upstream-name", "localhost"])
        defer { proxy.child.stop() }
        let request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        let received = String(decoding: try exchange(port: proxy.port, chunks: [Array(request.utf8)], timeout: .seconds(10)),
                              as: UTF8.self)
        #expect(received.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3, "\(received)")
        #expect(received.hasSuffix("\r\n\r\nHello, World!"), "\(received)")
        #expect(proxy.child.stop(), "proxy did not exit on SIGTERM")
    }

    @Test("an upstream that fails verification resets the client, and the proxy logs OpenSSL's reason")
    func upstreamRefused() throws {
        let certificates = try TestCertificates.shared()
        let upstream = try OpenSSLServer(certificate: certificates.server, ["-rev"])
        defer { upstream.stop() }
        let proxy = try ChildProcess(executable: try Executables.product("proxy"),
                                     arguments: ["--port", "0", "--upstream", "127.0.0.1:\(upstream.port)", "--upstream-tls",
                                                 "--upstream-ca", certificates.caCertificate, "--upstream-name", "wrong.example"],
                                     standardError: .file)
        defer { proxy.stop() }
        let port = try proxy.readListeningPort("proxy").port
        #expect(throws: (any Error).self) { _ = try exchange(port: port, chunks: [Array("hello\n".utf8)], timeout: .seconds(10)) }
        proxy.stop()
        let log = proxy.readStandardError()
        #expect(log.contains("upstream failed: tls handshake") && log.contains("certificate verify failed (hostname mismatch)"), "\(log)")
    }

    @Test("proxy: a CA file that cannot be read stops it at start with OpenSSL's reason and status 1")
    func badCAFile() throws {
        let child = try ChildProcess(executable: try Executables.product("proxy"),
                                     arguments: ["--port", "0", "--upstream", "127.0.0.1:9", "--upstream-tls", "--upstream-ca", "/nonexistent/ca.pem"])
        defer { child.stop() }
        #expect(child.waitForExit(timeout: .seconds(10)) == 1)
        let errors = child.readStandardError()
        #expect(errors.contains("proxy: tls config: cannot read CA certificates /nonexistent/ca.pem: No such file or directory"), "\(errors)")
    }
}
