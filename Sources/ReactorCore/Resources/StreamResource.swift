import ReactorTLS
import SystemPackage

/// A byte stream over a descriptor (a socket or a pipe end).
///
/// **Reading**: one read per readiness report into the runtime's shared
/// buffer, reported as ``ResourceEvent/received(_:)`` — no allocation per
/// read. ``pushBack(_:)`` hands bytes back to be delivered again first.
///
/// **Writing** (Danga::Socket's write queue, gathered like SwiftNIO's pending
/// writes): ``write(_:)-(UnsafeRawBufferPointer)`` goes straight to the kernel
/// when nothing is queued and queues what the kernel does not take; queued
/// bytes leave with `writev`, many buffers per call. Write interest turns on
/// while bytes are queued and off when they drain, without the Service asking.
/// ``whenFlushed(_:)`` runs a callback once everything queued before it is
/// written. Above ``highWatermark`` queued bytes the stream reports
/// ``isAboveHighWatermark``; once it drains to ``lowWatermark`` it reports
/// ``ResourceEvent/writableAgain``. Queued bytes are never dropped silently:
/// a write error ends the stream with that error, and a graceful shutdown
/// waits for them.
///
/// **End of file** closes the stream by default, once what is queued has
/// been written: the handler hears ``ResourceEvent/readClosed`` (and may
/// still write a last reply), then ``ResourceHandler/resourceDisconnected(_:reason:context:)``
/// with `.closed`, so a handler that ignores the end of a connection never
/// leaks it. A socket stream opts in to half-closure with
/// ``allowsRemoteHalfClosure`` (SwiftNIO's `allowRemoteHalfClosure`): it then
/// stays open for writing after `.readClosed` until its handler closes it.
open class StreamResource: Resource {
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    // Declared in this order so that what a read and a write touch (the flags,
    // `tls`, `pushedBack` and the queue's byte count) lies next to Resource's
    // own per-event fields: three cache lines of the object instead of four.
    // At 10,000 connections each line is a miss per event.
    /// Whether the Service wants reads; kept apart from write interest, which
    /// the queue manages.
    @exclusivity(unchecked) public private(set) var isReading = true
    /// True while writes must queue without trying the descriptor (a TCP
    /// connect in progress); the stream then keeps write interest.
    @exclusivity(unchecked) var awaitingWritability = false
    /// Set once a write failed: later writes are refused, not retried.
    @exclusivity(unchecked) var writeFailed = false
    /// The descriptor is a socket: reads and writes use `recv`/`send`, which
    /// skip the file layer `read`/`write` go through (set by ``SocketStream``).
    @exclusivity(unchecked) final var isSocket = false
    /// Close once the queue drains (set by ``closeWhenFlushed()``).
    @exclusivity(unchecked) var closeAfterFlush = false
    /// End (with a disconnect notice) once the queue drains: the peer's end
    /// of file on a stream that does not allow half-closure.
    @exclusivity(unchecked) var endAfterFlush = false
    /// True from when the queue grows past ``highWatermark`` until it drains
    /// to ``lowWatermark``: the producer should pause (back-pressure).
    @exclusivity(unchecked) public internal(set) var isAboveHighWatermark = false
    /// TLS between the API and the descriptor, when the stream has it.
    @exclusivity(unchecked) var tls: StreamTLS?
    /// Bytes handed back by ``pushBack(_:)``, delivered before the next read.
    @exclusivity(unchecked) var pushedBack: [UInt8] = []
    /// What the kernel has not taken yet, in order (see OutboundQueue).
    @exclusivity(unchecked) var outbound = OutboundQueue()
    /// Whether the peer's end of file leaves this stream open for writing
    /// (true) or closes it once its queue drains (false, the default). For
    /// sockets it comes from ``StreamOptions/allowRemoteHalfClosure``; a
    /// pipe has no write side to keep and always ends.
    public var allowsRemoteHalfClosure = false
    /// Callbacks due after a flush, run once the queue is consistent; reused.
    @exclusivity(unchecked) var dueCallbacks: [() -> Void] = []
    /// Where the stream's requests to its transport stand.
    @exclusivity(unchecked) var requests = TransportRequests()
    /// Queued bytes above which ``isAboveHighWatermark`` turns true.
    @exclusivity(unchecked) public var highWatermark = 1 << 20
    /// Queued bytes at or below which a stream that went above the high
    /// watermark reports ``ResourceEvent/writableAgain``.
    @exclusivity(unchecked) public var lowWatermark = 256 << 10

    /// Adopts `fd` (non-blocking) as a stream, reading from the start unless `reading` is false.
    public init(fd: FileDescriptor, reading: Bool = true) {
        isReading = reading
        super.init(fd: fd, interest: reading ? .read : .none)
    }

    open override var kind: String { "stream" }
    open override var hasPendingOutput: Bool { !outbound.isEmpty || !(tls?.pendingPlaintext.isEmpty ?? true) }

    /// Bytes queued and not yet written (over TLS: ciphertext queued, plus
    /// plaintext waiting for the handshake).
    public var queuedByteCount: Int { outbound.byteCount + (tls?.pendingPlaintext.count ?? 0) }

    /// True when the stream speaks TLS.
    public var usesTLS: Bool { tls != nil }

    /// What the TLS handshake settled (protocol version, cipher, ALPN, the
    /// peer's certificate subject); nil before it completes or without TLS.
    public var tlsHandshake: TLSHandshakeInfo? { tls?.engine.handshakeInfo }

    // MARK: Writing

    /// Writes `bytes`, queueing what the kernel does not take now. Returns
    /// true when everything went out at once. A write error (EPIPE,
    /// ECONNRESET, ...) ends the resource with that error, reported as a
    /// disconnect; SIGPIPE is never raised.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        checkLoopThread("write")
        guard !isClosed, !isClosing, !writeFailed else { return false }
        if let tls { return writeTLS(tls, bytes) }
        return rawWrite(bytes)
    }

    /// The transport's write: bytes as they go on the wire (ciphertext
    /// under TLS), straight to the kernel when nothing is queued.
    func rawWrite(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !isClosed, !writeFailed else { return false }
        if onTransport { return queueForTransport(bytes) }
        return writeNow(bytes)
    }

    /// The readiness write: straight to the kernel when nothing is queued,
    /// the rest (or everything, behind queued bytes) into the queue.
    @inline(__always)
    final func writeNow(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if outbound.isEmpty && !awaitingWritability {
            switch isSocket ? Syscall.send(fd, from: bytes) : Syscall.write(fd, from: bytes) {
            case .transferred(let n) where n == bytes.count:
                bytesOut &+= UInt64(n)
                return true
            case .transferred(let n):
                bytesOut &+= UInt64(n)
                outbound.append(UnsafeRawBufferPointer(rebasing: bytes[n...]))
            case .wouldBlock, .endOfFile:
                outbound.append(bytes)
            case .failed(let errno):
                writeFailed = true
                outbound.append(bytes)  // kept: the Service gets the resource back with it
                fail(ReactorError("write", .fd(fd.rawValue), errno: errno))
                return false
            }
        } else {
            outbound.append(bytes)
        }
        if outbound.byteCount > highWatermark { isAboveHighWatermark = true }
        updateInterest()
        return false
    }

    /// Writes bytes just received (echoing or forwarding them) straight from
    /// the read buffer: nothing is copied unless the kernel does not take it
    /// all, and then only the rest, into the queue.
    @discardableResult @inlinable
    public func write(_ bytes: ReceivedBytes) -> Bool {
        write(bytes.buffer)
    }

    /// Writes the bytes of an array or string's UTF-8 view (see ``write(_:)-(UnsafeRawBufferPointer)``).
    @discardableResult
    public func write<Bytes: Sequence>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        if let done = bytes.withContiguousStorageIfAvailable({ write(UnsafeRawBufferPointer($0)) }) { return done }
        return Array(bytes).withUnsafeBytes { write($0) }
    }

    /// Runs `callback` on the runtime's thread once every byte written
    /// before this call has reached the kernel. When nothing is queued it
    /// runs right after the current callback returns — never inside it, so
    /// callbacks never nest (an unregistered stream, which has no loop to
    /// defer to, runs it at once). With bytes queued, it never runs if the
    /// stream ends first (its disconnect says why).
    public func whenFlushed(_ callback: @escaping () -> Void) {
        if outbound.isEmpty && !awaitingWritability {
            if let owner, isRegistered { owner.runAfterCallback(callback) } else { callback() }
        } else {
            outbound.whenWritten(callback)
        }
    }

    /// Closes the resource once queued output has been written (at once if
    /// none). With a `deadline`, a peer that stops reading cannot hold the
    /// stream open: when the deadline passes first, the stream is destroyed
    /// and its unsent bytes are discarded (logged as a warning that says how many).
    public func closeWhenFlushed(within deadline: Duration? = nil) {
        closeAfterFlush = true
        if let tls, !tls.isEstablished, !tls.pendingPlaintext.isEmpty {
            // Plaintext waits for the handshake, which needs reading: it
            // closes once that completes and the bytes are out (or times out).
            return
        }
        setReading(false)
        if let tls { beginTLSClose(tls) }
        if outbound.isEmpty {
            if let tls, awaitPeerCloseNotify(tls) { return }
            close()
        } else if let deadline, let owner {
            flushDeadline = owner.schedule(after: deadline, for: self)
        }
    }

    /// The timer of a `closeWhenFlushed(within:)` deadline.
    private var flushDeadline: TimerID?

    open override func timerFired(_ timer: TimerID, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if let status = tlsTimerFired(timer) { return status }
        guard timer == flushDeadline else { return super.timerFired(timer, in: context, emit: emit) }
        flushDeadline = nil
        if let id, isRegistered {
            context.logger.warning("\(ReactorError("closeWhenFlushed", .resource(id), detail: "the peer did not read within the deadline; \(outbound.byteCount) queued bytes discarded"))")
            close()
        }
        return .active
    }

    // MARK: Reading

    /// Turns reading on or off (back-pressure from the handler's side).
    public func setReading(_ on: Bool) {
        isReading = on
        // Bytes the transport delivered while reading was off go first.
        if on, onTransport, !requests.held.isEmpty || !requests.overflow.isEmpty { owner?.redeliver(self) }
        updateInterest()
    }

    /// A stream's interest is its own: this is ``setReading(_:)`` with
    /// `newInterest.contains(.read)`; write interest follows the write queue.
    open override func setInterest(_ newInterest: Interest) {
        setReading(newInterest.contains(.read))
    }

    /// Hands bytes back to the stream: they are delivered again, before
    /// anything read later, at the end of the current batch (Danga::Socket's
    /// `push_back_read`) — for a parser that consumed more than one message.
    public func pushBack(_ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return }
        pushedBack.insert(contentsOf: bytes, at: 0)
        owner?.redeliver(self)
    }

    /// What end of file means for this kind of stream. A plain stream (a pipe)
    /// is finished; a socket may still be writable (see ``SocketStream``).
    open func readEndOfFile(_ readiness: Readiness, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        .closed
    }

    // MARK: The completion path (StreamCompletions.swift)

    override func adoptTransport(_ transport: any StreamTransport) { adoptStreamTransport(transport) }
    override func releaseTransport(_ transport: any StreamTransport) { releaseStreamTransport(transport) }
    @usableFromInline override func submitTransportRequests(_ transport: any StreamTransport, in context: Context) {
        submitStreamRequests(transport, in: context)
    }
    @usableFromInline override func transportCompleted(_ completion: StreamCompletion, via transport: any StreamTransport, in context: Context,
                                                       emit: (ResourceEvent) -> Void) -> ResourceStatus {
        streamCompleted(completion, via: transport, in: context, emit: emit)
    }

    // MARK: Readiness

    /// Arms the TLS handshake timeout of a stream that speaks TLS.
    open override func didRegister(in context: Context) {
        super.didRegister(in: context)
        if let tls, !tls.isEstablished, tls.handshakeTimer == nil {
            tls.handshakeTimer = context.schedule(after: tls.handshakeTimeout, for: self)
        }
    }

    open override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        // Over a transport the only readiness is the runtime's redelivery of bytes kept back.
        if onTransport, let transport = context.transport { return deliverKept(transport, in: context, emit: emit) }
        if readiness.contains(.writable), !outbound.isEmpty {
            if let status = flush(in: context, emit: emit) { return status }
        }
        guard isRegistered else { return .active }
        guard isReading, readiness.contains(.readable) || readiness.contains(.error) || readiness.contains(.hangup) else {
            if readiness.contains(.hangup) || readiness.contains(.error) { return endStatus(readiness) }
            return .active
        }
        if !pushedBack.isEmpty {
            // Pushed-back bytes first; the descriptor is read on a later
            // report (level-triggered, it is reported again if still ready).
            let bytes = pushedBack
            pushedBack.removeAll()
            bytes.withUnsafeBytes { emit(.received(ReceivedBytes($0))) }
            return .active
        }
        // One read per readiness report: level-triggered polling reports the
        // descriptor again next turn if more is waiting, which keeps one busy
        // peer from starving the others.
        switch isSocket ? Syscall.receive(fd, into: context.readBuffer) : Syscall.read(fd, into: context.readBuffer) {
        case .transferred(let n):
            return deliverReceived(UnsafeRawBufferPointer(rebasing: context.readBuffer[..<n]), in: context, emit: emit)
        case .endOfFile:
            if let tls { return receivedEndOfTransport(tls, readiness: readiness, in: context, emit: emit) }
            return readEndOfFile(readiness, emit: emit)
        case .wouldBlock:
            return .active
        case .failed(let errno):
            return .failed(ReactorError("read", .fd(fd.rawValue), errno: errno))
        }
    }

    /// Bytes that arrived (by a read or a transport's completion), to the
    /// handler: decrypted first over TLS.
    @inline(__always)
    final func deliverReceived(_ bytes: UnsafeRawBufferPointer, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        bytesIn &+= UInt64(bytes.count)
        if let tls { return receivedCiphertext(tls, bytes, in: context, emit: emit) }
        emit(.received(ReceivedBytes(bytes)))
        return .active
    }

    /// Writes queued bytes; returns a status when the stream is finished.
    private func flush(in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus? {
        let queuedBefore = outbound.byteCount
        let result = outbound.flush(to: fd, due: &dueCallbacks)
        bytesOut &+= UInt64(queuedBefore - outbound.byteCount)
        return wrote(result, emit: emit)
    }

    /// What follows bytes leaving the queue, by `writev` or by a transport's
    /// send: callbacks now due, the endings that waited for the queue to
    /// drain, the low watermark. Returns a status when the stream is finished.
    func wrote(_ result: IOResult, emit: (ResourceEvent) -> Void) -> ResourceStatus? {
        if !dueCallbacks.isEmpty {
            // Callbacks may write (to the queue), never flush, so the list is
            // stable while it runs; cleared after, it keeps its one buffer.
            for callback in dueCallbacks { callback() }
            dueCallbacks.removeAll(keepingCapacity: true)
            guard isRegistered else { return .active }
        }
        switch result {
        case .failed(let errno):
            writeFailed = true
            return .failed(ReactorError("write", .fd(fd.rawValue), errno: errno))
        case .transferred:
            if closeAfterFlush {
                // Same as an immediate closeWhenFlushed: a close the handler asked for.
                if let tls, awaitPeerCloseNotify(tls) { return nil }
                close()
                return .active
            }
            if endAfterFlush { return .closed }  // the peer's end of file, now that its replies are out
            outputDrained()
            updateInterest()
        case .wouldBlock, .endOfFile:
            break
        }
        if isAboveHighWatermark && outbound.byteCount <= lowWatermark {
            isAboveHighWatermark = false
            emit(.writableAgain)
        }
        return nil
    }

    func updateInterest() {
        var wanted: Interest = isReading ? .read : .none
        if !outbound.isEmpty || awaitingWritability { wanted.insert(.write) }
        if onTransport {
            interest = wanted  // what it wants, for introspection; the transport acts on it
            return queueTransportWork()
        }
        applyInterest(wanted)
    }

    /// The peer's end of file on a stream that may not stay half-open: done
    /// now if nothing is queued, otherwise once the queue drains.
    func endAtEndOfFile() -> ResourceStatus {
        guard isRegistered else { return .active }  // the handler closed it on `.readClosed`
        if let tls { beginTLSClose(tls) }  // our close_notify answers the peer's: a clean end both ways
        if outbound.isEmpty && !awaitingWritability { return .closed }
        endAfterFlush = true
        return .active
    }

    /// Called when the write queue has just emptied; subclasses finish
    /// what had to wait for queued bytes (a TCP half-close, say).
    func outputDrained() {}

    func fail(_ error: ReactorError) {
        owner?.end(self, reason: .failed(error))
    }

    func endStatus(_ readiness: Readiness) -> ResourceStatus {
        if readiness.contains(.error), let errno = Syscall.pendingSocketError(fd) {
            return .failed(ReactorError("poll", .fd(fd.rawValue), errno: errno))
        }
        return .closed
    }
}
