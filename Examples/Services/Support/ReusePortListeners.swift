import Reactor
import ReactorSync

/// Binds one listener per runtime of a ``RuntimeGroup`` on the same port: the
/// first on the requested port (a free one for port 0), the rest with the
/// port the first one got, all with `SO_REUSEPORT` so the kernel spreads
/// connections across them. Called from the runtimes' own threads (so a
/// listener never crosses threads), hence the lock. With ``tls`` set, every
/// listener hands over its connections speaking TLS.
public final class ReusePortListeners: Sendable {
    private struct State: Sendable {
        var port: UInt16?
        var error: ReactorError?
    }

    private let address: SocketAddress
    /// What every listener's connections speak, when TLS (see ``SocketListener/tls``).
    public let tls: StreamTLSOptions?
    private let state = ReactorMutex(State())

    /// Listeners for `address`, each runtime binding its own with
    /// `SO_REUSEPORT`; with `tls`, their connections speak TLS.
    public init(address: SocketAddress, tls: StreamTLSOptions? = nil) {
        self.address = address
        self.tls = tls
    }

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
                listener.tls = tls
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
        let (group, ports) = try ReusePortListeners.started([self], start)
        return (group, ports[0])
    }

    /// Starts `group` via `start`, then checks every runtime bound a
    /// listener of each of `sets` (a plain and a TLS port, say): returns the
    /// group and the port of each set, in order. On a bind failure the group
    /// is stopped again and the first error thrown.
    public static func started<P: Poller, S: Service>(
        _ sets: [ReusePortListeners], _ start: () throws(ReactorError) -> RuntimeGroup<P, S>
    ) throws(ReactorError) -> (group: RuntimeGroup<P, S>, ports: [UInt16]) {
        let group = try start()
        do throws(ReactorError) {
            var ports: [UInt16] = []
            for set in sets { ports.append(try set.check()) }
            return (group, ports)
        } catch {
            group.shutdown()
            group.join()
            throw error
        }
    }
}
