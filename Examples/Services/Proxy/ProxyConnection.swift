import Reactor

/// One proxied client: the handler of both its legs, the client's
/// connection and the upstream one. Each leg holds this handler and this
/// handler holds both legs; the runtime breaks that cycle as each leg
/// closes. Both legs allow half-closure, so that a half-close can pass through.
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
    /// The client's connection.
    public let client: SocketStream
    /// The connection to the upstream server.
    public let upstream: SocketStream
    private var clientFinished = false
    private var upstreamFinished = false

    /// Pairs the two legs and becomes the handler of both.
    public init(client: SocketStream, upstream: SocketStream) {
        self.client = client
        self.upstream = upstream
        client.allowsRemoteHalfClosure = true
        upstream.allowsRemoteHalfClosure = true
        client.handler = self
        upstream.handler = self
    }

    /// Forwards bytes, back-pressure and half-closes from one leg to the other.
    public func handle(_ event: ResourceEvent, on leg: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            let sink = other(leg)
            guard sink.isRegistered else { return }
            if !sink.write(bytes) && sink.isAboveHighWatermark { leg.setReading(false) }
        case .writableAgain:
            // This leg drained: the leg that feeds it may read again.
            let feeder = other(leg)
            if !finished(feeder) { feeder.setReading(true) }
        case .readClosed:
            peerFinished(leg)
        default:
            break
        }
    }

    /// One leg ended on its own: the other is closed (after flushing) or reset.
    public func resourceDisconnected(_ leg: SocketStream, reason: DisconnectReason, context: Context) {
        let name = leg === client ? "client" : "upstream"
        let survivor = other(leg)
        guard survivor.isRegistered else { return }
        switch reason {
        case .closed:
            // Both directions ended at once (a hang-up): forward what is queued, then close.
            survivor.closeWhenFlushed()
        case .failed(let error):
            let discarded = survivor.queuedByteCount
            context.logger.notice("""
                proxy \(idText(client))→\(idText(upstream)): \(name) failed: \(error); resetting the other side\
                \(discarded > 0 ? " (\(discarded) queued bytes discarded)" : "")
                """)
            survivor.abort()
        }
    }

    private func peerFinished(_ leg: SocketStream) {
        if leg === client { clientFinished = true } else { upstreamFinished = true }
        let sink = other(leg)
        sink.shutdownWrite()
        if clientFinished && upstreamFinished {
            sink.closeWhenFlushed()
            leg.closeWhenFlushed()
        }
    }

    private func other(_ leg: SocketStream) -> SocketStream { leg === client ? upstream : client }
    private func finished(_ leg: SocketStream) -> Bool { leg === client ? clientFinished : upstreamFinished }
    private func idText(_ leg: SocketStream) -> String { leg.id.map { "\($0)" } ?? "?" }
}
