import Reactor

/// One proxied client: the handler of both its legs, the client's
/// connection and the upstream one, which it knows by id (tokens, not
/// references: the runtime owns the streams, and a leg that is gone is
/// simply not found).
///
/// - Bytes one leg receives are written to the other. When the other's
///   queue passes its high watermark, reading from this leg pauses until
///   that queue drains to its low watermark: a slow reader on one side
///   cannot make the proxy buffer without bound.
/// - A half-close passes through: when one leg's peer finishes sending, the
///   other leg's write side is shut down once what was queued for it is
///   written. When both have finished, both close once flushed.
/// - A failure (refused or timed-out upstream connect, reset) on one leg
///   aborts the other with a reset, so the far peer sees an error rather
///   than a clean end; the reason, and any bytes the abort discards, are logged.
public final class ProxyConnection: ResourceHandler {
    public let client: ResourceID
    public let upstream: ResourceID
    private var clientFinished = false
    private var upstreamFinished = false

    public init(client: ResourceID, upstream: ResourceID) {
        self.client = client
        self.upstream = upstream
    }

    public func handle(_ event: ResourceEvent, from id: ResourceID, context: Context) {
        switch event {
        case .received(let bytes):
            guard let source = context.resource(id, as: SocketStream.self),
                  let sink = context.resource(other(id), as: SocketStream.self) else { return }
            if !sink.write(bytes.buffer) && sink.isAboveHighWatermark { source.setReading(false) }
        case .writableAgain:
            // This leg drained: the leg that feeds it may read again.
            let feeder = other(id)
            if !finished(feeder) { context.resource(feeder, as: SocketStream.self)?.setReading(true) }
        case .readClosed:
            peerFinished(id, context: context)
        default:
            break
        }
    }

    public func resourceDisconnected(_ id: ResourceID, resource: Resource, reason: DisconnectReason, context: Context) {
        let leg = id == client ? "client" : "upstream"
        guard let survivor = context.resource(other(id), as: SocketStream.self) else { return }
        switch reason {
        case .closed:
            // Both directions ended at once (a hang-up): forward what is queued, then close.
            survivor.closeWhenFlushed()
        case .failed(let error):
            let discarded = survivor.queuedByteCount
            context.logger.notice("""
                proxy \(client)→\(upstream): \(leg) failed: \(error); resetting the other side\
                \(discarded > 0 ? " (\(discarded) queued bytes discarded)" : "")
                """)
            survivor.abort()
        }
    }

    private func peerFinished(_ id: ResourceID, context: Context) {
        if id == client { clientFinished = true } else { upstreamFinished = true }
        let sink = context.resource(other(id), as: SocketStream.self)
        sink?.shutdownWrite()
        if clientFinished && upstreamFinished {
            sink?.closeWhenFlushed()
            context.resource(id, as: SocketStream.self)?.closeWhenFlushed()
        }
    }

    private func other(_ id: ResourceID) -> ResourceID { id == client ? upstream : client }
    private func finished(_ id: ResourceID) -> Bool { id == client ? clientFinished : upstreamFinished }
}
