#if canImport(Glibc)
import Glibc
#endif

/// The statuses the service answers with.
enum HTTPStatus: Int {
    case `continue` = 100
    case ok = 200
    case created = 201
    case found = 302
    case badRequest = 400
    case notFound = 404
    case methodNotAllowed = 405
    case requestTimeout = 408
    case contentTooLarge = 413
    case expectationFailed = 417
    case headerFieldsTooLarge = 431
    case notImplemented = 501
    case serviceUnavailable = 503
    case versionNotSupported = 505

    /// The status line, CRLF included.
    var statusLine: StaticString {
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
    var errorBody: StaticString {
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
enum HTTPConnectionHeader {
    /// HTTP/1.1 keep-alive: the default, so no header.
    case persistent
    /// HTTP/1.0 keep-alive: must be said (`Connection: keep-alive`).
    case keepAlive
    /// The server closes after this response (`Connection: close`).
    case close

    init(keepAlive: Bool, minorVersion: Int) {
        self = !keepAlive ? .close : minorVersion == 0 ? .keepAlive : .persistent
    }
}

/// Formats responses into the runtime's ``HTTPOutputBuffer``.
///
/// The `Date` header and the complete greeting responses are precomputed
/// and rebuilt when the wall-clock second changes (``refreshDate(now:)``,
/// from the service's timer), so `GET /` costs one copy of a ready-made
/// response and no formatting at all.
final class HTTPResponseWriter {
    let output = HTTPOutputBuffer()
    private let serverLine: [UInt8]
    /// `Date: ...\r\n`, rebuilt once a second.
    private var dateLine: [UInt8] = []
    private var dateSecond = -1
    /// The whole greeting response for each ``HTTPConnectionHeader`` case, and
    /// the length of its head (what `HEAD /` sends).
    private var greetings: [[UInt8]] = []
    private var greetingHeadLength: [Int] = []

    static let greeting: StaticString = "Hello, World!"

    init(serverName: String) {
        serverLine = Array("Server: \(serverName)\r\n".utf8)
        refreshDate(now: time(nil))
    }

    /// Rebuilds the date and the greetings if the second `now` differs from
    /// the one they show.
    func refreshDate(now: time_t) {
        guard now != dateSecond else { return }
        dateSecond = now
        dateLine = Array("Date: \(HTTPResponseWriter.imfFixdate(now))\r\n".utf8)
        greetings = []
        greetingHeadLength = []
        for connection in [HTTPConnectionHeader.persistent, .keepAlive, .close] {
            appendHead(.ok, contentType: "text/plain", contentLength: HTTPResponseWriter.greeting.utf8CodeUnitCount, connection: connection)
            greetingHeadLength.append(output.count)
            output.append(HTTPResponseWriter.greeting)
            greetings.append(Array(output.bytes))
            output.reset()
        }
    }

    // MARK: Responses

    /// The greeting, whole or (for HEAD) its head only.
    @inline(__always)
    func appendGreeting(headOnly: Bool, connection: HTTPConnectionHeader) {
        let index = connection == .persistent ? 0 : connection == .keepAlive ? 1 : 2
        let length = headOnly ? greetingHeadLength[index] : greetings[index].count
        greetings[index].withUnsafeBytes { output.append(UnsafeRawBufferPointer(rebasing: $0[..<length])) }
    }

    /// `100 Continue`: the client may send the body it announced.
    func appendContinue() {
        output.append(HTTPStatus.continue.statusLine)
        output.append("\r\n")
    }

    /// An error with its one-line body (none for HEAD).
    func appendError(_ status: HTTPStatus, headOnly: Bool = false, connection: HTTPConnectionHeader,
                     allow: StaticString? = nil) {
        let body = status.errorBody
        appendHead(status, contentType: "text/plain", contentLength: body.utf8CodeUnitCount, connection: connection, allow: allow)
        if !headOnly { output.append(body) }
    }

    /// A `200` whose body is `body`, typed `contentType`.
    func appendOK(contentType: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, headOnly: Bool, connection: HTTPConnectionHeader) {
        appendHead(.ok, contentType: contentType, contentLength: body.count, connection: connection)
        if !headOnly { output.append(body) }
    }

    func appendHead(_ status: HTTPStatus, contentType: StaticString, contentLength: Int,
                    connection: HTTPConnectionHeader, allow: StaticString? = nil, location: String? = nil) {
        appendHead(status, contentType: UnsafeRawBufferPointer(start: contentType.utf8Start, count: contentType.utf8CodeUnitCount),
                   contentLength: contentLength, connection: connection, allow: allow, location: location)
    }

    /// A whole response built by an ``HTTPApplication``: `status`, `body`
    /// typed `contentType`, and a `Location` for a redirect.
    func appendResponse(_ status: HTTPStatus, contentType: StaticString, body: String, location: String?,
                        connection: HTTPConnectionHeader) {
        appendHead(status, contentType: contentType, contentLength: body.utf8.count, connection: connection, location: location)
        output.append(body)
    }

    /// Status line and headers, up to and including the blank line.
    func appendHead(_ status: HTTPStatus, contentType: UnsafeRawBufferPointer, contentLength: Int,
                    connection: HTTPConnectionHeader, allow: StaticString? = nil, location: String? = nil) {
        output.append(status.statusLine)
        output.append(serverLine)
        output.append(dateLine)
        output.append("Content-Type: ")
        output.append(contentType)
        output.append("\r\nContent-Length: ")
        output.append(decimal: contentLength)
        output.append("\r\n")
        switch connection {
        case .persistent: break
        case .keepAlive: output.append("Connection: keep-alive\r\n")
        case .close: output.append("Connection: close\r\n")
        }
        if let allow {
            output.append("Allow: ")
            output.append(allow)
            output.append("\r\n")
        }
        if let location {
            // CR and LF would end the header early (response splitting): a stored URL never carries them through.
            output.append("Location: ")
            output.append(String(location.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.map(Character.init)))
            output.append("\r\n")
        }
        output.append("\r\n")
    }

    // MARK: Dates

    /// RFC 9110's IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func imfFixdate(_ seconds: time_t) -> String {
        var seconds = seconds
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
