import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Where a stream's requests to its ``StreamTransport`` stand.
struct TransportRequests {
    /// A receive request is on the ring, from its start until its final
    /// completion (the one without `continues`).
    var receiving = false
    /// ``StreamTransport/stopReceiving(_:)`` was asked for the current receive.
    var cancelling = false
    /// A send is in flight; the next waits for its completion (order).
    var sending = false
    /// End of file or a receive error was seen: no more receives.
    var readFinished = false
    /// Completions that arrived while the stream was not reading (they race
    /// the cancel), or behind bytes still to redeliver: delivered, in order,
    /// before anything received later. Receiving stays off while any are held.
    var held: [StreamCompletion] = []
    /// Bytes of held completions copied out of the ring (see ``maximumHeld``),
    /// as received (ciphertext under TLS): delivered before `held`.
    var overflow: [UInt8] = []

    /// The most receive buffers one stream holds. The buffers are the
    /// runtime's, shared by all its streams: a stream whose handler stopped
    /// reading while a flood was arriving would otherwise keep every buffer
    /// that raced the cancel (hundreds, from one fast sender) and leave the
    /// others `-ENOBUFS`. Past this many, the stream copies what it holds
    /// into memory of its own and gives the buffers back.
    static let maximumHeld = 8
}

/// The completion path of a stream: the same reads, writes and endings as
/// over readiness, with the system calls replaced by requests to the
/// backend's transport, queued during the turn and submitted with the wait.
extension StreamResource {
    /// Registration with a transport: the poller watches nothing for this
    /// stream (its interest is `.none`); a receive starts before the next wait.
    func adoptStreamTransport(_ transport: any StreamTransport) {
        transport.attach(fd)
        requests = TransportRequests()
        queueTransportWork()
    }

    /// Leaving the runtime: buffers kept back return to the transport, whose
    /// cancellation of this descriptor's requests (at deregistration) ends the rest.
    func releaseStreamTransport(_ transport: any StreamTransport) {
        for completion in requests.held where completion.hasBuffer { transport.release(completion) }
        requests = TransportRequests()
        transportWorkQueued = false
    }

    /// A write over the transport: queued (the queue owns the bytes at a
    /// stable address until the send completes) and sent with the wait.
    /// There is no write attempt first: the send rides on the system call
    /// the loop makes anyway, where a `write` would be one more per reply.
    ///
    /// The exception: a write that would take the queue past the high
    /// watermark while no send is in flight writes at once, as over
    /// readiness. Otherwise a burst written within one turn (a chat line
    /// broadcast to a hundred members, say) would sit in the queue until the
    /// wait and cross the watermark although the kernel would take it all,
    /// and back-pressure would mean something else here than over readiness.
    func queueForTransport(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !requests.sending && outbound.byteCount + bytes.count > highWatermark {
            return writeThrough(bytes)
        }
        outbound.append(bytes)
        if outbound.byteCount > highWatermark { isAboveHighWatermark = true }
        if !requests.sending { queueTransportWork() }
        return false
    }

    /// The queue, then `bytes`, straight to the descriptor, as over
    /// readiness; what it does not take stays queued (and ``writeNow(_:)``'s
    /// interest update queues the transport's send for it).
    private func writeThrough(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !outbound.isEmpty {
            let before = outbound.byteCount
            let result = outbound.flush(to: fd, due: &dueCallbacks)
            bytesOut &+= UInt64(before - outbound.byteCount)
            // Never inside the caller's write: callbacks run after its callback returns.
            for callback in dueCallbacks { owner?.runAfterCallback(callback) }
            dueCallbacks.removeAll(keepingCapacity: true)
            if case .failed(let errno) = result {
                writeFailed = true
                outbound.append(bytes)  // kept, as over readiness
                fail(ReactorError("write", .fd(fd.rawValue), errno: errno))
                return false
            }
        }
        return writeNow(bytes)
    }

    /// Before the wait: start or cancel the receive as reading wants, and
    /// send what is queued when no send is in flight.
    func submitStreamRequests(_ transport: any StreamTransport, in context: Context) {
        guard onTransport, isRegistered else { return }
        let wantsReceive = isReading && !requests.readFinished && requests.held.isEmpty && requests.overflow.isEmpty
            && pushedBack.isEmpty
        if wantsReceive && !requests.receiving {
            if transport.freeBufferCount > 0 {
                transport.startReceiving(fd)
                requests.receiving = true
            } else if let id {
                context.starvedReceivers.append(id)  // tried again once buffers return
            }
        } else if !wantsReceive && requests.receiving && !requests.cancelling {
            transport.stopReceiving(fd)
            requests.cancelling = true
        }
        if !requests.sending && !outbound.isEmpty {
            requests.sending = true
            transport.send(fd, owner: self) { outbound.gather(into: $0) }
        }
    }

    /// One completion of this stream's requests.
    func streamCompleted(_ completion: StreamCompletion, via transport: any StreamTransport, in context: Context,
                         emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard onTransport else {
            if completion.hasBuffer { transport.release(completion) }
            return .active
        }
        switch completion.kind {
        case .accepted:
            return .active  // a stream accepts nothing
        case .sent:
            return sendCompleted(completion.result, emit: emit)
        case .received:
            if !completion.continues {
                // The receive is over (end of file, an error, no buffers, a
                // cancel, or the kernel ended the multishot): start another
                // before the next wait if the stream still reads.
                requests.receiving = false
                requests.cancelling = false
                if completion.result != 0 { queueTransportWork() }
            }
            if completion.result == -ENOBUFS || completion.result == -ECANCELED { return .active }

            if !isReading || !requests.held.isEmpty || !requests.overflow.isEmpty || !pushedBack.isEmpty {
                requests.held.append(completion)
                if requests.held.count > TransportRequests.maximumHeld { keepHeldBytes(transport) }
                if isReading { context.redeliver(self) }
                return .active
            }
            return deliver(completion, transport, in: context, emit: emit)
        }
    }

    /// Bytes, end of file or a receive error, to the stream's handler (the
    /// same paths a `read` result takes, TLS included). The buffer goes back
    /// to the transport once the handler has returned.
    private func deliver(_ completion: StreamCompletion, _ transport: any StreamTransport, in context: Context,
                         emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if completion.result > 0 {
            defer { transport.release(completion) }
            return deliverReceived(transport.bytes(of: completion), in: context, emit: emit)
        }
        if completion.hasBuffer { transport.release(completion) }
        requests.readFinished = true
        if completion.result == 0 {
            if let tls { return receivedEndOfTransport(tls, readiness: .readable, in: context, emit: emit) }
            return readEndOfFile(.readable, emit: emit)
        }
        return .failed(ReactorError("recv", .fd(fd.rawValue), errno: Errno(rawValue: -completion.result)))
    }

    /// Copies held bytes into the stream's own memory (delivered first, in
    /// order) and returns their buffers to the ring. An end of file or error
    /// stays held, behind them.
    private func keepHeldBytes(_ transport: any StreamTransport) {
        var kept = 0
        for completion in requests.held {
            guard completion.result > 0 else { break }
            requests.overflow.append(contentsOf: transport.bytes(of: completion))
            transport.release(completion)
            kept += 1
        }
        requests.held.removeFirst(kept)
    }

    /// The runtime's redelivery: bytes pushed back first, then completions
    /// held while reading was off, in order; then receiving resumes.
    func deliverKept(_ transport: any StreamTransport, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard isReading, isRegistered else { return .active }
        if !pushedBack.isEmpty {
            let bytes = pushedBack
            pushedBack.removeAll()
            bytes.withUnsafeBytes { emit(.received(ReceivedBytes($0))) }
            if !requests.held.isEmpty || !requests.overflow.isEmpty { context.redeliver(self) } else { queueTransportWork() }
            return .active
        }
        if !requests.overflow.isEmpty {
            let bytes = requests.overflow
            requests.overflow = []
            let status = bytes.withUnsafeBytes { deliverReceived($0, in: context, emit: emit) }
            if case .active = status {} else { return status }
        }
        while isReading, isRegistered, !requests.held.isEmpty {
            let completion = requests.held.removeFirst()
            let status = deliver(completion, transport, in: context, emit: emit)
            if case .active = status {} else { return status }
        }
        queueTransportWork()
        return .active
    }

    /// A send finished: the bytes leave the queue, and what waited for them
    /// follows (callbacks, endings, the low watermark), as after a `writev`.
    private func sendCompleted(_ result: Int32, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        requests.sending = false
        guard result >= 0 else {
            // Nothing was sent: again, with the next wait. Our own cancel
            // (at deregistration) never gets here: the transport drops the
            // completions of a descriptor's former requests. So -ECANCELED is
            // the kernel's (found with fault injection: the bytes then sat in
            // the queue until the stream wrote again, for ever in the case of
            // a last reply); -ENOBUFS is a moment short of memory, as for `send`.
            if result == -ECANCELED || result == -ENOBUFS || result == -EINTR || result == -EAGAIN {
                queueTransportWork()
                return .active
            }
            writeFailed = true
            return .failed(ReactorError("send", .fd(fd.rawValue), errno: Errno(rawValue: -result)))
        }
        outbound.sent(Int(result), due: &dueCallbacks)
        bytesOut &+= UInt64(result)
        if !outbound.isEmpty { queueTransportWork() }
        return wrote(outbound.isEmpty ? .transferred(Int(result)) : .wouldBlock, emit: emit) ?? .active
    }
}

