import ProtocolHTTP1

/// The client side of HTTP/1.1: a response head parsed again from its start
/// as reads arrive (as HTTPClientConnection does), interim 1xx heads
/// skipped, then the body as the head frames it: a length, chunks, or
/// everything to the close.
///
/// Checks: in one piece and in reads, the same responses, refusals and
/// leftover; a head's fields agree with each other and with its framing; a
/// head parses the same from its own bytes alone; and a response written
/// from parts of the input (status, reason, fields, a body by length or in
/// chunks) is read back as written.
enum HTTPResponseFuzz {
    struct Response: Equatable {
        var status: Int
        var reason: String
        var minorVersion: Int
        var headers: [HTTPHeader]
        var framing: HTTPBodyFraming
        var keepAlive: Bool
        var body: [UInt8]
    }

    enum Item: Equatable {
        case response(Response)
        case refused
        case bodyFailed(String)
        case incomplete(left: Int, inBody: Bool)
    }

    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let maxHeaderBytes = choices.oneIn(2) ? 64 << 10 : choices.pick(1...256)
        let requestWasHead = choices.oneIn(4)
        let whole = try receive(data, pieces: [data.count], maxHeaderBytes: maxHeaderBytes, requestWasHead: requestWasHead)
        let pieces = choices.pieces(of: data.count)
        let split = try receive(data, pieces: pieces, maxHeaderBytes: maxHeaderBytes, requestWasHead: requestWasHead)
        try require(whole == split, "in one piece: \(whole)\nin reads of \(pieces): \(split)")
        try writtenResponseRoundTrip(data, &choices)
    }

    static func receive(_ data: UnsafeRawBufferPointer, pieces: [Int], maxHeaderBytes: Int,
                        requestWasHead: Bool) throws(FuzzFailure) -> [Item] {
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
            var head: HTTPResponseHead
            while true {
                let bytes = data.slice(start..<available)
                let result = HTTPResponseHeadParser.parse(bytes, maxHeaderBytes: maxHeaderBytes)
                if case .invalid(let reason) = result {
                    // Refused either way; the words may differ with how much had arrived (a bad
                    // status line is refused at its fifth byte, a head at its size limit, whichever comes first).
                    try require(!reason.isEmpty, "a refusal without a reason")
                    items.append(.refused)
                    return items
                }
                if case .complete(let complete) = result {
                    try checkHead(complete, bytes, maxHeaderBytes: maxHeaderBytes)
                    start += complete.length
                    // An interim response: the real head follows.
                    if (100..<200).contains(complete.status) && complete.status != 101 { continue }
                    head = complete
                    break
                }
                guard more() else {
                    if available > start { items.append(.incomplete(left: available - start, inBody: false)) }
                    return items
                }
            }
            let framing = head.framing(requestWasHead: requestWasHead)
            var response = Response(status: head.status, reason: head.reason, minorVersion: head.minorVersion, headers: head.headers,
                                    framing: framing, keepAlive: head.keepAlive, body: [])
            switch framing {
            case .none:
                break
            case .length(let length):
                try require(length >= 0, "a negative length")
                while available - start < length {
                    guard more() else {
                        items.append(.response(response))
                        items.append(.incomplete(left: available - start, inBody: true))
                        return items
                    }
                }
                response.body = Array(data.slice(start..<(start + length)))
                start += length
            case .chunked:
                var decoder = HTTPChunkedDecoder()
                while true {
                    let input = data.slice(start..<available)
                    var body = response.body
                    let (used, outcome) = decoder.decode(input, maxBody: Int.max / 2, maxTrailer: maxHeaderBytes) { body.append(contentsOf: $0) }
                    response.body = body
                    try require(used >= 0 && used <= input.count, "the decoder used \(used) of \(input.count) bytes")
                    start += used
                    if outcome == .done { break }
                    if case .failed(let status) = outcome {
                        items.append(.bodyFailed(HTTPChunkedDecoder.failureReason(status)))
                        return items
                    }
                    guard more() else {
                        items.append(.response(response))
                        items.append(.incomplete(left: response.body.count, inBody: true))
                        return items
                    }
                }
            case .untilClose:
                while more() {}
                response.body = Array(data.slice(start..<available))
                start = available
            }
            items.append(.response(response))
            guard head.keepAlive && framing != .untilClose else { return items }
        }
    }

    static func checkHead(_ head: HTTPResponseHead, _ bytes: UnsafeRawBufferPointer, maxHeaderBytes: Int) throws(FuzzFailure) {
        try require(head.length > 0 && head.length <= bytes.count && head.length <= maxHeaderBytes,
                    "a head of \(head.length) bytes in \(bytes.count), limit \(maxHeaderBytes)")
        try require((100...999).contains(head.status), "status \(head.status)")
        try require(head.minorVersion == 0 || head.minorVersion == 1, "HTTP/1.\(head.minorVersion)")
        try require((head.contentLength ?? 0) >= 0, "a negative Content-Length")
        try require(!head.reason.utf8.contains { $0 == 0x0D || $0 == 0x0A }, "a reason with a line end: \(head.reason.debugDescription)")
        for field in head.headers {
            try require(!field.name.isEmpty && field.name.utf8.allSatisfy(isToken), "field name \(field.name.debugDescription)")
            try require(field.value.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }, "field value \(field.value.debugDescription)")
            try require(field.value.utf8.first.map { $0 != 0x20 && $0 != 0x09 } ?? true
                            && field.value.utf8.last.map { $0 != 0x20 && $0 != 0x09 } ?? true, "untrimmed value \(field.value.debugDescription)")
            try require(head.value(of: field.name) != nil, "value(of: \(field.name)) finds nothing")
        }
        if head.hasTransferEncoding && head.contentLength != nil {
            try require(!head.keepAlive, "Transfer-Encoding with Content-Length, kept alive")
        }
        let alone = HTTPResponseHeadParser.parse(bytes.slice(0..<head.length), maxHeaderBytes: maxHeaderBytes)
        guard case .complete(let again) = alone, again.status == head.status, again.reason == head.reason,
              again.headers == head.headers, again.length == head.length, again.keepAlive == head.keepAlive,
              again.contentLength == head.contentLength, again.chunked == head.chunked else {
            throw FuzzFailure("the head alone parsed as \(alone), not as \(head)")
        }
    }

    // MARK: Round trip

    /// A response made of parts of the input is parsed as written.
    static func writtenResponseRoundTrip(_ data: UnsafeRawBufferPointer, _ choices: inout Choices) throws(FuzzFailure) {
        // 204 and 304 have no body whatever their fields say; the written body would be read as the next response.
        var status = choices.pick(200...599)
        if status == 204 || status == 304 { status = 200 }
        func visible(_ count: Int, allowing extra: (UInt8) -> Bool) -> [UInt8] {
            // Bytes of the input as they are where they may appear, else a letter.
            (0..<count).map { _ in
                let byte = data.isEmpty ? 0x61 : data[choices.pick(0...(data.count - 1))]
                return extra(byte) ? byte : UInt8(ascii: "a") + byte % 26
            }
        }
        let reason = visible(choices.pick(0...12)) { $0 >= 0x20 && $0 != 0x7F }
        var fields: [(name: [UInt8], value: [UInt8])] = []
        for _ in 0..<choices.pick(0...4) {
            let name = visible(choices.pick(1...8)) { isToken($0) }
            var value = visible(choices.pick(0...12)) { $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }.trimmingWhitespace()
            if value.isEmpty && choices.oneIn(2) { value = [UInt8(ascii: "v")] }
            let lower = String(decoding: name, as: UTF8.self).lowercased()
            // Framing fields are the writer's own, below.
            if ["content-length", "transfer-encoding", "connection"].contains(lower) { continue }
            fields.append((name, value))
        }
        let body = visible(choices.pick(0...40)) { _ in true }
        let chunked = choices.oneIn(2)

        var written = Array("HTTP/1.1 \(status)".utf8)
        if !reason.isEmpty || choices.oneIn(2) { written += [0x20] + reason }
        written += [0x0D, 0x0A]
        for field in fields { written += field.name + Array(": ".utf8) + field.value + [0x0D, 0x0A] }
        let framing = HTTPOutputBuffer()
        if chunked {
            written += Array("Transfer-Encoding: chunked\r\n\r\n".utf8)
            var offset = 0
            for size in choices.pieces(of: body.count) {
                framing.append(hex: size)
                framing.append("\r\n")
                framing.append(Array(body[offset..<(offset + size)]))
                framing.append("\r\n")
                offset += size
            }
            framing.append("0\r\n\r\n")
        } else {
            written += Array("Content-Length: \(body.count)\r\n\r\n".utf8)
            framing.append(body)
        }
        written += Array(framing.bytes)

        let items = try written.withBytes { bytes throws(FuzzFailure) in
            try receive(bytes, pieces: choices.pieces(of: bytes.count), maxHeaderBytes: 64 << 10, requestWasHead: false)
        }
        var expectedHeaders = fields.map { HTTPHeader(String(decoding: $0.name, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) }
        expectedHeaders.append(chunked ? HTTPHeader("Transfer-Encoding", "chunked") : HTTPHeader("Content-Length", "\(body.count)"))
        let expected = Response(status: status, reason: String(decoding: reason, as: UTF8.self), minorVersion: 1, headers: expectedHeaders,
                                framing: chunked ? .chunked : .length(body.count), keepAlive: true, body: body)
        try require(items == [.response(expected)], "\(shown(written)) was read as \(items), not \(expected)")
    }
}
