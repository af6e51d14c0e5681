/// One header field, as received or to be sent.
public struct HTTPHeader: Sendable, Equatable {
    /// The field name, as written (compare it ignoring case).
    public var name: String
    /// The value, without surrounding whitespace.
    public var value: String

    /// A field `name: value`.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A parsed response head (status line and header fields). Unlike the
/// server's request head it owns its strings: a client reads far fewer
/// heads than a server, and its caller keeps them after the read buffer is reused.
public struct HTTPResponseHead: Sendable {
    /// The status code, 100 to 999.
    public var status = 0
    /// The reason phrase (may be empty).
    public var reason = ""
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    public var minorVersion = 1
    /// Every field in the order received.
    public var headers: [HTTPHeader] = []
    /// The declared `Content-Length`, or nil.
    public var contentLength: Int?
    /// The transfer codings end in `chunked`.
    public var chunked = false
    /// Transfer codings were named at all (a body without `chunked` last then runs to the close).
    public var hasTransferEncoding = false
    /// Whether the server keeps the connection open after this response
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `keep-alive`).
    public var keepAlive = true
    /// The length of the head, blank line included: where the body starts.
    public var length = 0

    /// The first value of the field `name`, compared ignoring ASCII case.
    public func value(of name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// How the body is delimited (RFC 9112 §6.3), given whether the request was `HEAD`.
    public func framing(requestWasHead: Bool) -> HTTPBodyFraming {
        if requestWasHead || (100..<200).contains(status) || status == 204 || status == 304 { return .none }
        if chunked { return .chunked }
        if hasTransferEncoding { return .untilClose }  // a coding we cannot delimit: the close ends it
        if let contentLength { return .length(contentLength) }
        return .untilClose
    }
}

/// Where a response body ends.
public enum HTTPBodyFraming: Sendable, Equatable {
    /// No body (HEAD, 1xx, 204, 304).
    case none
    /// Exactly this many bytes.
    case length(Int)
    /// Chunked: ``HTTPChunkedDecoder`` finds the end.
    case chunked
    /// Everything until the server closes the connection.
    case untilClose
}

/// What parsing the front of a buffer found.
public enum HTTPResponseHeadResult: Sendable {
    /// Not complete yet (and not yet too large): wait for more bytes.
    case incomplete
    /// A whole head, `head.length` bytes long.
    case complete(HTTPResponseHead)
    /// The bytes can never become a response head; the words say why,
    /// e.g. `malformed status line 'HTTP/1.1 abc'`.
    case invalid(String)
}

/// Parses a response head, for the client side. Lines end with LF,
/// optionally after CR; what RFC 9112 lets a client be lenient about
/// (a missing reason phrase, unknown fields) is accepted, and what would
/// make the framing ambiguous is refused: differing `Content-Length`s, a
/// `Content-Length` that is not a number.
public enum HTTPResponseHeadParser {
    /// Parses the head at the front of `buffer`; a head not complete within
    /// `maxHeaderBytes` is invalid (`response head larger than N bytes`).
    public static func parse(_ buffer: UnsafeRawBufferPointer, maxHeaderBytes: Int) -> HTTPResponseHeadResult {
        let limit = min(buffer.count, maxHeaderBytes)
        let notYet: HTTPResponseHeadResult = buffer.count >= maxHeaderBytes
            ? .invalid("response head larger than \(maxHeaderBytes) bytes") : .incomplete
        func lineFeed(from start: Int) -> Int? {
            var i = start
            while i < limit {
                if buffer[i] == 0x0A { return i }
                i += 1
            }
            return nil
        }
        func content(_ start: Int, _ lf: Int) -> Range<Int> {
            start..<(lf > start && buffer[lf - 1] == 0x0D ? lf - 1 : lf)
        }
        guard let firstLF = lineFeed(from: 0) else {
            // A status line is short: bytes that cannot start one fail now, not at the limit.
            if buffer.count >= 5 && !matches(buffer, 0, "HTTP/") { return .invalid("malformed status line \(quoted(buffer, 0..<limit))") }
            return notYet
        }
        var head = HTTPResponseHead()
        if let failure = parseStatusLine(buffer, content(0, firstLF), into: &head) { return .invalid(failure) }
        var connectionClose = false, connectionKeepAlive = false
        var position = firstLF + 1
        while true {
            guard let lf = lineFeed(from: position) else { return notYet }
            let line = content(position, lf)
            position = lf + 1
            if line.isEmpty { break }
            guard let field = parseField(buffer, line) else { return .invalid("malformed header line \(quoted(buffer, line))") }
            switch field.name.lowercased() {
            case "content-length":
                guard let length = decimal(field.value) else { return .invalid("bad Content-Length \(quoted(field.value))") }
                if let earlier = head.contentLength, earlier != length {
                    return .invalid("conflicting Content-Length values \(earlier) and \(length)")
                }
                head.contentLength = length
            case "transfer-encoding":
                head.hasTransferEncoding = true
                let codings = field.value.split(separator: ",").map { $0.trimmingWhitespace().lowercased() }
                head.chunked = codings.last == "chunked"
            case "connection":
                for token in field.value.split(separator: ",").map({ $0.trimmingWhitespace().lowercased() }) {
                    if token == "close" { connectionClose = true }
                    if token == "keep-alive" { connectionKeepAlive = true }
                }
            default:
                break
            }
            head.headers.append(field)
        }
        head.length = position
        head.keepAlive = !connectionClose && (head.minorVersion == 1 || connectionKeepAlive)
        // Transfer-Encoding overrides Content-Length, and such a message must not be reused (RFC 9112 §6.3).
        if head.hasTransferEncoding && head.contentLength != nil { head.keepAlive = false }
        return .complete(head)
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`; returns why a bad one is bad.
    private static func parseStatusLine(_ buffer: UnsafeRawBufferPointer, _ line: Range<Int>, into head: inout HTTPResponseHead) -> String? {
        let start = line.lowerBound, count = line.count
        let valid = count >= 12 && matches(buffer, start, "HTTP/1.") && HTTPHeadParser.isDigit(buffer[start + 7])
            && buffer[start + 8] == 0x20 && (9..<12).allSatisfy { HTTPHeadParser.isDigit(buffer[start + $0]) }
            && buffer[start + 9] != UInt8(ascii: "0") && (count == 12 || buffer[start + 12] == 0x20)
            // The reason phrase is text (RFC 9112 §4): a control byte there, a bare CR say, is not one.
            && (start + 12..<line.upperBound).allSatisfy { buffer[$0] >= 0x20 && buffer[$0] != 0x7F || buffer[$0] == 0x09 }
        guard valid else {
            if count >= 8 && matches(buffer, start, "HTTP/") && !matches(buffer, start, "HTTP/1.") {
                return "unsupported HTTP version in status line \(quoted(buffer, line))"
            }
            return "malformed status line \(quoted(buffer, line))"
        }
        head.minorVersion = buffer[start + 7] == UInt8(ascii: "0") ? 0 : 1
        head.status = (9..<12).reduce(0) { $0 * 10 + Int(buffer[start + $1] - 0x30) }
        head.reason = count > 13 ? String(decoding: UnsafeRawBufferPointer(rebasing: buffer[(start + 13)..<line.upperBound]), as: UTF8.self) : ""
        return nil
    }

    /// `name: value` with a token name and no whitespace before the colon; nil otherwise.
    private static func parseField(_ buffer: UnsafeRawBufferPointer, _ line: Range<Int>) -> HTTPHeader? {
        var colon = line.lowerBound
        while colon < line.upperBound && HTTPHeadParser.isTokenByte(buffer[colon]) { colon += 1 }
        guard colon > line.lowerBound, colon < line.upperBound, buffer[colon] == UInt8(ascii: ":") else { return nil }
        var a = colon + 1, b = line.upperBound
        while a < b && HTTPHeadParser.isWhitespace(buffer[a]) { a += 1 }
        while b > a && HTTPHeadParser.isWhitespace(buffer[b - 1]) { b -= 1 }
        for i in a..<b where buffer[i] < 0x20 && buffer[i] != 0x09 || buffer[i] == 0x7F { return nil }
        return HTTPHeader(String(decoding: UnsafeRawBufferPointer(rebasing: buffer[line.lowerBound..<colon]), as: UTF8.self),
                          String(decoding: UnsafeRawBufferPointer(rebasing: buffer[a..<b]), as: UTF8.self))
    }

    private static func matches(_ buffer: UnsafeRawBufferPointer, _ start: Int, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard buffer.count - start >= count else { return false }
        return (0..<count).allSatisfy { buffer[start + $0] == text.utf8Start[$0] }
    }

    /// Digits only, at most 18 of them (so no overflow); nil for anything else.
    private static func decimal(_ text: String) -> Int? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= 18, utf8.allSatisfy(HTTPHeadParser.isDigit) else { return nil }
        return Int(text)
    }

    /// Bytes in quotes for an error message: at most 80 of them, control bytes escaped.
    static func quoted(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        quoted(String(decoding: UnsafeRawBufferPointer(rebasing: buffer[range]), as: UTF8.self))
    }

    static func quoted(_ text: String) -> String {
        var shown = ""
        for scalar in text.unicodeScalars.prefix(80) {
            shown += scalar.value < 0x20 || scalar.value == 0x7F ? scalar.escaped(asASCII: true) : String(scalar)
        }
        return "'\(shown)\(text.unicodeScalars.count > 80 ? "…" : "")'"
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        var slice = self[...]
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
