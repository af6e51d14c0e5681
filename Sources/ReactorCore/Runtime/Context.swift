import DequeModule
import Logging
import SystemPackage

/// A handler's handle on its runtime: register resources, arm timers,
/// stop. The same object is passed to every callback and is available
/// before `run()` as ``Runtime/context``, so code that sets things up works
/// the same outside and inside callbacks. (Resources are closed, and their
/// interest changed, on the resources themselves.)
///
/// Registration and removal reach the poller at once. Three things are
/// deferred so that a batch of events stays coherent: interest changes
/// (applied before the next wait, coalesced), the `close()` of a closed
/// resource's descriptor (after the batch, so a reused descriptor number
/// never meets a stale event), and notices to handlers (after the callback
/// that caused them, so callbacks never nest).
public final class Context {
    // Exclusivity. The stored properties the loop touches per event carry
    // `@exclusivity(unchecked)`, here and in Resource, StreamResource,
    // OutboundQueue.Chunk, Runtime and the pollers. The runtime's dynamic
    // check (swift_beginAccess/endAccess on every class property access,
    // which the optimiser keeps wherever a release could run a deinit inside
    // the access) cost a third of the user-space time of an echo round trip
    // on uring's completion mode (measured with perf: 7% of the server's CPU;
    // user time per round trip 1.3-1.4 us before, 0.8-0.9 us after).
    // Sound because all of it is confined to the runtime's thread (these
    // types are not Sendable) and no access to these properties spans a call
    // into handler code: handlers run between accesses, never inside one.
    // Every test ran with the checks on before they were turned off.
    // Debug builds check the confinement itself: `loopThread` below, at
    // every entry point, and the borrowed slot references where they are used.
    @usableFromInline struct Slot {
        @usableFromInline var resource: Resource? {
            didSet { unretained = resource.map { Unmanaged.passUnretained($0) } }
        }
        /// The same reference, for loops that run no handler code (nothing
        /// can take the resource out of its slot meanwhile), so they can use
        /// it without a retain and a release each: the submissions before a
        /// wait, two per echo round trip on the completion mode (callgrind).
        @usableFromInline var unretained: Unmanaged<Resource>?
    }

    @usableFromInline enum Notice {
        case registered(Resource)
        case disconnected(Resource, DisconnectReason)
        /// A callback that must not nest in the one that asked for it
        /// (``StreamResource/whenFlushed(_:)`` with nothing queued).
        case deferred(() -> Void)
    }

    /// The poller, seen only through its registration calls (a connection's
    /// start and end): the hot paths — `wait`, and interest changes, which
    /// queue in ``interestChanges`` — are the generic Runtime's, specialised.
    let registrar: any Poller
    /// Resources whose interest changed since the runtime last told the
    /// poller; the runtime applies them before it waits. Ids, not
    /// references: a write-heavy stream lands here on every partial write
    /// and drain, and plain integers cost no retain and release (measured:
    /// references added ~4% instructions per round trip to a 16 KiB echo on poll).
    @exclusivity(unchecked) @usableFromInline var interestChanges: [ResourceID] = []

    /// The poller's own stream I/O, when it has one (io_uring's completion
    /// mode); connected socket streams registered here use it.
    @exclusivity(unchecked) @usableFromInline var transport: (any StreamTransport)?
    /// The backend's own stream I/O when it has one (io_uring's completion
    /// mode), for introspection; nil over readiness.
    public var streamTransport: (any StreamTransport)? { transport }
    /// Resources with requests for the transport, submitted before the next wait.
    @exclusivity(unchecked) @usableFromInline var transportWork: [ResourceID] = []
    /// Streams whose receive waits for a free buffer (the transport ran out).
    @exclusivity(unchecked) var starvedReceivers: [ResourceID] = []
    /// The completions of one wait, reused.
    @exclusivity(unchecked) @usableFromInline var completionBatch: [StreamCompletion] = []

    @exclusivity(unchecked) @usableFromInline var slots: [Slot] = []
    @exclusivity(unchecked) private var freeSlots: [Int] = []
    @exclusivity(unchecked) private var nextSequence: UInt64 = 1
    @exclusivity(unchecked) private(set) var liveCount = 0
    /// Destroyed this batch; closed by `closeDeferred()`.
    @exclusivity(unchecked) @usableFromInline var closing: [Resource] = []
    @exclusivity(unchecked) @usableFromInline var notices = Deque<Notice>()
    /// Resources to hand a synthetic `.readable` after the batch (see `redeliver`).
    @exclusivity(unchecked) @usableFromInline var redeliveries: [ResourceID] = []
    @exclusivity(unchecked) @usableFromInline var timers = TimerQueue()
    /// Set by `stop()` or the Controller; the loop then drains and ends.
    @exclusivity(unchecked) @usableFromInline var stopRequested = false
    /// The thread running the loop, bound as `run()` starts; debug builds
    /// check it at every entry point (see ``LoopThread``).
    @usableFromInline var loopThread = LoopThread()

    /// The runtime's read buffer, shared by all its resources: one read at a
    /// time happens on this thread, so one buffer serves them all and a
    /// steady-state read allocates nothing.
    public let readBuffer: UnsafeMutableRawBufferPointer

    /// The time at the start of the current batch (monotonic).
    public var now: MonotonicInstant { currentTime }
    @exclusivity(unchecked) @usableFromInline var currentTime: MonotonicInstant = .now()
    /// The longest a loop turn waits; the post-loop hook runs at least this often.
    public var loopTimeout: Duration?
    /// Counters for introspection.
    public var statistics: Statistics { counters }
    @exclusivity(unchecked) @usableFromInline var counters = Statistics()
    /// The runtime's logger.
    public let logger: Logger

    /// What the runtime has done so far.
    public struct Statistics: Sendable {
        /// Turns of the loop (waits on the poller).
        public var loopTurns: UInt64 = 0
        /// Events handed to resources: readiness reports, and stream
        /// completions where the backend moves the bytes (counted apart too, in ``streamCompletions``).
        public var eventsDispatched: UInt64 = 0
        /// Events dropped because their resource had gone earlier in the same batch.
        public var staleEventsDropped: UInt64 = 0
        /// Timers that fired (runtime and resource timers).
        public var timersFired: UInt64 = 0
        /// Commands and tasks delivered from other threads.
        public var commandsDelivered: UInt64 = 0
        /// Interest changes handed to the poller (after coalescing within a turn).
        public var interestUpdates: UInt64 = 0
        /// Stream completions handed to resources: bytes received, sends and
        /// accepts finished by a backend that moves stream bytes itself
        /// (io_uring's completion mode); always 0 over readiness.
        public var streamCompletions: UInt64 = 0
        /// Times the runtime handed idle memory back to the kernel after a
        /// quiet spell (``RuntimeOptions/releaseMemoryAfterQuiet``).
        public var memoryReleases: UInt64 = 0
    }

    init(registrar: any Poller, readBufferSize: Int, loopTimeout: Duration?, logger: Logger) {
        self.registrar = registrar
        self.readBuffer = .allocate(byteCount: readBufferSize, alignment: 16)
        self.loopTimeout = loopTimeout
        self.logger = logger
    }

    deinit {
        readBuffer.deallocate()
        tlsBufferStorage?.deallocate()
    }

    /// Where TLS streams drain ciphertext before writing it: one per
    /// runtime, made on first use (a runtime without TLS never pays for it).
    /// Apart from ``readBuffer`` because a handler writes while the
    /// plaintext it was given still lives there.
    var tlsBuffer: UnsafeMutableRawBufferPointer {
        if let tlsBufferStorage { return tlsBufferStorage }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        tlsBufferStorage = buffer
        return buffer
    }
    private var tlsBufferStorage: UnsafeMutableRawBufferPointer?
    /// Whether a TLS stream ran on this runtime (its ciphertext buffer exists).
    var hasUsedTLS: Bool { tlsBufferStorage != nil }

    // MARK: Resources

    /// Registers `resource` with its current interest and returns its id.
    /// The Service hears ``Service/resourceRegistered(_:context:)`` after the
    /// current callback returns.
    ///
    /// Throws (and leaves nothing registered) when the poller refuses the
    /// descriptor, e.g. `register(fd 12): EBADF (Bad file descriptor)`.
    @discardableResult
    public func register(_ resource: Resource) throws(ReactorError) -> ResourceID {
        loopThread.check("register")
        guard !resource.isRegistered else {
            throw ReactorError("register", .fd(resource.fd.rawValue), detail: "the resource is already registered as \(resource.id!)")
        }
        guard !resource.isClosed else {
            throw ReactorError("register", .fd(resource.fd.rawValue), errno: .badFileDescriptor, detail: "the resource was closed")
        }
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            guard slots.count < ResourceID.maximumSlots else {
                throw ReactorError("register", .fd(resource.fd.rawValue), detail: "the runtime holds \(ResourceID.maximumSlots) resources, its maximum")
            }
            slot = slots.count
            slots.append(Slot())
        }
        let id = ResourceID(sequence: nextSequence, slot: slot)
        // A stream moving its bytes through the transport needs no readiness.
        let transport = resource.acceptsTransport ? self.transport : nil
        resource.onTransport = transport != nil
        let watched = resource.onTransport ? .none : resource.interest
        do {
            try registrar.register(resource.fd, token: Token(id.rawValue), interest: watched)
        } catch {
            freeSlots.append(slot)
            throw error
        }
        nextSequence += 1
        slots[slot].resource = resource
        resource.id = id
        resource.registeredInterest = watched
        // Sound: the owner pointer is cleared in `remove` and in the runtime's
        // teardown, both before this Context can be freed, so it never dangles.
        resource.owner = self
        liveCount += 1
        notices.append(.registered(resource))
        if let transport { resource.adoptTransport(transport) }
        resource.didRegister(in: self)
        return id
    }

    /// The registered resource with this id, or nil if it is gone: for code
    /// that holds ids rather than resources (a task sent from another
    /// thread through ``Controller/execute(_:)``, say). Handlers are given
    /// their resource and need no lookup.
    public func resource(_ id: ResourceID) -> Resource? {
        let slot = id.slot
        guard slot < slots.count, let resource = slots[slot].resource, resource.id == id else { return nil }
        return resource
    }

    /// The registered resource with this id, as type `R`.
    public func resource<R: Resource>(_ id: ResourceID, as type: R.Type) -> R? {
        resource(id) as? R
    }

    /// Ends a resource at its handler's request (``Resource/close()``): no
    /// further events, descriptor closed after the current batch, no notice.
    func destroy(_ resource: Resource) {
        loopThread.check("close")
        guard resource.isOwned(by: self) else { return }
        remove(resource)
        resource.isClosing = true
        closing.append(resource)
    }

    /// Removes `resource` from this runtime without closing it, e.g. to
    /// register it with another runtime on another thread. Returns false
    /// when it was not registered here.
    @discardableResult
    public func deregister(_ resource: Resource) -> Bool {
        loopThread.check("deregister")
        guard resource.isOwned(by: self) else { return false }
        remove(resource)
        return true
    }

    /// How many resources are registered.
    public var resourceCount: Int { liveCount }

    /// Every registered resource, in slot order (Danga::Socket's DescriptorMap).
    public var resources: [Resource] { slots.compactMap(\.resource) }

    /// A snapshot of one registered resource, for introspection.
    public struct ResourceInfo: Sendable, CustomStringConvertible {
        /// The resource's id.
        public var id: ResourceID
        /// Its descriptor number.
        public var fd: Int32
        /// Its ``Resource/kind``, e.g. `tcp-stream`.
        public var kind: String
        /// What it is watching for.
        public var interest: Interest
        /// Bytes it has read.
        public var bytesIn: UInt64
        /// Bytes it has written.
        public var bytesOut: UInt64
        /// One line: id, descriptor, kind, interest, bytes in and out.
        public var description: String { "\(id) fd \(fd) \(kind) \(interest) in \(bytesIn) out \(bytesOut)" }
    }

    /// Snapshots of every registered resource, in slot order.
    public var resourceInfo: [ResourceInfo] {
        slots.compactMap { slot in
            guard let resource = slot.resource, let id = resource.id else { return nil }
            return ResourceInfo(id: id, fd: resource.fd.rawValue, kind: resource.kind, interest: resource.interest,
                                bytesIn: resource.bytesIn, bytesOut: resource.bytesOut)
        }
    }

    // MARK: Extensions of the runtime (name resolution)

    /// The resolver of ReactorNames, once made (held here so it lives and dies with the runtime).
    package var resolverStorage: AnyObject?
    /// Where the resolver asks (``RuntimeOptions/resolver``).
    package var resolverConfiguration = ResolverConfiguration()
    /// Run as the runtime stops, before its resources close.
    package var stopHooks: [() -> Void] = []

    // MARK: Timers

    /// Arms a timer that fires after `delay`, and then every `interval` if one
    /// is given (at least one microsecond). The Service hears
    /// ``Service/timerFired(_:context:)`` with the returned id.
    @discardableResult
    public func schedule(after delay: Duration, repeating interval: Duration? = nil) -> TimerID {
        loopThread.check("schedule")
        let clamped = interval.map { max($0, .microseconds(1)) }
        return timers.schedule(at: MonotonicInstant.now().advanced(by: delay), repeating: clamped)
    }

    /// Arms a timer that belongs to `resource`: when it fires, the runtime
    /// calls ``Resource/timerFired(_:in:emit:)`` instead of the Service. It
    /// dies with the resource (a timer of a destroyed resource never fires).
    /// Returns nil when the resource is not registered.
    @discardableResult
    public func schedule(after delay: Duration, repeating interval: Duration? = nil, for resource: Resource) -> TimerID? {
        loopThread.check("schedule")
        guard let id = resource.id, resource.isOwned(by: self) else { return nil }
        let clamped = interval.map { max($0, .microseconds(1)) }
        return timers.schedule(at: MonotonicInstant.now().advanced(by: delay), repeating: clamped, owner: id)
    }

    /// Cancels a timer. Returns false if it already fired (one-shot) or was cancelled.
    @discardableResult
    public func cancel(_ timer: TimerID) -> Bool {
        loopThread.check("cancel")
        return timers.cancel(timer)
    }

    /// Asks the runtime to hand `resource` a `.readable` readiness at the
    /// end of this batch although the kernel reported none: for bytes a
    /// stream pushed back (``StreamResource/pushBack(_:)``), which must be
    /// delivered again without waiting for the peer to send more.
    public func redeliver(_ resource: Resource) {
        loopThread.check("redeliver")
        guard let id = resource.id, resource.isOwned(by: self) else { return }
        redeliveries.append(id)
    }

    /// How many timers are armed.
    public var timerCount: Int { timers.count }

    // MARK: Lifecycle

    /// Asks the runtime to stop gracefully: it finishes the current turn,
    /// delivers queued commands, waits (up to the shutdown grace period) for
    /// queued output to drain, then closes everything.
    public func stop() {
        loopThread.check("stop (Controller.shutdown() stops a runtime from another thread)")
        stopRequested = true
    }

    // MARK: Internal

    /// Takes a resource out of the table and the poller.
    @usableFromInline
    func remove(_ resource: Resource) {
        guard let id = resource.id, resource.isOwned(by: self) else { return }
        do {
            try registrar.deregister(resource.fd)
        } catch {
            logger.debug("deregister failed", metadata: ["resource": "\(id)", "error": "\(error)"])
        }
        slots[id.slot].resource = nil
        freeSlots.append(id.slot)
        if resource.onTransport, let transport { resource.releaseTransport(transport) }
        resource.onTransport = false
        resource.owner = nil
        resource.interestChangePending = false  // its queued id no longer finds it; a new registration starts clean
        liveCount -= 1
    }

    /// Ends a resource because of its own I/O: remove it, schedule the close,
    /// and queue the hand-back notice for its handler.
    @usableFromInline
    func end(_ resource: Resource, reason: DisconnectReason) {
        guard resource.isOwned(by: self) else { return }
        remove(resource)
        resource.isClosing = true
        closing.append(resource)
        notices.append(.disconnected(resource, reason))
    }

    /// Runs `callback` after the current callback returns (with the notices).
    package func runAfterCallback(_ callback: @escaping () -> Void) {
        notices.append(.deferred(callback))
    }

    /// Queues a resource's new interest for the poller (applied by the runtime before it waits).
    func interestChanged(_ resource: Resource) {
        guard !resource.interestChangePending, let id = resource.id else { return }
        resource.interestChangePending = true
        interestChanges.append(id)
    }

    /// Hands the transport every request queued this turn (the runtime calls
    /// this before it waits, so they are submitted with the wait).
    @usableFromInline
    func submitTransportWork() {
        if !starvedReceivers.isEmpty, let transport, transport.freeBufferCount > 0 {
            // Buffers came back: the receives that ran out try again.
            for id in starvedReceivers { resource(id)?.queueTransportWork() }
            starvedReceivers.removeAll(keepingCapacity: true)
        }
        guard !transportWork.isEmpty, let transport else { return }
        var index = 0
        // Indexing: a submission may queue more work (a stream that starved), appended behind.
        while index < transportWork.count {
            let id = transportWork[index]
            index += 1
            // Unretained: a submission runs no handler code, so the slot keeps it alive.
            slots[id.slot].unretained?._withUnsafeGuaranteedRef { resource in
                #if DEBUG
                precondition(slots[id.slot].resource === resource, "a slot lent a resource it no longer holds")
                #endif
                guard resource.id == id else { return }
                resource.transportWorkQueued = false
                resource.submitTransportRequests(transport, in: self)
            }
        }
        transportWork.removeAll(keepingCapacity: true)
    }

    /// Closes the descriptors of resources destroyed in the batch just finished.
    @usableFromInline
    func closeDeferred() {
        guard !closing.isEmpty else { return }  // most turns destroy nothing
        for resource in closing {
            resource.closeDescriptor()
            // Its handler has heard everything it will hear (disconnect notices
            // go out before this); dropping it breaks a handler ↔ resource cycle.
            resource.route = nil
        }
        closing.removeAll(keepingCapacity: true)
    }
}
