import ProtocolHTTP1
#if canImport(Glibc)
import Glibc
#endif

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
