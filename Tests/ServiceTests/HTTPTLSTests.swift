// The built `http` executable serving TLS beside plain (--tls-cert, --tls-key,
// --tls-port), on every backend, against real TLS clients: openssl s_client,
// curl --cacert and wrk https://. Certificates are made at test time.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("http over TLS", .enabled(if: TLSLibrary.isBuilt))
struct HTTPTLSTests {
    @Test("openssl s_client verifies the certificate (return code 0), negotiates http/1.1 and gets the greeting",
          arguments: Backend.underTest)
    func sClient(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let server = try HTTPTestServer(backend: backend, extraArguments: certificates.serverArguments())
        defer { server.stop() }
        let tlsPort = try #require(server.tlsPort)
        // Connection: close, and -ign_eof: s_client reads until the server has answered and closed.
        let request = try temporaryFile(Array("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
        defer { try? FileManager.default.removeItem(at: request) }
        let result = try runTool("openssl", ["s_client", "-connect", "127.0.0.1:\(tlsPort)", "-CAfile", certificates.caCertificate,
                                             "-servername", "localhost", "-verify_return_error", "-alpn", "http/1.1", "-ign_eof"],
                                 input: request, timeout: .seconds(10))
        #expect(result.status == 0, "s_client failed: \(result.errorOutput)")
        #expect(result.output.contains("Verify return code: 0 (ok)"), "\(result.output)")
        #expect(result.output.contains("ALPN protocol: http/1.1"), "\(result.output)")
        #expect(result.output.contains("HTTP/1.1 200 OK\r\n"), "\(result.output)")
        #expect(result.output.contains("\r\n\r\nHello, World!"), "\(result.output)")
        #expect(server.stop() == nil, "http did not exit with status 0 on SIGTERM")
    }

    @Test("curl --cacert: 200 and the greeting over TLS, and over plain on the other port of the same server",
          arguments: Backend.underTest)
    func curlGreeting(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let server = try HTTPTestServer(backend: backend, extraArguments: certificates.serverArguments())
        defer { server.stop() }
        let tlsPort = try #require(server.tlsPort)
        let secure = try runTool("curl", ["-sS", "--max-time", "10", "--cacert", certificates.caCertificate,
                                          "--resolve", "localhost:\(tlsPort):127.0.0.1", "-w", "\n%{http_code} %{ssl_verify_result}",
                                          "https://localhost:\(tlsPort)/"])
        #expect(secure.status == 0, "curl failed: \(secure.errorOutput)")
        #expect(secure.output == "Hello, World!\n200 0")
        // The certificate's IP address names the server too.
        let byAddress = try runTool("curl", ["-sS", "--max-time", "10", "--cacert", certificates.caCertificate,
                                             "https://127.0.0.1:\(tlsPort)/"])
        #expect(byAddress.status == 0 && byAddress.output == "Hello, World!", "curl failed: \(byAddress.errorOutput)")
        let plain = try runTool("curl", ["-sS", "--max-time", "10", server.url + "/"])
        #expect(plain.status == 0 && plain.output == "Hello, World!", "curl failed: \(plain.errorOutput)")
        #expect(server.stop() == nil, "http did not exit with status 0 on SIGTERM")
    }

    @Test("two https URLs in one curl run share one TLS connection", arguments: Backend.underTest)
    func curlKeepAlive(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let server = try HTTPTestServer(backend: backend, extraArguments: certificates.serverArguments())
        defer { server.stop() }
        let url = "https://localhost:\(try #require(server.tlsPort))"
        let result = try runTool("curl", ["-sS", "-v", "--max-time", "10", "--cacert", certificates.caCertificate,
                                          "--resolve", "localhost:\(server.tlsPort!):127.0.0.1",
                                          "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
                                          url + "/", url + "/stats"])
        #expect(result.status == 0, "curl failed: \(result.errorOutput)")
        #expect(result.output == "200 1\n200 0\n")
        #expect(result.errorOutput.contains("Re-using existing connection"), "curl -v did not reuse the connection: \(result.errorOutput)")
        #expect(result.errorOutput.contains("SSL certificate verify ok"), "\(result.errorOutput)")
    }

    @Test("uploads to /echo over TLS come back byte for byte, with Content-Length and chunked", arguments: Backend.underTest)
    func uploadEcho(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let server = try HTTPTestServer(backend: backend, extraArguments: certificates.serverArguments())
        defer { server.stop() }
        let input = randomBytes(300_000)
        let inputFile = try temporaryFile(input)
        let outputFile = inputFile.appendingPathExtension("out")
        defer {
            for file in [inputFile, outputFile] { try? FileManager.default.removeItem(at: file) }
        }
        for extra in [[], ["-H", "Transfer-Encoding: chunked"]] {
            let result = try runTool("curl", ["-sS", "--max-time", "10", "--cacert", certificates.caCertificate] + extra
                                         + ["--data-binary", "@" + inputFile.path, "-o", outputFile.path, "-w", "%{http_code}",
                                            "https://127.0.0.1:\(try #require(server.tlsPort))/echo"])
            #expect(result.status == 0 && result.output == "200", "curl \(extra) failed: \(result.errorOutput)")
            let output = [UInt8](try Data(contentsOf: outputFile))
            #expect(output.count == input.count && output == input, "\(extra): the echoed body differs from the one sent")
        }
    }

    @Test("wrk https:// -c20 for 2 s on two runtimes: requests served, no socket errors, only 200s", arguments: Backend.underTest)
    func wrk(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let server = try HTTPTestServer(backend: backend, threads: 2, extraArguments: certificates.serverArguments(certificates.ecdsa))
        defer { server.stop() }
        let result = try runTool("wrk", ["-t1", "-c20", "-d2s", "https://127.0.0.1:\(try #require(server.tlsPort))/"],
                                 timeout: .seconds(20))
        #expect(result.status == 0, "wrk failed: \(result.errorOutput)")
        let line = try #require(result.output.split(separator: "\n").first { $0.contains(" requests in ") },
                                "no request count in: \(result.output)")
        let requests = Int(line.trimmingCharacters(in: .whitespaces).prefix { $0.isNumber }) ?? 0
        #expect(requests > 0, "\(line)")
        #expect(!result.output.contains("Socket errors"), "wrk saw socket errors: \(result.output)")
        #expect(!result.output.contains("Non-2xx"), "wrk saw other statuses: \(result.output)")
        #expect(server.stop() == nil, "http did not exit with status 0 on SIGTERM after the load")
    }

    @Test("a certificate or key that cannot be used stops http at start with OpenSSL's reason and status 1")
    func badCertificate() throws {
        let certificates = try TestCertificates.shared()
        let cases: [(arguments: [String], message: String)] = [
            (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", certificates.server.privateKey],
             "http: tls config: cannot read certificate chain /nonexistent/cert.pem: No such file or directory"),
            // The ECDSA certificate with the RSA key.
            (["--tls-cert", certificates.ecdsa.chain, "--tls-key", certificates.server.privateKey],
             "http: tls config: private key \(certificates.server.privateKey) does not match certificate chain \(certificates.ecdsa.chain)"),
        ]
        for (arguments, message) in cases {
            let child = try ChildProcess(executable: try Executables.product("http"), arguments: ["--port", "0", "--tls-port", "0"] + arguments)
            defer { child.stop() }
            let status = try #require(child.waitForExit(timeout: .seconds(10)), "http did not exit")
            let errors = child.readStandardError()
            #expect(status == 1, "\(errors)")
            #expect(errors.contains(message), "\(errors)")
            #expect(try readToEnd(child.standardOutput, timeout: .seconds(1)).isEmpty, "http announced a listener")
        }
    }

    @Test("a TLS port already taken stops http at start, naming the address, with status 1")
    func tlsPortInUse() throws {
        let certificates = try TestCertificates.shared()
        let taken = try SocketListener(bindingTo: .loopback(port: 0))  // held open until the test ends
        let port = taken.localAddress.port
        let child = try ChildProcess(executable: try Executables.product("http"),
                                     arguments: ["--port", "0", "--tls-port", "\(port)", "--tls-cert", certificates.server.chain,
                                                 "--tls-key", certificates.server.privateKey])
        defer { child.stop() }
        let status = try #require(child.waitForExit(timeout: .seconds(10)), "http did not exit")
        let errors = child.readStandardError()
        #expect(status == 1, "\(errors)")
        #expect(errors.contains("bind(127.0.0.1:\(port)): EADDRINUSE"), "\(errors)")
        withExtendedLifetime(taken) {}
    }
}
