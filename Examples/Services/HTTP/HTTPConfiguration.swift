/// The limits and timeouts of the `http` service; one value shared by every
/// runtime of a group.
public struct HTTPConfiguration: Sendable {
    /// The largest request head (request line, header fields and the blank
    /// line) accepted; a larger one is answered `431`. Also bounds the
    /// trailer section of a chunked body.
    public var maxHeaderBytes: Int
    /// The largest request body accepted, declared or decoded; a larger one
    /// is answered `413` without reading it.
    public var maxBodyBytes: Int
    /// Slow-request limit: a request head must be complete within this time
    /// of its first byte, and a body must make progress at least this often,
    /// or the request is answered `408` and the connection closed
    /// (slowloris). A new connection must start its first request within it too.
    public var requestTimeout: Duration
    /// How long a keep-alive connection may sit idle between requests
    /// before it is closed (silently: no request is outstanding).
    public var idleTimeout: Duration
    /// How long a closing connection keeps reading (and discarding) after
    /// its last response before it is closed anyway. Waiting for the client's
    /// end of file keeps unread request bytes from turning the close into a
    /// reset that could destroy the response in flight.
    public var lingerTimeout: Duration
    /// The `Server` header's value.
    public var serverName: String

    /// The defaults: 8 KiB heads, 1 MiB bodies, 10 s to send a request,
    /// 60 s of keep-alive idleness, 2 s of lingering on close.
    public init(maxHeaderBytes: Int = 8 << 10, maxBodyBytes: Int = 1 << 20,
                requestTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60),
                lingerTimeout: Duration = .seconds(2), serverName: String = "swift-reactor") {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.lingerTimeout = lingerTimeout
        self.serverName = serverName
    }

    /// How often the service checks its connections' deadlines: a quarter
    /// of the shortest timeout, between 10 ms and 250 ms, so a timeout is
    /// enforced within 25% of its length without a timer per connection.
    var sweepInterval: Duration {
        let shortest = min(requestTimeout, idleTimeout, lingerTimeout)
        return min(max(shortest / 4, .milliseconds(10)), .milliseconds(250))
    }
}
