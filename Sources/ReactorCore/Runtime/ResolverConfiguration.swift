/// Where a runtime's resolver asks, and how patiently.
public struct ResolverConfiguration: Sendable {
    /// DNS servers as `IP` or `IP:PORT` (`[IPv6]:PORT`); nil: those of
    /// `/etc/resolv.conf`. `/etc/hosts` is consulted first either way.
    public var servers: [String]?
    /// The longest one resolution may take, over every server and retry.
    public var timeout: Duration
    /// Attempts per server before giving up on it.
    public var tries: Int

    /// The system's resolver settings, a 5 s timeout, 2 tries.
    public init(servers: [String]? = nil, timeout: Duration = .seconds(5), tries: Int = 2) {
        self.servers = servers
        self.timeout = timeout
        self.tries = tries
    }
}
