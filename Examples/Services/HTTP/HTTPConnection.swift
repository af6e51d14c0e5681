import ProtocolHTTP1
import Reactor
/// One client connection: where it is in the request it is reading, its
/// deadline, and the request whose body is still arriving, if any.
///
/// Requests are parsed in place from the runtime's read buffer; only an
/// incomplete head is copied (into ``pending``), and only a body that spans
/// reads (or is chunked) is gathered (into ``body``). Every complete request
/// in a read is answered into the runtime's shared output buffer, and the
/// whole batch leaves in one write when the read is done, in order.
///
/// Closing is always graceful ("lingering"): the last response goes out, the
/// write side is shut down, and what the client still sends is read and
/// dropped until it closes (or ``HTTPConfiguration/lingerTimeout``). Closing
/// with unread request bytes would make the kernel send a reset, which can
/// destroy a `413` or `400` before the client reads it.
final class HTTPConnection: ResourceHandler {
    enum Phase {
        /// Between requests, or reading a head (then ``pending`` holds its start).
        case head
        /// Reading a `Content-Length` body: ``bodyRemaining`` bytes to go.
        case body
        /// Reading a chunked body through ``decoder``.
        case chunked
        /// The last response is written; reading and dropping until the peer closes.
        case closing
    }

    // Sound: the service owns the registry that holds every connection and
    // outlives them all (it lives as long as the runtime); `unowned(unsafe)`
    // spares each access a reference-count check on the hot path.
    unowned(unsafe) let service: HTTPService
    let stream: SocketStream
    /// The position in the service's registry; -1 once removed.
    var index = -1

    private(set) var phase = Phase.head
    /// The start of a head that has not fully arrived, copied out of the read buffer.
    private var pending = InboundBuffer()
    /// True while ``pending`` holds a head whose deadline is set: a slow head
    /// does not get more time for sending more bytes (slowloris).
    private var headStarted = false
    /// When the current phase times out (monotonic nanoseconds).
    private var deadline: UInt64
    /// ``SocketStream/bytesOut`` when the deadline was set: output progress
    /// since then shows an idle or closing peer is still reading.
    private var bytesOutAtDeadline: UInt64 = 0
    private var readingPaused = false
    private var writeShutDown = false

    // An application's answer still to come (see ``HTTPApplication``): no
    // further request is read or served until it is sent.
    private var awaiting: HTTPResponse?
    /// Close once the awaited answer is out (`Connection: close`, or the peer finished sending).
    private var closeAfterAnswer = false
    private var peerDone = false

    // The request whose body is arriving (copied: its head is gone by then).
    private var bodyRoute = HTTPRoute.notFound
    private var bodyKept = false
    private var bodyPath: [UInt8] = []
    private var bodyMethod = HTTPMethod.other
    private var bodyConnection = HTTPConnectionHeader.close
    private var bodyContentType: [UInt8] = []
    private var body: [UInt8] = []
    private var bodyRemaining = 0
    private var decoder = HTTPChunkedDecoder()

    init(service: HTTPService, stream: SocketStream, now: MonotonicInstant) {
        self.service = service
        self.stream = stream
        // The first request must start within the request timeout.
        deadline = now.nanoseconds &+ service.timeouts.request
    }

    // MARK: Events

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            received(bytes.buffer, context: context)
        case .readClosed:
            peerFinished(context: context)
        case .writableAgain:
            // The client read enough of what was queued: take requests again.
            if readingPaused && phase != .closing && awaiting == nil {
                readingPaused = false
                stream.setReading(true)
            }
        default:
            break
        }
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        service.forget(self)
    }

    private func received(_ bytes: UnsafeRawBufferPointer, context: Context) {
        guard phase != .closing else { return }  // lingering: the rest of the input is dropped
        if pending.readableBytes == 0 {
            // The common case: parse straight from the runtime's read buffer.
            let used = process(bytes, context: context)
            if used < bytes.count && phase == .head {
                pending.append(UnsafeRawBufferPointer(rebasing: bytes[used...]))
            }
        } else {
            pending.append(bytes)
            let used = pending.withUnsafeReadableBytes { process($0, context: context) }
            if phase == .closing { pending.removeAll() } else { pending.consume(used) }
            // A head that grew the buffer does not pin the memory while idle.
            if pending.readableBytes == 0 && pending.capacity > 16 << 10 { pending = InboundBuffer() }
        }
        finishBatch(now: context.now.nanoseconds)
    }

    /// Answers every complete request in `buffer`; returns how many bytes
    /// were used (the rest is the start of a head, to be kept).
    private func process(_ buffer: UnsafeRawBufferPointer, context: Context) -> Int {
        let count = buffer.count
        var offset = 0
        while offset < count {
            // Responses leave in request order: the next request waits for the awaited answer.
            if awaiting != nil { return offset }
            switch phase {
            case .closing:
                return count
            case .head:
                // Blank lines before a request are ignored (RFC 9112 §2.2):
                // some clients send a CRLF after a body.
                while offset < count && (buffer[offset] == 0x0D || buffer[offset] == 0x0A) { offset += 1 }
                guard offset < count else { return count }
                let rest = UnsafeRawBufferPointer(rebasing: buffer[offset...])
                switch HTTPHeadParser.parse(rest, maxHeaderBytes: service.configuration.maxHeaderBytes) {
                case .incomplete:
                    return offset
                case .invalid(let status):
                    reject(status)
                    return count
                case .complete(let head):
                    headStarted = false
                    offset += head.length
                    offset = start(head, in: rest, bodyAt: offset, of: buffer, context: context)
                }
            case .body:
                let take = min(bodyRemaining, count - offset)
                if bodyKept { body.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + take)])) }
                offset += take
                bodyRemaining -= take
                if bodyRemaining == 0 { finishBufferedRequest(context: context) }
            case .chunked:
                offset += decodeChunks(UnsafeRawBufferPointer(rebasing: buffer[offset...]), context: context)
            }
        }
        return offset
    }

    /// Handles a complete head whose bytes are `headBytes` and whose body (if
    /// any) starts at `bodyStart` in `buffer`; returns where the next request starts.
    private func start(_ head: HTTPRequestHead, in headBytes: UnsafeRawBufferPointer, bodyAt bodyStart: Int,
                       of buffer: UnsafeRawBufferPointer, context: Context) -> Int {
        let path = UnsafeRawBufferPointer(rebasing: headBytes[head.path])
        let application = service.application
        let route = application == nil ? HTTPRoute.of(path) : .notFound
        let keepsBody = application?.keepsBody(method: head.method, path: path) ?? route.needsBody
        let connection = HTTPConnectionHeader(keepAlive: head.keepAlive, minorVersion: head.minorVersion)
        let contentType = head.contentType.map { UnsafeRawBufferPointer(rebasing: headBytes[$0]) }
            ?? UnsafeRawBufferPointer(start: nil, count: 0)
        let length = head.contentLength ?? 0
        guard length <= service.configuration.maxBodyBytes else {
            // Refused before a byte of it is read (and before any 100 Continue).
            reject(.contentTooLarge)
            return buffer.count
        }
        let available = buffer.count - bodyStart
        if !head.chunked && length <= available {
            // The whole request is here: answer it in place.
            let request = HTTPRequestContext(method: head.method, connection: connection, contentType: contentType)
            answer(route, request, path: path, body: UnsafeRawBufferPointer(rebasing: buffer[bodyStart..<(bodyStart + length)]),
                   context: context)
            if !head.keepAlive { closeAfterAnswering() }
            return bodyStart + length
        }

        // The body spans reads: keep what the response will need.
        bodyRoute = route
        bodyKept = keepsBody
        bodyPath.removeAll(keepingCapacity: true)
        if application != nil { bodyPath.append(contentsOf: path) }
        bodyMethod = head.method
        bodyConnection = connection
        bodyContentType.removeAll(keepingCapacity: true)
        bodyContentType.append(contentsOf: contentType)
        body.removeAll(keepingCapacity: true)
        if head.expectContinue && available == 0 {
            // The client waits for this before it sends the body.
            service.writer.appendContinue()
        }
        if head.chunked {
            decoder = HTTPChunkedDecoder()
            phase = .chunked
            return bodyStart
        }
        if keepsBody {
            body.reserveCapacity(length)
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[bodyStart...]))
        }
        bodyRemaining = length - available
        phase = .body
        return buffer.count
    }

    /// Feeds `bytes` to the chunked decoder; returns how many it used.
    private func decodeChunks(_ bytes: UnsafeRawBufferPointer, context: Context) -> Int {
        let configuration = service.configuration
        let keep = bodyKept
        let (used, outcome) = decoder.decode(bytes, maxBody: configuration.maxBodyBytes,
                                             maxTrailer: configuration.maxHeaderBytes) { data in
            if keep { body.append(contentsOf: data) }
        }
        switch outcome {
        case .needMore:
            break
        case .done:
            finishBufferedRequest(context: context)
        case .failed(let status):
            reject(status)
            return bytes.count
        }
        return used
    }

    /// Answers the request whose body has now fully arrived.
    private func finishBufferedRequest(context: Context) {
        phase = .head
        bodyContentType.withUnsafeBytes { contentType in
            body.withUnsafeBytes { body in
                bodyPath.withUnsafeBytes { path in
                    answer(bodyRoute, HTTPRequestContext(method: bodyMethod, connection: bodyConnection, contentType: contentType),
                           path: path, body: body, context: context)
                }
            }
        }
        // One large upload should not pin a megabyte per idle connection.
        if body.capacity > 64 << 10 { body = [] }
        if bodyConnection == .close { closeAfterAnswering() }
    }

    // MARK: Answers now or later

    /// Answers one request: the service's own route, or the application's,
    /// which may keep the response to send later.
    private func answer(_ route: HTTPRoute, _ request: HTTPRequestContext, path: UnsafeRawBufferPointer,
                        body: UnsafeRawBufferPointer, context: Context) {
        guard let application = service.application else {
            service.respond(to: route, request, body: body, context: context)
            return
        }
        service.counters.requests &+= 1
        let response = HTTPResponse(connection: self, context: context, connectionHeader: request.connection)
        application.handle(HTTPRequest(method: request.method, path: String(decoding: path, as: UTF8.self), body: Array(body)),
                           response: response, context: context)
        response.isImmediate = false
        if !response.isSent { awaiting = response }
    }

    /// `Connection: close`: now, or once the awaited answer is out.
    private func closeAfterAnswering() {
        if awaiting != nil { closeAfterAnswer = true } else { beginClosing() }
    }

    /// The awaited answer is in the output buffer: send it, then serve the
    /// requests that arrived meanwhile.
    func answered(context: Context) {
        awaiting = nil
        if peerDone {
            // The client finished sending before the answer came: this was its last.
            let output = service.writer.output
            stream.write(output.bytes)
            output.reset()
            stream.closeWhenFlushed()
            return
        }
        if closeAfterAnswer {
            closeAfterAnswer = false
            beginClosing()
            pending.removeAll()
        } else if pending.readableBytes > 0 {
            var buffered = pending
            pending = InboundBuffer()
            let used = buffered.withUnsafeReadableBytes { process($0, context: context) }
            if phase != .closing {
                buffered.consume(used)
                pending = buffered
            }
        }
        if readingPaused && awaiting == nil && phase != .closing && !stream.isAboveHighWatermark {
            readingPaused = false
            stream.setReading(true)
        }
        finishBatch(now: context.now.nanoseconds)
    }

    // MARK: Ending

    /// A request that can never be served: answer `status` and close.
    private func reject(_ status: HTTPStatus) {
        service.counters.rejected &+= 1
        service.writer.appendError(status, connection: .close)
        beginClosing()
    }

    /// No more requests are read; the output is written and the write side shut down by ``finishBatch(now:)``.
    /// (``pending`` is the caller's to clear: it may be in the middle of reading it.)
    private func beginClosing() {
        phase = .closing
        body = []
    }

    /// Writes the batch's responses in one go, then sets the deadline the new state calls for.
    private func finishBatch(now: UInt64) {
        let output = service.writer.output
        if !output.isEmpty {
            stream.write(output.bytes)
            output.reset()
        }
        let timeouts = service.timeouts
        if phase == .closing {
            if !writeShutDown {
                writeShutDown = true
                stream.shutdownWrite()  // after the queued responses: the client reads them, then end of file
                setDeadline(now, timeouts.linger)
            }
            return
        }
        if (stream.isAboveHighWatermark || awaiting != nil) && !readingPaused {
            // The client is not reading its responses, or the next must wait for an
            // answer to come: stop reading its requests.
            readingPaused = true
            stream.setReading(false)
        }
        switch phase {
        case .head where pending.readableBytes == 0:
            setDeadline(now, timeouts.idle)
        case .head:
            if !headStarted {
                headStarted = true
                setDeadline(now, timeouts.request)
            }
        case .body, .chunked:
            setDeadline(now, timeouts.request)  // a body must keep coming
        case .closing:
            break
        }
    }

    @inline(__always)
    private func setDeadline(_ now: UInt64, _ timeout: UInt64) {
        deadline = now &+ timeout
        bytesOutAtDeadline = stream.bytesOut
    }

    /// The client finished sending. Everything it sent has been answered;
    /// close once the answers are out.
    private func peerFinished(context: Context) {
        if awaiting != nil {
            // Its last request is still being answered: close once that is out.
            peerDone = true
            return
        }
        phase = .closing
        pending.removeAll()
        if stream.hasPendingOutput {
            // The registry keeps watching it, so a client that never reads cannot pin it.
            writeShutDown = true
            setDeadline(context.now.nanoseconds, service.timeouts.linger)
            stream.closeWhenFlushed()
        } else {
            stream.close()
            service.forget(self)
        }
    }

    /// Called by the service's sweep: enforces the deadline.
    func checkDeadline(now: UInt64) {
        guard stream.isRegistered else {
            service.forget(self)  // closed once flushed, or ended
            return
        }
        guard now >= deadline, awaiting == nil else { return }  // an awaited answer has a deadline of its own
        let idle = phase == .head && pending.readableBytes == 0
        if (idle || phase == .closing) && stream.bytesOut != bytesOutAtDeadline {
            // Still draining responses to a client that reads: not idle.
            setDeadline(now, service.timeouts.idle)
            return
        }
        if idle || phase == .closing {
            if idle { service.counters.timedOut &+= 1 }
            // Unsent output means a client that stopped reading: reset rather than wait.
            if stream.hasPendingOutput { stream.abort() } else { stream.close() }
            service.forget(self)
            return
        }
        // A request too slow to arrive (slowloris): 408 and close.
        service.counters.timedOut &+= 1
        service.writer.appendError(.requestTimeout, connection: .close)
        beginClosing()
        pending.removeAll()
        finishBatch(now: now)
    }
}
