import ProtocolRESP
import Reactor

/// One client: its partial command, its name, and how it ends.
///
/// Commands are parsed in place from the runtime's read buffer; only the
/// tail of a command cut by the end of a read is copied (into `pending`).
/// Every complete command of a read runs under one lock acquisition and its
/// replies gather in the runtime's reply buffer, which leaves in one write.
///
/// **Endings.** QUIT and protocol errors send their reply, shut the write
/// side down (the client reads it, then end of file) and discard further
/// input until the client closes, or ``KVConfiguration/lingerTimeout``.
/// A client whose unread replies pass the output-buffer limit is reset at
/// once (its queued replies are dropped). An idle client is closed
/// silently. A client that half-closes gets its replies, then the close.
///
/// **Back-pressure.** Once its unsent replies pass the high watermark, or
/// the runtime's output budget says it holds too much (``KVOutputBudget``),
/// a connection is paused: it stops reading and stops running requests,
/// even in the middle of a read (the rest waits in `pending`, unrun). It
/// resumes, running what waited first, when its queue has drained
/// (``ResourceEvent/writableAgain``) or the budget allows it again.
final class KVConnection: ResourceHandler {
    /// The per-read state, behind a pointer: reached through it, the hot
    /// path's mutations skip the dynamic exclusivity checks Swift makes on
    /// a class's stored properties (a measurable cost at one command per read).
    private struct State {
        var parser: RESPRequestParser
        /// The start of a command that has not fully arrived.
        var pending = InboundBuffer()
        /// The last time the client sent anything (monotonic nanoseconds), for the idle timeout.
        var lastActivity: UInt64
        /// Set once the connection is closing: input is discarded from then on.
        var closingSince: UInt64?
        /// True while back-pressure holds the connection: no reading, no running.
        var paused = false
        /// The position in the output budget's backlog; -1 when not in it.
        var budgetSlot = -1
        /// The unsent bytes the output budget counts for this connection.
        var countedUnsent = 0
    }

    // Sound: the service keeps every connection in its registry and lives as
    // long as its runtime, so it outlives them all; `unowned(unsafe)` spares
    // the hot path a reference-count check.
    unowned(unsafe) let service: KVService
    let stream: SocketStream
    /// CLIENT ID.
    let clientID: UInt64
    /// CLIENT SETNAME / GETNAME.
    var name: [UInt8]?
    /// The position in the service's registry; -1 once removed.
    var index = -1
    private let state: UnsafeMutablePointer<State>

    init(service: KVService, stream: SocketStream, clientID: UInt64, now: MonotonicInstant) {
        self.service = service
        self.stream = stream
        self.clientID = clientID
        state = .allocate(capacity: 1)
        state.initialize(to: State(parser: RESPRequestParser(maxBulkLength: service.info.configuration.maxBulkLength),
                                   lastActivity: now.nanoseconds))
        stream.highWatermark = service.info.configuration.highWatermark
        stream.lowWatermark = service.info.configuration.lowWatermark
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// True once QUIT or a protocol error started the close.
    var isClosing: Bool { state.pointee.closingSince != nil }

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            received(bytes.buffer, context: context)
        case .readClosed:
            // The client has sent everything: answer what arrived, then close.
            service.forget(self)
            stream.closeWhenFlushed(within: service.info.configuration.lingerTimeout)
        case .writableAgain:
            resumeIfAllowed(context: context)
        default:
            break
        }
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        service.forget(self)
    }

    // MARK: Reading

    private func received(_ input: UnsafeRawBufferPointer, context: Context) {
        state.pointee.lastActivity = context.now.nanoseconds
        guard state.pointee.closingSince == nil else { return }
        if state.pointee.pending.readableBytes == 0 && !state.pointee.paused {
            // The common case: whole commands, straight from the read buffer.
            let consumed = runCommands(input, context: context)
            if state.pointee.closingSince == nil && stream.isRegistered && consumed < input.count {
                state.pointee.pending.append(UnsafeRawBufferPointer(rebasing: input[consumed...]))
            }
            return
        }
        state.pointee.pending.append(input)
        let limit = service.info.configuration.maxQueryBufferLength
        if state.pointee.pending.readableBytes > limit {
            context.logger.notice("kv: client \(clientID) closed for exceeding the query buffer limit of \(limit) bytes")
            state.pointee.pending = InboundBuffer()
            service.forget(self)
            stream.abort()
            return
        }
        if !state.pointee.paused { runPending(context: context) }
    }

    /// Runs the complete commands buffered in `pending`.
    private func runPending(context: Context) {
        // A big argument still arriving: nothing to parse until it is all here.
        guard state.pointee.pending.readableBytes > 0,
              state.pointee.pending.readableBytes >= state.pointee.parser.needed else { return }
        // Sound: `pending` is not mutated while its bytes are lent out (runCommands touches only the parser).
        let consumed = state.pointee.pending.withUnsafeReadableBytes { runCommands($0, context: context) }
        guard state.pointee.closingSince == nil && stream.isRegistered else {
            state.pointee.pending.removeAll()
            return
        }
        state.pointee.pending.consume(consumed)
        if state.pointee.pending.readableBytes == 0 && state.pointee.pending.capacity > 1 << 20 {
            state.pointee.pending = InboundBuffer()  // do not keep a big value's buffer for an idle client
        }
    }

    /// Runs every complete command at the start of `input` and writes their
    /// replies; returns the bytes consumed.
    private func runCommands(_ input: UnsafeRawBufferPointer, context: Context) -> Int {
        var offset = 0
        let service = self.service
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            // The first command is parsed before taking the lock: a read that
            // carries only part of a command does not contend for it.
            let first = state.pointee.parser.parse(rest)
            if case .incomplete = first { return offset }
            let database = service.database
            let commandContext = KVCommandContext(now: database.clock.milliseconds(at: context.now),
                                                  client: self, server: service.info, database: database)
            let queued = stream.queuedByteCount
            let limit = service.info.configuration.outputBufferLimit
            let pauseAt = min(KVBatch.pauseThreshold, service.outputBudget.pointee.room(for: self, queued: queued))
            let state = self.state
            let reply = service.reply
            let (consumed, stop, volatileKeys) = database.withStore { store in
                let (consumed, stop) = KVBatch.run(rest, first: first, parser: &state.pointee.parser, store: &store, reply: &reply.pointee,
                                                   context: commandContext, queued: queued, limit: limit, pauseAt: pauseAt)
                return (consumed, stop, store.volatileCount)
            }
            offset += consumed
            if volatileKeys > 0 { service.startExpiryCycle(context: context) }
            switch stop {
            case .needMore:
                flushReplies()
                if mustPause() { pause() }
                return offset
            case .paused:
                flushReplies()
                if !stream.isRegistered { return offset }  // the write failed: the stream has ended
                if mustPause() {
                    pause()
                    return offset
                }
            case .quit, .protocolError:
                flushReplies()
                beginClosing(now: context.now.nanoseconds, context: context)
                return offset
            case .overflow:
                reply.pointee.reset()
                context.logger.notice("kv: client \(clientID) closed for exceeding the output buffer limit of \(limit) bytes")
                service.forget(self)
                stream.abort()
                return offset
            }
        }
    }

    private func flushReplies() {
        let reply = service.reply
        guard reply.pointee.count > 0 else { return }
        stream.write(reply.pointee.bytes)
        reply.pointee.reset()
    }

    // MARK: Back-pressure

    /// True while back-pressure holds the connection.
    var isPaused: Bool { state.pointee.paused }
    /// The output budget's bookkeeping (see ``KVOutputBudget``).
    var budgetSlot: Int {
        get { state.pointee.budgetSlot }
        set { state.pointee.budgetSlot = newValue }
    }
    var countedUnsent: Int {
        get { state.pointee.countedUnsent }
        set { state.pointee.countedUnsent = newValue }
    }

    /// After a write: whether the unsent replies are above the high watermark,
    /// or the budget wants this connection stopped. A connection with nothing
    /// queued and nothing counted (a client that reads) returns at once.
    @inline(__always)
    private func mustPause() -> Bool {
        guard state.pointee.budgetSlot >= 0 || stream.queuedByteCount > 0 else { return false }
        let overBudget = service.outputBudget.pointee.record(self)
        return overBudget || stream.isAboveHighWatermark
    }

    private func pause() {
        state.pointee.paused = true
        stream.setReading(false)
    }

    /// Resumes a paused connection if neither its queue nor the budget holds
    /// it any more: runs the requests that waited, then reads again unless
    /// they filled the queue again.
    func resumeIfAllowed(context: Context) {
        guard state.pointee.paused, stream.isRegistered, !stream.isAboveHighWatermark,
              !service.outputBudget.pointee.record(self) else { return }
        state.pointee.paused = false
        runPending(context: context)
        if !state.pointee.paused && stream.isRegistered { stream.setReading(true) }
    }

    // MARK: Ending

    /// After QUIT or a protocol error: the reply goes out, then end of file;
    /// the client's close (or the linger timeout) closes the connection.
    private func beginClosing(now: UInt64, context: Context) {
        state.pointee.closingSince = now
        state.pointee.parser.reset()
        stream.shutdownWrite()
        service.startSweeping(context: context)
    }

    /// Called by the service's sweep: closes the connection if it has been
    /// idle too long, or has lingered long enough after its last reply.
    func sweep(now: UInt64, idleTimeout: UInt64, linger: UInt64) {
        if let closingSince = state.pointee.closingSince {
            if now &- closingSince >= linger {
                service.forget(self)
                stream.close()
            }
        } else if idleTimeout > 0 && now &- state.pointee.lastActivity >= idleTimeout {
            service.forget(self)
            stream.close()
        }
    }
}
