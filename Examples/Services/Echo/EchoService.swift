import Reactor

/// Echoes what a stream receives, as a ``ResourceHandler`` so that any
/// runtime can host an echo listener beside its other protocols (set it as a
/// listener's `handler`; the connections it accepts inherit it).
///
/// Back-pressure: a client that sends faster than it reads cannot make the
/// server buffer without bound. Once a connection's queue passes its high
/// watermark, reading from it pauses; it resumes when the queue drains to
/// the low watermark (``ResourceEvent/writableAgain``).
public final class EchoHandler: ResourceHandler {
    public init() {}

    public func handle(_ event: ResourceEvent, from id: ResourceID, context: Context) {
        switch event {
        case .received(let bytes):
            guard let stream = context.resource(id, as: SocketStream.self) else { return }
            if !stream.write(bytes.buffer) && stream.isAboveHighWatermark { stream.setReading(false) }
        case .writableAgain:
            context.resource(id, as: SocketStream.self)?.setReading(true)
        case .readClosed:
            // The client finished sending: close once everything is echoed back.
            context.resource(id, as: SocketStream.self)?.closeWhenFlushed()
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

/// The echo server's Service: every byte a client sends comes back (the
/// listener registers what it accepts; ``EchoHandler`` does the work).
public final class EchoService: Service {
    private let echo = EchoHandler()

    public init() {}

    public func handle(_ event: ResourceEvent, from id: ResourceID, context: Context) {
        echo.handle(event, from: id, context: context)
    }

    public func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context) {
        echo.resourceDisconnected(id, resource: resource, reason: reason, context: context)
    }
}
