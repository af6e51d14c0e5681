// A TLS echo server on a runtime of its own (ServerThread) that records why
// each of its connections ended, for the tests that attack it and the ones
// that weigh it.
import ExampleServices
import Reactor
import ReactorTestSupport

/// How the server's connections ended: a count per reason (with resource
/// numbers blanked, so 10,000 timeouts are one entry) and the latest few in full.
struct EndingLog: Sendable {
    private(set) var counts: [String: Int] = [:]
    private(set) var latest: [String] = []
    var total: Int { counts.values.reduce(0, +) }

    mutating func record(_ reason: String) {
        counts[reason.replacing(/#[0-9]+/, with: "#"), default: 0] += 1
        latest.append(reason)
        if latest.count > 20 { latest.removeFirst() }
    }

    /// How many endings' reasons contain `text`.
    func count(containing text: String) -> Int {
        counts.filter { $0.key.contains(text) }.values.reduce(0, +)
    }
}

/// The echo, plus a record of every disconnect (what a service would log).
final class RecordingEcho: ResourceHandler {
    private let echo = EchoHandler()
    private let log: Shared<EndingLog>

    init(log: Shared<EndingLog>) { self.log = log }

    func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        echo.handle(event, on: stream, context: context)
    }

    func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        log.update { $0.record("\(reason)") }
        echo.resourceDisconnected(stream, reason: reason, context: context)  // which logs it
    }
}

/// A ServerThread serving a TLS echo with the test certificate (and, with
/// `plainToo`, a plain echo beside it on ``plainPort``).
final class TLSEchoServer {
    let thread: ServerThread
    let log = Shared(EndingLog())
    /// The listeners registered: the resource count of a server with no connections.
    let listeners: Int
    private let plain = Shared<UInt16>(0)
    var port: UInt16 { thread.port }
    var plainPort: UInt16 { plain.value }

    init(_ backend: Backend, handshakeTimeout: Duration = .seconds(60), plainToo: Bool = false, name: String) throws {
        var options = try TLSFixtures.server()
        options.handshakeTimeout = handshakeTimeout
        let (log, plain, tls) = (self.log, self.plain, options)
        thread = try ServerThread(backend, name: "\(name)-\(backend)", makeService: { LoggingService() }) { _, context throws(ReactorError) in
            let handler = RecordingEcho(log: log)
            if plainToo {
                let port = try listen(context, handler: handler).localAddress.port
                plain.update { $0 = port }
            }
            let listener = try listen(context, handler: handler)
            listener.tls = tls
            return listener.localAddress.port
        }
        listeners = plainToo ? 2 : 1
    }

    /// Resources registered on the server (``listeners`` when no connection is open).
    func resourceCount() throws -> Int { try thread.inspect { $0.resourceCount } }

    /// Waits until `count` connections have ended (or `timeout` passes) and returns the log.
    func waitForEndings(_ count: Int, timeout: Duration = .seconds(5)) -> EndingLog {
        _ = eventually(within: timeout) { log.value.total >= count }
        return log.value
    }

    func stop() throws { try thread.stop() }
}
