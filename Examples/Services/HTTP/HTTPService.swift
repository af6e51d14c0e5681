import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// The `http` service of one runtime: an HTTP/1.1 server with keep-alive,
/// pipelining, `Content-Length` and chunked bodies, and slow-request
/// protection. Routes: `GET /` (a greeting), `GET /stats` (this runtime's
/// counters and resources as JSON), `POST /echo` (the body back).
///
/// One service per runtime, each with its own listener on the same port
/// (`SO_REUSEPORT`, see ``HTTPServer``) and maybe a TLS one beside it;
/// nothing is shared between them. Connections are served alike whichever
/// listener accepted them: TLS is a layer of the stream.
/// Each accepted connection gets an ``HTTPConnection`` as its handler, so
/// its events go straight to its own state. One repeating timer refreshes
/// the `Date` header and sweeps the connections' deadlines, instead of a
/// timer per connection re-armed on every request.
public final class HTTPService: Service {
    let configuration: HTTPConfiguration
    /// The configuration's timeouts in nanoseconds, converted once rather than per request.
    let timeouts: (request: UInt64, idle: UInt64, linger: UInt64)
    /// This runtime's position in its group, and the group's size (for `/stats`).
    let index: Int
    let threadCount: Int
    let backendName: String
    private let listeners: [SocketListener]
    /// Formats responses; its output buffer is shared by every connection.
    let writer: HTTPResponseWriter
    var counters = HTTPCounters()
    /// Routes of another service built on this server (`links`); nil for the `http` example's own.
    var application: HTTPApplication?
    /// Every open connection, for the deadline sweep (swap-removed by index).
    private(set) var connections: [HTTPConnection] = []
    private var ticker: TimerID?

    /// A service that serves on `listener`, which it registers when its
    /// runtime starts. A nil listener (its bind failed) serves nothing.
    public convenience init(configuration: HTTPConfiguration = HTTPConfiguration(), listener: SocketListener?,
                            index: Int = 0, threadCount: Int = 1, backendName: String) {
        self.init(configuration: configuration, listeners: listener.map { [$0] } ?? [], index: index,
                  threadCount: threadCount, backendName: backendName)
    }

    /// A service that serves on every one of `listeners` (a plain one and a
    /// TLS one, say), which it registers when its runtime starts.
    public init(configuration: HTTPConfiguration = HTTPConfiguration(), listeners: [SocketListener],
                index: Int = 0, threadCount: Int = 1, backendName: String) {
        self.configuration = configuration
        timeouts = (configuration.requestTimeout.nanoseconds, configuration.idleTimeout.nanoseconds,
                    configuration.lingerTimeout.nanoseconds)
        self.listeners = listeners
        self.index = index
        self.threadCount = threadCount
        self.backendName = backendName
        writer = HTTPResponseWriter(serverName: configuration.serverName)
    }

    /// Registers the listeners and arms the timer that refreshes the `Date`
    /// header and sweeps deadlines.
    public func runtimeStarted(context: Context) {
        for listener in listeners {
            do {
                try context.register(listener)
            } catch {
                context.logger.error("http: listener not registered: \(error)")
                context.stop()
                return
            }
        }
        ticker = context.schedule(after: configuration.sweepInterval, repeating: configuration.sweepInterval)
        application?.started(service: self, context: context)
    }

    /// The listeners' events: each accepted connection gets its ``HTTPConnection``.
    public func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        // Connections have their own handlers: only the listener reports here.
        switch event {
        case .accepted(let stream):
            let connection = HTTPConnection(service: self, stream: stream, now: context.now)
            stream.handler = connection
            connection.index = connections.count
            connections.append(connection)
            counters.connectionsAccepted &+= 1
        case .acceptPaused(let error):
            context.logger.warning("http: \(error)")
        case .acceptResumed:
            context.logger.notice("http: accepting connections again")
        default:
            break
        }
    }

    /// Only the listener reports here (connections report to their handlers):
    /// it failed, and this runtime accepts no more connections.
    public func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        context.logger.error("http: listener \(resource.id.map { "\($0)" } ?? "") ended: \(reason)")
    }

    /// The ticker: a new `Date` if the second changed, and the deadline sweep.
    public func timerFired(_ timer: TimerID, context: Context) {
        guard timer == ticker else { return }
        writer.refreshDate(now: time(nil))
        sweep(now: context.now.nanoseconds)
    }

    /// Drops the registry; the runtime closes the connections themselves.
    public func runtimeStopped(context: Context) {
        // The runtime closes the streams; dropping the registry frees their state.
        for connection in connections { connection.index = -1 }
        connections.removeAll()
    }

    /// Checks every connection's deadline. Walks backwards so that removals
    /// (a swap with the last element) never skip a connection.
    private func sweep(now: UInt64) {
        var i = connections.count - 1
        while i >= 0 {
            if i < connections.count {
                let connection = connections[i]
                connection.checkDeadline(now: now)
            }
            i -= 1
        }
    }

    /// Removes a connection from the registry (idempotent).
    func forget(_ connection: HTTPConnection) {
        let i = connection.index
        guard i >= 0, i < connections.count, connections[i] === connection else { return }
        let last = connections.removeLast()
        if i < connections.count {
            connections[i] = last
            last.index = i
        }
        connection.index = -1
    }
}
