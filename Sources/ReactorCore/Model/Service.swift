/// The application's handler: the business logic a ``Runtime`` reports to.
///
/// A Service is the runtime's ``ResourceHandler`` of last resort: it hears
/// the events of every resource that has no ``Resource/handler`` of its own
/// (typed as plain ``Resource``), and besides those, the runtime's own
/// lifecycle: start, registrations, runtime timers, commands from other
/// threads, the end of each loop turn, the stop. Every callback runs on the
/// runtime's thread and receives the runtime's ``Context``, through which the
/// Service registers resources and arms timers. Only
/// ``ResourceHandler/handle(_:on:context:)`` must be written; the other
/// callbacks default to doing nothing. A runtime whose resources all have
/// handlers can run ``LoggingService``.
///
/// Callbacks never nest: notices caused by a callback (a registration, a
/// resource ending, a ``StreamResource/whenFlushed(_:)`` with nothing
/// queued) are delivered after it returns.
public protocol Service: ResourceHandler, SendableMetatype where Subject == Resource {
    /// What other threads send through the ``Controller``. `Never` if nothing.
    associatedtype Command: Sendable = Never

    /// The runtime is about to enter its loop.
    func runtimeStarted(context: Context)

    /// A resource was registered (by this Service, a handler, a listener, or before `run()`).
    func resourceRegistered(_ resource: Resource, context: Context)

    /// A timer armed with ``Context/schedule(after:repeating:)`` fired.
    /// (A resource's own timers go to its handler as ``ResourceEvent/timerFired(_:)``.)
    func timerFired(_ timer: TimerID, context: Context)

    /// A command arrived from another thread through the ``Controller``.
    func handle(command: Command, context: Context)

    /// The end of every loop turn (Danga::Socket's post-loop callback).
    func loopTurnEnded(context: Context)

    /// The loop has ended; resources are still registered and are closed right after.
    func runtimeStopped(context: Context)
}

extension Service {
    /// Does nothing.
    public func runtimeStarted(context: Context) {}
    /// Does nothing.
    public func resourceRegistered(_ resource: Resource, context: Context) {}
    /// Does nothing.
    public func timerFired(_ timer: TimerID, context: Context) {}
    /// Does nothing.
    public func handle(command: Command, context: Context) {}
    /// Does nothing.
    public func loopTurnEnded(context: Context) {}
    /// Does nothing.
    public func runtimeStopped(context: Context) {}
}

/// The Service of a runtime whose resources all have handlers of their own:
/// it logs what reaches it — a connection that failed (at `info`), a
/// listener that paused or resumed accepting (at `warning` / `notice`) — and
/// otherwise does nothing.
///
/// ```swift
/// let runtime = try Runtime<EpollPoller, LoggingService>(service: LoggingService())
/// ```
public final class LoggingService: Service {
    /// Creates the service.
    public init() {}

    /// Logs listener pauses and resumptions; ignores everything else.
    public func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        switch event {
        case .acceptPaused(let error): context.logger.warning("\(error)")
        case .acceptResumed: context.logger.notice("\(resource.kind) \(resource.id.map { "\($0)" } ?? ""): accepting connections again")
        default: break
        }
    }

    /// Logs a failure; a clean close is not worth a line.
    public func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        if case .failed(let error) = reason {
            context.logger.info("\(resource.kind) \(resource.id.map { "\($0)" } ?? "") failed: \(error)")
        }
    }
}
