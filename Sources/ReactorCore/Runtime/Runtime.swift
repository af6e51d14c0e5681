import CReactorSys
import ReactorTLS
import DequeModule
import Logging

/// An event loop (the seeds' Vat): one thread, one poller, the resources
/// registered with it, its timers, and the Service they report to.
///
/// `P` is the polling backend and `S` the Service; both are generic
/// parameters so that the loop is specialised for them and dispatches each
/// event without an existential call to the poller or the Service.
///
/// ```swift
/// let runtime = try Runtime<EpollPoller, LoggingService>(service: LoggingService())
/// let listener = try SocketListener(bindingTo: .loopback(port: 7000))
/// listener.connectionHandler = { _ in EchoHandler() }
/// try runtime.context.register(listener)
/// try runtime.run()                      // on this thread, until shutdown
/// ```
///
/// A runtime and everything registered with it belong to the thread that
/// runs it; other threads use its ``controller``. ``spawn(name:options:makePoller:makeService:)``
/// creates one on a thread of its own.
public final class Runtime<P: Poller, S: Service> {
    // The loop is `@inlinable` (its state `@usableFromInline`) so that a
    // client module's `Runtime<EpollPoller, MyService>` is specialised there:
    // `poller.wait` and `service.handle` become direct calls instead of
    // witness-table calls through unspecialised generic code.

    /// The Service's handle on this runtime, usable before `run()` as well.
    public let context: Context
    /// The Service this runtime reports to.
    public let service: S
    /// The handle other threads use.
    public let controller: Controller<S.Command>

    @usableFromInline let poller: P
    @usableFromInline let options: RuntimeOptions
    // `@exclusivity(unchecked)` on the per-event state: why, and why it is sound, in Context.swift.
    @exclusivity(unchecked) @usableFromInline var events: [PollEvent] = []
    @exclusivity(unchecked) @usableFromInline var commandBatch = Deque<Controller<S.Command>.Message>()
    @usableFromInline var hasRun = false
    /// ``RuntimeOptions/releaseMemoryAfterQuiet`` in nanoseconds; 0: never.
    @usableFromInline let quietSpell: UInt64
    /// When the current spell ends (the runtime's clock, in nanoseconds); 0 while none is being watched.
    @exclusivity(unchecked) @usableFromInline var quietCheckDue: UInt64 = 0
    /// ``Context/Statistics/eventsDispatched`` when the current spell began.
    @exclusivity(unchecked) @usableFromInline var eventsAtQuietCheck: UInt64 = 0

    /// Creates a runtime around an existing poller.
    public init(poller: P, service: S, options: RuntimeOptions = RuntimeOptions()) {
        Syscall.ignoreSIGPIPE()
        self.poller = poller
        self.service = service
        self.options = options
        self.context = Context(registrar: poller, readBufferSize: options.readBufferSize,
                               loopTimeout: options.loopTimeout, logger: options.logger)
        context.resolverConfiguration = options.resolver
        if P.performsStreamIO { context.transport = poller.streamTransport }
        self.controller = Controller(waker: poller.waker)
        quietSpell = options.releaseMemoryAfterQuiet.map { max(1, $0.nanoseconds) } ?? 0
        events.reserveCapacity(1024)
    }

    /// Creates a runtime with a new poller of type `P`.
    public convenience init(service: S, options: RuntimeOptions = RuntimeOptions()) throws(ReactorError) {
        self.init(poller: try P(), service: service, options: options)
    }

    deinit {
        if !hasRun {
            // Never run: close what was registered and release joiners.
            shutdownResources()
            controller.markStopped()
        }
    }

    /// Runs the loop on the calling thread until a shutdown is requested
    /// (through the controller or ``Context/stop()``) and has completed.
    /// Throws if the poller fails; resources are closed either way.
    @inlinable
    public func run() throws(ReactorError) {
        guard !hasRun else { throw ReactorError("run", detail: "this runtime has already run; create a new one") }
        hasRun = true
        controller.markLoopThread()
        context.loopThread.bind()
        defer {
            shutdownResources()
            context.stopFaultInjection()
            controller.markStopped()
        }
        try context.startFaultInjection(options.faults)
        context.currentTime = .now()
        service.runtimeStarted(context: context)
        deliverNotices()
        var drainDeadline: MonotonicInstant?

        while true {
            context.counters.loopTurns &+= 1
            applyInterestChanges()
            // A constant once specialised: readiness backends compile none of the completion path.
            if P.performsStreamIO { context.submitTransportWork() }
            try poller.wait(timeout: nextTimeout(draining: drainDeadline != nil), into: &events)
            context.currentTime = .now()
            for event in events { dispatch(event) }
            if P.performsStreamIO { dispatchCompletions() }
            redeliver()
            context.closeDeferred()
            fireDueTimers()
            watchForQuiet()
            deliverCommands()
            service.loopTurnEnded(context: context)
            deliverNotices()
            context.closeDeferred()

            if drainDeadline == nil, context.stopRequested || controller.shutdownRequested {
                controller.beginStopping()
                deliverCommands()  // sent before the shutdown: still delivered
                drainDeadline = context.now.advanced(by: options.shutdownGracePeriod)
            }
            if let deadline = drainDeadline {
                if !hasPendingOutput() { break }
                if context.now >= deadline {
                    context.logger.warning("shutdown grace period over; closing resources with unsent output")
                    break
                }
            }
        }
        service.runtimeStopped(context: context)
        deliverNotices()
    }

    // MARK: One loop turn

    @inlinable @inline(__always)
    func dispatch(_ event: PollEvent) {
        let id = ResourceID(rawValue: event.token.rawValue)
        // Token → slot by index; a slot holding another id (or none) means the
        // event is for a resource destroyed earlier in this batch: drop it.
        let slot = id.slot
        guard slot < context.slots.count, let resource = context.slots[slot].resource, resource.id == id else {
            context.counters.staleEventsDropped &+= 1
            return
        }
        context.counters.eventsDispatched &+= 1
        let status = resource.handle(event.readiness, in: context) { resourceEvent in
            deliver(resourceEvent, from: resource, id: id)
        }
        settle(resource, status)
    }

    /// Hands each stream completion of the last wait to its resource (the
    /// transport filtered those of descriptors since deregistered; the slot
    /// check catches a resource closed earlier in this batch).
    @inlinable
    func dispatchCompletions() {
        guard let transport = context.transport else { return }
        transport.takeCompletions(into: &context.completionBatch)
        guard !context.completionBatch.isEmpty else { return }
        let batch = context.completionBatch
        // Sends first: a handler that writes on receiving (a broadcast, a
        // proxy) must find the queue its earlier sends left, not one still
        // counting bytes the kernel took in this very wait, or the high
        // watermark would trip where it does not over readiness.
        for completion in batch where completion.kind == .sent { dispatch(completion, transport) }
        for completion in batch where completion.kind != .sent { dispatch(completion, transport) }
    }

    /// One completion to its resource.
    @inlinable @inline(__always)
    func dispatch(_ completion: StreamCompletion, _ transport: any StreamTransport) {
        let id = ResourceID(rawValue: completion.token.rawValue)
        let slot = id.slot
        guard slot < context.slots.count, let resource = context.slots[slot].resource, resource.id == id else {
            if completion.hasBuffer { transport.release(completion) }
            context.counters.staleEventsDropped &+= 1
            return
        }
        context.counters.eventsDispatched &+= 1
        context.counters.streamCompletions &+= 1
        let status = resource.transportCompleted(completion, via: transport, in: context) { resourceEvent in
            deliver(resourceEvent, from: resource, id: id)
        }
        settle(resource, status)
    }

    /// Hands one resource event to the resource's handler, or the Service.
    @inlinable @inline(__always)
    func deliver(_ event: ResourceEvent, from resource: Resource, id: ResourceID) {
        // The handler may close the resource in an earlier emit of this same call.
        guard resource.isOwned(by: context), resource.id == id else { return }
        if let route = resource.route {
            route.deliver(event, on: resource, context: context)
        } else {
            service.handle(event, on: resource, context: context)
        }
        deliverNotices()
    }

    /// Hands the poller the interest changes of this turn, once per resource
    /// however often it toggled, skipping those that ended where they began.
    /// Here in the generic loop, `poller.reregister` is a direct call.
    @inlinable
    func applyInterestChanges() {
        guard !context.interestChanges.isEmpty else { return }
        var index = 0
        // Indexing, not iterating: a failure below ends a resource, which may queue notices but no new changes.
        while index < context.interestChanges.count {
            let id = context.interestChanges[index]
            index += 1
            // A resource closed since its change left its slot: nothing to apply.
            guard let resource = context.slots[id.slot].resource, resource.id == id else { continue }
            resource.interestChangePending = false
            let wanted = resource.onTransport ? .none : resource.interest
            guard resource.registeredInterest != wanted else { continue }
            do {
                try poller.reregister(resource.fd, token: Token(id.rawValue), interest: wanted)
                resource.registeredInterest = wanted
                context.counters.interestUpdates &+= 1
            } catch {
                context.end(resource, reason: .failed(error))
            }
        }
        // Cleared before the notices: a disconnect handler's own changes queue for the next turn.
        context.interestChanges.removeAll(keepingCapacity: true)
        deliverNotices()
        context.closeDeferred()
    }

    /// Ends a resource whose I/O or timer reported that it is finished.
    @inlinable @inline(__always)
    func settle(_ resource: Resource, _ status: ResourceStatus) {
        switch status {
        case .active: break
        case .closed: context.end(resource, reason: .closed)
        case .failed(let error): context.end(resource, reason: .failed(error))
        }
        deliverNotices()
    }

    /// Synthetic `.readable` for resources that asked for redelivery
    /// (pushed-back bytes) during the batch.
    @inlinable
    func redeliver() {
        guard !context.redeliveries.isEmpty else { return }
        let pending = context.redeliveries
        context.redeliveries.removeAll(keepingCapacity: true)
        for id in pending { dispatch(PollEvent(token: Token(id.rawValue), readiness: .readable)) }
    }

    @inlinable
    func nextTimeout(draining: Bool) -> Duration? {
        if !context.notices.isEmpty || !context.redeliveries.isEmpty || !context.interestChanges.isEmpty { return .zero }
        // A stop asked for before this wait (in runtimeStarted, say) is acted
        // on at the end of this turn: do not block waiting for an event first.
        if context.stopRequested && !draining { return .zero }
        var timeout = context.loopTimeout
        if draining { timeout = min(timeout ?? .milliseconds(10), .milliseconds(10)) }
        if let deadline = context.timers.nextDeadline() {
            let untilTimer = MonotonicInstant.now().duration(until: deadline)
            timeout = min(timeout ?? untilTimer, untilTimer)
        }
        if quietCheckDue != 0 {
            // A quiet loop must still wake to end its spell.
            let untilCheck = MonotonicInstant.now().duration(until: MonotonicInstant(nanoseconds: quietCheckDue))
            timeout = min(timeout ?? untilCheck, untilCheck)
        }
        return timeout
    }

    /// Once per turn: starts watching for a quiet spell after more than
    /// ``RuntimeOptions/quietEventLimit`` events, and ends the one watched
    /// when it is due. A load and a compare on most turns.
    @inlinable @inline(__always)
    func watchForQuiet() {
        if quietCheckDue != 0 {
            if context.currentTime.nanoseconds >= quietCheckDue { endQuietSpell() }
        } else if context.counters.eventsDispatched &- eventsAtQuietCheck > RuntimeOptions.quietEventLimit && quietSpell != 0 {
            eventsAtQuietCheck = context.counters.eventsDispatched
            quietCheckDue = context.currentTime.nanoseconds &+ quietSpell
        }
    }

    /// A spell ended: quiet, the runtime releases idle memory and stops
    /// watching until the next busy spell; busy, the next spell starts.
    @usableFromInline
    func endQuietSpell() {
        let events = context.counters.eventsDispatched &- eventsAtQuietCheck
        eventsAtQuietCheck = context.counters.eventsDispatched
        guard events <= RuntimeOptions.quietEventLimit else {
            quietCheckDue = context.currentTime.nanoseconds &+ quietSpell
            return
        }
        quietCheckDue = 0
        context.counters.memoryReleases &+= 1
        poller.releaseIdleMemory()
        // glibc gives a thread arena's freed memory back only from the top
        // of its heap, so one live allocation above a burst's buffers held
        // them all (a kv runtime stayed 3–7 MB up, measured); malloc_trim
        // returns every free page of every arena. Once per quiet spell:
        // it walks the heaps.
        malloc_trim(0)
    }

    @inlinable
    func fireDueTimers() {
        while let (timer, owner) = context.timers.popDue(now: context.now) {
            context.counters.timersFired &+= 1
            guard let owner else {
                service.timerFired(timer, context: context)
                deliverNotices()
                continue
            }
            // A resource's timer: dropped (and a repeating one cancelled) once
            // the resource is gone, so it never reaches a stranger.
            guard let resource = context.resource(owner) else {
                _ = context.timers.cancel(timer)
                continue
            }
            let status = resource.timerFired(timer, in: context) { event in
                deliver(event, from: resource, id: owner)
            }
            settle(resource, status)
        }
    }

    @inlinable
    func deliverCommands() {
        // Most turns bring no command: skip the batch entirely then.
        guard controller.drain(into: &commandBatch) else { return }
        while let message = commandBatch.popFirst() {
            context.counters.commandsDelivered &+= 1
            switch message {
            case .command(let command): service.handle(command: command, context: context)
            case .task(let task): task(context)
            }
            deliverNotices()
        }
    }

    @inlinable @inline(__always)
    func deliverNotices() {
        while let notice = context.notices.popFirst() {
            switch notice {
            case .registered(let resource):
                service.resourceRegistered(resource, context: context)
            case .disconnected(let resource, let reason):
                if let route = resource.route {
                    route.disconnected(resource, reason: reason, context: context)
                } else {
                    service.resourceDisconnected(resource, reason: reason, context: context)
                }
            case .deferred(let callback):
                callback()
            }
        }
    }

    @usableFromInline
    func hasPendingOutput() -> Bool {
        context.slots.contains { $0.resource?.hasPendingOutput == true }
    }

    /// Deregisters and closes every resource still registered.
    @usableFromInline
    func shutdownResources() {
        for hook in context.stopHooks { hook() }  // the resolver's lookups end ("cancelled"), its sockets close
        context.stopHooks.removeAll()
        for slot in context.slots {
            if let resource = slot.resource {
                context.remove(resource)
                resource.closeDescriptor()
                resource.route = nil  // breaks a handler ↔ resource cycle
            }
        }
        context.closeDeferred()
        context.notices.removeAll()
        // Its thread says "stopped" before it exits: OpenSSL's state for
        // this thread is freed now, not by a destructor the process may not wait for.
        if context.hasUsedTLS { TLSLibrary.releaseThreadState() }
    }
}
