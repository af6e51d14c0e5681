import CReactorSys
import Dispatch
import ReactorSync

#if canImport(Glibc)
import Glibc
#endif

extension Runtime {
    /// Starts a runtime on a new thread and returns its controller once the
    /// runtime exists. The poller and the Service are created on that thread,
    /// so neither ever crosses threads; only the `Sendable` controller does.
    ///
    /// Throws if the poller cannot be created (the error names why) or the
    /// thread cannot be started.
    public static func spawn(
        name: String = "reactor",
        options: RuntimeOptions = RuntimeOptions(),
        makePoller: @escaping @Sendable () throws(ReactorError) -> P = { () throws(ReactorError) in try P() },
        makeService: @escaping @Sendable () throws(ReactorError) -> S
    ) throws(ReactorError) -> Controller<S.Command> {
        let handoff = ReactorMutex<Result<Controller<S.Command>, ReactorError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        try startDetachedThread(name: name) {
            let controller: Controller<S.Command>
            do {
                let runtime: Runtime
                do throws(ReactorError) {
                    runtime = Runtime(poller: try makePoller(), service: try makeService(), options: options)
                } catch {
                    handoff.withLock { $0 = .failure(error) }
                    ready.signal()
                    return
                }
                controller = runtime.controller
                controller.holdUntilReleased()
                handoff.withLock { $0 = .success(controller) }
                ready.signal()
                do {
                    try runtime.run()
                } catch {
                    options.logger.error("runtime '\(name)' stopped: \(error)")
                }
            }  // the runtime, its Service and what they hold are freed here, on this thread
            controller.letGo()
        }
        ready.wait()
        // The thread signals only after storing a result, so it is non-nil here.
        return try handoff.withLock { $0! }.get()
    }
}

/// Starts a detached pthread named `name` (its first 15 bytes) running
/// `body`: for threads that are not runtimes, such as a signal waiter.
public func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) throws(ReactorError) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ body: @escaping @Sendable () -> Void, name: String) { self.body = body; self.name = name }
    }
    // Sound: the retained box is released exactly once, by the new thread.
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        _ = pthread_setname_np(pthread_self(), String(box.name.prefix(15)))
        box.body()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        throw ReactorError("pthread_create", .named(name), errno: .init(rawValue: rc))
    }
    pthread_detach(thread)
}
