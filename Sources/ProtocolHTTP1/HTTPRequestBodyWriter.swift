import ReactorCore

/// Where a streamed request body goes (``HTTPRequestBody/stream(length:produce:)``).
/// Writes go to the stream's write queue, so back-pressure is the stream's:
/// ``wantsMore`` turns false above its high watermark, and the producer is
/// called again once the queue drains to the low watermark. Chunked bodies
/// are framed here; a declared length is enforced.
public final class HTTPRequestBodyWriter {
    weak var connection: HTTPClientConnection?
    let stream: SocketStream
    let declaredLength: Int?
    /// Body bytes written so far (before chunk framing).
    public private(set) var written = 0
    /// Set by ``finish()``, or when the exchange ended (failed, or answered early).
    public private(set) var isFinished = false
    private let framing = HTTPOutputBuffer()

    init(connection: HTTPClientConnection, stream: SocketStream, declaredLength: Int?) {
        self.connection = connection
        self.stream = stream
        self.declaredLength = declaredLength
    }

    /// Whether writing more now is useful: the body is not finished and the
    /// stream's queue is below its high watermark.
    public var wantsMore: Bool { !isFinished && !stream.isAboveHighWatermark }

    /// Sends `bytes` (one chunk when chunked). Past a declared length the
    /// request fails: the server would read the excess as the next request.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isFinished, bytes.count > 0 else { return }
        if let declaredLength, written + bytes.count > declaredLength {
            fail("request body of \(written + bytes.count) bytes exceeds its Content-Length of \(declaredLength)")
            return
        }
        written += bytes.count
        if declaredLength == nil {
            framing.append(hex: bytes.count)
            framing.append("\r\n")
            stream.write(framing.bytes)
            framing.reset()
            stream.write(bytes)
            stream.write(Self.lineEnd)
        } else {
            stream.write(bytes)
        }
        connection?.noteProgress()
    }

    /// Sends `bytes`.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Ends the body: the last chunk, or a check that the declared length was written.
    public func finish() {
        guard !isFinished else { return }
        if let declaredLength, written != declaredLength {
            fail("request body ended after \(written) of its \(declaredLength) bytes")
            return
        }
        isFinished = true
        if declaredLength == nil { stream.write(Self.lastChunk) }
        connection?.bodyFinished()
    }

    /// The exchange is over: later writes are dropped.
    func detach() {
        isFinished = true
        connection = nil
    }

    private func fail(_ detail: String) {
        isFinished = true
        connection?.fail(.invalidRequest, detail, retryable: false)
    }

    private static let lineEnd: [UInt8] = [0x0D, 0x0A]
    private static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)
}
