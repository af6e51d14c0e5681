/// The statuses a server answers with, and those the parsers report a
/// request's fault with (a client maps them to words instead).
public enum HTTPStatus: Int, Sendable {
    /// 100 Continue: the client may send the body it announced.
    case `continue` = 100
    /// 200 OK.
    case ok = 200
    /// 201 Created: a new resource (a short link, say).
    case created = 201
    /// 302 Found: see `Location`.
    case found = 302
    /// 400: the request is malformed.
    case badRequest = 400
    /// 404: no such path.
    case notFound = 404
    /// 405: the path exists, the method is not served there.
    case methodNotAllowed = 405
    /// 408: the request took too long to arrive.
    case requestTimeout = 408
    /// 413: the body exceeds the limit.
    case contentTooLarge = 413
    /// 417: an `Expect` other than `100-continue`.
    case expectationFailed = 417
    /// 431: the head (or a chunked body's trailers) exceeds the limit.
    case headerFieldsTooLarge = 431
    /// 501: a transfer coding other than chunked.
    case notImplemented = 501
    /// 503: a service this one depends on is down.
    case serviceUnavailable = 503
    /// 505: an HTTP major version other than 1.
    case versionNotSupported = 505

    /// The status line, CRLF included.
    public var statusLine: StaticString {
        switch self {
        case .continue: return "HTTP/1.1 100 Continue\r\n"
        case .ok: return "HTTP/1.1 200 OK\r\n"
        case .created: return "HTTP/1.1 201 Created\r\n"
        case .found: return "HTTP/1.1 302 Found\r\n"
        case .badRequest: return "HTTP/1.1 400 Bad Request\r\n"
        case .notFound: return "HTTP/1.1 404 Not Found\r\n"
        case .methodNotAllowed: return "HTTP/1.1 405 Method Not Allowed\r\n"
        case .requestTimeout: return "HTTP/1.1 408 Request Timeout\r\n"
        case .contentTooLarge: return "HTTP/1.1 413 Content Too Large\r\n"
        case .expectationFailed: return "HTTP/1.1 417 Expectation Failed\r\n"
        case .headerFieldsTooLarge: return "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        case .notImplemented: return "HTTP/1.1 501 Not Implemented\r\n"
        case .serviceUnavailable: return "HTTP/1.1 503 Service Unavailable\r\n"
        case .versionNotSupported: return "HTTP/1.1 505 HTTP Version Not Supported\r\n"
        }
    }

    /// A one-line body for an error, so a person with curl sees why.
    public var errorBody: StaticString {
        switch self {
        case .badRequest: return "Bad Request\n"
        case .notFound: return "Not Found\n"
        case .methodNotAllowed: return "Method Not Allowed\n"
        case .requestTimeout: return "Request Timeout\n"
        case .contentTooLarge: return "Content Too Large\n"
        case .expectationFailed: return "Expectation Failed\n"
        case .headerFieldsTooLarge: return "Request Header Fields Too Large\n"
        case .notImplemented: return "Not Implemented\n"
        case .serviceUnavailable: return "Service Unavailable\n"
        case .versionNotSupported: return "HTTP Version Not Supported\n"
        case .continue, .ok, .created, .found: return ""
        }
    }
}

/// What a response says about the connection.
public enum HTTPConnectionHeader: Sendable {
    /// HTTP/1.1 keep-alive: the default, so no header.
    case persistent
    /// HTTP/1.0 keep-alive: must be said (`Connection: keep-alive`).
    case keepAlive
    /// The server closes after this response (`Connection: close`).
    case close

    /// What a response to a request of this version and keep-alive wish says.
    public init(keepAlive: Bool, minorVersion: Int) {
        self = !keepAlive ? .close : minorVersion == 0 ? .keepAlive : .persistent
    }
}

