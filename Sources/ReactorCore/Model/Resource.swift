import ReactorTLS
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
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    /// The id given at its latest registration; nil before the first. It
    /// stays set after the resource is removed (ids are never reused, so a
    /// stale id finds nothing), so a disconnect handler can still say which
    /// connection it was.
    @exclusivity(unchecked) public internal(set) final var id: ResourceID?
    /// What this resource wants to hear about. Change it with ``setInterest(_:)``.
    @exclusivity(unchecked) public internal(set) final var interest: Interest
    /// The interest the poller holds for it; differs from ``interest`` while
    /// a change waits to be applied before the next wait.
    @exclusivity(unchecked) @usableFromInline final var registeredInterest: Interest = .none
    /// True while this resource is in its runtime's list of interest changes.
    @exclusivity(unchecked) @usableFromInline final var interestChangePending = false
    /// The runtime state this resource is registered with, not retained
    /// (the context holds its resources, and clears this as one leaves).
    // Unmanaged rather than `unowned(unsafe)`: loading an unowned(unsafe)
    // reference makes a strong one, so every `owner != nil` and
    // `owner === context` on the event path was a retain and a release
    // (callgrind, 2 of each per echo round trip); the tests below compare
    // the pointer alone.
    @exclusivity(unchecked) @usableFromInline final var ownerReference: Unmanaged<Context>?
    /// The runtime state this resource is registered with.
    @usableFromInline final var owner: Context? {
        get { ownerReference?.takeUnretainedValue() }
        set { ownerReference = newValue.map { Unmanaged.passUnretained($0) } }
    }
    /// Debug builds: traps unless called on the thread of the runtime this
    /// resource is registered with (any thread while it is not registered).
    /// The runtime's shortcuts past exclusivity checks and retains rely on it
    /// (see ``LoopThread``).
    @inlinable @inline(__always)
    final func checkLoopThread(_ operation: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        #if DEBUG
        ownerReference?._withUnsafeGuaranteedRef { $0.loopThread.check(operation(), file: file, line: line) }
        #endif
    }

    /// Whether `context` is the one this resource is registered with.
    @inlinable final func isOwned(by context: Context) -> Bool {
        ownerReference?.toOpaque() == Unmanaged.passUnretained(context).toOpaque()
    }
    /// Set once the descriptor is closed.
    @exclusivity(unchecked) public private(set) final var isClosed = false
    /// Bytes this resource has read (streams and datagram sockets count
    /// them; for introspection such as an HTTP `/stats` page).
    @exclusivity(unchecked) public internal(set) final var bytesIn: UInt64 = 0
    /// Bytes this resource has written.
    @exclusivity(unchecked) public internal(set) final var bytesOut: UInt64 = 0
    /// Set when the resource was closed or ended: its descriptor closes
    /// after the current batch, and nothing more may be written to it.
    @exclusivity(unchecked) public internal(set) final var isClosing = false
    /// Where this resource's events go: its handler, typed (see ``handler``).
    @exclusivity(unchecked) @usableFromInline final var route: HandlerRoute?

    /// Who hears this resource's events and its disconnect: this handler when
    /// set, the runtime's ``Service`` otherwise. Lets one runtime serve many
    /// protocols, each connection talking to its own handler. A listener
    /// passes its handler on to the connections it accepts (see
    /// ``SocketListener/connectionHandler``).
    ///
    /// The handler's ``ResourceHandler/Subject`` must be this resource's
    /// type or a superclass of it: the handler is then given the resource
    /// already typed. Setting a handler of another subject is a programming
    /// error and stops the process with a message naming both types.
    public final var handler: (any ResourceHandler)? {
        get { route?.handler }
        set {
            guard let newValue else { route = nil; return }
            guard let route = HandlerRoute.make(newValue, for: self) else {
                preconditionFailure("\(type(of: newValue)) handles \(subjectName(of: newValue)), not \(type(of: self))")
            }
            self.route = route
        }
    }


    /// Whether this resource closes its descriptor; false for descriptors
    /// a library keeps (c-ares's sockets, which it closes itself).
    let ownsDescriptor: Bool

    /// Adopts `fd`; the resource will close it.
    public init(fd: FileDescriptor, interest: Interest) {
        self.fd = fd
        self.interest = interest
        ownsDescriptor = true
    }

    /// Watches `fd` without owning it: closing the resource leaves the
    /// descriptor open, for descriptors another library opens and closes
    /// (c-ares's sockets, say). Deregister it (close the resource) before
    /// that library closes the descriptor.
    public init(borrowing fd: FileDescriptor, interest: Interest) {
        self.fd = fd
        self.interest = interest
        ownsDescriptor = false
    }

    deinit {
        if !isClosed && ownsDescriptor { Syscall.close(fd) }
    }

    /// A short, human-readable kind for logs and introspection, e.g. `tcp-stream`.
    open var kind: String { "descriptor" }

    /// True while the resource is registered with a runtime.
    public var isRegistered: Bool { ownerReference != nil }

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

    /// Changes what this resource wants to hear about: the way to drive a
    /// raw descriptor (``Resource(fd:interest:)``) or a resource subclass of
    /// your own. Streams manage their interest themselves — reading through
    /// ``StreamResource/setReading(_:)``, writing by their write queue — and
    /// take only the `.read` part of `newInterest` as `setReading`.
    ///
    /// The change reaches the poller before the runtime next waits (so a
    /// stream that turns write interest on and off within one turn costs no
    /// system call); events already reported in this batch are still
    /// delivered. A failure (the descriptor was closed behind the runtime's
    /// back, say) ends the resource with that error.
    open func setInterest(_ newInterest: Interest) {
        applyInterest(newInterest)
    }

    /// Records a new interest and queues it for the poller.
    final func applyInterest(_ newInterest: Interest) {
        checkLoopThread("setInterest")
        guard newInterest != interest else { return }
        interest = newInterest
        ownerReference?._withUnsafeGuaranteedRef { $0.interestChanged(self) }
    }

    // MARK: The completion path (StreamTransport)

    /// Whether this resource moves its bytes through the backend's
    /// ``StreamTransport`` when there is one (connected socket streams);
    /// everything else stays on readiness.
    var acceptsTransport: Bool { false }

    /// Starts using `transport` (just registered with no interest).
    func adoptTransport(_ transport: any StreamTransport) {}

    /// Lets go of `transport` as the resource leaves its runtime.
    func releaseTransport(_ transport: any StreamTransport) {}

    /// Hands the transport the requests this resource queued during the turn.
    /// The runtime passes its transport and context in: loaded from the
    /// resource, each was a retain and a release per request (callgrind).
    @usableFromInline func submitTransportRequests(_ transport: any StreamTransport, in context: Context) {}

    /// True while this resource's I/O goes through its runtime's transport
    /// (``Context/streamTransport``, which the runtime hands to each request
    /// and completion): the poller then watches nothing for it (its interest
    /// is registered as `.none`), and ``interest`` only says what it wants,
    /// for introspection. The one record of it: set as the resource adopts
    /// the transport, cleared as it leaves the runtime.
    @exclusivity(unchecked) @usableFromInline final var onTransport = false

    /// True while the resource is in its runtime's list for the next submission.
    @exclusivity(unchecked) final var transportWorkQueued = false

    /// Puts the resource in its runtime's list for the next submission (once a turn).
    final func queueTransportWork() {
        checkLoopThread("a transport request")
        guard !transportWorkQueued, let id, let ownerReference else { return }
        transportWorkQueued = true
        // Unretained: the context outlives every resource registered with it.
        ownerReference._withUnsafeGuaranteedRef { $0.transportWork.append(id) }
    }

    /// A request of this resource finished.
    @usableFromInline
    func transportCompleted(_ completion: StreamCompletion, via transport: any StreamTransport, in context: Context,
                            emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if completion.hasBuffer { transport.release(completion) }
        return .active
    }

    /// Closes the resource: the one way to end it from a handler. A
    /// registered resource gets no more events, and its descriptor closes
    /// after the current batch (so a reused descriptor number never meets a
    /// stale event); its handler hears no disconnect, since it asked. An
    /// unregistered one closes its descriptor at once. Safe to call more
    /// than once. Streams also offer ``StreamResource/closeWhenFlushed(within:)``
    /// (after queued output) and ``SocketStream/abort()`` (a reset).
    public final func close() {
        guard !isClosing else { return }  // closed already; its descriptor closes after the batch
        if let owner, isRegistered { owner.destroy(self) } else { closeDescriptor() }
    }

    /// Closes the descriptor (once). The runtime calls this after the batch in
    /// which the resource was destroyed.
    func closeDescriptor() {
        guard !isClosed else { return }
        isClosed = true
        if ownsDescriptor { Syscall.close(fd) }
    }
}

/// The name of the resource type a handler takes, for a misuse's message.
private func subjectName(of handler: any ResourceHandler) -> String {
    func name<H: ResourceHandler>(_ handler: H) -> String { "\(H.Subject.self)" }
    return name(handler)
}

/// What a resource's I/O turned up, for the Service.
// The cases with large payloads (an address, an error, a handshake's
// strings) are `indirect`: inline they made every event 150 bytes, and each
// `.received` was copied with memcpy and outlined copy functions on its way
// to the handler, 15% of epoll's instructions per echo round trip
// (callgrind). Boxed, each of these events costs one allocation: rare for
// the errors and handshakes, one per datagram for `.datagram` (a UDP-heavy
// service would want a compact SocketAddress instead, not measured yet).
// The stream events (`.received`, `.writableAgain`, `.accepted`) stay two words.
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
    indirect case datagram(ReceivedBytes, from: SocketAddress?)
    /// A datagram larger than the receive buffer arrived; it was discarded
    /// rather than delivered cut short. `length` is its real size.
    indirect case datagramTooLarge(length: Int, capacity: Int, from: SocketAddress?)
    /// A listener stopped accepting because the process or system ran out of
    /// descriptors (EMFILE / ENFILE). Pending connections wait in the
    /// backlog; accepting is retried with a back-off, without spinning.
    indirect case acceptPaused(ReactorError)
    /// A paused listener accepted again.
    case acceptResumed
    /// A timer armed for this resource with ``Context/schedule(after:repeating:for:)`` fired.
    case timerFired(TimerID)
    /// A stream's TLS handshake completed: what it settled (version,
    /// cipher, ALPN protocol, the peer's verified certificate subject,
    /// resumption). Plaintext written before it is on its way now.
    indirect case tlsEstablished(TLSHandshakeInfo)
}

/// Whether a resource lives on after handling readiness.
// `.failed` is `indirect` for the reason ResourceEvent's large cases are:
// every event returns a status, and a 64-byte one was copied each time.
public enum ResourceStatus {
    /// It carries on.
    case active
    /// The peer closed the connection, or the descriptor hung up.
    case closed
    /// An I/O error ended the resource.
    indirect case failed(ReactorError)
}

/// Why the runtime handed a resource back to the Service.
public enum DisconnectReason: Sendable, CustomStringConvertible {
    /// The peer closed, or the descriptor hung up.
    case closed
    /// An I/O error ended the resource.
    case failed(ReactorError)

    /// `closed by peer`, or `failed: ` and the error.
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
    /// The bytes, in place in the read buffer.
    public let buffer: UnsafeRawBufferPointer
    /// Views `buffer`; it must stay valid while the view is used.
    @inlinable public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
    /// Always 0.
    @inlinable public var startIndex: Int { 0 }
    /// The number of bytes.
    @inlinable public var endIndex: Int { buffer.count }
    /// The byte at `position`.
    @inlinable public subscript(position: Int) -> UInt8 { buffer[position] }
    /// Calls `body` with the raw bytes, without copying.
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(buffer)
    }
    /// The bytes as contiguous `UInt8`s, so that `Array(bytes)` and the
    /// algorithms that look for contiguous storage copy them in one move.
    @inlinable public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
        // SAFETY: the read buffer is raw memory; viewing it as UInt8 (whose
        // layout is a byte) for the call is sound, and rebinding ends with it.
        try buffer.withMemoryRebound(to: UInt8.self) { try body($0) }
    }
    /// What `array += bytes` and `append(contentsOf: bytes)` call: one
    /// memcpy. The default walks the indices one byte at a time, which in a
    /// debug build took seconds per MiB, and many times that under a
    /// sanitizer (as SwiftNIO's ByteBufferView, this implements the
    /// underscored requirement for that reason).
    @inlinable public func _copyContents(initializing target: UnsafeMutableBufferPointer<UInt8>) -> (IndexingIterator<ReceivedBytes>, Int) {
        let count = Swift.min(target.count, buffer.count)
        // SAFETY: both ranges hold `count` bytes; `target` is uninitialised
        // UInt8 storage, which copyMemory initialises (UInt8 is trivial).
        if count > 0, let destination = target.baseAddress, let source = buffer.baseAddress {
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count)
        }
        // What was not copied, for the caller to go on with.
        return (ReceivedBytes(UnsafeRawBufferPointer(rebasing: buffer[count...])).makeIterator(), count)
    }
}
