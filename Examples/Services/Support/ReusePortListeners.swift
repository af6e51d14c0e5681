import Reactor
import Synchronization

/// Binds one listener per runtime of a ``RuntimeGroup`` on the same port: the
/// first on the requested port (a free one for port 0), the rest with the
/// port the first one got, all with `SO_REUSEPORT` so the kernel spreads
/// connections across them. Called from the runtimes' own threads (so a
/// listener never crosses threads), hence the lock.
public final class ReusePortListeners: Sendable {
    private struct State: Sendable {
        var port: UInt16?
        var error: ReactorError?
    }

    private let address: SocketAddress
    private let state = Mutex(State())

    /// Listeners for `address`, each runtime binding its own with `SO_REUSEPORT`.
    public init(address: SocketAddress) { self.address = address }

    /// The port bound, once the first listener is.
    public var port: UInt16? { state.withLock { $0.port } }

    /// A listener bound on the calling thread, or nil after recording why
    /// not (see ``check()``).
    public func bind() -> SocketListener? {
        state.withLock { state -> SocketListener? in
            guard state.error == nil else { return nil }
            do throws(ReactorError) {
                let port = state.port ?? address.port
                let address = try SocketAddress(host: self.address.host, port: port)
                if state.port == nil && port != 0 {
                    // SO_REUSEPORT would let this server join another one of the
                    // same user already on the port, silently splitting its
                    // traffic: a plain bind first fails with EADDRINUSE instead.
                    // (The probe closes when dropped, before the real bind.)
                    _ = try SocketListener(bindingTo: address, options: ListenerOptions(backlog: 1))
                }
                let listener = try SocketListener(bindingTo: address, options: ListenerOptions(reusePort: true))
                state.port = listener.localAddress.port
                return listener
            } catch {
                state.error = error
                return nil
            }
        }
    }

    /// The port every listener is bound to; throws the first bind failure.
    public func check() throws(ReactorError) -> UInt16 {
        let outcome = state.withLock { $0 }
        if let error = outcome.error { throw error }
        guard let port = outcome.port else { throw ReactorError("bind", .named("\(address)"), detail: "no listener was bound") }
        return port
    }

    /// Starts `group` via `start`, then checks every runtime bound: on a bind
    /// failure the group is stopped again and the error thrown.
    public func started<P: Poller, S: Service>(
        _ start: () throws(ReactorError) -> RuntimeGroup<P, S>
    ) throws(ReactorError) -> (group: RuntimeGroup<P, S>, port: UInt16) {
        let group = try start()
        do {
            return (group, try check())
        } catch {
            group.shutdown()
            group.join()
            throw error
        }
    }
}
