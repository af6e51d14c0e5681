/// An endpoint as a person writes it on a command line: `HOST:PORT`, with an
/// IPv6 address in brackets (`[::1]:6379`). The host is a name, resolved
/// later, or a numeric address. What `links --redis` and `proxy --upstream` take.
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    /// The name or address, without brackets.
    public var host: String
    /// The port.
    public var port: UInt16

    /// `host` and `port` as they are.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Splits `HOST:PORT` (`[::1]:6379` for an IPv6 address); nil when it is not that.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    /// `host:port`, or `[host]:port` when the host is an IPv6 address.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
