// Resources through the Runtime: destruction inside callbacks, stale events
// for destroyed resources and reused descriptor numbers, disconnect reasons.
import Reactor
import ReactorTestSupport
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Resource lifecycle")
struct ResourceLifecycleTests {
    @Test("a resource destroyed in its own callback gets nothing more; its fd closes after the batch",
          arguments: Backend.underTest)
    func destroyedInOwnCallback(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            // A socket pair with data pending is readable and writable: the base
            // Resource emits .readable then .writable, and must stop after the
            // destroy that the first one triggers.
            let (local, peer) = try fds.socketPair()
            writeBytes(peer)
            let resource = Resource(fd: fds.release(local), interest: .both)
            var id: ResourceID?
            var destroyedInTurn: Int?
            var writeWhileOpen: Int?
            var writeAfterBatch: (Int, Int32)?

            let service = ScriptedService()
            service.onEvent = { [unowned service] event, from, context in
                #expect(from == id)
                guard case .readable = event else {
                    Issue.record("\(event) after the resource was destroyed")
                    return
                }
                #expect(context.resource(from) === resource)
                resource.close()
                #expect(context.resource(from) == nil)
                resource.close()  // a second close does nothing
                #expect(!resource.isClosed, "closed before the batch ended")
                writeWhileOpen = writeBytes(peer).result
                destroyedInTurn = service.turnsEnded
            }
            service.onTurnEnd = { [unowned service] context in
                guard let turn = destroyedInTurn else { return }
                if turn == service.turnsEnded - 1 {
                    #expect(resource.isClosed, "not closed once the batch ended")
                    writeAfterBatch = { let r = writeBytes(peer); return (r.result, r.errno) }()
                }
                if service.turnsEnded >= turn + 4 { context.stop() }
            }
            let runtime = try runHere(P.self, service, options: fastTurns) { context in id = try context.register(resource) }
            let rid = try #require(id)
            #expect(service.events(for: rid) == 1)
            #expect(!service.calls.contains(.disconnected(rid)), "not handed back: the Service destroyed it")
            #expect(writeWhileOpen == 1)
            #expect(writeAfterBatch?.0 == -1 && writeAfterBatch?.1 == EPIPE, "the peer still sees an open socket")
            #expect(runtime.context.resourceCount == 0)
        }
        try body(pollerType(of: backend))
    }

    @Test("a resource destroyed by another's callback in the same batch does not get its event",
          arguments: Backend.underTest)
    func destroyedByAnotherInSameBatch(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let first = try fds.pipe()
            let second = try fds.pipe()
            writeBytes(first.writer)
            writeBytes(second.writer)  // both readable before the first wait: one batch
            let a = Resource(fd: fds.release(first.reader), interest: .read)
            let b = Resource(fd: fds.release(second.reader), interest: .read)
            var ids: [ResourceID] = []
            var destroyer: ResourceID?
            var victim: Resource?

            let service = ScriptedService()
            service.onEvent = { _, id, context in
                guard destroyer == nil else { return }
                destroyer = id
                let other = ids.first { $0 != id }!
                victim = context.resource(other)
                victim?.close()
                #expect(victim != nil)
            }
            service.onTurnEnd = { [unowned service] context in
                if service.turnsEnded >= 3 { context.stop() }
            }
            let runtime = try runHere(P.self, service, options: fastTurns) { context in
                ids = [try context.register(a), try context.register(b)]
            }
            let winner = try #require(destroyer)
            let loser = try #require(ids.first { $0 != winner })
            #expect(service.events(for: loser) == 0, "the destroyed resource's event was delivered")
            #expect(service.events(for: winner) >= 1)
            #expect(runtime.context.statistics.staleEventsDropped == 1, "both events were in one batch")
            #expect(victim?.isClosed == true)
        }
        try body(pollerType(of: backend))
    }

    @Test("a reused descriptor number never receives the stale event of the resource it replaced",
          arguments: Backend.underTest)
    func staleEventAfterDescriptorReuse(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let first = try fds.pipe()
            let second = try fds.pipe()
            writeBytes(first.writer)
            writeBytes(second.writer)
            let resources = [Resource(fd: fds.release(first.reader), interest: .read),
                             Resource(fd: fds.release(second.reader), interest: .read)]
            var ids: [ResourceID] = []
            var oldID: ResourceID?
            var newID: ResourceID?
            var reusedFD: Int32?

            let service = ScriptedService()
            service.onEvent = { _, id, context in
                guard oldID == nil else { return }
                attempt {
                    // In the same batch as the other's pending event: take it out of
                    // the runtime, make its descriptor number refer to a new, empty
                    // pipe (dup2 closes the old file, as close + open would), and
                    // register it again. Same number, new registration, nothing to read.
                    let other = try #require(ids.first { $0 != id })
                    let resource = try #require(context.resource(other))
                    #expect(context.deregister(resource))
                    let fresh = try fds.pipe()
                    #expect(dup2(fresh.reader, resource.fd.rawValue) == resource.fd.rawValue)
                    fds.close(fresh.reader)
                    oldID = other
                    reusedFD = resource.fd.rawValue
                    newID = try context.register(resource)
                    #expect(context.resource(newID!) === resource)
                }
            }
            service.onTurnEnd = { [unowned service] context in
                if service.turnsEnded >= 4 { context.stop() }
            }
            let runtime = try runHere(P.self, service, options: fastTurns) { context in
                ids = try resources.map { try context.register($0) }
            }
            let old = try #require(oldID)
            let new = try #require(newID)
            #expect(new != old)
            #expect(resources.contains { $0.fd.rawValue == reusedFD })
            #expect(service.events(for: old) == 0, "the replaced resource got its event")
            #expect(service.events(for: new) == 0, "the new registration got the old descriptor's event")
            #expect(runtime.context.statistics.staleEventsDropped == 1)
        }
        try body(pollerType(of: backend))
    }

    @Test("a peer's reset ends a stream with failed(ECONNRESET); the resource is handed back",
          arguments: Backend.underTest)
    func disconnectOnReset(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let fds = Descriptors()
            defer { fds.closeAll() }
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            let port = listener.localAddress.port
            #expect(port != 0)
            var client: Int32?
            var stream: SocketStream?
            var reason: DisconnectReason?
            var handedBack: Resource?

            let service = ScriptedService()
            service.onStart = { _ in attempt { client = try fds.tcpConnect(port: port) } }
            service.onEvent = { event, _, context in
                if case .accepted(let accepted) = event {
                    #expect(accepted.isRegistered, "the listener registers what it accepts")
                    stream = accepted
                }
            }
            service.onRegistered = { id, context in
                if context.resource(id) === stream, let client { fds.reset(client) }
            }
            service.onDisconnect = { id, resource, why, context in
                handedBack = resource
                reason = why
                #expect(context.resource(id) == nil)
                #expect(resource.id == id && !resource.isRegistered, "the id still says which it was")
                context.stop()
            }
            try runHere(P.self, service) { context in try context.register(listener) }
            #expect(handedBack === stream)
            guard case .failed(let error)? = reason else {
                Issue.record("expected failed(ECONNRESET), got \(String(describing: reason))")
                return
            }
            #expect(error.errno == .connectionReset, "\(error)")
        }
        try body(pollerType(of: backend))
    }

    @Test("registering a resource whose fd is not open throws EBADF and registers nothing", arguments: Backend.underTest)
    func registerClosedThroughContext(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let runtime = try Runtime<P, ScriptedService>(service: ScriptedService())
            let fd = Int32(descriptorLimit() + 23)  // past the limit: never open
            let resource = Resource(fd: FileDescriptor(rawValue: fd), interest: .read)
            let error = try #require(throws: ReactorError.self) { try runtime.context.register(resource) }
            #expect(error.description == "register(fd \(fd)): EBADF (Bad file descriptor)")
            #expect(runtime.context.resourceCount == 0)
            #expect(resource.id == nil && !resource.isRegistered)
        }
        try body(pollerType(of: backend))
    }
}
