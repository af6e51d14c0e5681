import Reactor

/// Echoes what a connection receives. Stateless, so one handler serves every
/// connection of a listener, in any runtime, beside other protocols:
///
/// ```swift
/// let echo = EchoHandler()
/// listener.connectionHandler = { _ in echo }
/// ```
///
/// Back-pressure: a client that sends faster than it reads cannot make the
/// server buffer without bound. Once a connection's queue passes its high
/// watermark, reading from it pauses; it resumes when the queue drains to
/// the low watermark (``ResourceEvent/writableAgain``). At the client's end
/// of file the stream closes by itself once everything is echoed back.
public final class EchoHandler: ResourceHandler {
    /// Creates the handler.
    public init() {}

    /// Writes back what arrives; pauses and resumes reading for back-pressure.
    public func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            if !stream.write(bytes) && stream.isAboveHighWatermark { stream.setReading(false) }
        case .writableAgain:
            stream.setReading(true)
        default:
            break
        }
    }

    /// Logs a connection that failed (a reset, say); a clean end is not worth a line.
    public func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        if case .failed(let error) = reason { context.logger.info("connection \(stream.id.map { "\($0)" } ?? "") failed: \(error)") }
    }
}
