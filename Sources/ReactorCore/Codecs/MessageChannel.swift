/// A connection that speaks in messages: the bytes a ``StreamResource``
/// receives are decoded by a ``Codec`` into messages for `onMessage`, and
/// ``send(_:)`` encodes messages onto the stream's write queue.
///
/// ```swift
/// listener.connectionHandler = MessageChannel.connectionHandler(codec: LineCodec()) { line, channel, _ in
///     channel.send(line.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 })
/// }
/// ```
///
/// **Reading.** The channel installs itself as the stream's
/// ``Resource/handler``. Each ``ResourceEvent/received(_:)`` is decoded
/// straight from the runtime's read buffer when no partial frame is waiting,
/// and only a leftover partial frame is copied, into an ``InboundBuffer``;
/// so when reads carry whole messages nothing is copied but the messages
/// themselves. Every complete message is delivered, in order, within the
/// callback that received its last byte. Pausing the stream
/// (``StreamResource/setReading(_:)``) stops further reads; messages already
/// received are still delivered.
///
/// **Ending.** `onClose` runs exactly once, whatever ends the channel:
/// - a ``CodecError``: the stream is destroyed at once (queued output is
///   dropped: the peer is not speaking the protocol and may keep sending),
///   and the reason is `.failed` with operation `decode`, e.g.
///   `decode(resource #3): frame of 2000000 bytes exceeds the maximum of 1048576`;
/// - the peer finishing (``ResourceEvent/readClosed``, or end of file on a
///   pipe): complete messages are delivered, including a last one that
///   only the end of the stream completes (``Codec/decodeLast(_:)``); then
///   `onClose(.closed)` runs — still able to ``send(_:)`` a last message —
///   and the stream closes once its queue is written. A request/response peer
///   that half-closes after its requests so gets every reply. Bytes of an
///   incomplete frame left at that point make the reason `.failed` (a
///   truncated frame) but the close stays graceful, since nothing more can arrive;
/// - the stream ending on its own (reset, write error): `onClose` with the
///   runtime's reason;
/// - ``close(flush:)``: `onClose(.closed)`.
///
/// **Ownership.** The stream holds its handler strongly and the channel holds
/// the stream, a reference cycle by design: for an accepted connection the
/// stream's handler is the only thing keeping the channel alive. The channel
/// breaks the cycle (clears `stream.handler`) on each of the endings above,
/// once the stream is gone or its last bytes are written; the runtime breaks
/// it too when it closes a stream some other way (``Resource/close()`` on
/// the stream, or a shutdown with the connection still open), so nothing
/// leaks — but only ``close(flush:)`` runs `onClose`.
///
/// All of it runs on the runtime's thread, like every handler.
public final class MessageChannel<C: Codec>: ResourceHandler {
    /// A channel is given its stream, typed.
    public typealias Subject = StreamResource

    /// The stream the channel reads from and writes to.
    public let stream: StreamResource
    /// The codec, with whatever per-connection state it keeps.
    public private(set) var codec: C
    /// Called once the stream's outgoing connection completes (see
    /// ``ResourceEvent/connected``); messages sent before then are queued.
    public var onConnected: ((MessageChannel<C>, Context) -> Void)?
    /// Called when the write queue, having grown past the stream's high
    /// watermark, has drained to its low watermark (see
    /// ``StreamResource/isAboveHighWatermark``): the place to resume sending.
    public var onWritableAgain: ((MessageChannel<C>, Context) -> Void)?

    private let onMessage: (C.Inbound, MessageChannel<C>, Context) -> Void
    private let onClose: (DisconnectReason, MessageChannel<C>, Context) -> Void
    /// A partial frame carried over between reads; empty in the common case.
    private(set) var inbound = InboundBuffer()
    /// Where ``send(_:)`` encodes; reused so encoding does not allocate once warm.
    private var scratch: [UInt8] = []
    private var state = State.open
    private var closeReported = false
    /// False once the channel, or its user, is done with incoming messages;
    /// delivery loops stop there even if decoded messages remain.
    private var wantsMessages = true

    private enum State {
        /// Reading and writing.
        case open
        /// Closing once the write queue drains; no more reads or sends.
        case closing
        /// The stream is gone.
        case closed
    }

    /// Makes `stream` a message channel: installs the channel as its handler.
    /// Register the stream (if it is not yet) with `context.register(channel.stream)`.
    ///
    /// - Parameters:
    ///   - onMessage: each decoded message, with this channel (to reply) and the runtime's context.
    ///   - onClose: called exactly once when the channel ends, with why (see the type's documentation).
    public init(stream: StreamResource, codec: C,
                onMessage: @escaping (C.Inbound, MessageChannel<C>, Context) -> Void,
                onClose: @escaping (DisconnectReason, MessageChannel<C>, Context) -> Void = { _, _, _ in }) {
        self.stream = stream
        self.codec = codec
        self.onMessage = onMessage
        self.onClose = onClose
        stream.handler = self
    }

    /// The stream's id: set once it is registered, and still answered after
    /// the stream has ended (in `onClose`, say).
    public var id: ResourceID? { stream.id }

    /// True until the channel starts closing: messages can be sent and will be received.
    public var isOpen: Bool { state == .open }

    /// Bytes of an incomplete frame waiting for the rest of it.
    public var bufferedByteCount: Int { inbound.readableBytes }

    /// A factory for ``SocketListener/connectionHandler``: every accepted
    /// connection becomes a channel of its own, with its own copy of `codec`.
    /// `configure` runs on each new channel before its stream is registered
    /// (to set ``onWritableAgain``, or to keep track of the channel).
    public static func connectionHandler(
        codec: C,
        onMessage: @escaping (C.Inbound, MessageChannel<C>, Context) -> Void,
        onClose: @escaping (DisconnectReason, MessageChannel<C>, Context) -> Void = { _, _, _ in },
        configure: @escaping (MessageChannel<C>) -> Void = { _ in }
    ) -> (SocketStream) -> (any ResourceHandler)? {
        return { stream in
            let channel = MessageChannel(stream: stream, codec: codec, onMessage: onMessage, onClose: onClose)
            configure(channel)
            return channel
        }
    }

    // MARK: Sending

    /// Encodes `message` and writes it to the stream, queueing what the
    /// kernel does not take now. Returns true when it all went out at once;
    /// false when (some of) it is queued — or when the channel is no longer
    /// open and the message was dropped (see ``isOpen``).
    @discardableResult
    public func send(_ message: C.Outbound) -> Bool {
        guard state == .open, !stream.isClosed else { return false }
        scratch.removeAll(keepingCapacity: true)
        codec.encode(message, into: &scratch)
        return scratch.withUnsafeBytes { stream.write($0) }
    }

    // MARK: Closing

    /// Ends the channel: `onClose(.closed)` runs, then the stream closes —
    /// once the messages already sent are written when `flush` is true, at
    /// once (dropping them) otherwise. Nothing is received after this call.
    /// Does nothing if the channel has already ended.
    public func close(flush: Bool = true) {
        wantsMessages = false
        guard state != .closed else { return }
        guard let context = stream.owner else {
            // Not registered: there is no runtime to report to; just let go of the stream.
            state = .closed
            inbound.removeAll()
            detach()
            return
        }
        if !flush { shutDown(flush: false, context: context) }
        report(.closed, context: context)
        shutDown(flush: flush, context: context)
    }

    // MARK: ResourceHandler

    /// Decodes received bytes into messages and follows the stream's life; see the type's documentation.
    public func handle(_ event: ResourceEvent, on stream: StreamResource, context: Context) {
        guard let id = stream.id else { return }
        switch event {
        case .received(let bytes):
            received(bytes.buffer, from: id, context: context)
        case .readClosed:
            peerFinished(from: id, context: context)
        case .connected:
            if state == .open { onConnected?(self, context) }
        case .writableAgain:
            if state == .open { onWritableAgain?(self, context) }
        default:
            break  // raw readiness, accepts, datagrams: not for a stream's channel
        }
    }

    /// The stream ended on its own: reports it through `onClose` (unless the
    /// channel had already ended) and breaks the reference cycle.
    public func resourceDisconnected(_ stream: StreamResource, reason: DisconnectReason, context: Context) {
        guard let id = stream.id else { return }
        let wasOpen = state == .open
        state = .closed
        var reason = reason
        if wasOpen, case .closed = reason {
            // A plain stream (a pipe) ends with end of file and no readClosed:
            // what the peer finished still counts.
            if let failure = deliverRemaining(from: id, context: context) { reason = .failed(failure) }
        }
        wantsMessages = false
        inbound.removeAll()
        report(reason, context: context)
        detach()
    }

    // MARK: Internals

    private func received(_ bytes: UnsafeRawBufferPointer, from id: ResourceID, context: Context) {
        guard state == .open else { return }
        if inbound.readableBytes == 0 {
            // The common case: decode in place, copy only a leftover partial frame.
            inbound.lend(bytes)
        } else {
            inbound.append(bytes)
        }
        // The view into the runtime's read buffer must not outlive this callback, however it ends.
        defer { keepLeftover() }
        // `isRegistered`: onMessage may have closed the stream behind the channel's back.
        while wantsMessages, stream.isRegistered, stream.id == id {
            let message: C.Inbound?
            do {
                // The access to `inbound` ends before `onMessage` runs, which may touch the channel.
                message = try codec.decode(&inbound)
            } catch {
                fail(error, from: id, context: context)
                return
            }
            guard let message else { return }
            onMessage(message, self, context)
        }
    }

    /// Copies a leftover partial frame out of the runtime's read buffer, and
    /// lets go of a buffer that one huge frame grew: it is reallocated if
    /// needed again, rather than pinned by an idle connection.
    private func keepLeftover() {
        inbound.stopBorrowing()
        if inbound.readableBytes == 0 && inbound.capacity > MessageChannel.largestIdleBuffer {
            inbound = InboundBuffer()
        }
    }

    /// The most buffer capacity an idle channel keeps (1 MiB).
    static var largestIdleBuffer: Int { 1 << 20 }

    private func peerFinished(from id: ResourceID, context: Context) {
        guard state == .open else { return }
        var reason = DisconnectReason.closed
        if let failure = deliverRemaining(from: id, context: context) {
            guard state == .open else { return }  // a codec error destroyed the stream and reported
            reason = .failed(failure)
        }
        guard state == .open else { return }  // onMessage closed the channel
        report(reason, context: context)
        shutDown(flush: true, context: context)
    }

    /// Delivers what the end of the stream completes. Returns the error for a
    /// truncated frame; a codec error is handled (stream destroyed, reported)
    /// here, so the caller finds the state `.closed`.
    private func deliverRemaining(from id: ResourceID, context: Context) -> ReactorError? {
        while wantsMessages {
            let message: C.Inbound?
            do {
                message = try codec.decodeLast(&inbound)
            } catch {
                fail(error, from: id, context: context)
                return nil
            }
            guard let message else { break }
            onMessage(message, self, context)
        }
        guard wantsMessages else { return nil }  // closed by onMessage: what is left is unwanted
        let left = inbound.readableBytes
        guard left > 0 else { return nil }
        inbound.removeAll()
        return ReactorError("decode", .resource(id), detail: CodecError.truncated(byteCount: left).description)
    }

    /// A codec error: the peer is not speaking the protocol, so the stream
    /// goes at once, without flushing.
    private func fail(_ error: CodecError, from id: ResourceID, context: Context) {
        let failure = ReactorError("decode", .resource(id), detail: error.description)
        shutDown(flush: false, context: context)
        report(.failed(failure), context: context)
    }

    private func report(_ reason: DisconnectReason, context: Context) {
        guard !closeReported else { return }
        closeReported = true
        onClose(reason, self, context)
    }

    /// Closes the stream (idempotent): at once, or once its queue drains.
    private func shutDown(flush: Bool, context: Context) {
        wantsMessages = false
        if flush {
            guard state == .open else { return }
            state = .closing
            inbound.removeAll()
            // Weak: the callback waits in the stream's own queue, and a strong
            // reference from there would be a cycle of its own if the stream
            // ended first. A stream that ends first reports a disconnect,
            // which detaches instead.
            stream.whenFlushed { [weak self] in self?.detach() }
            stream.closeWhenFlushed()
            // A stream still connecting is destroyed at once with its queue,
            // and the callback above with it.
            if !stream.isRegistered { detach() }
        } else {
            guard state != .closed else { return }
            state = .closed
            inbound.removeAll()
            stream.close()
            detach()
        }
    }

    /// Breaks the stream → channel half of the reference cycle.
    private func detach() {
        if stream.handler === self { stream.handler = nil }
    }
}
