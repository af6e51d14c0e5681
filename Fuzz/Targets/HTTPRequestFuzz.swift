import ProtocolHTTP1

/// The server side of HTTP/1.1: pipelined request heads parsed from the
/// start of each head as reads arrive (as the http service does), bodies
/// framed by `Content-Length` or decoded by `HTTPChunkedDecoder`.
///
/// Checks: in one piece and in reads, the same requests (head fields, body
/// bytes), the same refusals, the same leftover; every range a head gives
/// lies inside it; a head parses the same from its own bytes alone and is
/// incomplete one byte short; and what the client writes (a request head by
/// `HTTPClientRequest.encodeHead`, a body in chunks as its body writer frames
/// them) the server reads back unchanged.
enum HTTPRequestFuzz {
    struct Request: Equatable {
        var method: HTTPMethod
        var path: [UInt8]
        var minorVersion: Int
        var keepAlive: Bool
        var contentLength: Int?
        var chunked: Bool
        var expectContinue: Bool
        var contentType: [UInt8]?
        var headLength: Int
        var body: [UInt8]
    }

    enum Item: Equatable {
        case request(Request)
        case refusedHead(HTTPStatus)
        case refusedBody(HTTPStatus)
        /// The input ended inside a head (or a body): this many bytes of it wait.
        case incomplete(left: Int, inBody: Bool)
    }

    struct Limits {
        var maxHeaderBytes: Int
        var maxBodyBytes: Int
    }

    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let limits = Limits(maxHeaderBytes: choices.oneIn(2) ? 8 << 10 : choices.pick(1...256),
                            maxBodyBytes: choices.oneIn(2) ? 1 << 20 : choices.pick(0...64))
        let whole = try serve(data, pieces: [data.count], limits: limits)
        let pieces = choices.pieces(of: data.count)
        let split = try serve(data, pieces: pieces, limits: limits)
        try require(whole == split, "in one piece: \(whole)\nin reads of \(pieces): \(split)")
        try chunkedRoundTrip(data, &choices)
        try encodedHeadRoundTrip(data, &choices)
    }

    /// Serves `data` arriving in reads of `pieces` bytes.
    static func serve(_ data: UnsafeRawBufferPointer, pieces: [Int], limits: Limits) throws(FuzzFailure) -> [Item] {
        var items: [Item] = []
        var start = 0
        var available = 0
        var nextPiece = 0
        func more() -> Bool {
            guard nextPiece < pieces.count else { return false }
            available += pieces[nextPiece]
            nextPiece += 1
            return true
        }
        while true {
            // The head: parsed again from its start as reads arrive.
            var head: HTTPRequestHead
            while true {
                let result = HTTPHeadParser.parse(data.slice(start..<available), maxHeaderBytes: limits.maxHeaderBytes)
                if case .complete(let complete) = result { head = complete; break }
                if case .invalid(let status) = result { items.append(.refusedHead(status)); return items }
                guard more() else {
                    if available > start { items.append(.incomplete(left: available - start, inBody: false)) }
                    return items
                }
            }
            let headBytes = data.slice(start..<available)
            try checkHead(head, headBytes, limits: limits)
            var request = Request(method: head.method, path: Array(headBytes.slice(head.path)), minorVersion: head.minorVersion,
                                  keepAlive: head.keepAlive, contentLength: head.contentLength, chunked: head.chunked,
                                  expectContinue: head.expectContinue, contentType: head.contentType.map { Array(headBytes.slice($0)) },
                                  headLength: head.length, body: [])
            start += head.length

            if head.chunked {
                var decoder = HTTPChunkedDecoder()
                while true {
                    let input = data.slice(start..<available)
                    var body = request.body
                    let (used, outcome) = decoder.decode(input, maxBody: limits.maxBodyBytes, maxTrailer: limits.maxHeaderBytes) {
                        body.append(contentsOf: $0)
                    }
                    request.body = body
                    try require(used >= 0 && used <= input.count, "the decoder used \(used) of \(input.count) bytes")
                    try require(decoder.total == request.body.count || outcome != .done,
                                "the decoder counted \(decoder.total) bytes and delivered \(request.body.count)")
                    try require(request.body.count <= limits.maxBodyBytes, "a body of \(request.body.count) over \(limits.maxBodyBytes)")
                    start += used
                    if outcome == .done { break }
                    if case .failed(let status) = outcome { items.append(.refusedBody(status)); return items }
                    try require(used == input.count, "needing more after using \(used) of \(input.count) bytes")
                    guard more() else {
                        items.append(.request(request))
                        items.append(.incomplete(left: request.body.count, inBody: true))
                        return items
                    }
                }
            } else {
                let length = head.contentLength ?? 0
                guard length <= limits.maxBodyBytes else { items.append(.refusedBody(.contentTooLarge)); return items }
                while available - start < length {
                    guard more() else {
                        items.append(.request(request))
                        items.append(.incomplete(left: available - start, inBody: true))
                        return items
                    }
                }
                request.body = Array(data.slice(start..<(start + length)))
                start += length
            }
            items.append(.request(request))
            // A connection that will close reads no further request.
            if !head.keepAlive { return items }
        }
    }

    /// What a complete head must satisfy.
    static func checkHead(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, limits: Limits) throws(FuzzFailure) {
        try require(head.length > 0 && head.length <= bytes.count && head.length <= limits.maxHeaderBytes,
                    "a head of \(head.length) bytes in \(bytes.count), limit \(limits.maxHeaderBytes)")
        try require(head.path.lowerBound >= 0 && head.path.upperBound <= head.length && !head.path.isEmpty,
                    "path \(head.path) in a head of \(head.length)")
        if let contentType = head.contentType {
            try require(contentType.lowerBound >= 0 && contentType.upperBound <= head.length, "content type \(contentType) in \(head.length)")
        }
        try require(head.minorVersion == 0 || head.minorVersion == 1, "HTTP/1.\(head.minorVersion)")
        try require(!(head.chunked && head.contentLength != nil), "both chunked and Content-Length")
        try require(!(head.chunked && head.minorVersion == 0), "chunked in HTTP/1.0")
        try require((head.contentLength ?? 0) >= 0, "a negative Content-Length")
        // Nothing after the head changes it, and one byte short it is not yet a head.
        let alone = HTTPHeadParser.parse(bytes.slice(0..<head.length), maxHeaderBytes: limits.maxHeaderBytes)
        guard case .complete(let again) = alone, same(again, head) else {
            throw FuzzFailure("the head alone (\(shown(bytes.slice(0..<head.length)))) parsed as \(alone), not as \(head)")
        }
        let short = HTTPHeadParser.parse(bytes.slice(0..<(head.length - 1)), maxHeaderBytes: limits.maxHeaderBytes)
        guard case .incomplete = short else { throw FuzzFailure("one byte short of \(head.length), the head parsed as \(short)") }
    }

    static func same(_ a: HTTPRequestHead, _ b: HTTPRequestHead) -> Bool {
        a.method == b.method && a.path == b.path && a.minorVersion == b.minorVersion && a.keepAlive == b.keepAlive
            && a.contentLength == b.contentLength && a.chunked == b.chunked && a.expectContinue == b.expectContinue
            && a.contentType == b.contentType && a.length == b.length
    }

    // MARK: Round trips

    /// A body cut into chunks as the client's body writer frames them
    /// (hex size, CRLF, bytes, CRLF; `0` CRLF CRLF last) decodes to itself,
    /// fed whole or in reads, consuming exactly the framing.
    static func chunkedRoundTrip(_ data: UnsafeRawBufferPointer, _ choices: inout Choices) throws(FuzzFailure) {
        let body = Array(data.prefix(choices.pick(0...data.count)))
        let framing = HTTPOutputBuffer()
        var offset = 0
        for size in choices.pieces(of: body.count) {
            framing.append(hex: size)
            framing.append("\r\n")
            body.withUnsafeBytes { framing.append($0.slice(offset..<(offset + size))) }
            framing.append("\r\n")
            offset += size
        }
        framing.append("0\r\n\r\n")
        let encoded = Array(framing.bytes)
        let trailing: [UInt8] = choices.oneIn(2) ? [] : Array("GET / HTTP/1.1\r\n".utf8)
        let input = encoded + trailing
        for pieces in [[input.count], choices.pieces(of: input.count)] {
            var decoder = HTTPChunkedDecoder()
            var decoded: [UInt8] = []
            var consumed = 0
            var finished = false
            for size in pieces where !finished {
                let (used, outcome) = input.withUnsafeBytes { bytes in
                    decoder.decode(bytes.slice(consumed..<(consumed + size)), maxBody: body.count, maxTrailer: 0) { decoded.append(contentsOf: $0) }
                }
                consumed += used
                switch outcome {
                case .done: finished = true
                case .needMore: try require(used == size, "needing more after \(used) of \(size) bytes")
                case .failed(let status): throw FuzzFailure("chunks \(shown(encoded)) failed with \(status)")
                }
            }
            try require(finished && decoded == body && consumed == encoded.count,
                        "chunks \(shown(encoded)) in reads of \(pieces) decoded to \(shown(decoded)), \(consumed) bytes, finished \(finished)")
        }
    }

    /// A request made of pieces of the input: the client writes its head, or
    /// refuses it for a reason that holds; the server parses what it wrote
    /// as the same request.
    static func encodedHeadRoundTrip(_ data: UnsafeRawBufferPointer, _ choices: inout Choices) throws(FuzzFailure) {
        var parts: [String] = []
        var offset = 0
        for _ in 0..<5 {
            let size = choices.pick(0...min(24, data.count - offset))
            parts.append(String(decoding: data.slice(offset..<(offset + size)), as: UTF8.self))
            offset += size
        }
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
        let method = choices.oneIn(3) ? parts[0] : methods[choices.pick(0...4)]
        guard let url = HTTPURL("http://" + (choices.oneIn(2) ? "127.0.0.1:8080" : "example.test") + "/" + parts[1]) else { return }
        var headers: [HTTPHeader] = []
        if choices.oneIn(2) { headers.append(HTTPHeader(choices.oneIn(2) ? parts[2] : "X-" + parts[2], parts[3])) }
        if choices.oneIn(2) { headers.append(HTTPHeader("Content-Type", parts[4])) }
        let bodyBytes = Array(data.suffix(from: offset).prefix(choices.pick(0...32)))
        let body: HTTPRequestBody
        switch choices.pick(0...3) {
        case 0: body = .none
        case 1: body = .bytes(bodyBytes)
        case 2: body = .stream(length: bodyBytes.count, produce: { _ in })
        default: body = .stream(length: nil, produce: { _ in })
        }
        let request = HTTPClientRequest(method: method, url: url, headers: headers, body: body)
        let output = HTTPOutputBuffer()
        let refusal = request.encodeHead(into: output)

        let methodValid = !method.isEmpty && method.utf8.allSatisfy(isToken)
        let headersValid = headers.allSatisfy { field in
            !field.name.isEmpty && field.name.utf8.allSatisfy(isToken)
                && field.value.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }
        }
        if let refusal {
            try require(!methodValid || !headersValid, "a valid request refused: \(refusal)")
            return
        }
        try require(methodValid && headersValid, "an invalid request (method \(method.debugDescription), \(headers)) was written")

        let written = Array(output.bytes)
        let result = written.withUnsafeBytes { HTTPHeadParser.parse($0, maxHeaderBytes: Int.max) }
        // Fields with a meaning of their own (a second Host, a Content-Length
        // of the caller's) may make the server refuse; only plain ones must pass.
        let special: Set<String> = ["host", "content-length", "transfer-encoding", "connection", "expect"]
        let plain = headers.allSatisfy { !special.contains($0.name.lowercased()) }
        guard case .complete(let head) = result else {
            try require(!plain, "the server refused the client's \(shown(written)): \(result)")
            return
        }
        try require(head.length == written.count, "a head of \(head.length) bytes in the \(written.count) written")
        guard plain else { return }
        let target = Array(url.target.utf8)
        let path = Array(target.prefix { $0 != UInt8(ascii: "?") })
        let expectedMethod: HTTPMethod = method == "GET" ? .get : method == "HEAD" ? .head : method == "POST" ? .post : .other
        let expectedLength: Int?
        switch body {
        case .none: expectedLength = method == "POST" || method == "PUT" ? 0 : nil
        case .bytes(let bytes): expectedLength = bytes.count
        case .stream(let length, _): expectedLength = length
        }
        let contentType = headers.last { $0.name.lowercased() == "content-type" }.map { Array($0.value.utf8.trimmingWhitespace()) }
        let got = written.withUnsafeBytes { bytes in
            (Array(bytes.slice(head.path)), head.contentType.map { Array(bytes.slice($0)) })
        }
        try require(head.method == expectedMethod && got.0 == path && head.minorVersion == 1 && head.keepAlive
                        && head.contentLength == expectedLength && head.chunked == (expectedLength == nil && isStream(body))
                        && !head.expectContinue && got.1 == contentType,
                    "the client wrote \(shown(written)); the server read \(head), path \(shown(got.0)), content type \(got.1.map { shown($0) } ?? "none")")
    }

    static func isStream(_ body: HTTPRequestBody) -> Bool {
        if case .stream = body { return true }
        return false
    }
}

extension Collection where Element == UInt8 {
    /// Without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> [UInt8] {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return [] }
        var bytes = Array(self[first...])
        while let last = bytes.last, isSpace(last) { bytes.removeLast() }
        return bytes
    }
}
