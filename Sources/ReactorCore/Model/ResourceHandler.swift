/// What hears a resource's events: the resource itself is handed over,
/// typed as the handler's ``Subject``, so a handler never looks up or casts
/// what it was just given.
///
/// ```swift
/// final class Echo: ResourceHandler {
///     func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
///         if case .received(let bytes) = event { stream.write(bytes) }
///     }
/// }
/// ```
///
/// Set ``Resource/handler`` (or a listener's
/// ``SocketListener/connectionHandler``) and that resource's events and its
/// disconnect go here instead of to the runtime's ``Service``, which is
/// itself the handler of last resort (a `ResourceHandler` of any
/// ``Resource``). So one runtime serves many protocols, each connection
/// talking to the handler of its own. Callbacks run on the runtime's thread.
public protocol ResourceHandler: AnyObject {
    /// The kind of resource this handler is given; ``Resource`` when it
    /// takes any. A handler can be set only on resources of this type.
    associatedtype Subject: Resource = Resource

    /// An I/O event (or a resource timer) of `resource`.
    func handle(_ event: ResourceEvent, on resource: Subject, context: Context)

    /// `resource` ended on its own: the peer closed it, an I/O error
    /// occurred, or a stream closed itself at end of file. The runtime has
    /// removed it (its ``Resource/id`` still says which it was) and closes its
    /// descriptor after this batch. Not called for resources closed by
    /// ``Resource/close()`` or destroyed by a runtime's shutdown.
    func resourceDisconnected(_ resource: Subject, reason: DisconnectReason, context: Context)
}

extension ResourceHandler {
    /// Does nothing: most handlers learn all they need from the events.
    public func resourceDisconnected(_ resource: Subject, reason: DisconnectReason, context: Context) {}
}

/// A handler with its type erased, as a resource stores it: one virtual
/// call per event, which then calls the handler with the resource already
/// cast to the handler's ``ResourceHandler/Subject``.
@usableFromInline
class HandlerRoute {
    /// The handler, for ``Resource/handler``'s getter.
    var handler: any ResourceHandler { fatalError("abstract") }

    @usableFromInline
    func deliver(_ event: ResourceEvent, on resource: Resource, context: Context) { fatalError("abstract") }

    @usableFromInline
    func disconnected(_ resource: Resource, reason: DisconnectReason, context: Context) { fatalError("abstract") }

    /// True when this handler can be handed `resource` (a listener passes its
    /// own handler on to the connections it accepts only then).
    func accepts(_ resource: Resource) -> Bool { fatalError("abstract") }

    /// Makes the route of `handler`, or nil when `resource` is not its ``ResourceHandler/Subject``.
    static func make(_ handler: any ResourceHandler, for resource: Resource) -> HandlerRoute? {
        func typed<H: ResourceHandler>(_ handler: H) -> HandlerRoute? {
            resource is H.Subject ? TypedHandlerRoute(handler) : nil
        }
        return typed(handler)
    }
}

@usableFromInline
final class TypedHandlerRoute<H: ResourceHandler>: HandlerRoute {
    let typedHandler: H

    init(_ handler: H) { typedHandler = handler }

    override var handler: any ResourceHandler { typedHandler }

    @usableFromInline
    override func deliver(_ event: ResourceEvent, on resource: Resource, context: Context) {
        // Sound: the route is made only after checking `resource is H.Subject`
        // (`HandlerRoute.make`), and a resource's dynamic type never changes.
        typedHandler.handle(event, on: unsafeDowncast(resource, to: H.Subject.self), context: context)
    }

    @usableFromInline
    override func disconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        typedHandler.resourceDisconnected(unsafeDowncast(resource, to: H.Subject.self), reason: reason, context: context)
    }

    override func accepts(_ resource: Resource) -> Bool { resource is H.Subject }
}
