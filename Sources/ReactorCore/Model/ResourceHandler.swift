/// A handler for particular resources, in place of the runtime's ``Service``.
///
/// Set ``Resource/handler`` and that resource's events and its disconnect go
/// here. A ``SocketListener``'s connections inherit its
/// ``SocketListener/connectionHandler`` (DReactor's Dispatcher inheritance),
/// so one runtime can run an HTTP server, a key-value server and a proxy's
/// upstream clients side by side, each connection with the handler of its
/// protocol. Callbacks run on the runtime's thread, like the Service's.
public protocol ResourceHandler: AnyObject {
    /// An I/O event of a resource this handler owns.
    func handle(_ event: ResourceEvent, from id: ResourceID, context: Context)

    /// The resource ended on its own (the peer closed it or an I/O error);
    /// see ``Service/resourceDisconnected(_:resource:reason:context:)``.
    func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context)
}

extension ResourceHandler {
    public func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context) {}
}
