/// The application's handler: the business logic a ``Runtime`` reports to.
///
/// Every callback runs on the runtime's thread and receives the runtime's
/// ``Context``, through which the Service creates and destroys resources,
/// changes interest and arms timers. Only ``handle(_:from:context:)`` must
/// be written; the other callbacks default to doing nothing.
///
/// Callbacks never nest: notices caused by a callback (a registration, a
/// resource ending) are delivered after it returns.
public protocol Service: AnyObject, SendableMetatype {
    /// What other threads send through the ``Controller``. `Never` if nothing.
    associatedtype Command: Sendable = Never

    /// The runtime is about to enter its loop.
    func runtimeStarted(context: Context)

    /// A resource was registered (by this Service or before `run()`).
    func resourceRegistered(_ id: ResourceID, context: Context)

    /// A resource's I/O produced an event.
    func handle(_ event: ResourceEvent, from id: ResourceID, context: Context)

    /// A resource ended on its own — the peer closed it or an I/O error
    /// occurred. The runtime has removed it and hands it back; its descriptor
    /// is closed after this batch. Not called for resources the Service destroys.
    func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context)

    /// A timer armed with ``Context/schedule(after:repeating:)`` fired.
    func timerFired(_ timer: TimerID, context: Context)

    /// A command arrived from another thread through the ``Controller``.
    func handle(command: Command, context: Context)

    /// The end of every loop turn (Danga::Socket's post-loop callback).
    func loopTurnEnded(context: Context)

    /// The loop has ended; resources are still registered and are closed right after.
    func runtimeStopped(context: Context)
}

extension Service {
    public func runtimeStarted(context: Context) {}
    public func resourceRegistered(_ id: ResourceID, context: Context) {}
    public func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context) {}
    public func timerFired(_ timer: TimerID, context: Context) {}
    public func handle(command: Command, context: Context) {}
    public func loopTurnEnded(context: Context) {}
    public func runtimeStopped(context: Context) {}
}
