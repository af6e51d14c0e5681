import ReactorCore
import ReactorNames

/// How a ``RedisClient`` connects, waits and retries.
public struct RedisClientOptions: Sendable {
    /// The longest a command waits for its reply; then it fails
    /// (``RedisError/Kind/timedOut(_:)``) and its late reply is dropped.
    /// One timeout for every command of a client, so that deadlines fall in
    /// the order replies do and one timer serves them all.
    public var commandTimeout: Duration
    /// The wait before the first reconnect after a connection ends or an
    /// attempt fails; it doubles on every failed attempt, up to ``maxReconnectDelay``.
    public var reconnectDelay: Duration
    /// The longest wait between reconnect attempts.
    public var maxReconnectDelay: Duration
    /// How the connection by name is made (Happy Eyeballs, timeouts, TLS).
    public var connect: ConnectOptions
    /// The reply parser's limits (bulk length, array depth and size).
    public var parser: RESPReplyParser

    /// A 5 s command timeout, reconnects after 100 ms doubling to 5 s, a 5 s connect timeout.
    public init(commandTimeout: Duration = .seconds(5), reconnectDelay: Duration = .milliseconds(100),
                maxReconnectDelay: Duration = .seconds(5), connect: ConnectOptions = ConnectOptions(timeout: .seconds(5)),
                parser: RESPReplyParser = RESPReplyParser()) {
        self.commandTimeout = commandTimeout
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
        self.connect = connect
        self.parser = parser
    }
}
