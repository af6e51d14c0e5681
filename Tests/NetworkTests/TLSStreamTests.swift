// TLS as a layer of the stream, on every backend: the same handler code
// over plaintext and over TLS, a client and a server of swift-reactor's own
// in one runtime; every ending and failure reported with its reason.
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TLS settings both sides of these tests use.
enum TLSFixtures {
    static func server(protocols: [String] = ["echo/1"]) throws -> StreamTLSOptions {
        let certificates = try TestCertificates.shared()
        // A handshake timeout far past any load: the tests that use these
        // fixtures are about bytes, and 1,000 handshakes at once on a loaded
        // two-core machine took longer than the 10 s default.
        return StreamTLSOptions(configuration: try TLSConfiguration(server: TLSServerOptions(
            certificate: certificates.ecdsa, applicationProtocols: protocols)), handshakeTimeout: .seconds(120))
    }

    static func client(serverName: String = "localhost", trusting ca: Bool = true, protocols: [String] = ["echo/1"]) throws -> StreamTLSOptions {
        let certificates = try TestCertificates.shared()
        let trust: TLSTrustRoots = ca ? .file(certificates.caCertificate) : .system
        return StreamTLSOptions(configuration: try TLSConfiguration(client: TLSClientOptions(
            trustRoots: trust, applicationProtocols: protocols)), serverName: serverName)
    }
}

/// The client side of a test: sends `message`, half-closes, collects what comes back and how it ended.
final class TLSProbeClient: ResourceHandler {
    let message: [UInt8]
    var received: [UInt8] = []
    var established: TLSHandshakeInfo?
    var ending: String?

    init(message: [UInt8]) { self.message = message }

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .connected:
            // Written before the handshake: it waits, encrypted and sent once the handshake completes.
            stream.write(message)
            stream.shutdownWrite()
        case .tlsEstablished(let info):
            established = info
        case .received(let bytes):
            received += bytes
        case .readClosed:
            ending = "readClosed"
        default:
            break
        }
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        ending = (ending.map { $0 + ", " } ?? "") + "\(reason)"
        context.stop()
    }
}

@Suite("TLS streams")
struct TLSStreamTests {
    @Test("a TLS client and a TLS echo server in one runtime: plaintext both ways, ALPN, peer subject, half-close",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func echoOverTLS(_ backend: Backend) throws {
        struct Run: PollerVisitor {
            func visit<P: Poller>(_ type: P.Type) throws -> (TLSProbeClient, [String]) {
                let runtime = try Runtime<P, LoggingService>(service: LoggingService())
                let listener = try SocketListener(bindingTo: .loopback(port: 0),
                                                  connectionOptions: StreamOptions(allowRemoteHalfClosure: false))
                listener.tls = try TLSFixtures.server()
                let echo = EchoHandler()
                listener.connectionHandler = { _ in echo }
                try runtime.context.register(listener)
                let message = Array(repeating: Array("over TLS ".utf8), count: 10_000).flatMap { $0 }
                let client = TLSProbeClient(message: message)
                let stream = try SocketStream.connect(to: listener.localAddress, timeout: .seconds(5), tls: try TLSFixtures.client())
                stream.handler = client
                try runtime.context.register(stream)
                runtime.context.schedule(after: .seconds(10))  // a watchdog: LoggingService ignores timers, so stop from the client
                try runtime.run()
                return (client, [])
            }
        }
        let (client, _) = try backend.visit(Run())
        #expect(client.received.count == 90_000, "ended \(client.ending ?? "never")")
        #expect(client.received == Array(repeating: Array("over TLS ".utf8), count: 10_000).flatMap { $0 })
        #expect(client.established?.applicationProtocol == "echo/1")
        #expect(client.established?.peerSubject?.contains("CN=localhost") == true, "\(String(describing: client.established))")
        #expect(client.ending == "readClosed, closed by peer")
    }

    @Test("a client that does not trust the server's CA fails the handshake with OpenSSL's reason",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func unknownCAFails(_ backend: Backend) throws {
        struct Run: PollerVisitor {
            func visit<P: Poller>(_ type: P.Type) throws -> TLSProbeClient {
                let runtime = try Runtime<P, LoggingService>(service: LoggingService())
                let listener = try SocketListener(bindingTo: .loopback(port: 0))
                listener.tls = try TLSFixtures.server()
                listener.connectionHandler = { _ in EchoHandler() }
                try runtime.context.register(listener)
                let client = TLSProbeClient(message: Array("secret".utf8))
                let stream = try SocketStream.connect(to: listener.localAddress, tls: try TLSFixtures.client(trusting: false))
                stream.handler = client
                try runtime.context.register(stream)
                try runtime.run()
                return client
            }
        }
        let client = try backend.visit(Run())
        #expect(client.received.isEmpty)
        #expect(client.established == nil)
        let ending = try #require(client.ending)
        #expect(ending.contains("tls handshake") && ending.contains("certificate verify failed"), "\(ending)")
    }
}
