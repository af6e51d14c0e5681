/// Decodes a chunked body (of a request or a response) (RFC 9112 §7.1) incrementally: bytes are
/// fed as they arrive, in pieces of any size, and the decoder remembers
/// where it stopped, so nothing is buffered to be parsed again. Chunk
/// extensions and trailer fields are skipped.
public struct HTTPChunkedDecoder: Sendable {
    private enum State {
        case size, sizeExtension, sizeLineFeed
        case data, dataCarriageReturn, dataLineFeed
        case trailerStart, trailer, trailerLineFeed
        case done
    }

    /// How a call to ``decode(_:maxBody:maxTrailer:sink:)`` ended.
    public enum Outcome: Sendable, Equatable {
        /// Every byte was consumed and the body is not finished yet.
        case needMore
        /// The body (and its trailers) ended after the `consumed` bytes returned beside it.
        case done
        /// The body can never be valid or acceptable: a server answers this status,
        /// a client reports ``HTTPChunkedDecoder/failureReason(_:)``.
        case failed(HTTPStatus)
    }

    /// A decoder at the start of a body.
    public init() {}

    private var state = State.size
    /// The size being read, then the bytes left in the current chunk.
    private var remaining = 0
    private var sizeDigits = 0
    /// Bytes of chunk extensions on the current size line.
    private var extensionBytes = 0
    /// Bytes of the trailer section so far.
    private var trailerBytes = 0
    /// The body's decoded length so far, chunks announced included.
    public private(set) var total = 0

    /// The longest chunk extension skipped before the request is refused.
    public static let maxExtensionBytes = 1024

    /// Decodes from `input`, handing each run of body bytes to `sink`.
    /// Returns how many bytes were consumed (all of them unless the body
    /// ended or failed partway) and the outcome. A chunk that would take the
    /// body past `maxBody` fails with `413` as soon as its size is read.
    public mutating func decode(_ input: UnsafeRawBufferPointer, maxBody: Int, maxTrailer: Int,
                         sink: (UnsafeRawBufferPointer) -> Void) -> (consumed: Int, outcome: Outcome) {
        var i = 0
        let count = input.count
        while i < count {
            if state == .data {
                let take = min(remaining, count - i)
                sink(UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                i += take
                remaining -= take
                if remaining == 0 { state = .dataCarriageReturn }
                continue
            }
            let byte = input[i]
            i += 1
            switch state {
            case .size:
                if let digit = hexValue(byte) {
                    guard sizeDigits < 15 else { return (i, .failed(.badRequest)) }
                    sizeDigits += 1
                    remaining = remaining << 4 | digit
                    if total + remaining > maxBody { return (i, .failed(.contentTooLarge)) }
                } else if sizeDigits == 0 {
                    return (i, .failed(.badRequest))
                } else if byte == UInt8(ascii: ";") || byte == 0x20 || byte == 0x09 {
                    state = .sizeExtension
                } else if byte == 0x0D {
                    state = .sizeLineFeed
                } else if byte == 0x0A {
                    endSizeLine()
                } else {
                    return (i, .failed(.badRequest))
                }
            case .sizeExtension:
                if byte == 0x0D {
                    state = .sizeLineFeed
                } else if byte == 0x0A {
                    endSizeLine()
                } else {
                    extensionBytes += 1
                    guard extensionBytes <= HTTPChunkedDecoder.maxExtensionBytes, byte >= 0x20 || byte == 0x09 else {
                        return (i, .failed(.badRequest))
                    }
                }
            case .sizeLineFeed:
                guard byte == 0x0A else { return (i, .failed(.badRequest)) }
                endSizeLine()
            case .dataCarriageReturn:
                if byte == 0x0D { state = .dataLineFeed } else if byte == 0x0A { state = .size } else { return (i, .failed(.badRequest)) }
            case .dataLineFeed:
                guard byte == 0x0A else { return (i, .failed(.badRequest)) }
                state = .size
            case .trailerStart:
                if byte == 0x0D {
                    state = .trailerLineFeed
                } else if byte == 0x0A {
                    state = .done
                    return (i, .done)
                } else {
                    state = .trailer
                    if let failure = countTrailerByte(maxTrailer) { return (i, .failed(failure)) }
                }
            case .trailer:
                if byte == 0x0A {
                    state = .trailerStart
                } else if let failure = countTrailerByte(maxTrailer) {
                    return (i, .failed(failure))
                }
            case .trailerLineFeed:
                guard byte == 0x0A else { return (i, .failed(.badRequest)) }
                state = .done
                return (i, .done)
            case .data, .done:
                return (i - 1, .done)
            }
        }
        return (count, state == .done ? .done : .needMore)
    }

    /// A size line ended: a chunk of `remaining` bytes follows, or the last chunk (0) was read.
    private mutating func endSizeLine() {
        sizeDigits = 0
        extensionBytes = 0
        total += remaining
        state = remaining == 0 ? .trailerStart : .data
    }

    private mutating func countTrailerByte(_ maxTrailer: Int) -> HTTPStatus? {
        trailerBytes += 1
        return trailerBytes > maxTrailer ? .headerFieldsTooLarge : nil
    }

    @inline(__always)
    private func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: return Int(byte - 0x30)
        case 0x41...0x46: return Int(byte - 0x41 + 10)
        case 0x61...0x66: return Int(byte - 0x61 + 10)
        default: return nil
        }
    }

    /// What a failed decode means, in words for a client's error: the
    /// status a server would answer, said from the receiving side.
    public static func failureReason(_ status: HTTPStatus) -> String {
        switch status {
        case .contentTooLarge: return "chunked body larger than the limit"
        case .headerFieldsTooLarge: return "chunked body's trailer section larger than the limit"
        default: return "malformed chunked encoding"
        }
    }
}
