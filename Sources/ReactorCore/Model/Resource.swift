import SystemPackage

/// Anything with a file descriptor that a runtime can drive: sockets, pipes,
/// an eventfd, or a descriptor adopted from elsewhere.
///
/// A resource owns its descriptor. When the runtime reports readiness, the
/// resource does its own non-blocking I/O in ``handle(_:in:emit:)`` and
/// reports what happened as ``ResourceEvent``s, which the runtime passes to
/// the ``Service``. Returning ``ResourceStatus/closed`` or
/// ``ResourceStatus/failed(_:)`` ends the resource: the runtime deregisters
/// it, hands it back to the Service, and closes the descriptor after the
/// current batch of events.
///
/// Resources are not `Sendable`: a registered resource belongs to its
/// runtime's thread. Subclass to build new kinds.
open class Resource {
    /// The descriptor this resource owns. It is closed exactly once: by the
    /// runtime after destruction, or by `deinit` if never registered.
    public let fd: FileDescriptor
    /// The id given at registration; nil before registration and after removal.
    public internal(set) var id: ResourceID?
    /// What this resource wants to hear about. Change it with ``setInterest(_:)``.
    public internal(set) var interest: Interest
    /// The runtime state this resource is registered with.
    unowned(unsafe) var owner: Context?
    /// Set once the descriptor is closed.
    public private(set) var isClosed = false
    /// Bytes this resource has read and written (streams and datagram
    /// sockets count them; for introspection such as an HTTP `/stats` page).
    public internal(set) var bytesIn: UInt64 = 0
    public internal(set) var bytesOut: UInt64 = 0
    /// Set when the resource was destroyed or ended: its descriptor closes
    /// after the current batch, and nothing more may be written to it.
    public internal(set) var isClosing = false
    /// Who hears this resource's events and its disconnect: this handler when
    /// set, the runtime's ``Service`` otherwise. Lets one runtime serve many
    /// protocols, each connection talking to its own handler. A listener
    /// passes its handler on to the connections it accepts (see ``SocketListener``).
    public var handler: (any ResourceHandler)?

    /// Adopts `fd`; the resource will close it.
    public init(fd: FileDescriptor, interest: Interest) {
        self.fd = fd
        self.interest = interest
    }

    deinit {
        if !isClosed { Syscall.close(fd) }
    }

    /// A short, human-readable kind for logs and introspection, e.g. `tcp-stream`.
    open var kind: String { "descriptor" }

    /// True while the resource is registered with a runtime.
    public var isRegistered: Bool { owner != nil }

    /// True while bytes are queued but not yet written. A graceful shutdown
    /// waits for every resource to report false.
    open var hasPendingOutput: Bool { false }

    /// Does the I/O the readiness allows and reports what happened through
    /// `emit`. Called on the runtime's thread only.
    ///
    /// `emit` delivers each event to the Service immediately; the Service may
    /// destroy this resource from that callback, so code that emits in a loop
    /// must stop once ``isRegistered`` turns false.
    open func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if readiness.contains(.error) {
            let errno = Syscall.pendingSocketError(fd)
            return .failed(ReactorError("poll", .fd(fd.rawValue), errno: errno,
                                        detail: errno == nil ? "the descriptor reported an error condition" : nil))
        }
        if readiness.contains(.readable) { emit(.readable) }
        if readiness.contains(.writable), isRegistered { emit(.writable) }
        if readiness.contains(.hangup), !readiness.contains(.readable) { return .closed }
        if readiness.contains(.readClosed), isRegistered { emit(.readClosed) }
        return .active
    }

    /// Called once the resource is registered and has its ``id``; the place
    /// to arm a resource timer (a connect timeout, say). Subclasses call super.
    open func didRegister(in context: Context) {}

    /// A timer armed with ``Context/schedule(after:for:)`` fired. Events
    /// emitted here reach the handler or Service like I/O events; returning
    /// ``ResourceStatus/failed(_:)`` ends the resource. By default the timer
    /// is passed on as ``ResourceEvent/timerFired(_:)``, so a handler can
    /// time its own connections (an idle timeout, say); subclasses that arm
    /// timers of their own handle those and call super for the rest.
    open func timerFired(_ timer: TimerID, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        emit(.timerFired(timer))
        return .active
    }

    /// Changes what this resource wants to hear about. Takes effect at once
    /// when registered; a failure (the descriptor was closed behind the
    /// runtime's back, say) ends the resource with that error.
    public final func setInterest(_ newInterest: Interest) {
        guard newInterest != interest else { return }
        interest = newInterest
        owner?.interestChanged(self)
    }

    /// Closes the resource: a registered one is destroyed (no more events;
    /// its descriptor closes after the current batch), an unregistered one
    /// closes its descriptor at once. Safe to call more than once.
    public final func close() {
        if let id, let owner { owner.destroy(id) } else { closeDescriptor() }
    }

    /// Closes the descriptor (once). The runtime calls this after the batch in
    /// which the resource was destroyed.
    func closeDescriptor() {
        guard !isClosed else { return }
        isClosed = true
        Syscall.close(fd)
    }
}

/// What a resource's I/O turned up, for the Service.
public enum ResourceEvent {
    /// The descriptor is readable; the Service does its own read (raw descriptors).
    case readable
    /// The descriptor is writable; the Service does its own write (raw descriptors).
    case writable
    /// Bytes arrived. The view points into the runtime's reused read buffer and
    /// is valid only during the callback: copy what you keep.
    case received(ReceivedBytes)
    /// A listener accepted a connection. It is already registered (its
    /// ``Resource/id`` is set) with the listener's connection options and
    /// handler; destroy it to refuse it, or deregister it to hand it to
    /// another runtime.
    case accepted(SocketStream)
    /// An outgoing connection completed.
    case connected
    /// The peer finished sending (end of file); this side may still write.
    case readClosed
    /// The write queue had grown past its high watermark and has now drained
    /// to its low watermark: writing may resume (back-pressure).
    case writableAgain
    /// An eventfd's counter was read: the sum of the values signalled since.
    case signalled(UInt64)
    /// A datagram arrived. The bytes are valid only during the callback.
    case datagram(ReceivedBytes, from: SocketAddress?)
    /// A datagram larger than the receive buffer arrived; it was discarded
    /// rather than delivered cut short. `length` is its real size.
    case datagramTooLarge(length: Int, capacity: Int, from: SocketAddress?)
    /// A listener stopped accepting because the process or system ran out of
    /// descriptors (EMFILE / ENFILE). Pending connections wait in the
    /// backlog; accepting is retried with a back-off, without spinning.
    case acceptPaused(ReactorError)
    /// A paused listener accepted again.
    case acceptResumed
    /// A timer armed for this resource with ``Context/schedule(after:repeating:for:)`` fired.
    case timerFired(TimerID)
}

/// Whether a resource lives on after handling readiness.
public enum ResourceStatus {
    case active
    /// The peer closed the connection, or the descriptor hung up.
    case closed
    /// An I/O error ended the resource.
    case failed(ReactorError)
}

/// Why the runtime handed a resource back to the Service.
public enum DisconnectReason: Sendable, CustomStringConvertible {
    /// The peer closed, or the descriptor hung up.
    case closed
    /// An I/O error ended the resource.
    case failed(ReactorError)

    public var description: String {
        switch self {
        case .closed: return "closed by peer"
        case .failed(let error): return "failed: \(error)"
        }
    }
}

/// Bytes just read, viewed in place in the runtime's read buffer. Valid only
/// for the duration of the callback that received it; `Array(bytes)` copies.
public struct ReceivedBytes: RandomAccessCollection {
    public let buffer: UnsafeRawBufferPointer
    @inlinable public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { buffer.count }
    @inlinable public subscript(position: Int) -> UInt8 { buffer[position] }
    /// Calls `body` with the raw bytes, without copying.
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(buffer)
    }
}
