import Reactor

/// Starts the `http` service on a ``RuntimeGroup``: one runtime per thread,
/// each with its own listener on the same port (`SO_REUSEPORT`, so the
/// kernel spreads connections across them) and, with TLS, a second one on
/// the TLS port: plain and TLS side by side in every runtime.
public enum HTTPServer {
    /// Starts `threads` runtimes serving on `host:port` and, with `tls`, on
    /// `host:tls.port` too. With port 0 the first listener gets a free port
    /// from the kernel and the others bind that one. Returns the group and
    /// the ports actually bound; throws if a listener cannot bind (the group
    /// is then stopped again).
    public static func start<P: Poller>(
        _ poller: P.Type, host: String = "127.0.0.1", port: UInt16, threads: Int,
        configuration: HTTPConfiguration = HTTPConfiguration(), tls: TLSListening? = nil
    ) throws(ReactorError) -> (group: RuntimeGroup<P, HTTPService>, port: UInt16, tlsPort: UInt16?) {
        // Checked here, before any thread starts.
        let plain = ReusePortListeners(address: try SocketAddress(host: host, port: port))
        let secure = try tls.map { tls throws(ReactorError) in
            ReusePortListeners(address: try SocketAddress(host: host, port: tls.port), tls: tls.options)
        }
        let sets = [plain] + (secure.map { [$0] } ?? [])
        let (group, ports) = try ReusePortListeners.started(sets) { () throws(ReactorError) in
            try RuntimeGroup<P, HTTPService>.start(threads: threads, name: "http") { index, _ in
                // Runs on the runtime's own thread, so the listeners never cross threads.
                HTTPService(configuration: configuration, listeners: sets.compactMap { $0.bind() }, index: index,
                            threadCount: threads, backendName: P.name)
            }
        }
        return (group, ports[0], secure == nil ? nil : ports[1])
    }
}
