import Histogram
import PollEpoll
import Reactor

#if canImport(Glibc)
import Glibc
#endif

/// What one echo load run measured.
struct EchoLoadResult: Sendable {
    var roundTrips: Int
    var seconds: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var throughput: Double { Double(roundTrips) / seconds }
}

/// The echo load generator: `connections` connections, each sending
/// `messageBytes` and waiting for all of them back before sending again
/// (ping-pong), latency per round trip in an HDR histogram. It runs on a
/// swift-reactor epoll runtime on the calling thread (the bench pins itself
/// to the load CPU), so every server is driven by the same client.
///
/// Connects are kept at most 256 in flight, so a server's accept backlog
/// never overflows into SYN retransmits; measuring starts after every
/// connection is up and `warmup` has passed, and lasts `duration`.
final class EchoLoad: Service {
    struct Settings: Sendable {
        var port: UInt16
        var connections: Int
        var messageBytes: Int
        var warmup: Duration
        var duration: Duration
    }

    private let settings: Settings
    private let message: [UInt8]
    private var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    private var streams: [SocketStream] = []
    private var connected = 0
    private var started = 0
    private var measuring = false
    private var roundTrips = 0
    private var measureStart: UInt64 = 0
    private(set) var result: EchoLoadResult?
    private(set) var failure: String?
    /// Called when measuring starts and when it ends (to read the server's CPU time).
    var onMeasure: (Bool) -> Void = { _ in }

    /// One connection's state, and its handler: it is handed its stream.
    fileprivate final class Connection: ResourceHandler {
        unowned let load: EchoLoad
        var received = 0
        var sentAt: UInt64 = 0

        init(load: EchoLoad) { self.load = load }

        func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
            load.handle(event, of: self, on: stream, context: context)
        }

        func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
            load.fail("a connection ended: \(reason)", context)
        }
    }

    init(settings: Settings) {
        self.settings = settings
        message = [UInt8](repeating: 0x61, count: settings.messageBytes)
    }

    func runtimeStarted(context: Context) {
        connectMore(context)
        context.schedule(after: .seconds(60), repeating: nil)  // a watchdog: nothing should take this long
    }

    private func connectMore(_ context: Context) {
        while started < settings.connections && started - connected < 256 {
            started += 1
            do throws(ReactorError) {
                let stream = try SocketStream.connect(to: .loopback(port: settings.port), timeout: .seconds(20))
                stream.handler = Connection(load: self)
                try context.register(stream)
                streams.append(stream)
            } catch {
                fail("connect: \(error)", context)
                return
            }
        }
    }

    /// Nothing but the connections registers here, and they have handlers.
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    fileprivate func handle(_ event: ResourceEvent, of connection: Connection, on stream: SocketStream, context: Context) {
        switch event {
        case .connected:
            connected += 1
            connectMore(context)
            send(connection, stream)
            if connected == settings.connections {
                context.schedule(after: settings.warmup)
            }
        case .received(let bytes):
            connection.received += bytes.count
            guard connection.received >= settings.messageBytes else { return }
            connection.received -= settings.messageBytes
            if measuring {
                roundTrips += 1
                histogram.record(now() - connection.sentAt)
            }
            send(connection, stream)
        case .readClosed:
            fail("the server closed a connection", context)
        default:
            break
        }
    }

    func timerFired(_ timer: TimerID, context: Context) {
        if connected < settings.connections {
            fail("only \(connected) of \(settings.connections) connections were up after 60 s", context)
        } else if !measuring && result == nil {
            measuring = true
            histogram.reset()
            roundTrips = 0
            measureStart = now()
            onMeasure(true)
            context.schedule(after: settings.duration)
        } else if measuring {
            measuring = false
            onMeasure(false)
            let seconds = Double(now() - measureStart) / 1e9
            result = EchoLoadResult(roundTrips: roundTrips, seconds: seconds,
                                    p50Microseconds: Double(histogram.valueAtPercentile(50)) / 1000,
                                    p99Microseconds: Double(histogram.valueAtPercentile(99)) / 1000)
            finish(context)
        }
    }

    private func send(_ connection: Connection, _ stream: SocketStream) {
        connection.sentAt = now()
        message.withUnsafeBytes { _ = stream.write($0) }
    }

    fileprivate func fail(_ why: String, _ context: Context) {
        if failure == nil { failure = why }
        finish(context)
    }

    private func finish(_ context: Context) {
        for stream in streams { stream.handler = nil; stream.close() }
        streams.removeAll()
        context.stop()
    }

    private func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Runs one echo load against `server` and returns the row's numbers.
func measureEcho(_ server: ServerProcess, settings: EchoLoad.Settings) throws -> (EchoLoadResult, cpuSeconds: Double) {
    let load = EchoLoad(settings: settings)
    var cpuAtStart = 0.0
    var cpuSeconds = 0.0
    load.onMeasure = { starting in
        if starting { cpuAtStart = server.cpuSeconds() } else { cpuSeconds = server.cpuSeconds() - cpuAtStart }
    }
    let runtime = try Runtime<EpollPoller, EchoLoad>(service: load)
    try runtime.run()
    if let failure = load.failure { throw BenchError("\(server.name): \(failure)") }
    guard let result = load.result else { throw BenchError("\(server.name): the load ended without a result") }
    return (result, cpuSeconds)
}
