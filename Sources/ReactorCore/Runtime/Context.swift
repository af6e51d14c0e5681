import DequeModule
import Logging
import SystemPackage

/// The Service's handle on its runtime: create and destroy resources, change
/// interest, arm timers, stop. The same object is passed to every callback
/// and is available before `run()` as ``Runtime/context``, so code that sets
/// things up works the same outside and inside callbacks.
///
/// Requests take effect at once on the poller. Two things are deferred so
/// that a batch of events stays coherent: the `close()` of a destroyed
/// resource (after the batch, so a reused descriptor number never meets a
/// stale event) and notifications to the Service (after the callback that
/// caused them, so callbacks never nest).
public final class Context {
    @usableFromInline struct Slot {
        @usableFromInline var resource: Resource?
    }

    @usableFromInline enum Notice {
        case registered(ResourceID)
        case disconnected(ResourceID, Resource, DisconnectReason)
    }

    /// The poller, seen only through its registration calls: the hot `wait`
    /// path is the generic Runtime's; these calls are the control path.
    let registrar: any Poller

    @usableFromInline var slots: [Slot] = []
    private var freeSlots: [Int] = []
    private var nextSequence: UInt64 = 1
    private(set) var liveCount = 0
    /// Destroyed this batch; closed by `closeDeferred()`.
    @usableFromInline var closing: [Resource] = []
    @usableFromInline var notices = Deque<Notice>()
    /// Resources to hand a synthetic `.readable` after the batch (see `redeliver`).
    @usableFromInline var redeliveries: [ResourceID] = []
    @usableFromInline var timers = TimerQueue()
    /// Set by `stop()` or the Controller; the loop then drains and ends.
    @usableFromInline var stopRequested = false

    /// The runtime's read buffer, shared by all its resources: one read at a
    /// time happens on this thread, so one buffer serves them all and a
    /// steady-state read allocates nothing.
    public let readBuffer: UnsafeMutableRawBufferPointer

    /// The time at the start of the current batch (monotonic).
    public var now: MonotonicInstant { currentTime }
    @usableFromInline var currentTime: MonotonicInstant = .now()
    /// The longest a loop turn waits; the post-loop hook runs at least this often.
    public var loopTimeout: Duration?
    /// Counters for introspection.
    public var statistics: Statistics { counters }
    @usableFromInline var counters = Statistics()
    /// The runtime's logger.
    public let logger: Logger

    /// What the runtime has done so far.
    public struct Statistics: Sendable {
        public var loopTurns: UInt64 = 0
        public var eventsDispatched: UInt64 = 0
        public var staleEventsDropped: UInt64 = 0
        public var timersFired: UInt64 = 0
        public var commandsDelivered: UInt64 = 0
    }

    init(registrar: any Poller, readBufferSize: Int, loopTimeout: Duration?, logger: Logger) {
        self.registrar = registrar
        self.readBuffer = .allocate(byteCount: readBufferSize, alignment: 16)
        self.loopTimeout = loopTimeout
        self.logger = logger
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: Resources

    /// Registers `resource` with its current interest and returns its id.
    /// The Service hears ``Service/resourceRegistered(_:context:)`` after the
    /// current callback returns.
    ///
    /// Throws (and leaves nothing registered) when the poller refuses the
    /// descriptor, e.g. `register(fd 12): EBADF (Bad file descriptor)`.
    @discardableResult
    public func register(_ resource: Resource) throws(ReactorError) -> ResourceID {
        guard resource.owner == nil else {
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
        do {
            try registrar.register(resource.fd, token: Token(id.rawValue), interest: resource.interest)
        } catch {
            freeSlots.append(slot)
            throw error
        }
        nextSequence += 1
        slots[slot].resource = resource
        resource.id = id
        // Sound: the owner pointer is cleared in `remove` and in the runtime's
        // teardown, both before this Context can be freed, so it never dangles.
        resource.owner = self
        liveCount += 1
        notices.append(.registered(id))
        resource.didRegister(in: self)
        return id
    }

    /// The registered resource with this id, or nil if it is gone.
    public func resource(_ id: ResourceID) -> Resource? {
        let slot = id.slot
        guard slot < slots.count, let resource = slots[slot].resource, resource.id == id else { return nil }
        return resource
    }

    /// The registered resource with this id, as type `R`.
    public func resource<R: Resource>(_ id: ResourceID, as type: R.Type) -> R? {
        resource(id) as? R
    }

    /// Destroys a resource: no further events are delivered for it, and its
    /// descriptor is closed after the current batch. Returns the resource (the
    /// Service may still read its state), or nil if the id is not live.
    @discardableResult
    public func destroy(_ id: ResourceID) -> Resource? {
        guard let resource = resource(id) else { return nil }
        remove(resource)
        resource.isClosing = true
        closing.append(resource)
        return resource
    }

    /// Removes a resource from the runtime without closing it and hands it
    /// back, e.g. to register it with another runtime on another thread.
    public func deregister(_ id: ResourceID) -> Resource? {
        guard let resource = resource(id) else { return nil }
        remove(resource)
        return resource
    }

    /// Changes a resource's interest (the same as `resource.setInterest`).
    public func setInterest(_ interest: Interest, for id: ResourceID) {
        resource(id)?.setInterest(interest)
    }

    /// How many resources are registered.
    public var resourceCount: Int { liveCount }

    /// Every registered resource, in slot order (Danga::Socket's DescriptorMap).
    public var resources: [Resource] { slots.compactMap(\.resource) }

    /// A snapshot of one registered resource, for introspection.
    public struct ResourceInfo: Sendable, CustomStringConvertible {
        public var id: ResourceID
        public var fd: Int32
        public var kind: String
        public var interest: Interest
        public var bytesIn: UInt64
        public var bytesOut: UInt64
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

    // MARK: Timers

    /// Arms a timer that fires after `delay`, and then every `interval` if one
    /// is given (at least one microsecond). The Service hears
    /// ``Service/timerFired(_:context:)`` with the returned id.
    @discardableResult
    public func schedule(after delay: Duration, repeating interval: Duration? = nil) -> TimerID {
        let clamped = interval.map { max($0, .microseconds(1)) }
        return timers.schedule(at: MonotonicInstant.now().advanced(by: delay), repeating: clamped)
    }

    /// Arms a timer that belongs to `resource`: when it fires, the runtime
    /// calls ``Resource/timerFired(_:in:emit:)`` instead of the Service. It
    /// dies with the resource (a timer of a destroyed resource never fires).
    /// Returns nil when the resource is not registered.
    @discardableResult
    public func schedule(after delay: Duration, repeating interval: Duration? = nil, for resource: Resource) -> TimerID? {
        guard let id = resource.id, resource.owner === self else { return nil }
        let clamped = interval.map { max($0, .microseconds(1)) }
        return timers.schedule(at: MonotonicInstant.now().advanced(by: delay), repeating: clamped, owner: id)
    }

    /// Cancels a timer. Returns false if it already fired (one-shot) or was cancelled.
    @discardableResult
    public func cancel(_ timer: TimerID) -> Bool {
        timers.cancel(timer)
    }

    /// Asks the runtime to hand `resource` a `.readable` readiness at the
    /// end of this batch although the kernel reported none: for bytes a
    /// stream pushed back (``StreamResource/pushBack(_:)``), which must be
    /// delivered again without waiting for the peer to send more.
    public func redeliver(_ resource: Resource) {
        guard let id = resource.id, resource.owner === self else { return }
        redeliveries.append(id)
    }

    /// How many timers are armed.
    public var timerCount: Int { timers.count }

    // MARK: Lifecycle

    /// Asks the runtime to stop gracefully: it finishes the current turn,
    /// delivers queued commands, waits (up to the shutdown grace period) for
    /// queued output to drain, then closes everything.
    public func stop() {
        stopRequested = true
    }

    // MARK: Internal

    /// Takes a resource out of the table and the poller.
    @usableFromInline
    func remove(_ resource: Resource) {
        guard let id = resource.id, resource.owner != nil else { return }
        do {
            try registrar.deregister(resource.fd)
        } catch {
            logger.debug("deregister failed", metadata: ["resource": "\(id)", "error": "\(error)"])
        }
        slots[id.slot].resource = nil
        freeSlots.append(id.slot)
        resource.owner = nil
        resource.id = nil
        liveCount -= 1
    }

    /// Ends a resource because of its own I/O: remove it, schedule the close,
    /// and queue the hand-back notice for the Service.
    @usableFromInline
    func end(_ resource: Resource, reason: DisconnectReason) {
        guard let id = resource.id else { return }
        remove(resource)
        resource.isClosing = true
        closing.append(resource)
        notices.append(.disconnected(id, resource, reason))
    }

    func interestChanged(_ resource: Resource) {
        do {
            try registrar.reregister(resource.fd, token: Token(resource.id!.rawValue), interest: resource.interest)
        } catch {
            end(resource, reason: .failed(error))
        }
    }

    /// Closes the descriptors of resources destroyed in the batch just finished.
    @usableFromInline
    func closeDeferred() {
        guard !closing.isEmpty else { return }  // most turns destroy nothing
        for resource in closing {
            resource.closeDescriptor()
            // Its handler has heard everything it will hear (disconnect notices
            // go out before this); dropping it breaks a handler ↔ resource cycle.
            resource.handler = nil
        }
        closing.removeAll(keepingCapacity: true)
    }
}
