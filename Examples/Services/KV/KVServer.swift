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
        let binder = KVListenerBinder(address: address)
        let infoBox = Mutex<KVServerInfo?>(nil)
        let group = try RuntimeGroup<P, KVService>.start(threads: threads, name: "kv") { index, _ in
            // Runs on the runtime's own thread, so the listener never crosses threads.
            let listener = binder.bind()
            let info = infoBox.withLock { info -> KVServerInfo in
                if let info { return info }
                let made = KVServerInfo(host: host, port: listener?.localAddress.port ?? port, backendName: P.name,
                                        threadCount: threads, configuration: configuration)
                info = made
                return made
            }
            return KVService(database: database, info: info, listener: listener, index: index)
        }
        let outcome = binder.outcome
        guard let boundPort = outcome.port, outcome.error == nil else {
            group.shutdown()
            group.join()
            throw outcome.error ?? ReactorError("bind", .named("\(address)"), detail: "no listener was bound")
        }
        return (group, boundPort)
    }
}

/// Binds the group's listeners: the first on the requested port, the rest on
/// the port the first one got. Shared by the runtimes' threads, hence the lock.
private final class KVListenerBinder: Sendable {
    struct Outcome: Sendable {
        var port: UInt16?
        var error: ReactorError?
    }

    private let address: SocketAddress
    private let state = Mutex(Outcome())

    init(address: SocketAddress) { self.address = address }

    var outcome: Outcome { state.withLock { $0 } }

    /// A listener bound on the calling thread, or nil after recording why not.
    func bind() -> SocketListener? {
        state.withLock { outcome -> SocketListener? in
            guard outcome.error == nil else { return nil }
            do throws(ReactorError) {
                let port = outcome.port ?? address.port
                let address = try SocketAddress(host: self.address.host, port: port)
                if outcome.port == nil && port != 0 {
                    // SO_REUSEPORT would let this server join another one of the
                    // same user already on the port, silently splitting its
                    // traffic: a plain bind first fails with EADDRINUSE instead.
                    _ = try SocketListener(bindingTo: address, options: ListenerOptions(backlog: 1))
                }
                let listener = try SocketListener(bindingTo: address, options: ListenerOptions(reusePort: true))
                outcome.port = listener.localAddress.port
                return listener
            } catch {
                outcome.error = error
                return nil
            }
        }
    }
}
