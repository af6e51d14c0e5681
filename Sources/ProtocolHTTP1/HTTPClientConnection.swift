import ReactorCore

/// One request on its way: the request (rewritten by redirects), its
/// callbacks, and what has arrived of its response.
final class HTTPExchange {
    var request: HTTPClientRequest
    let onHead: (HTTPResponseHead) -> Void
    /// Returns false to abandon the response (a whole body over its limit).
    let onBody: (UnsafeRawBufferPointer) -> Bool
    let completion: (Result<HTTPResponseHead, HTTPClientError>) -> Void
    var redirectsLeft: Int
    /// Retried once already on a fresh connection (a stale pooled one closed under it).
    var retried = false

    init(request: HTTPClientRequest, onHead: @escaping (HTTPResponseHead) -> Void,
         onBody: @escaping (UnsafeRawBufferPointer) -> Bool,
         completion: @escaping (Result<HTTPResponseHead, HTTPClientError>) -> Void) {
        self.request = request
        self.onHead = onHead
        self.onBody = onBody
        self.completion = completion
        redirectsLeft = request.followRedirects
    }
}

/// One keep-alive connection of the pool: one exchange at a time (no
/// pipelining: a failure then concerns one request, and a non-idempotent
/// request is never sent behind one that may fail).
final class HTTPClientConnection: ResourceHandler {
    private enum Phase {
        case idle, head, length(remaining: Int), chunked, untilClose
    }
    private enum Deadline {
        case firstByte, silence, keepAlive
    }

    let stream: SocketStream
    let key: String
    private weak var client: HTTPClient?
    private var exchange: HTTPExchange?
    private var phase = Phase.idle
    private var head: HTTPResponseHead?
    /// A redirect being read to its end before the next request goes out.
    private var redirect: HTTPClientRequest?
    private var headBytes: [UInt8] = []
    private var decoder = HTTPChunkedDecoder()
    private var bodyBytes = 0
    private var requestBodyDone = true
    private var writer: HTTPRequestBodyWriter?
    /// Served an exchange before: a close before any byte may be a stale keep-alive.
    private var reused = false
    private var ended = false
    private var timer: TimerID?
    private var deadline = Deadline.keepAlive
    private var lastActivity = MonotonicInstant.now()

    init(stream: SocketStream, key: String, client: HTTPClient) {
        self.stream = stream
        self.key = key
        self.client = client
    }

    private var context: Context? { client?.context }
    private var configuration: HTTPClientConfiguration? { client?.configuration }

    // MARK: Sending

    /// Sends `exchange`'s request; the connection is idle and open.
    func start(_ exchange: HTTPExchange) {
        guard let client else { return }
        self.exchange = exchange
        phase = .head
        head = nil
        redirect = nil
        headBytes.removeAll(keepingCapacity: true)
        bodyBytes = 0
        let output = client.output
        output.reset()
        if let problem = exchange.request.encodeHead(into: output) {
            fail(.invalidRequest, problem, retryable: false)
            return
        }
        stream.write(output.bytes)
        output.reset()
        requestBodyDone = true
        switch exchange.request.body {
        case .none:
            break
        case .bytes(let bytes):
            stream.write(bytes)
        case .stream(let length, let produce):
            requestBodyDone = false
            let writer = HTTPRequestBodyWriter(connection: self, stream: stream, declaredLength: length)
            self.writer = writer
            produce(writer)
        }
        arm(.firstByte, after: client.configuration.firstByteTimeout)
    }

    /// The streamed body made progress: sending counts as activity.
    func noteProgress() { lastActivity = MonotonicInstant.now() }

    func bodyFinished() {
        requestBodyDone = true
        writer = nil
    }

    // MARK: Events

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            received(bytes.buffer)
        case .readClosed:
            peerClosed(reason: nil)
        case .writableAgain:
            if let writer, !writer.isFinished, case .stream(_, let produce) = exchange?.request.body { produce(writer) }
        case .timerFired(let id) where id == timer:
            timer = nil
            deadlineReached()
        default:
            break
        }
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        peerClosed(reason: reason)
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = MonotonicInstant.now()
        guard exchange != nil else {
            close()  // bytes nobody asked for: the connection cannot be trusted again
            return
        }
        if case .head = phase {
            headBytes.append(contentsOf: bytes)
            parseHead()
        } else {
            body(bytes)
        }
    }

    private func parseHead() {
        guard let exchange, let configuration else { return }
        while case .head = phase {
            let result = headBytes.withUnsafeBytes { HTTPResponseHeadParser.parse($0, maxHeaderBytes: configuration.maxHeaderBytes) }
            switch result {
            case .incomplete:
                return
            case .invalid(let reason):
                fail(.malformedResponse, reason, retryable: false)
                return
            case .complete(let parsed):
                if (100..<200).contains(parsed.status) && parsed.status != 101 {
                    headBytes.removeFirst(parsed.length)  // interim (100 Continue): the real head follows
                    continue
                }
                head = parsed
                let framing = parsed.framing(requestWasHead: exchange.request.method == "HEAD")
                switch framing {
                case .none, .length(0): phase = .length(remaining: 0)
                case .length(let count): phase = .length(remaining: count)
                case .chunked: phase = .chunked; decoder = HTTPChunkedDecoder()
                case .untilClose: phase = .untilClose
                }
                redirect = redirectTarget(parsed, exchange)
                if redirect == nil { exchange.onHead(parsed) }
                arm(.silence, after: configuration.idleTimeout)
                let rest = Array(headBytes[parsed.length...])
                headBytes.removeAll(keepingCapacity: false)
                rest.withUnsafeBytes { body($0) }
            }
        }
    }

    /// The request a redirect asks for, if this exchange follows it.
    private func redirectTarget(_ head: HTTPResponseHead, _ exchange: HTTPExchange) -> HTTPClientRequest? {
        guard exchange.redirectsLeft > 0, [301, 302, 303, 307, 308].contains(head.status),
              let location = head.value(of: "Location"), let url = exchange.request.url.resolving(location),
              exchange.request.body.isReplayable else { return nil }
        var next = exchange.request
        next.url = url
        if head.status == 303 || (head.status <= 302 && exchange.request.method == "POST") {
            next.method = exchange.request.method == "HEAD" ? "HEAD" : "GET"
            next.body = .none
        }
        return next
    }

    private func body(_ bytes: UnsafeRawBufferPointer) {
        guard exchange != nil else { return }
        switch phase {
        case .length(let remaining):
            let take = min(remaining, bytes.count)
            guard deliver(UnsafeRawBufferPointer(rebasing: bytes[..<take])) else { return }
            phase = .length(remaining: remaining - take)
            if remaining == take { complete(leftover: bytes.count - take) }
        case .chunked:
            var keep = true
            let (used, outcome) = decoder.decode(bytes, maxBody: Int.max / 2, maxTrailer: configuration?.maxHeaderBytes ?? 1 << 16) { data in
                if keep { keep = deliver(data) }
            }
            guard keep else { return }
            switch outcome {
            case .needMore: break
            case .done: complete(leftover: bytes.count - used)
            case .failed(let status): fail(.malformedResponse, HTTPChunkedDecoder.failureReason(status), retryable: false)
            }
        case .untilClose:
            _ = deliver(bytes)
        case .idle, .head:
            break
        }
    }

    /// Hands body bytes on (or drops them for a redirect being followed); false once the exchange is gone.
    private func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let exchange else { return false }
        bodyBytes += bytes.count
        guard redirect == nil, bytes.count > 0 else { return true }
        if !exchange.onBody(bytes) {
            fail(.tooLarge, "response body larger than \(configuration?.maxBodyBytes ?? 0) bytes", retryable: false)
            return false
        }
        return true
    }

    /// The response is complete: the exchange succeeds and the connection
    /// goes back to the pool if it can carry another.
    private func complete(leftover: Int) {
        guard let exchange, let head else { return }
        self.exchange = nil
        phase = .idle
        reused = true
        writer?.detach()
        // Answered before its body was sent (a 413, say): the server reads no further, so neither can we.
        let reusable = head.keepAlive && leftover == 0 && requestBodyDone && !(head.status == 101)
        writer = nil
        if reusable {
            arm(.keepAlive, after: configuration?.keepAliveTimeout ?? .seconds(60))
            client?.release(self)
        } else {
            close()
        }
        if let redirect {
            exchange.request = redirect
            exchange.redirectsLeft -= 1
            exchange.retried = false
            client?.dispatch(exchange)
        } else {
            exchange.completion(.success(head))
        }
    }

    // MARK: Ending

    /// The peer closed (nil reason: end of file; or the stream ended).
    private func peerClosed(reason: DisconnectReason?) {
        guard !ended else { return }
        if case .untilClose = phase, let done = exchange, let head {
            // The close is the end of this body.
            exchange = nil
            close()
            if let redirect {
                done.request = redirect
                done.redirectsLeft -= 1
                client?.dispatch(done)
            } else {
                done.completion(.success(head))
            }
            return
        }
        var detail: String
        switch phase {
        case .idle:
            close()
            return
        case .head:
            detail = headBytes.isEmpty ? "connection closed before a response" : "connection closed after \(headBytes.count) bytes of the response head"
        case .length(let remaining):
            detail = "connection closed after \(bodyBytes) of \(bodyBytes + remaining) body bytes"
        case .chunked:
            detail = "connection closed in the middle of a chunked body, after \(bodyBytes) bytes"
        case .untilClose:
            detail = "connection closed"
        }
        if case .failed(let error) = reason { detail += " (\(error))" }
        var untouched = false
        if case .head = phase, headBytes.isEmpty { untouched = true }
        fail(.closed, detail, retryable: reused && untouched)
    }

    private func deadlineReached() {
        guard let configuration else { return }
        switch deadline {
        case .keepAlive:
            close()
        case .firstByte:
            fail(.timeout, "timed out waiting for the first byte after \(configuration.firstByteTimeout.words)", retryable: false)
        case .silence:
            let quiet = lastActivity.duration(until: MonotonicInstant.now())
            if quiet < configuration.idleTimeout {
                arm(.silence, after: configuration.idleTimeout - quiet)
                return
            }
            fail(.timeout, "timed out after \(configuration.idleTimeout.words) without a byte, \(bodyBytes) body bytes in", retryable: false)
        }
    }

    /// Ends the exchange with an error and the connection with it; a
    /// `retryable` failure (a reused connection closed before any byte of
    /// the response) sends a replayable request once more, on a new connection.
    func fail(_ kind: HTTPClientError.Kind, _ detail: String, retryable: Bool) {
        let failed = exchange
        exchange = nil
        writer?.detach()
        writer = nil
        if stream.isRegistered { stream.abort() }  // unread or unsent bytes make this connection unusable
        close()
        guard let failed else { return }
        if retryable && !failed.retried && failed.request.body.isReplayable {
            failed.retried = true
            client?.dispatch(failed)
            return
        }
        failed.completion(.failure(HTTPClientError(kind, request: failed.request.label, detail: detail)))
    }

    /// Closes the connection and leaves the pool (idempotent).
    func close() {
        guard !ended else { return }
        ended = true
        if let timer { context?.cancel(timer) }
        timer = nil
        stream.handler = nil
        if stream.isRegistered { stream.close() }
        client?.connectionEnded(self)
    }

    private func arm(_ kind: Deadline, after delay: Duration) {
        guard let context else { return }
        if let timer { context.cancel(timer) }
        deadline = kind
        lastActivity = MonotonicInstant.now()
        timer = context.schedule(after: delay, for: stream)
    }
}
