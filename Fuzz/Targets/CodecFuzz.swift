import ReactorCore

/// What decoding a stream with a codec produced: its messages, then how it ended.
struct Decoded: Equatable {
    var messages: [[UInt8]] = []
    /// Nil while the stream decodes cleanly; otherwise the error's kind.
    var failure: CodecError.Kind?
    /// Bytes left in the buffer after the last message (none after a failure).
    var left = 0
}

/// Feeds `data` to `codec` in reads of `pieces` bytes through an
/// `InboundBuffer`, decoding every whole message after each read; then, if
/// `atEnd`, `decodeLast` as at the end of the stream.
func decodeStream<C: Codec>(_ codec: C, _ data: UnsafeRawBufferPointer, pieces: [Int], atEnd: Bool = true) -> Decoded
where C.Inbound == [UInt8] {
    var codec = codec
    var buffer = InboundBuffer()
    var decoded = Decoded()
    var offset = 0
    do throws(CodecError) {
        for size in pieces {
            buffer.append(data.slice(offset..<(offset + size)))
            offset += size
            while let message = try codec.decode(&buffer) { decoded.messages.append(message) }
        }
        if atEnd {
            while let message = try codec.decodeLast(&buffer) { decoded.messages.append(message) }
        }
        decoded.left = buffer.readableBytes
    } catch {
        decoded.failure = error.kind
    }
    return decoded
}

/// The same failure, ignoring a frame size that a codec may report before
/// the whole frame has arrived (a line too long is refused as soon as it is).
func sameOutcome(_ a: Decoded, _ b: Decoded) -> Bool {
    guard a.messages == b.messages, a.left == b.left else { return false }
    switch (a.failure, b.failure) {
    case (nil, nil): return true
    case (.frameTooLarge(_, let x)?, .frameTooLarge(_, let y)?): return x == y
    case (let x?, let y?): return x == y
    default: return false
    }
}

/// `LineCodec` against a model of its documented rules: a line ends at `\n`,
/// a `\r` just before it is dropped, a line longer than the maximum fails,
/// and the bytes after the last newline are a last line at the end of the
/// stream. Checks: the model's result in one piece and in reads; and lines
/// encoded (those without `\n`, not ending in `\r`) decode back unchanged.
enum LineCodecFuzz {
    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let maximum = choices.oneIn(2) ? 64 << 10 : choices.pick(0...40)
        let codec = LineCodec(maximumLineLength: maximum)
        let expected = model(Array(data), maximum: maximum)
        let whole = decodeStream(codec, data, pieces: [data.count])
        try require(sameOutcome(whole, expected), "\(shown(data)) decoded as \(whole), the model says \(expected)")
        let pieces = choices.pieces(of: data.count)
        let split = decodeStream(codec, data, pieces: pieces)
        try require(sameOutcome(split, expected), "in reads of \(pieces): \(split), the model says \(expected)")

        let lines = whole.messages.filter { $0.last != 0x0D }
        var encoder = codec
        var encoded: [UInt8] = []
        for line in lines { encoder.encode(line, into: &encoded) }
        let back = encoded.withUnsafeBytes { decodeStream(LineCodec(maximumLineLength: maximum), $0, pieces: choices.pieces(of: $0.count)) }
        try require(back == Decoded(messages: lines), "\(lines.map { shown($0) }) encoded as \(shown(encoded)) decoded as \(back)")
    }

    static func model(_ bytes: [UInt8], maximum: Int) -> Decoded {
        var decoded = Decoded()
        var start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            var line = Array(bytes[start..<end])
            if line.last == 0x0D { line.removeLast() }
            guard line.count <= maximum else {
                decoded.failure = .frameTooLarge(size: line.count, maximum: maximum)
                return decoded
            }
            decoded.messages.append(line)
            start = end + 1
        }
        return decoded
    }
}

/// `LengthPrefixedCodec` against a model: 4-byte big-endian lengths, a length
/// over the maximum fails as soon as its header is in, a partial frame at the
/// end stays buffered. Checks: the model's result in one piece and in reads;
/// payloads encoded decode back unchanged, with nothing left.
enum LengthPrefixedFuzz {
    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        let maximum = choices.oneIn(2) ? 16 << 20 : choices.pick(0...64)
        let codec = LengthPrefixedCodec(maximumFrameSize: maximum)
        let expected = model(Array(data), maximum: maximum)
        let whole = decodeStream(codec, data, pieces: [data.count])
        try require(whole == expected, "\(shown(data)) decoded as \(whole), the model says \(expected)")
        let pieces = choices.pieces(of: data.count)
        let split = decodeStream(codec, data, pieces: pieces)
        try require(split == expected, "in reads of \(pieces): \(split), the model says \(expected)")

        // Payloads cut from the input, so their sizes vary with it.
        var payloads: [[UInt8]] = whole.messages
        var offset = 0
        for size in choices.pieces(of: data.count) where choices.oneIn(2) {
            payloads.append(Array(data.slice(offset..<(offset + size))))
            offset += size
        }
        var encoder = codec
        var encoded: [UInt8] = []
        for payload in payloads { encoder.encode(payload, into: &encoded) }
        let generous = LengthPrefixedCodec(maximumFrameSize: payloads.map(\.count).max() ?? 0)
        let back = encoded.withUnsafeBytes { decodeStream(generous, $0, pieces: choices.pieces(of: $0.count)) }
        try require(back == Decoded(messages: payloads), "\(payloads.count) payloads encoded as \(shown(encoded)) decoded as \(back)")
    }

    static func model(_ bytes: [UInt8], maximum: Int) -> Decoded {
        var decoded = Decoded()
        var start = 0
        while bytes.count - start >= 4 {
            let length = bytes[start..<(start + 4)].reduce(0) { $0 << 8 | Int($1) }
            guard length <= maximum else {
                decoded.failure = .frameTooLarge(size: length, maximum: maximum)
                return decoded
            }
            guard bytes.count - start - 4 >= length else { break }
            decoded.messages.append(Array(bytes[(start + 4)..<(start + 4 + length)]))
            start += 4 + length
        }
        decoded.left = bytes.count - start
        return decoded
    }
}
