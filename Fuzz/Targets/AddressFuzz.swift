import ProtocolHTTP1
import ReactorCore

#if canImport(Glibc)
import Glibc
#endif

/// Every place the project turns text into somewhere to connect: `HTTPURL`
/// (and a `Location` resolved against one), `HOST:PORT` (`HostAndPort`, the
/// `--redis` and `--upstream` flags), numeric addresses
/// (`SocketAddress(host:port:)`) and Unix socket names.
///
/// Checks, for what is accepted: it is well formed (no spaces, control
/// characters or stray brackets where a request line or a header will
/// carry it; an IPv6 address only in brackets); what it prints parses back
/// to the same value; and a numeric address agrees with `inet_pton` on the
/// exact bytes, NUL included.
enum AddressFuzz {
    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let text = String(decoding: data, as: UTF8.self)
        let cut = choices.pick(0...data.count)
        let first = String(decoding: data.slice(0..<cut), as: UTF8.self)
        let second = String(decoding: data.slice(cut..<data.count), as: UTF8.self)

        for candidate in [text, "http://" + text, "https://" + first] {
            if let url = HTTPURL(candidate) {
                try checkURL(url, from: candidate)
                if let resolved = url.resolving(second) { try checkURL(resolved, from: "\(url) + \(second.debugDescription)") }
            }
        }
        for candidate in [text, first + ":" + String(choices.pick(0...70000)), "[" + first + "]:" + second] {
            if let endpoint = HostAndPort(candidate) { try checkEndpoint(endpoint, from: candidate) }
        }
        let port = UInt16(truncatingIfNeeded: choices.next())
        for candidate in [text, first] { try checkNumeric(candidate, port: port) }
        try checkUnixNames(text)
    }

    static func checkURL(_ url: HTTPURL, from text: String) throws(FuzzFailure) {
        let story = "\(text.debugDescription) parsed as host \(url.host.debugDescription), port \(url.port), target \(url.target.debugDescription)"
        try require(!url.host.isEmpty && url.host.utf8.allSatisfy(isVisible), "a bad host: \(story)")
        try require(!url.host.utf8.contains(UInt8(ascii: "[")) && !url.host.utf8.contains(UInt8(ascii: "]")), "brackets in the host: \(story)")
        try require(url.port > 0, "port 0: \(story)")
        try require(url.target.utf8.first == UInt8(ascii: "/") && url.target.utf8.allSatisfy(isVisible), "a bad target: \(story)")
        try require(!url.target.utf8.contains(UInt8(ascii: "#")), "a fragment in the target: \(story)")
        let again = HTTPURL(url.description)
        try require(again == url, "\(story); its description \(url.description.debugDescription) parsed as \(again.map(\.description) ?? "nil")")
    }

    static func checkEndpoint(_ endpoint: HostAndPort, from text: String) throws(FuzzFailure) {
        let story = "\(text.debugDescription) parsed as host \(endpoint.host.debugDescription), port \(endpoint.port)"
        try require(!endpoint.host.isEmpty && endpoint.host.utf8.allSatisfy(isVisible), "a bad host: \(story)")
        try require(endpoint.port > 0, "port 0: \(story)")
        if endpoint.host.contains(":") {
            try require(text.hasPrefix("["), "an IPv6 address without brackets: \(story)")
        }
        let again = HostAndPort(endpoint.description)
        try require(again == endpoint, "\(story); its description \(endpoint.description.debugDescription) parsed as \(again.map(\.description) ?? "nil")")
    }

    /// `SocketAddress(host:port:)` accepts exactly what `inet_pton` accepts
    /// of the whole string, and prints a host that parses to the same address.
    static func checkNumeric(_ host: String, port: UInt16) throws(FuzzFailure) {
        let family = host.contains(":") ? AF_INET6 : AF_INET
        var raw = in6_addr()
        let bytes = Array(host.utf8)
        // inet_pton on a C string holding every byte: one with a NUL inside is not an address.
        let pton = !bytes.contains(0) && inet_pton(family, host, &raw) == 1
        let address = try? SocketAddress(host: host, port: port)
        try require((address != nil) == pton, "\(host.debugDescription): SocketAddress \(address.map(\.description) ?? "refused"), inet_pton \(pton)")
        guard let address else { return }
        try require(address.port == port && address.family == family, "\(host.debugDescription) became \(address)")
        let again = try? SocketAddress(host: address.host, port: port)
        try require(again == address, "\(address) printed host \(address.host.debugDescription), which parsed as \(again.map(\.description) ?? "nil")")
    }

    /// A Unix socket name is 1 to 107 bytes without NUL; it reads back as given.
    static func checkUnixNames(_ name: String) throws(FuzzFailure) {
        let bytes = Array(name.utf8)
        let valid = !bytes.isEmpty && bytes.count <= 107 && !bytes.contains(0)
        let path = try? SocketAddress.unix(path: name)
        try require((path != nil) == valid, "unix(path: \(name.debugDescription)) \(path == nil ? "refused" : "accepted") \(bytes.count) bytes")
        if let path { try require(path.path == name && path.isUnix && path.port == 0, "unix(path: \(name.debugDescription)) reads back \(path)") }
        let abstract = try? SocketAddress.abstract(name: name)
        try require((abstract != nil) == valid, "abstract(name: \(name.debugDescription)) \(abstract == nil ? "refused" : "accepted")")
        if let abstract { try require(abstract.host == "@" + name && abstract.path == nil, "abstract(name: \(name.debugDescription)) reads back \(abstract)") }
        // Equal only to itself: a file named `@x` is not the abstract name `x`.
        if let path, let again = try? SocketAddress.unix(path: name) {
            try require(path == again && path.hashValue == again.hashValue, "unix(path: \(name.debugDescription)) differs from itself")
        }
        if let path, name.hasPrefix("@"), let abstract = try? SocketAddress.abstract(name: String(name.dropFirst())) {
            try require(path != abstract, "the file \(name.debugDescription) equals the abstract name \(String(name.dropFirst()).debugDescription)")
        }
    }

    /// Printable and not a space: what a request line or a `Host` field can carry as is.
    static func isVisible(_ byte: UInt8) -> Bool { byte > 0x20 && byte != 0x7F }
}
