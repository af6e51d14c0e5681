// A group of runtimes, one per thread, sharing a port through SO_REUSEPORT;
// introspection of a runtime's resources.
import Reactor
import ReactorTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Runtime groups and introspection")
struct RuntimeGroupTests {
    @Test("2 runtimes share a port with SO_REUSEPORT; every client is served; shutdown joins all", arguments: Backend.underTest)
    func groupSharesPort(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            // Reserve a port: the first listener binds 0 and the others reuse its number.
            let probe = try SocketListener(bindingTo: .loopback(port: 0), options: ListenerOptions(reusePort: true))
            let port = probe.localAddress.port
            let served = Shared<[Int]>([-1, -1])  // -1: not listening yet
            let group = try RuntimeGroup<P, CountingEcho>.start(threads: 2, name: "group-test") { index, _ in
                CountingEcho(index: index, port: port, served: served)
            }
            defer { group.shutdown(); group.join(timeout: .seconds(5)) }
            #expect(group.allControllers.count == 2)
            #expect(eventually { served.value.allSatisfy { $0 >= 0 } }, "the runtimes did not start listening")
            // The probe shares the port too but never accepts: close it before
            // any client could be balanced onto it.
            probe.close()
            // Many short connections: the kernel spreads them by hash.
            let fds = Descriptors()
            defer { fds.closeAll() }
            for round in 0..<64 {
                let client = try fds.tcpConnect(port: port)
                let message: [UInt8] = [UInt8(round)]
                #expect(message.withUnsafeBytes { write(client, $0.baseAddress, 1) } == 1)
                var reply: UInt8 = 0
                // EINTR is expected now and then: a thread that closed an io_uring
                // ring gets interrupted once by the ring's exit work (see Poller item 8).
                var n = -1
                repeat { n = read(client, &reply, 1) } while n < 0 && errno == EINTR
                #expect(n == 1 && reply == UInt8(round), "round \(round): read returned \(n), errno \(errno)")
                fds.close(client)
            }
            let counts = served.value
            #expect(counts.reduce(0, +) == 64)
            #expect(counts.allSatisfy { $0 > 0 }, "SO_REUSEPORT spread no connection to one runtime: \(counts)")
            group.shutdown()
            #expect(group.join(timeout: .seconds(5)), "the group did not stop")
        }
        try body(pollerType(of: backend))
    }

    @Test("resourceInfo lists each resource with its kind, interest and byte counts", arguments: Backend.underTest)
    func introspection(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            var snapshot: [Context.ResourceInfo] = []
            var clientID: ResourceID?
            let service = ScriptedService()
            service.onEvent = { event, id, context in
                switch event {
                case .connected:
                    context.resource(id, as: SocketStream.self)?.write(Array("12345".utf8))
                case .received(let bytes) where id != clientID:
                    #expect(bytes.count == 5)
                    context.resource(id, as: SocketStream.self)?.write(Array("abc".utf8))
                case .received where id == clientID:
                    snapshot = context.resourceInfo
                    context.stop()
                default:
                    break
                }
            }
            try runHere(P.self, service) { context in
                let listener = try SocketListener(bindingTo: .loopback(port: 0))
                try context.register(listener)
                clientID = try context.register(try SocketStream.connect(to: .loopback(port: listener.localAddress.port)))
            }
            #expect(snapshot.map(\.kind).sorted() == ["tcp-listener", "tcp-stream", "tcp-stream"])
            let client = try #require(snapshot.first { $0.id == clientID })
            #expect(client.bytesOut == 5 && client.bytesIn == 3, "\(client)")
            let server = try #require(snapshot.first { $0.kind == "tcp-stream" && $0.id != clientID })
            #expect(server.bytesIn == 5 && server.bytesOut == 3, "\(server)")
            #expect(snapshot.first { $0.kind == "tcp-listener" }?.interest == .read)
        }
        try body(pollerType(of: backend))
    }

    @Test("join returns only once each runtime's thread has freed its Service and resources", arguments: Backend.underTest)
    func joinWaitsForRelease(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let freed = Shared(0)
            let group = try RuntimeGroup<P, SlowToFree>.start(threads: 2, name: "release-test") { _, _ in SlowToFree(freed: freed) }
            group.shutdown()
            #expect(group.join(timeout: .seconds(60)), "the group did not stop")
            // A main that returns now exits the process: nothing of the runtimes may still be being freed.
            #expect(freed.value == 2, "join returned while \(2 - freed.value) Service(s) were still being freed")
        }
        try body(pollerType(of: backend))
    }
}

/// A Service that takes a while to free (a stand-in for one holding TLS
/// sessions or a resolver), and says when it has been.
private final class SlowToFree: Service {
    let freed: Shared<Int>
    init(freed: Shared<Int>) { self.freed = freed }
    deinit {
        usleep(200_000)  // widens the window in which an early join would be seen
        freed.update { $0 += 1 }
    }
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
}

/// Echoes one byte per connection and counts the connections it served.
private final class CountingEcho: Service {
    let index: Int
    let port: UInt16
    let served: Shared<[Int]>
    init(index: Int, port: UInt16, served: Shared<[Int]>) {
        self.index = index
        self.port = port
        self.served = served
    }

    func runtimeStarted(context: Context) {
        attempt { try context.register(try SocketListener(bindingTo: .loopback(port: port), options: ListenerOptions(reusePort: true))) }
        served.update { $0[index] = 0 }
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        guard let id = resource.id else { return }
        switch event {
        case .accepted:
            served.update { $0[index] += 1 }
        case .received(let bytes):
            context.resource(id, as: SocketStream.self)?.write(bytes.buffer)
        case .readClosed:
            context.resource(id)?.close()
        default:
            break
        }
    }
}
