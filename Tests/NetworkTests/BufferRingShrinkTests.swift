// io_uring's provided-buffer ring shrinking under load: a service asks for a
// shrink every 2 ms (what a quiet spell does once) while 1,000 connections
// echo 64 KiB each through a handler that stops and restarts reading on
// every chunk, so the ring keeps running out and growing again, and streams
// hold buffers across shrinks. Every byte must come back, in order.
import Reactor
import ReactorTestSupport
import Testing

/// Asks the ring to shrink every 2 ms.
final class RingShrinker: Service {
    func runtimeStarted(context: Context) { context.schedule(after: .milliseconds(2)) }
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
    func timerFired(_ timer: TimerID, context: Context) {
        (context.streamTransport as? UringPoller)?.releaseIdleMemory()
        context.schedule(after: .milliseconds(2))
    }
}

@Suite("io_uring's buffer ring shrinking under load", .enabled(if: Backend.built.contains(.uring), "io_uring is not built"))
struct BufferRingShrinkTests {
    @Test("shrinks every 2 ms while 1,000 pausing streams echo 64 KiB each: every byte back, buffers' pages returned")
    func shrinkUnderLoad() throws {
        try ensureDescriptorLimit(2500)
        let server = try ServerThread(.uring, name: "shrink", makeService: { RingShrinker() }) { _, context throws(ReactorError) in
            try listen(context, handler: ChunkPausingEcho()).localAddress.port
        }
        defer { try? server.stop() }
        let report = try runIntegrityClient(.uring, target: .loopback(port: server.port), connections: 1000, bytesPerConnection: 64 << 10)
        #expect(report.failures.isEmpty, "\(report)")
        #expect(report.completed == 1000)
        #expect(report.bytesCompared == 1000 * (64 << 10))
        let (provided, discarded, free) = try server.inspect { context in
            let ring = context.streamTransport as? UringPoller
            return (ring?.providedBufferCount ?? 0, ring?.buffersDiscarded ?? 0, ring?.freeBufferCount ?? 0)
        }
        print("ring shrink under load: \(discarded) buffers' pages returned; now \(provided) provided, \(free) free")
        #expect(discarded > 0, "no shrink returned any buffer: the ring never grew, or never shrank")
        // Every buffer is back once the streams are gone: none lost to a shrink.
        #expect(eventually(within: .seconds(10)) {
            (try? server.inspect { ($0.streamTransport as? UringPoller).map { $0.freeBufferCount == $0.providedBufferCount } ?? false }) == true
        }, "buffers still out after every stream closed")
    }
}

/// Echoes each chunk, then stops reading until the next turn: buffers that
/// raced the cancel are held by the stream meanwhile.
final class ChunkPausingEcho: ResourceHandler {
    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .received(let bytes):
            stream.write(bytes)
            stream.setReading(false)
            context.schedule(after: .zero, for: stream)
        case .timerFired:
            stream.setReading(true)
        default:
            break
        }
    }
}
