import Reactor

/// The Service: echo what arrives (the listener registers what it accepts).
public final class EchoService: Service {
    public init() {}

    public func handle(_ event: ResourceEvent, from id: ResourceID, context: Context) {
        switch event {
        case .received(let bytes):
            context.resource(id, as: TCPStream.self)?.write(bytes.buffer)
        case .readClosed:
            // The client finished sending: close once everything is echoed back.
            context.resource(id, as: TCPStream.self)?.closeWhenFlushed()
        case .acceptPaused(let error):
            context.logger.warning("\(error)")
        case .acceptResumed:
            context.logger.notice("accepting connections again")
        default:
            break
        }
    }

    public func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context) {
        if case .failed(let error) = reason { context.logger.info("connection \(id) failed: \(error)") }
    }
}

