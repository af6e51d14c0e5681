import ReactorCore

/// A few ``RedisClient`` connections to one server on one runtime, behind
/// the same ``send(_:completion:)``: each command goes to the connected
/// client with the fewest commands waiting (ties in turn), so one slow
/// reply holds up only the commands behind it on its own connection.
///
/// ```swift
/// let pool = RedisPool(host: "db.internal", port: 6379, connections: 4)
/// try pool.start(context: context)
/// pool.send(["INCR", "visits"]) { result in print(result) }   // success((integer) 1)
/// ```
///
/// **Commands sent to different connections are not ordered relative to
/// each other**: `SET k v` then `GET k` may be answered in either order,
/// and the `GET` may not see the `SET`. Send commands that depend on each
/// other from the first one's completion, or on one ``RedisClient``
/// (``clients``); a transaction (`MULTI` … `EXEC`) or anything else that
/// keeps state on its connection (`SELECT`, `WATCH`, `SUBSCRIBE`) needs a
/// single client.
///
/// Each client fails, reconnects and times out on its own, as a
/// ``RedisClient`` does. While none is connected, a command goes to one
/// that is connecting and waits for it; when none is even connecting
/// (every one waits to reconnect), it fails at once, naming the server and
/// the last failure:
/// `redis GET k: not connected: none of 4 connections to db.internal:6379 is up (connect(db.internal:6379): every address failed: …); retrying`.
public final class RedisPool {
    /// The server's name (or address) as given.
    public let host: String
    /// The server's port.
    public let port: UInt16
    /// The connections, each a client of its own: for their counters and
    /// state, or for commands that need one connection.
    public let clients: [RedisClient]

    private weak var context: Context?
    private var started = false
    private var closed = false
    /// Where the search for the least busy client starts: after the last one chosen.
    private var next = 0
    /// Commands the pool failed itself, for no client would take them.
    private var refused: UInt64 = 0

    /// A pool of `connections` clients (at least one) for `host:port`, each
    /// with `options`; nothing happens until ``start(context:)``.
    public init(host: String, port: UInt16, connections: Int = 4, options: RedisClientOptions = RedisClientOptions()) {
        self.host = host
        self.port = port
        clients = (0..<max(1, connections)).map { _ in RedisClient(host: host, port: port, options: options) }
    }

    /// Starts every client connecting, on `context`'s runtime (call it on
    /// that thread). Commands may be sent at once: they wait for the connections.
    public func start(context: Context) throws(ReactorError) {
        guard !started, !closed else { return }
        started = true
        self.context = context
        for client in clients { try client.start(context: context) }
    }

    /// Sends one command on the connected client with the fewest commands
    /// waiting (ties in turn); `completion` gets its reply, as from
    /// ``RedisClient/send(_:completion:)``.
    public func send(_ arguments: [String], completion: @escaping RedisClient.Completion) {
        if let client = leastBusy(.connected) ?? leastBusy(.connecting) {
            return client.send(arguments, completion: completion)
        }
        let why: RedisError.Kind
        if closed {
            why = .closed
        } else if !started {
            why = .notConnected("the pool was not started")
        } else {
            why = .notConnected("none of \(clients.count) connections to \(name) is up (\(lastFailure ?? "no connection")); retrying")
        }
        refused &+= 1
        let error = RedisError(command: RedisError.label(arguments.isEmpty ? ["(empty)"] : arguments), kind: why)
        // Never inside the caller's own call, as a client does: a completion that sends again would nest.
        if let context { context.runAfterCallback { completion(.failure(error)) } } else { completion(.failure(error)) }
    }

    /// Closes every client: each fails its waiting commands
    /// (``RedisError/Kind/closed``) and makes no more connections.
    public func close() {
        closed = true
        for client in clients { client.close() }
    }

    // MARK: Aggregates

    /// Every client's counters summed; `failed` also counts the commands the
    /// pool failed itself because no client was up.
    public var counters: RedisClient.Counters {
        var total = RedisClient.Counters()
        for client in clients {
            total.sent &+= client.counters.sent
            total.replies &+= client.counters.replies
            total.failed &+= client.counters.failed
            total.connects &+= client.counters.connects
        }
        total.failed &+= refused
        return total
    }

    /// The best of the clients' states: `connected` while any one is,
    /// else `connecting`, else `waitingToReconnect`; `idle` before
    /// ``start(context:)``, `closed` after ``close()``.
    public var state: RedisClient.State {
        if closed { return .closed }
        if !started { return .idle }
        let states = clients.map(\.state)
        for best in [RedisClient.State.connected, .connecting, .waitingToReconnect] where states.contains(best) { return best }
        return .closed
    }

    /// How many clients are connected now.
    public var connectedCount: Int { clients.count(where: { $0.state == .connected }) }

    /// Commands sent and not yet answered, over every client.
    public var pendingCount: Int { clients.reduce(0) { $0 + $1.pendingCount } }

    /// The latest of the clients' ``RedisClient/lastFailure``s.
    public var lastFailure: String? {
        clients.filter { $0.lastFailure != nil }.max { $0.lastFailureTime < $1.lastFailureTime }?.lastFailure
    }

    // MARK: Choosing

    private var name: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The client in `state` with the fewest pending commands; of equals,
    /// the first after the last one chosen.
    private func leastBusy(_ state: RedisClient.State) -> RedisClient? {
        var chosen: Int?
        var fewest = Int.max
        for offset in 0..<clients.count {
            let index = (next + offset) % clients.count
            let client = clients[index]
            if client.state == state && client.pendingCount < fewest {
                chosen = index
                fewest = client.pendingCount
            }
        }
        guard let chosen else { return nil }
        next = (chosen + 1) % clients.count
        return clients[chosen]
    }
}
