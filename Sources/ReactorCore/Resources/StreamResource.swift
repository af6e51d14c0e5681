import SystemPackage

/// A byte stream over a descriptor (a socket or a pipe end): reads into the
/// runtime's buffer and reports ``ResourceEvent/received(_:)``; writes go
/// straight to the kernel when they can and queue otherwise, turning write
/// interest on while bytes are queued and off when they drain (Danga::Socket's
/// write queue), so queued data is never dropped silently.
open class StreamResource: Resource {
    var outbound = OutboundQueue()
    /// Whether the Service wants reads; kept apart from write interest, which
    /// the queue manages.
    public private(set) var isReading = true
    /// Close once the queue drains (set by ``closeWhenFlushed()``).
    var closeAfterFlush = false
    /// True while writes must queue without trying the descriptor (a TCP
    /// connect in progress); the stream then keeps write interest.
    var awaitingWritability = false

    public init(fd: FileDescriptor, reading: Bool = true) {
        isReading = reading
        super.init(fd: fd, interest: reading ? .read : .none)
    }

    open override var kind: String { "stream" }
    open override var hasPendingOutput: Bool { !outbound.isEmpty }

    /// Bytes queued and not yet written.
    public var queuedByteCount: Int { outbound.byteCount }

    /// Writes `bytes`, queueing what the kernel does not take now. Returns true
    /// when everything went out at once. A write error ends the resource with
    /// that error (reported to the Service as a disconnect).
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !isClosed else { return false }
        if outbound.isEmpty && !awaitingWritability {
            switch Syscall.write(fd, from: bytes) {
            case .transferred(let n) where n == bytes.count:
                return true
            case .transferred(let n):
                outbound.append(UnsafeRawBufferPointer(rebasing: bytes[n...]))
            case .wouldBlock, .endOfFile:
                outbound.append(bytes)
            case .failed(let errno):
                outbound.append(bytes)  // kept: the Service gets the resource back with it
                fail(ReactorError("write", .fd(fd.rawValue), errno: errno))
                return false
            }
        } else {
            outbound.append(bytes)
        }
        updateInterest()
        return false
    }

    /// Writes the bytes of an array or string's UTF-8 view (see ``write(_:)-(UnsafeRawBufferPointer)``).
    @discardableResult
    public func write<Bytes: Sequence>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        if let done = bytes.withContiguousStorageIfAvailable({ write(UnsafeRawBufferPointer($0)) }) { return done }
        return Array(bytes).withUnsafeBytes { write($0) }
    }

    /// Turns reading on or off (back-pressure from the Service's side).
    public func setReading(_ on: Bool) {
        isReading = on
        updateInterest()
    }

    /// Closes the resource once queued output has been written (at once if none).
    public func closeWhenFlushed() {
        closeAfterFlush = true
        setReading(false)
        if outbound.isEmpty, let id, let owner { owner.destroy(id) }
    }

    func updateInterest() {
        var wanted: Interest = isReading ? .read : .none
        if !outbound.isEmpty || awaitingWritability { wanted.insert(.write) }
        setInterest(wanted)
    }

    /// Called when the write queue has just emptied; subclasses finish
    /// what had to wait for queued bytes (a TCP half-close, say).
    func outputDrained() {}

    func fail(_ error: ReactorError) {
        owner?.end(self, reason: .failed(error))
    }

    open override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if readiness.contains(.writable), !outbound.isEmpty {
            switch outbound.flush(to: fd) {
            case .failed(let errno):
                return .failed(ReactorError("write", .fd(fd.rawValue), errno: errno))
            case .transferred:
                if closeAfterFlush, let id {
                    // Same as an immediate closeWhenFlushed: a destroy the Service asked for.
                    context.destroy(id)
                    return .active
                }
                outputDrained()
                updateInterest()
            case .wouldBlock, .endOfFile:
                break
            }
        }
        guard isReading, readiness.contains(.readable) || readiness.contains(.error) || readiness.contains(.hangup) else {
            if readiness.contains(.hangup) || readiness.contains(.error) { return endStatus(readiness) }
            return .active
        }
        // One read per readiness report: level-triggered polling reports the
        // descriptor again next turn if more is waiting, which keeps one busy
        // peer from starving the others.
        switch Syscall.read(fd, into: context.readBuffer) {
        case .transferred(let n):
            emit(.received(ReceivedBytes(UnsafeRawBufferPointer(rebasing: context.readBuffer[..<n]))))
            return .active
        case .endOfFile:
            return readEndOfFile(readiness, emit: emit)
        case .wouldBlock:
            return .active
        case .failed(let errno):
            return .failed(ReactorError("read", .fd(fd.rawValue), errno: errno))
        }
    }

    /// What end of file means for this kind of stream. A plain stream (a pipe)
    /// is finished; a socket may still be writable (see ``TCPStream``).
    open func readEndOfFile(_ readiness: Readiness, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        .closed
    }

    func endStatus(_ readiness: Readiness) -> ResourceStatus {
        if readiness.contains(.error), let errno = Syscall.pendingSocketError(fd) {
            return .failed(ReactorError("poll", .fd(fd.rawValue), errno: errno))
        }
        return .closed
    }
}
