// Bytes written over TLS leave in the order they were written, whenever
// they were written: before the handshake completed (they wait as plaintext)
// or in the `.tlsEstablished` callback itself.
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

/// Writes "first " while connecting and "second" when the handshake
/// completes (or, with `shutdownOnEstablished`, half-closes then instead);
/// half-closes once the echo is back.
final class HandshakeWriter: ResourceHandler {
    let shutdownOnEstablished: Bool
    var received: [UInt8] = []
    var ending: String?

    init(shutdownOnEstablished: Bool) { self.shutdownOnEstablished = shutdownOnEstablished }

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .connected:
            stream.write(Array("first ".utf8))  // waits for the handshake
        case .tlsEstablished:
            if shutdownOnEstablished { stream.shutdownWrite() } else { stream.write(Array("second".utf8)) }
        case .received(let bytes):
            received += bytes
            if received.count == "first second".utf8.count { stream.shutdownWrite() }
        default:
            break
        }
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        ending = "\(reason)"
        context.stop()
    }
}

@Suite("TLS write order")
struct TLSOrderingTests {
    @Test("a write in the .tlsEstablished callback goes out after the bytes written before the handshake",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func writeOnEstablished(_ backend: Backend) throws {
        let client = try backend.visit(Run(client: HandshakeWriter(shutdownOnEstablished: false)))
        #expect(String(decoding: client.received, as: UTF8.self) == "first second", "ended \(client.ending ?? "never")")
        #expect(client.ending == "closed by peer")
    }

    @Test("a half-close in the .tlsEstablished callback still sends the bytes written before the handshake",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func halfCloseOnEstablished(_ backend: Backend) throws {
        let client = try backend.visit(Run(client: HandshakeWriter(shutdownOnEstablished: true)))
        #expect(String(decoding: client.received, as: UTF8.self) == "first ", "ended \(client.ending ?? "never")")
        #expect(client.ending == "closed by peer")
    }

    /// A TLS echo and `client` in one runtime on this thread.
    private struct Run: PollerVisitor {
        let client: HandshakeWriter
        func visit<P: Poller>(_ type: P.Type) throws -> HandshakeWriter {
            let runtime = try Runtime<P, LoggingService>(service: LoggingService())
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            listener.tls = try TLSFixtures.server()
            listener.connectionHandler = { _ in EchoHandler() }
            try runtime.context.register(listener)
            let stream = try SocketStream.connect(to: listener.localAddress, timeout: .seconds(5), tls: try TLSFixtures.client())
            stream.handler = client
            try runtime.context.register(stream)
            runtime.context.schedule(after: .seconds(10))
            try runtime.run()
            return client
        }
    }
}
