import Reactor
import ReactorSync

/// Starts the `kv` service on a ``RuntimeGroup``: one runtime per thread,
/// each with its own listener on the same port (`SO_REUSEPORT`: the kernel
/// spreads connections across them) and, with TLS, a second one on the TLS
/// port, all sharing one ``KVDatabase``.
public enum KVServer {
    /// Starts `threads` runtimes serving on `host:port` and, with `tls`, on
    /// `host:tls.port` too. With port 0 the first listener gets a free port
    /// from the kernel and the others bind that one. Returns the group and
    /// the ports actually bound; throws if a listener cannot bind (the group
    /// is then stopped again). Without a `database`, a new one is made,
    /// lock-free when `threads` is 1.
    public static func start<P: Poller>(
        _ poller: P.Type, host: String = "127.0.0.1", port: UInt16, threads: Int,
        configuration: KVConfiguration = KVConfiguration(), database: KVDatabase? = nil, tls: TLSListening? = nil
    ) throws(ReactorError) -> (group: RuntimeGroup<P, KVService>, port: UInt16, tlsPort: UInt16?) {
        let database = database ?? KVDatabase(concurrent: threads > 1)
        // Checked here, before any thread starts.
        let plain = ReusePortListeners(address: try SocketAddress(host: host, port: port))
        let secure = try tls.map { tls throws(ReactorError) in
            ReusePortListeners(address: try SocketAddress(host: host, port: tls.port), tls: tls.options)
        }
        let infoBox = ReactorMutex<KVServerInfo?>(nil)
        let (group, ports) = try ReusePortListeners.started([plain] + (secure.map { [$0] } ?? [])) { () throws(ReactorError) in
            try RuntimeGroup<P, KVService>.start(threads: threads, name: "kv") { index, _ in
                // Runs on the runtime's own thread, so the listeners never cross threads.
                let listener = plain.bind()
                let info = infoBox.withLock { info -> KVServerInfo in
                    if let info { return info }
                    let made = KVServerInfo(host: host, port: listener?.localAddress.port ?? port, backendName: P.name,
                                            threadCount: threads, configuration: configuration)
                    info = made
                    return made
                }
                let listeners = [listener, secure?.bind()].compactMap { $0 }
                return KVService(database: database, info: info, listeners: listeners, index: index)
            }
        }
        return (group, ports[0], secure == nil ? nil : ports[1])
    }
}
