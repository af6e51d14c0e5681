import ReactorCore
import ReactorNames
import ReactorTLS

/// An `http` or `https` URL, split into what a request needs.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    /// `https`: the connection speaks TLS.
    public var secure: Bool
    /// The host: a name, an IPv4 address, or an IPv6 address without brackets.
    public var host: String
    /// The port (80 or 443 unless the URL names one).
    public var port: UInt16
    /// The request target: the path and the query, at least `/`.
    public var target: String

    /// Parses `scheme://host[:port][/path][?query]`; nil for anything else
    /// (other schemes, user info, a bad port, a space or control character,
    /// an IPv6 address without its brackets). A fragment is dropped: it is never sent.
    public init?(_ text: String) {
        // Split on bytes, never on Characters: a combining mark after `/`
        // makes one Character that is not "/", which would hide the slash
        // and move the path into the host.
        let bytes = Array(text.utf8)
        let scheme = bytes.prefix(8).map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }  // letters lowercased, nothing else
        if scheme.starts(with: Array("http://".utf8)) { secure = false } else if scheme.starts(with: Array("https://".utf8)) { secure = true } else { return nil }
        var rest = bytes[(secure ? 8 : 7)...]
        if let hash = rest.firstIndex(of: UInt8(ascii: "#")) { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...]
        target = path.isEmpty ? "/" : String(decoding: path.first == UInt8(ascii: "?") ? [UInt8(ascii: "/")] + path : Array(path), as: UTF8.self)
        guard !authority.isEmpty, !authority.contains(UInt8(ascii: "@")) else { return nil }
        let bracketed = authority.first == UInt8(ascii: "[")
        var hostBytes: ArraySlice<UInt8>
        var portBytes: ArraySlice<UInt8>?
        if bracketed {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostBytes = authority[(authority.startIndex + 1)..<close]
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return nil }
                portBytes = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: UInt8(ascii: ":")) {
            hostBytes = authority[..<colon]
            portBytes = authority[(colon + 1)...]
        } else {
            hostBytes = authority
        }
        // A space or control byte would split the request line or the Host field.
        guard !hostBytes.isEmpty, hostBytes.allSatisfy(HTTPURL.isHostByte), path.allSatisfy(HTTPURL.isTargetByte),
              hostBytes.contains(UInt8(ascii: ":")) == bracketed else { return nil }
        host = String(decoding: hostBytes, as: UTF8.self)
        if let portBytes {
            guard (1...5).contains(portBytes.count), portBytes.allSatisfy(HTTPHeadParser.isDigit) else { return nil }
            let value = portBytes.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            guard (1...65535).contains(value) else { return nil }
            port = UInt16(value)
        } else {
            port = secure ? 443 : 80
        }
    }

    /// What a request line may carry in its target: no space, no control byte.
    static func isTargetByte(_ byte: UInt8) -> Bool { byte > 0x20 && byte != 0x7F }

    /// What a `Host` field may carry: as for a target, and no brackets (only
    /// around an IPv6 address, which are not part of the host).
    static func isHostByte(_ byte: UInt8) -> Bool { isTargetByte(byte) && byte != UInt8(ascii: "[") && byte != UInt8(ascii: "]") }

    /// `host[:port]` as the `Host` header says it: the port only when it is not the scheme's own.
    public var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// The URL, normalised: `http://127.0.0.1:8080/x`.
    public var description: String { "\(secure ? "https" : "http")://\(authority)\(target)" }

    /// Where a `Location` points from here: an absolute URL, or a path on
    /// the same server (`/y`, or `y` beside this target's last segment).
    public func resolving(_ location: String) -> HTTPURL? {
        if let absolute = HTTPURL(location) { return absolute }
        // As for a URL, in bytes: the fragment is never sent, and the rest goes into the request line as is.
        let location = Array(location.utf8).prefix { $0 != UInt8(ascii: "#") }
        guard !location.isEmpty, !location.starts(with: Array("//".utf8)), location.allSatisfy(HTTPURL.isTargetByte) else { return nil }
        var url = self
        if location.first == UInt8(ascii: "/") {
            url.target = String(decoding: location, as: UTF8.self)
        } else {
            // Beside the last segment of this target's path (the query dropped).
            let path = Array(target.utf8).prefix { $0 != UInt8(ascii: "?") }
            let directory = path[...(path.lastIndex(of: UInt8(ascii: "/")) ?? path.startIndex)]
            url.target = String(decoding: directory + location, as: UTF8.self)
        }
        return url
    }

    /// What connections to this URL are pooled under: scheme, host and port.
    var poolKey: String { "\(secure ? "https" : "http")://\(authority)" }
}

/// What a request sends after its head.
public enum HTTPRequestBody {
    /// Nothing.
    case none
    /// These bytes, with their `Content-Length`.
    case bytes([UInt8])
    /// Bytes made as the connection can take them: `produce` is called once
    /// the head is written and again each time the stream drains to its low
    /// watermark, and writes through the ``HTTPRequestBodyWriter`` while
    /// ``HTTPRequestBodyWriter/wantsMore`` (or keeps the writer and writes
    /// later), then calls ``HTTPRequestBodyWriter/finish()``. With a `length`
    /// it is sent with that `Content-Length`; without one, chunked.
    case stream(length: Int?, produce: (HTTPRequestBodyWriter) -> Void)

    /// Whether the body can be sent again (for a redirect or a retry).
    var isReplayable: Bool {
        if case .stream = self { return false }
        return true
    }
}

/// One request: method, URL, extra header fields and body.
public struct HTTPClientRequest {
    /// The method, e.g. `GET`.
    public var method: String
    /// Where it goes.
    public var url: HTTPURL
    /// Fields sent besides those the client writes itself (`Host`, unless
    /// given here; `Content-Length` or `Transfer-Encoding` for the body).
    public var headers: [HTTPHeader]
    /// What follows the head.
    public var body: HTTPRequestBody
    /// How many redirects (301, 302, 303, 307, 308 with a `Location`) to
    /// follow; 0, the default, hands a redirect over like any response.
    /// A 303 (and a 301 or 302 to a POST) is followed with a GET without body;
    /// a streamed body cannot be sent twice, so its redirect is handed over.
    public var followRedirects: Int

    /// A request; `GET` without a body unless told otherwise.
    public init(method: String = "GET", url: HTTPURL, headers: [HTTPHeader] = [], body: HTTPRequestBody = .none,
                followRedirects: Int = 0) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.followRedirects = followRedirects
    }

    /// How the request is named in errors: `GET http://127.0.0.1:8080/x`.
    var label: String { "\(method) \(url)" }

    /// Appends the head as the client sends it to `output`; or returns why
    /// it cannot be sent (a CR or LF in a field would let the caller's data
    /// split the request: header injection), appending nothing.
    public func encodeHead(into output: HTTPOutputBuffer) -> String? {
        guard !method.isEmpty, method.utf8.allSatisfy(HTTPHeadParser.isTokenByte) else { return "invalid method '\(method)'" }
        for field in headers {
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(HTTPHeadParser.isTokenByte) else { return "invalid header name '\(field.name)'" }
            guard field.value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) else {
                return "invalid value of header \(field.name)"
            }
        }
        output.append(method)
        output.append(" ")
        output.append(url.target)
        output.append(" HTTP/1.1\r\n")
        let names = Set(headers.map { $0.name.lowercased() })
        if !names.contains("host") {
            output.append("Host: ")
            output.append(url.authority)
            output.append("\r\n")
        }
        for field in headers {
            output.append(field.name)
            output.append(": ")
            output.append(field.value)
            output.append("\r\n")
        }
        switch body {
        case .none:
            if method == "POST" || method == "PUT" { output.append("Content-Length: 0\r\n") }
        case .bytes(let bytes):
            output.append("Content-Length: ")
            output.append(decimal: bytes.count)
            output.append("\r\n")
        case .stream(let length?, _):
            output.append("Content-Length: ")
            output.append(decimal: length)
            output.append("\r\n")
        case .stream(nil, _):
            output.append("Transfer-Encoding: chunked\r\n")
        }
        output.append("\r\n")
        return nil
    }
}

/// A whole response: its head and every byte of its body.
public struct HTTPClientResponse: Sendable {
    /// Status line and fields.
    public var head: HTTPResponseHead
    /// The body, decoded from its chunks if it came chunked.
    public var body: [UInt8]
    /// The status code.
    public var status: Int { head.status }
}

/// Why a request failed. The description names the request and says what
/// happened: `GET http://127.0.0.1:8080/x: malformed status line 'HTTP/1.1 abc'`.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    /// The kinds of failure, for code that reacts to them.
    public enum Kind: Sendable, Equatable {
        /// The request cannot be sent as given (a bad URL or header field).
        case invalidRequest
        /// No connection: resolution, connect or TLS failed.
        case connect
        /// The response broke HTTP/1.1.
        case malformedResponse
        /// A timeout ran out (first byte, or silence while receiving).
        case timeout
        /// The connection ended before the response did.
        case closed
        /// The response body exceeds ``HTTPClientConfiguration/maxBodyBytes``.
        case tooLarge
    }

    /// What kind of failure.
    public var kind: Kind
    /// The request, as `METHOD URL`.
    public var request: String
    /// What happened.
    public var detail: String

    /// An error of `kind` for `request`.
    public init(_ kind: Kind, request: String, detail: String) {
        self.kind = kind
        self.request = request
        self.detail = detail
    }

    /// `METHOD URL: what happened`.
    public var description: String { "\(request): \(detail)" }
}

/// The client's limits, timeouts and connection options.
public struct HTTPClientConfiguration {
    /// Connections kept per scheme, host and port, busy and idle together;
    /// requests beyond them wait their turn.
    public var maxConnectionsPerHost: Int
    /// Resolution and connect together (``ConnectOptions/timeout``).
    public var connectTimeout: Duration
    /// From the request's head being written to the first byte of the response.
    public var firstByteTimeout: Duration
    /// The longest silence once the response has started (or while a streamed body waits to be taken).
    public var idleTimeout: Duration
    /// How long an idle pooled connection is kept for the next request.
    public var keepAliveTimeout: Duration
    /// The longest response head accepted.
    public var maxHeaderBytes: Int
    /// The longest body a whole-response request collects (streaming has no limit).
    public var maxBodyBytes: Int
    /// TLS for `https` URLs; nil trusts the system's CAs (made at the first `https` request).
    public var tls: TLSConfiguration?
    /// How connections are made: Happy Eyeballs timing and stream options
    /// (its `timeout` and `tls` are set from the fields above).
    public var connect: ConnectOptions

    /// Four connections per host; 10 s to connect, 30 s to the first byte
    /// and of silence, 60 s kept idle; 64 KiB heads, 64 MiB whole bodies.
    public init(maxConnectionsPerHost: Int = 4, connectTimeout: Duration = .seconds(10),
                firstByteTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(30),
                keepAliveTimeout: Duration = .seconds(60), maxHeaderBytes: Int = 64 << 10, maxBodyBytes: Int = 64 << 20,
                tls: TLSConfiguration? = nil, connect: ConnectOptions = ConnectOptions()) {
        self.maxConnectionsPerHost = max(1, maxConnectionsPerHost)
        self.connectTimeout = connectTimeout
        self.firstByteTimeout = firstByteTimeout
        self.idleTimeout = idleTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.tls = tls
        self.connect = connect
    }
}

extension Duration {
    /// `2 s`, `250 ms`: short words for error messages.
    var words: String {
        let (seconds, attoseconds) = components
        if attoseconds == 0 { return "\(seconds) s" }
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return "\(milliseconds) ms"
    }
}
