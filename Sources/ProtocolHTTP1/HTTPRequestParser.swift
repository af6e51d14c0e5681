#if canImport(Glibc)
import Glibc
#endif

/// The request methods the routes tell apart; every other token is `.other`.
public enum HTTPMethod: Sendable {
    /// `GET`.
    case get
    /// `HEAD`: the response's head only.
    case head
    /// `POST`.
    case post
    /// Any other token.
    case other
}

/// A parsed request head. Ranges are byte offsets into the buffer that was
/// parsed, which the head does not own: it is valid only as long as those
/// bytes are, and nothing is copied or allocated to make it.
public struct HTTPRequestHead: Sendable {
    /// The method, as far as the routes tell methods apart.
    public var method = HTTPMethod.other
    /// The path of the target, without the query (offsets into the parsed bytes).
    public var path: Range<Int> = 0..<0
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    public var minorVersion = 1
    /// Whether the connection stays open after the response (HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive = true
    /// The declared `Content-Length`, or nil.
    public var contentLength: Int?
    /// `Transfer-Encoding: chunked`.
    public var chunked = false
    /// `Expect: 100-continue` (HTTP/1.1 only).
    public var expectContinue = false
    /// The `Content-Type` value (offsets into the parsed bytes), if any.
    public var contentType: Range<Int>?
    /// The length of the head, blank line included: where the body starts.
    public var length = 0
}

/// What parsing the front of a buffer found.
public enum HTTPHeadResult: Sendable {
    /// The head is not complete yet (and not yet too large): wait for more bytes.
    case incomplete
    /// A whole head, `head.length` bytes long.
    case complete(HTTPRequestHead)
    /// The bytes can never become an acceptable head; answer this status and close.
    case invalid(HTTPStatus)
}

/// Parses a request head in place, straight from the received bytes.
///
/// Parsing is a function of the bytes alone, so a head that arrives in
/// pieces is simply parsed again from its start when more arrives; the head
/// is at most `maxHeaderBytes` long, which bounds the repeated work, and a
/// complete head (the common case: one read) is parsed exactly once.
///
/// Lines end with LF, optionally preceded by CR (RFC 9112 §2.2 lets a server
/// accept a bare LF); a CR anywhere else is rejected, as are obsolete line
/// folding, whitespace before a field's colon, control characters in values,
/// and the framing ambiguities request smuggling relies on (RFC 9112 §6.3):
/// differing `Content-Length`s, `Content-Length` with `Transfer-Encoding`, a
/// transfer coding that does not end in `chunked`.
public enum HTTPHeadParser {
    /// Parses the head at the front of `buffer`; a head not complete within
    /// `maxHeaderBytes` is `.invalid(.headerFieldsTooLarge)`.
    public static func parse(_ buffer: UnsafeRawBufferPointer, maxHeaderBytes: Int) -> HTTPHeadResult {
        guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count > 0 else { return .incomplete }
        let count = buffer.count
        // Only the first maxHeaderBytes may hold the head; no need to look further.
        let limit = min(count, maxHeaderBytes)
        // Where a line ends (its LF), or why there is no line yet.
        func lineFeed(from start: Int) -> Int? {
            guard start < limit, let found = memchr(base + start, 0x0A, limit - start) else { return nil }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
        let notYet: HTTPHeadResult = count >= maxHeaderBytes ? .invalid(.headerFieldsTooLarge) : .incomplete

        guard let firstLF = lineFeed(from: 0) else { return notYet }
        var head = HTTPRequestHead()
        if let status = parseRequestLine(base, end: contentEnd(base, 0, firstLF), into: &head) { return .invalid(status) }

        var fields = FieldState()
        var position = firstLF + 1
        while true {
            guard let lf = lineFeed(from: position) else { return notYet }
            let end = contentEnd(base, position, lf)
            if end == position {
                head.length = lf + 1
                break
            }
            if let status = parseField(base, start: position, end: end, fields: &fields, head: &head) { return .invalid(status) }
            position = lf + 1
        }
        if let status = fields.finish(&head) { return .invalid(status) }
        return .complete(head)
    }

    /// The end of a line's content: before its LF, and before a CR right ahead of it.
    @inline(__always)
    private static func contentEnd(_ base: UnsafePointer<UInt8>, _ start: Int, _ lf: Int) -> Int {
        lf > start && base[lf - 1] == 0x0D ? lf - 1 : lf
    }

    /// `method SP request-target SP HTTP/1.x`; returns the status for a bad one.
    private static func parseRequestLine(_ base: UnsafePointer<UInt8>, end: Int, into head: inout HTTPRequestHead) -> HTTPStatus? {
        var i = 0
        while i < end && isTokenByte(base[i]) { i += 1 }
        guard i > 0, i < end, base[i] == 0x20 else { return .badRequest }
        head.method = method(base, length: i)

        let targetStart = i + 1
        var j = targetStart
        var queryStart = -1
        while j < end {
            let byte = base[j]
            guard byte > 0x20 && byte != 0x7F else { break }
            if byte == UInt8(ascii: "?") && queryStart < 0 { queryStart = j }
            j += 1
        }
        guard j > targetStart, j < end, base[j] == 0x20 else { return .badRequest }
        // A query with no path before it is no form of request-target (RFC 9112 §3.2), and would route on an empty path.
        guard queryStart != targetStart else { return .badRequest }
        head.path = pathRange(base, targetStart, queryStart < 0 ? j : queryStart)

        // The version: exactly `HTTP/d.d`, and only 1.0 and 1.1 are served.
        let version = j + 1
        guard end - version == 8, matches(base + version, "HTTP/"), isDigit(base[version + 5]),
              base[version + 6] == UInt8(ascii: "."), isDigit(base[version + 7])
        else { return .badRequest }
        guard base[version + 5] == UInt8(ascii: "1") else { return .versionNotSupported }
        head.minorVersion = base[version + 7] == UInt8(ascii: "0") ? 0 : 1
        return nil
    }

    /// The path of an origin-form target (`/a/b`) or of an absolute-form one
    /// (`http://host/a/b`, which a server must accept too); `*` and
    /// authority forms route nowhere, like any unknown path.
    private static func pathRange(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Range<Int> {
        guard base[start] != UInt8(ascii: "/") else { return start..<end }
        var i = start
        while i + 2 < end {
            if base[i] == UInt8(ascii: ":") && base[i + 1] == UInt8(ascii: "/") && base[i + 2] == UInt8(ascii: "/") {
                var slash = i + 3
                while slash < end && base[slash] != UInt8(ascii: "/") { slash += 1 }
                return slash < end ? slash..<end : start..<end
            }
            i += 1
        }
        return start..<end
    }

    private static func method(_ base: UnsafePointer<UInt8>, length: Int) -> HTTPMethod {
        // Methods are case-sensitive (RFC 9110 §9.1).
        switch length {
        case 3 where matches(base, "GET"): return .get
        case 4 where matches(base, "HEAD"): return .head
        case 4 where matches(base, "POST"): return .post
        default: return .other
        }
    }

    // MARK: Header fields

    /// What the fields said so far, checked for consistency at the end.
    private struct FieldState {
        var hosts = 0
        var close = false
        var keepAlive = false
        var transferEncodings = 0
        var chunkedLast = false
        var chunkedCount = 0
        var otherCodings = false

        func finish(_ head: inout HTTPRequestHead) -> HTTPStatus? {
            if head.minorVersion == 1 {
                guard hosts == 1 else { return .badRequest }  // RFC 9112 §3.2
                head.keepAlive = !close
            } else {
                head.keepAlive = keepAlive && !close
                head.expectContinue = false  // an HTTP/1.0 client does not wait for 100
            }
            if transferEncodings > 0 {
                // Chunked must come last, once; HTTP/1.0 has no transfer codings;
                // with Content-Length too the framing is ambiguous (smuggling).
                guard chunkedLast, chunkedCount == 1, head.minorVersion == 1, head.contentLength == nil else { return .badRequest }
                guard !otherCodings else { return .notImplemented }
                head.chunked = true
            }
            return nil
        }
    }

    private static func parseField(_ base: UnsafePointer<UInt8>, start: Int, end: Int,
                                   fields: inout FieldState, head: inout HTTPRequestHead) -> HTTPStatus? {
        var colon = start
        while colon < end && isTokenByte(base[colon]) { colon += 1 }
        // Catches obsolete folding (a leading space) and whitespace before the colon.
        guard colon > start, colon < end, base[colon] == UInt8(ascii: ":") else { return .badRequest }
        var valueStart = colon + 1
        var valueEnd = end
        while valueStart < valueEnd && isWhitespace(base[valueStart]) { valueStart += 1 }
        while valueEnd > valueStart && isWhitespace(base[valueEnd - 1]) { valueEnd -= 1 }
        for i in valueStart..<valueEnd {
            let byte = base[i]
            guard byte >= 0x20 && byte != 0x7F || byte == 0x09 else { return .badRequest }
        }
        let name = base + start
        let value = valueStart..<valueEnd

        // Dispatch on the name's length first: most fields are compared with nothing.
        switch colon - start {
        case 4 where sameLowercased(name, "host"):
            fields.hosts += 1
        case 6 where sameLowercased(name, "expect"):
            guard value.count == 12, sameLowercased(base + valueStart, "100-continue") else { return .expectationFailed }
            head.expectContinue = true
        case 10 where sameLowercased(name, "connection"):
            forEachListItem(base, value) { item in
                if item.count == 5 && sameLowercased(base + item.lowerBound, "close") { fields.close = true }
                if item.count == 10 && sameLowercased(base + item.lowerBound, "keep-alive") { fields.keepAlive = true }
            }
        case 12 where sameLowercased(name, "content-type"):
            head.contentType = value
        case 14 where sameLowercased(name, "content-length"):
            guard let length = decimal(base, value) else { return .badRequest }
            if let earlier = head.contentLength, earlier != length { return .badRequest }
            head.contentLength = length
        case 17 where sameLowercased(name, "transfer-encoding"):
            fields.transferEncodings += 1
            forEachListItem(base, value) { item in
                let isChunked = item.count == 7 && sameLowercased(base + item.lowerBound, "chunked")
                if isChunked { fields.chunkedCount += 1 } else { fields.otherCodings = true }
                fields.chunkedLast = isChunked
            }
        default:
            break
        }
        return nil
    }

    /// Calls `body` with each non-empty, trimmed element of a comma-separated list.
    private static func forEachListItem(_ base: UnsafePointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound && base[end] != UInt8(ascii: ",") { end += 1 }
            var a = start, b = end
            while a < b && isWhitespace(base[a]) { a += 1 }
            while b > a && isWhitespace(base[b - 1]) { b -= 1 }
            if a < b { body(a..<b) }
            start = end + 1
        }
    }

    /// A non-empty run of digits, saturating far above any body limit; nil for anything else.
    private static func decimal(_ base: UnsafePointer<UInt8>, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty else { return nil }
        var value = 0
        for i in range {
            guard isDigit(base[i]) else { return nil }
            value = min(value * 10 + Int(base[i] &- 0x30), 1 << 53)
        }
        return value
    }

    // MARK: Bytes

    /// RFC 9110 `tchar`.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }
    @inline(__always) static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// The next `text.utf8CodeUnitCount` bytes equal `text` exactly.
    @inline(__always)
    static func matches(_ bytes: UnsafePointer<UInt8>, _ text: StaticString) -> Bool {
        memcmp(bytes, text.utf8Start, text.utf8CodeUnitCount) == 0
    }

    /// The next bytes equal `lowercase` ignoring ASCII case. Setting bit 5
    /// lowercases letters; the bytes it could confuse with `-` or a digit are
    /// control characters, which the parser has already rejected.
    @inline(__always)
    static func sameLowercased(_ bytes: UnsafePointer<UInt8>, _ lowercase: StaticString) -> Bool {
        let expected = lowercase.utf8Start
        for i in 0..<lowercase.utf8CodeUnitCount where bytes[i] | 0x20 != expected[i] { return false }
        return true
    }
}
