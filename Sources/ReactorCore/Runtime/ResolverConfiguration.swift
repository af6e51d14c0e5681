/// Where a runtime's resolver asks, and how patiently.
///
/// Each lookup asks the servers in order; a query waits ``timeout`` for its
/// answer before the next server is asked, and after the last server the
/// round starts again, ``tries`` rounds in all. With one server and
/// `options timeout:1 attempts:2`, a server that never answers fails the
/// lookup after 2 s. Both default to the system's settings as glibc reads
/// them: `options timeout:N attempts:N` in ``resolvConf``, overridden by the
/// `RES_OPTIONS` environment variable, else 5 s and 2 (glibc's defaults).
public struct ResolverConfiguration: Sendable {
    /// DNS servers as `IP` or `IP:PORT` (`[IPv6]:PORT`); nil: the
    /// `nameserver` lines of ``resolvConf``. `/etc/hosts` is consulted first either way.
    public var servers: [String]?
    /// How long one query waits for its answer; nil: `options timeout:` of
    /// ``resolvConf`` (or `RES_OPTIONS`), else 5 s. Whole seconds there, at most 30, as glibc.
    public var timeout: Duration?
    /// Rounds over the servers before a lookup fails; nil: `options
    /// attempts:` of ``resolvConf`` (or `RES_OPTIONS`), else 2. At most 5 there, as glibc.
    public var tries: Int?
    /// The file read for `nameserver`, `search`, `domain` and `options` lines.
    public var resolvConf: String

    /// The system's resolver settings (each parameter left nil keeps them).
    public init(servers: [String]? = nil, timeout: Duration? = nil, tries: Int? = nil,
                resolvConf: String = "/etc/resolv.conf") {
        self.servers = servers
        self.timeout = timeout
        self.tries = tries
        self.resolvConf = resolvConf
    }
}
