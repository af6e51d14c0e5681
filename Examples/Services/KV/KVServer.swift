import Reactor
import Synchronization

/// Starts the `kv` service on a ``RuntimeGroup``: one runtime per thread,
/// each with its own listener on the same port (`SO_REUSEPORT`: the kernel
/// spreads connections across them), all sharing one ``KVDatabase``.
public enum KVServer {
    /// Starts `threads` runtimes serving on `host:port`. With port 0 the
    /// first listener gets a free port from the kernel and the others bind
    /// that one. Returns the group and the port actually bound; throws if a
    /// listener cannot bind (the group is then stopped again). Without a
    /// `database`, a new one is made, lock-free when `threads` is 1.
    public static func start<P: Poller>(
        _ poller: P.Type, host: String = "127.0.0.1", port: UInt16, threads: Int,
        configuration: KVConfiguration = KVConfiguration(), database: KVDatabase? = nil
    ) throws(ReactorError) -> (group: RuntimeGroup<P, KVService>, port: UInt16) {
        let database = database ?? KVDatabase(concurrent: threads > 1)
        let address = try SocketAddress(host: host, port: port)  // checked here, before any thread starts
        let listeners = ReusePortListeners(address: address)
        let infoBox = Mutex<KVServerInfo?>(nil)
        return try listeners.started { () throws(ReactorError) in
            try RuntimeGroup<P, KVService>.start(threads: threads, name: "kv") { index, _ in
                // Runs on the runtime's own thread, so the listener never crosses threads.
                let listener = listeners.bind()
                let info = infoBox.withLock { info -> KVServerInfo in
                    if let info { return info }
                    let made = KVServerInfo(host: host, port: listener?.localAddress.port ?? port, backendName: P.name,
                                            threadCount: threads, configuration: configuration)
                    info = made
                    return made
                }
                return KVService(database: database, info: info, listener: listener, index: index)
            }
        }
    }
}
