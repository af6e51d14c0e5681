// Shared helpers of the network tests: a Service on a runtime thread of its
// own, chosen by backend at run time, with the port it listens on.
import Dispatch
import Reactor
import ReactorTestSupport
import Testing

extension Backend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}

/// A server under test: a runtime on its own thread. `inspect` runs a
/// closure on that thread (to read its resources) and returns its result.
final class ServerThread: Sendable {
    let port: UInt16
    private let controller: Controller<Never>

    /// Starts `makeService()` on a new runtime of `backend`, on a thread of
    /// its own; `setUp` runs there before the loop starts, registers the
    /// listeners and returns the port clients should use.
    init<S: Service>(_ backend: Backend, name: String, options: RuntimeOptions = RuntimeOptions(),
                     makeService: @escaping @Sendable () -> S,
                     setUp: @escaping @Sendable (S, Context) throws(ReactorError) -> UInt16) throws where S.Command == Never {
        let handoff = Shared<Result<(Controller<Never>, UInt16), ReactorError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let start = ServerStart(options: options, makeService: makeService, setUp: setUp, handoff: handoff, ready: ready)
        try startDetachedThread(name: name) {
            do { try backend.visit(start) } catch {
                handoff.update { $0 = $0 ?? .failure(ReactorError("start", .named(name), detail: "\(error)")) }
                ready.signal()
            }
        }
        guard ready.wait(timeout: .now() + 10) == .success, let result = handoff.value else {
            throw TestFailure("\(name): the server did not start within 10 s")
        }
        (controller, port) = try result.get()
    }

    /// Runs `body` on the server's thread and returns what it returns.
    func inspect<R: Sendable>(_ body: @escaping @Sendable (Context) -> R) throws -> R {
        let result = Shared<R?>(nil)
        let done = DispatchSemaphore(value: 0)
        try controller.execute { context in
            let value = body(context)
            result.update { $0 = value }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success, let value = result.value else {
            throw TestFailure("the server did not answer within 10 s")
        }
        return value
    }

    /// Shuts the runtime down and waits for its thread; throws if it hangs.
    func stop() throws {
        controller.shutdown()
        guard controller.join(timeout: .seconds(20)) else { throw TestFailure("the server did not stop within 20 s") }
    }
}

/// Creates the runtime and the Service on the server thread and starts the loop.
private struct ServerStart<S: Service>: PollerVisitor where S.Command == Never {
        let options: RuntimeOptions
        let makeService: @Sendable () -> S
        let setUp: @Sendable (S, Context) throws(ReactorError) -> UInt16
        let handoff: Shared<Result<(Controller<Never>, UInt16), ReactorError>?>
        let ready: DispatchSemaphore
        func visit<P: Poller>(_ type: P.Type) throws {
            let service = makeService()
        var runtime: Runtime<P, S>?
        do throws(ReactorError) {
            let created = try Runtime<P, S>(service: service, options: options)
            runtime = created
            let port = try setUp(service, created.context)
            handoff.update { $0 = .success((created.controller, port)) }
        } catch {
            handoff.update { $0 = .failure(error) }
        }
        ready.signal()
        if case .success = handoff.value { try? runtime?.run() }
        }
    }

/// Binds a TCP listener on 127.0.0.1 (a free port), registers it, and returns it.
@discardableResult
func listen(_ context: Context, options: StreamOptions = StreamOptions(),
            handler: (any ResourceHandler)? = nil) throws(ReactorError) -> SocketListener {
    let listener = try SocketListener(bindingTo: .loopback(port: 0))
    listener.connectionOptions = options
    if let handler {
        // The listener's own events stay away from the Service too: it serves another protocol.
        listener.handler = LoggingService()
        listener.connectionHandler = { _ in handler }
    }
    try context.register(listener)
    return listener
}
