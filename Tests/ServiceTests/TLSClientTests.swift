// swift-reactor's own TLS client (SocketStream.connect(tls:)) against real
// TLS servers, on every backend: openssl s_server and redis-server
// --tls-port. Verification succeeds with the right CA and fails, with
// OpenSSL's reason, for an unknown CA, an expired certificate and a wrong name.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One TLS client connection in one runtime: writes `request` once
/// connected (it waits for the handshake), collects the reply until
/// `isComplete` says it is all there or the stream ends, then stops the runtime.
final class TLSToolClient: ResourceHandler {
    let request: [UInt8]
    let isComplete: ([UInt8]) -> Bool
    var received: [UInt8] = []
    var established: TLSHandshakeInfo?
    /// How the stream ended, if it did before the reply was complete.
    var ending: String?

    init(request: String, isComplete: @escaping ([UInt8]) -> Bool) {
        self.request = Array(request.utf8)
        self.isComplete = isComplete
    }

    var text: String { String(decoding: received, as: UTF8.self) }

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .connected:
            stream.write(request)
        case .tlsEstablished(let info):
            established = info
        case .received(let bytes):
            received += bytes
            if isComplete(received) {
                stream.close()
                context.stop()
            }
        default:
            break
        }
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        ending = "\(reason)"
        context.stop()
    }

    /// Connects to 127.0.0.1:`port` trusting `trust`, expecting a certificate
    /// for `serverName`, and runs a runtime of `backend` until the exchange
    /// ends (10 s at most).
    static func exchange(backend: Backend, port: UInt16, trust: TLSTrustRoots, serverName: String,
                         request: String, isComplete: @escaping ([UInt8]) -> Bool) throws -> TLSToolClient {
        struct Run: PollerVisitor {
            let client: TLSToolClient
            let address: SocketAddress
            let tls: StreamTLSOptions

            func visit<P: Poller>(_ type: P.Type) throws {
                let runtime = try Runtime<P, StopOnTimer>(service: StopOnTimer())
                let stream = try SocketStream.connect(to: address, timeout: .seconds(5), tls: tls)
                stream.handler = client
                try runtime.context.register(stream)
                runtime.context.schedule(after: .seconds(10))  // the watchdog
                try runtime.run()
            }
        }
        let client = TLSToolClient(request: request, isComplete: isComplete)
        let configuration = try TLSConfiguration(client: TLSClientOptions(trustRoots: trust))
        try backend.visit(Run(client: client, address: try SocketAddress(host: "127.0.0.1", port: port),
                              tls: StreamTLSOptions(configuration: configuration, serverName: serverName)))
        return client
    }
}

/// A Service whose only job is the watchdog: any runtime timer stops the runtime.
final class StopOnTimer: Service {
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
    func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {}
    func timerFired(_ timer: TimerID, context: Context) { context.stop() }
}

/// `redis-server --tls-port P --port 0` on a free port, in a temporary directory, saving nothing.
final class TLSRedisServer {
    let child: ChildProcess
    let port: UInt16
    private let directory: URL

    init(certificate: TLSCertificateFiles, ca: String) throws {
        let executable = try Executables.tool("redis-server")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError: Error = TestFailure("redis-server did not start")
        // The free port is found by binding port 0 and closing: another
        // process may take it in between, so a failed start is retried.
        for _ in 0..<3 {
            let port = try kvFreePort()
            let child = try ChildProcess(executable: executable, arguments: [
                "--port", "0", "--tls-port", "\(port)", "--bind", "127.0.0.1",
                "--tls-cert-file", certificate.chain, "--tls-key-file", certificate.privateKey,
                "--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
                "--save", "", "--appendonly", "no", "--dir", directory.path, "--logfile", "",
                "--loglevel", "notice", "--daemonize", "no",
            ], standardError: .file)
            do {
                // Its log is on standard output; a failed bind ends it (and the read) at once.
                while try !readLine(child.standardOutput, timeout: .seconds(10)).contains("Ready to accept connections") {}
                self.child = child
                self.port = port
                return
            } catch {
                child.stop(timeout: .seconds(10))
                lastError = TestFailure("redis-server --tls-port \(port): \(error); stderr: \(child.readStandardError())")
            }
        }
        try? FileManager.default.removeItem(at: directory)
        throw lastError
    }

    func stop() {
        child.stop(timeout: .seconds(10))
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite("the library's TLS client against openssl s_server and redis-server", .enabled(if: TLSLibrary.isBuilt))
struct TLSClientTests {
    @Test("GET / from openssl s_server -www over a verified connection", arguments: Backend.underTest)
    func sServerPage(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let server = try OpenSSLServer(certificate: certificates.server, ["-www"])
        defer { server.stop() }
        let client = try TLSToolClient.exchange(backend: backend, port: server.port, trust: .file(certificates.caCertificate),
                                                serverName: "localhost", request: "GET / HTTP/1.0\r\n\r\n") {
            String(decoding: $0, as: UTF8.self).contains("</HTML>")
        }
        #expect(client.text.hasPrefix("HTTP/1.0 200 ok\r\n"), "\(client.text) (ended \(client.ending ?? "no"))")
        // -www describes the session it serves: the same cipher as the handshake reported.
        let info = try #require(client.established)
        #expect(client.text.contains("New, \(info.version), Cipher is \(info.cipher)\n"), "\(info) \(client.text)")
        #expect(info.peerSubject?.contains("CN=localhost") == true)
        #expect(client.ending == nil, "the stream ended before the page was complete: \(client.ending ?? "")")
    }

    @Test("verification fails with OpenSSL's reason for a certificate no CA vouches for, an expired one and a wrong name",
          arguments: Backend.underTest, ["selfSigned", "expired", "wrongName"])
    func sServerRefused(backend: Backend, which: String) throws {
        let certificates = try TestCertificates.shared()
        let (files, reason) = switch which {
        case "selfSigned": (certificates.selfSigned, "self-signed certificate")
        case "expired": (certificates.expired, "certificate has expired")
        default: (certificates.wrongName, "hostname mismatch")
        }
        let server = try OpenSSLServer(certificate: files, ["-www"])
        defer { server.stop() }
        let client = try TLSToolClient.exchange(backend: backend, port: server.port, trust: .file(certificates.caCertificate),
                                                serverName: "localhost", request: "GET / HTTP/1.0\r\n\r\n") { _ in false }
        #expect(client.received.isEmpty && client.established == nil)
        let ending = try #require(client.ending, "the client neither failed nor finished")
        #expect(ending.hasPrefix("failed: tls handshake(") && ending.hasSuffix("certificate verify failed (\(reason))"), "\(ending)")
    }

    @Test("PING and SET/GET over TLS to redis-server --tls-port, verified by name and by IP address", arguments: Backend.underTest)
    func redisServer(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let redis = try TLSRedisServer(certificate: certificates.server, ca: certificates.caCertificate)
        defer { redis.stop() }
        for name in ["localhost", "127.0.0.1"] {
            let client = try TLSToolClient.exchange(backend: backend, port: redis.port, trust: .file(certificates.caCertificate),
                                                    serverName: name, request: "PING\r\nSET tls yes\r\nGET tls\r\n") {
                String(decoding: $0, as: UTF8.self).hasSuffix("$3\r\nyes\r\n")
            }
            #expect(client.text == "+PONG\r\n+OK\r\n$3\r\nyes\r\n", "\(name): \(client.text) (ended \(client.ending ?? "no"))")
            #expect(client.established?.version == .tls13)
        }
    }

    @Test("redis-server's certificate is refused without its CA and for another name", arguments: Backend.underTest)
    func redisServerRefused(backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        let redis = try TLSRedisServer(certificate: certificates.server, ca: certificates.caCertificate)
        defer { redis.stop() }
        let cases: [(TLSTrustRoots, String, String)] = [
            // redis-server sends its CA too (from --tls-ca-cert-file): a root nobody trusts.
            (.system, "localhost", "self-signed certificate in certificate chain"),
            (.file(certificates.caCertificate), "redis.example", "hostname mismatch"),
        ]
        for (trust, name, reason) in cases {
            let client = try TLSToolClient.exchange(backend: backend, port: redis.port, trust: trust, serverName: name,
                                                    request: "PING\r\n") { _ in false }
            #expect(client.received.isEmpty)
            let ending = try #require(client.ending, "the client neither failed nor finished")
            #expect(ending.contains("tls handshake") && ending.hasSuffix("certificate verify failed (\(reason))"), "\(ending)")
        }
    }
}
