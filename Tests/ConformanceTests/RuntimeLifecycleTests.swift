// The runtime's life: the Service callbacks and their order, stopping from
// inside and from outside, shutdown under load, the shutdown grace period.
import Dispatch
import Reactor
import ReactorTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Runtime lifecycle")
struct RuntimeLifecycleTests {
    @Test("the Service hears started, registered, disconnected (with the resource and reason), turn ends, stopped",
          arguments: Backend.underTest)
    func serviceCallbacks(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let first = try fds.pipe()
            let second = try fds.pipe()
            let reader = try PipeEnd(adopting: fds.release(first.reader), direction: .reading)
            let later = try PipeEnd(adopting: fds.release(second.reader), direction: .reading)
            var readerID: ResourceID?
            var laterID: ResourceID?
            var disconnected: (id: ResourceID, resource: Resource, reason: DisconnectReason)?
            var countAtStop: Int?

            let service = ScriptedService()
            service.onStart = { [unowned service] context in
                attempt { laterID = try context.register(later) }
                #expect(laterID.map { !service.calls.contains(.registered($0)) } == true,
                        "resourceRegistered must wait until this callback returns")
                fds.close(first.writer)  // the reader will reach end of file
            }
            service.onDisconnect = { id, resource, reason, context in
                disconnected = (id, resource, reason)
                #expect(context.resource(id) == nil)
                #expect(!resource.isClosed, "closed before the batch ended")
                context.stop()
            }
            service.onStop = { context in
                countAtStop = context.resourceCount
            }
            let runtime = try runHere(P.self, service) { context in readerID = try context.register(reader) }

            let rid = try #require(readerID)
            let lid = try #require(laterID)
            #expect(service.calls.first == .started)
            #expect(service.calls.last == .stopped)
            #expect(service.calls.count { $0 == .started } == 1 && service.calls.count { $0 == .stopped } == 1)
            // Registered before run() and during runtimeStarted: both heard, in order, after started.
            #expect(Array(service.calls.prefix(3)) == [.started, .registered(rid), .registered(lid)])
            #expect(service.calls.count { $0 == .disconnected(rid) } == 1)
            #expect(disconnected?.resource === reader)
            if case .closed? = disconnected?.reason {} else { Issue.record("reason: \(String(describing: disconnected?.reason))") }
            #expect(service.turnsEnded >= 1)
            #expect(countAtStop == 1, "resources are still registered in runtimeStopped")
            #expect(reader.isClosed && later.isClosed, "everything is closed when run() returns")
            #expect(runtime.context.resourceCount == 0)
        }
        try body(pollerType(of: backend))
    }

    @Test("stop() in runtimeStarted ends the run promptly", arguments: Backend.underTest)
    func stopWhileStarting(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let service = ScriptedService(watchdog: .seconds(30))
            service.onStart = { $0.stop() }
            try runHere(P.self, service)
            // The stop, not the watchdog, ended the run: no timer ran before it.
            #expect(!service.watchdogFired)
            #expect(service.calls == [.started, .stopped])
        }
        try body(pollerType(of: backend))
    }

    @Test("loopTimeout bounds each turn: an idle runtime still ends turns", arguments: Backend.underTest)
    func loopTimeoutDrivesTurns(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            // Counted over 300 ms rather than timed per turn: a signal to the
            // test process (a child exiting) may cut one wait short (EINTR,
            // contract item 8), so a lower bound on one turn's length would be flaky.
            let service = ScriptedService()
            service.onStart = { context in context.schedule(after: .milliseconds(300)) }
            service.onTimer = { _, context in context.stop() }
            try runHere(P.self, service, options: RuntimeOptions(loopTimeout: .milliseconds(10)))
            // ~30 turns of 10 ms; not 1 (the timeout ignored) and not thousands (spinning).
            #expect(service.turnsEnded >= 10 && service.turnsEnded <= 100, "\(service.turnsEnded) idle turns in 300 ms")
        }
        try body(pollerType(of: backend))
    }

    @Test("shutdown from another thread while the runtime is busy: it stops and join returns", arguments: Backend.underTest)
    func shutdownWhileBusy(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let (reader, writer) = try fds.pipe()
            writeBytes(writer)  // never read: readable on every turn
            let readerFD = fds.release(reader)
            let events = Shared(0)
            let ticks = Shared(0)
            let stopped = Shared(false)

            let controller = try Runtime<P, ScriptedService>.spawn(name: "busy") {
                let service = ScriptedService()
                service.onStart = { context in
                    attempt { try context.register(Resource(fd: readerFD, interest: .read)) }
                    context.schedule(after: .milliseconds(1), repeating: .milliseconds(1))
                }
                service.onEvent = { _, _, _ in events.update { $0 += 1 } }
                service.onTimer = { _, _ in ticks.update { $0 += 1 } }
                service.onStop = { _ in stopped.update { $0 = true } }
                return service
            }
            #expect(eventually { events.value >= 50 && ticks.value >= 5 }, "the runtime never got busy")
            #expect(controller.isRunning)
            controller.shutdown()
            let joined = controller.join(timeout: .seconds(30))  // a watchdog: a busy runtime must still stop
            #expect(joined, "join did not return")
            #expect(stopped.value)
            #expect(!controller.isRunning)
            // The runtime closed the reader: the writer now sees a broken pipe.
            let broken = writeBytes(writer)
            #expect(broken.result == -1 && broken.errno == EPIPE)
        }
        try body(pollerType(of: backend))
    }

    @Test("a graceful stop waits for queued output only up to the grace period", arguments: Backend.underTest)
    func gracePeriodBoundsDrain(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let (reader, writer) = try fds.pipe()  // nobody reads: the queue never drains
            let stream = try PipeEnd(adopting: fds.release(writer), direction: .writing)
            var stopAt: ContinuousClock.Instant?

            let service = ScriptedService(watchdog: .seconds(30))
            service.onStart = { context in
                stream.write([UInt8](repeating: 1, count: 1 << 20))
                #expect(stream.queuedByteCount > 0)
                stopAt = .now
                context.stop()
            }
            let options = RuntimeOptions(shutdownGracePeriod: .milliseconds(200))
            try runHere(P.self, service, options: options) { context in try context.register(stream) }
            // The drain waited the grace period out (never less: a load only makes it later),
            // then the grace period, not the watchdog, ended it.
            let took = elapsed(since: try #require(stopAt))
            #expect(took >= .milliseconds(190), "stopping took only \(took)")
            #expect(!service.watchdogFired, "the drain outlived its grace period")
            #expect(stream.isClosed)
            _ = reader
        }
        try body(pollerType(of: backend))
    }
}
