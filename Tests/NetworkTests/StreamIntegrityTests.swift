// 1,000 concurrent clients, each sending 1 MiB in random chunk sizes and
// comparing every byte that comes back: through the echo service, and
// through the proxy (client → proxy → echo → proxy → client). Zero bytes
// may be lost, duplicated or reordered, on every backend.
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

// Serialized: each case holds 2,000 (echo) or 4,000 (proxy) descriptors and
// moves 2 GiB through loopback; one at a time keeps the run predictable.
@Suite("Stream integrity under load", .serialized)
struct StreamIntegrityTests {
    static let clients = 1000
    static let bytesPerClient = 1 << 20

    @Test("1,000 clients × 1 MiB through echo: every byte back, in order", arguments: Backend.underTest)
    func echo(_ backend: Backend) throws {
        try ensureDescriptorLimit(3 * Self.clients + 500)
        let server = try ServerThread(backend, name: "echo-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            try listen(context, handler: EchoHandler()).localAddress.port
        }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port),
                                            connections: Self.clients, bytesPerConnection: Self.bytesPerClient)
        try server.stop()
        print("echo/\(backend): \(report)")
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == Self.clients)
        #expect(report.bytesCompared == Self.clients * Self.bytesPerClient)
    }

    @Test("1,000 clients × 1 MiB through the proxy to an echo in the same runtime: every byte back, in order",
          arguments: Backend.underTest)
    func proxy(_ backend: Backend) throws {
        try ensureDescriptorLimit(5 * Self.clients + 500)
        // The echo upstream lives in the proxy's runtime (a listener whose
        // handler its connections inherit): one loop, two protocols, server and client.
        let server = try ServerThread(backend, name: "proxy-\(backend)", makeService: {
            ProxyService(configuration: ProxyConfiguration(upstream: .loopback(port: 1)))
        }) { proxy, context throws(ReactorError) in
            let echo = try listen(context, handler: EchoHandler())
            proxy.configuration.upstream = echo.localAddress
            return try listen(context).localAddress.port
        }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port),
                                            connections: Self.clients, bytesPerConnection: Self.bytesPerClient)
        let open = try server.inspect { $0.resourceCount }
        try server.stop()
        print("proxy/\(backend): \(report)")
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == Self.clients)
        #expect(report.bytesCompared == Self.clients * Self.bytesPerClient)
        #expect(open == 2, "after every client finished, only the two listeners should remain; \(open) resources are registered")
    }
}
