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

    /// Parses `HOST:PORT` or `[IPV6]:PORT`. Nil for anything else: no port,
    /// a port that is not 1 to 65535 in digits, an empty host, a host with
    /// spaces, control characters or brackets, and an IPv6 address without
    /// brackets (in `::1:80` the port cannot be told from the address).
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard let colon = bytes.lastIndex(of: UInt8(ascii: ":")),
              let port = HostAndPort.port(bytes[(colon + 1)...]) else { return nil }
        var host = bytes[..<colon]
        let bracketed = host.first == UInt8(ascii: "[") && host.last == UInt8(ascii: "]") && host.count > 2
        if bracketed { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, host.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") }),
              host.contains(UInt8(ascii: ":")) == bracketed else { return nil }
        self.host = String(decoding: host, as: UTF8.self)
        self.port = port
    }

    /// 1 to 65535 in decimal digits (no sign, no spaces).
    private static func port(_ digits: ArraySlice<UInt8>) -> UInt16? {
        guard (1...5).contains(digits.count), digits.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else { return nil }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return (1...65535).contains(value) ? UInt16(value) : nil
    }

    /// `host:port`, or `[host]:port` when the host is an IPv6 address.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
