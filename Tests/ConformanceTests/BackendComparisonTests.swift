// The backend comparison: one scripted scenario — connect, send, partial
// reads, interest flips, timers, half-close, destroy in a callback — whose
// ordered trace of Service callbacks must be the same on every backend.
//
// The script moves one step at a time (each step waits for the event the
// previous one causes), so the trace depends on the runtime's semantics and
// not on the order in which a backend lists simultaneous events.
import Reactor
import ReactorTestSupport
import Testing

@Suite("backend comparison")
struct BackendComparisonTests {
    static let expectedTrace = [
        "started",
        "registered listener",
        "timer connect",
        "accepted",
        "registered server",
        "registered client",
        "client connected",
        "server received 100000 bytes in total",
        "server stops reading; timer resume armed",
        "client received pong",
        "timer resume",
        "client half-closes",
        "server readClosed",
        "server writes bye and closes when flushed",
        "client received bye",
        "client disconnected: closed by peer",
        "stopped",
    ]

    @Test("the scripted scenario gives the same trace", arguments: Backend.underTest)
    func sameTrace(backend: Backend) throws {
        let trace = try backend.visit(RunScenario())
        #expect(trace == Self.expectedTrace)
    }

    /// Every backend's trace, side by side: equal to each other, not only to the script.
    @Test("all backends agree")
    func allAgree() throws {
        let traces = try Backend.underTest.map { try $0.visit(RunScenario()) }
        for (backend, trace) in zip(Backend.underTest, traces) {
            #expect(trace == traces[0], "\(backend) differs from \(Backend.underTest[0])")
        }
    }
}

private struct RunScenario: PollerVisitor {
    func visit<P: Poller>(_ type: P.Type) throws -> [String] {
        let service = ScenarioService()
        let runtime = try Runtime<P, ScenarioService>(service: service)
        try runtime.run()
        return service.trace
    }
}

private final class ScenarioService: Service {
    var trace: [String] = []
    var listener: ResourceID?
    var server: ResourceID?
    var client: ResourceID?
    var pendingClient: SocketStream?
    var port: UInt16 = 0
    var receivedByServer = 0
    var clientReceived: [UInt8] = []
    var connectTimer: TimerID?
    var resumeTimer: TimerID?
    var watchdog: TimerID?
    static let payload = 100_000

    func runtimeStarted(context: Context) {
        trace.append("started")
        watchdog = context.schedule(after: .seconds(10))
        do {
            let tcp = try SocketListener(bindingTo: .loopback(port: 0))
            port = tcp.localAddress.port
            listener = try context.register(tcp)
        } catch {
            trace.append("error \(error)")
            context.stop()
        }
        connectTimer = context.schedule(after: .milliseconds(5))
    }

    func resourceRegistered(_ resource: Resource, context: Context) {
        let id = resource.id
        let name = id == listener ? "listener" : id == server ? "server" : id == client ? "client" : "unknown"
        trace.append("registered \(name)")
    }

    func timerFired(_ timer: TimerID, context: Context) {
        if timer == watchdog {
            trace.append("watchdog: the scenario stalled")
            context.stop()
        } else if timer == connectTimer {
            trace.append("timer connect")
            // Held back until the listener has accepted, so "accepted" and
            // "connected" never race within one batch.
            pendingClient = try? SocketStream.connect(to: .loopback(port: port))
        } else if timer == resumeTimer {
            trace.append("timer resume")
            context.resource(server!, as: SocketStream.self)?.setReading(true)
            trace.append("client half-closes")
            context.resource(client!, as: SocketStream.self)?.shutdownWrite()
        }
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        guard let id = resource.id else { return }
        switch event {
        case .accepted(let stream):
            trace.append("accepted")
            do {
                server = stream.id
                if let pendingClient { client = try context.register(pendingClient) }
                pendingClient = nil
            } catch {
                trace.append("error \(error)")
                context.stop()
            }
        case .connected where id == client:
            trace.append("client connected")
            // More than one read's worth would be nicer, but the reads are
            // partial either way: the payload crosses loopback in segments.
            let bytes = [UInt8](repeating: 7, count: ScenarioService.payload)
            context.resource(id, as: SocketStream.self)?.write(bytes)
        case .received(let bytes) where id == server:
            receivedByServer += bytes.count
            guard receivedByServer == ScenarioService.payload else { return }
            trace.append("server received \(receivedByServer) bytes in total")
            let stream = context.resource(id, as: SocketStream.self)!
            stream.setReading(false)
            stream.write(Array("pong".utf8))
            resumeTimer = context.schedule(after: .milliseconds(5))
            trace.append("server stops reading; timer resume armed")
        case .received(let bytes) where id == client:
            clientReceived += bytes
            let text = String(decoding: clientReceived, as: UTF8.self)
            if text == "pong" || text == "bye" {
                trace.append("client received \(text)")
                clientReceived.removeAll()
            }
        case .readClosed where id == server:
            trace.append("server readClosed")
            let stream = context.resource(id, as: SocketStream.self)!
            stream.write(Array("bye".utf8))
            stream.closeWhenFlushed()
            trace.append("server writes bye and closes when flushed")
        case .readClosed where id == client:
            // Possible if the hangup is not yet visible; destroy in the callback.
            trace.append("client disconnected: closed by peer")
            context.resource(id)?.close()
            finish(context)
        default:
            trace.append("unexpected \(event) from \(id)")
        }
    }

    func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        guard let id = resource.id else { return }
        if id == client {
            trace.append("client disconnected: \(reason)")
            finish(context)
        } else {
            trace.append("unexpected disconnect of \(id): \(reason)")
        }
    }

    func finish(_ context: Context) {
        if let listener { context.resource(listener)?.close() }
        context.cancel(watchdog!)
        context.stop()
    }

    func runtimeStopped(context: Context) {
        trace.append("stopped")
    }
}
