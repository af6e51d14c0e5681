import Reactor

/// Starts the `http` service on a ``RuntimeGroup``: one runtime per thread,
/// each with its own listener on the same port (`SO_REUSEPORT`, so the
/// kernel spreads connections across them).
public enum HTTPServer {
    /// Starts `threads` runtimes serving on `host:port`. With port 0 the
    /// first listener gets a free port from the kernel and the others bind
    /// that one. Returns the group and the port actually bound; throws if a
    /// listener cannot bind (the group is then stopped again).
    public static func start<P: Poller>(
        _ poller: P.Type, host: String = "127.0.0.1", port: UInt16, threads: Int,
        configuration: HTTPConfiguration = HTTPConfiguration()
    ) throws(ReactorError) -> (group: RuntimeGroup<P, HTTPService>, port: UInt16) {
        let address = try SocketAddress(host: host, port: port)  // checked here, before any thread starts
        let listeners = ReusePortListeners(address: address)
        return try listeners.started { () throws(ReactorError) in
            try RuntimeGroup<P, HTTPService>.start(threads: threads, name: "http") { index, _ in
                // Runs on the runtime's own thread, so the listener never crosses threads.
                HTTPService(configuration: configuration, listener: listeners.bind(), index: index,
                            threadCount: threads, backendName: P.name)
            }
        }
    }
}
