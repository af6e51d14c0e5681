// The integrity load of StreamIntegrityTests over TLS: 1,000 clients × 1 MiB
// in random chunks through a TLS echo, and through the proxy terminating
// TLS in front of a plain echo in the same runtime; every byte checked as
// plaintext. An extension of that suite, so that it shares its `.serialized`:
// one of these loads at a time.
//
// The handshakes get a generous timeout (the client's deadline): 1,000 of
// them start at once, and on a loaded 2-core machine, or with faults
// injected (scripts/faults.sh), the last few hundred can take longer than
// the default 10 s while the first connections are already moving their
// megabyte. These tests judge bytes, not how fast a handshake is.
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

extension StreamIntegrityTests {
    @Test("1,000 clients × 1 MiB through a TLS echo: every byte back, in order",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func tlsEcho(_ backend: Backend) throws {
        try ensureDescriptorLimit(3 * Self.clients + 500)
        let tls = try Self.patient(TLSFixtures.server())
        let server = try ServerThread(backend, name: "tls-echo-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            let listener = try listen(context, handler: EchoHandler())
            listener.tls = tls
            return listener.localAddress.port
        }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port), connections: Self.clients,
                                            bytesPerConnection: Self.bytesPerClient, tls: try Self.patient(TLSFixtures.client()))
        let open = try server.inspect { $0.resourceCount }
        try server.stop()
        print("tls echo/\(backend): \(report)")
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == Self.clients)
        #expect(report.bytesCompared == Self.clients * Self.bytesPerClient)
        #expect(open == 1, "after every client finished, only the listener should remain; \(open) resources are registered")
    }

    @Test("1,000 clients × 1 MiB through the TLS-terminating proxy to a plain echo in the same runtime: every byte back",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func tlsProxy(_ backend: Backend) throws {
        try ensureDescriptorLimit(5 * Self.clients + 500)
        let tls = try Self.patient(TLSFixtures.server())
        let server = try ServerThread(backend, name: "tls-proxy-\(backend)", makeService: {
            ProxyService(configuration: ProxyConfiguration(upstream: .loopback(port: 1)))
        }) { proxy, context throws(ReactorError) in
            let echo = try listen(context, handler: EchoHandler())
            proxy.configuration.upstream = echo.localAddress
            let front = try listen(context)
            front.tls = tls  // clients speak TLS to the proxy; the proxy speaks plaintext upstream
            return front.localAddress.port
        }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port), connections: Self.clients,
                                            bytesPerConnection: Self.bytesPerClient, tls: try Self.patient(TLSFixtures.client()))
        let open = try server.inspect { $0.resourceCount }
        try server.stop()
        print("tls proxy/\(backend): \(report)")
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == Self.clients)
        #expect(report.bytesCompared == Self.clients * Self.bytesPerClient)
        #expect(open == 2, "after every client finished, only the two listeners should remain; \(open) resources are registered")
    }

    /// `options` with a handshake timeout as long as the client's whole deadline.
    static func patient(_ options: StreamTLSOptions) -> StreamTLSOptions {
        var options = options
        options.handshakeTimeout = .seconds(120)
        return options
    }
}
