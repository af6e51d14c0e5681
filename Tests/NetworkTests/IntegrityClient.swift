// A load client that proves a stream service loses and reorders nothing:
// many connections at once, each sending its own stretch of a random pattern
// in random chunk sizes and comparing every byte that comes back with what
// it sent, as it arrives.
import Reactor
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What an ``IntegrityClient`` run found.
struct IntegrityReport: Sendable, CustomStringConvertible {
    var connections = 0
    var completed = 0
    var bytesCompared = 0
    var failures: [String] = []
    var seconds = 0.0

    var description: String {
        "\(completed) of \(connections) connections complete, \(bytesCompared) bytes compared in \(seconds) s"
            + (failures.isEmpty ? "" : "; \(failures.count) failures, first: \(failures.prefix(5).joined(separator: " | "))")
    }
}

/// The client's Service. Each connection `i` sends `bytesPerConnection`
/// bytes of ``pattern`` from its own offset, in chunks of 1 byte to 64 KiB
/// drawn from a generator seeded with `seed + i` (so a failure can be
/// replayed), keeping at most `window` bytes unanswered; once all are sent
/// it half-closes. Every received byte is compared (`memcmp`) with the byte
/// expected at that position; a connection succeeds when the server's end
/// of file comes after exactly `bytesPerConnection` bytes. With `tls`,
/// every connection speaks TLS with those settings (the same bytes, checked
/// as plaintext).
final class IntegrityClient: Service {
    /// Random bytes every connection takes its stretch from. Two connections'
    /// stretches start at different offsets, so bytes delivered to the wrong
    /// connection, or in the wrong order, do not compare equal.
    let pattern: UnsafeMutableRawBufferPointer
    let target: SocketAddress
    let connectionCount: Int
    let bytesPerConnection: Int
    let window: Int
    let seed: UInt64
    let deadline: Duration
    let tls: StreamTLSOptions?
    private(set) var report = IntegrityReport()
    private var connections: [ResourceID: Connection] = [:]
    private var started = ContinuousClock.now

    final class Connection {
        let index: Int
        let offset: Int
        var random: SplitMix64
        var sent = 0
        var received = 0
        var finishedSending = false

        init(index: Int, offset: Int, seed: UInt64) {
            self.index = index
            self.offset = offset
            random = SplitMix64(seed: seed)
        }
    }

    init(target: SocketAddress, connections: Int, bytesPerConnection: Int, window: Int = 128 << 10,
         seed: UInt64 = UInt64.random(in: 0...UInt64.max), deadline: Duration = .seconds(120),
         tls: StreamTLSOptions? = nil) {
        self.target = target
        self.tls = tls
        connectionCount = connections
        self.bytesPerConnection = bytesPerConnection
        self.window = window
        self.seed = seed
        self.deadline = deadline
        pattern = .allocate(byteCount: 2 * bytesPerConnection, alignment: 16)
        var generator = SplitMix64(seed: seed)
        for i in stride(from: 0, to: pattern.count, by: 8) {
            pattern.storeBytes(of: generator.next(), toByteOffset: i, as: UInt64.self)
        }
        report.connections = connections
    }

    deinit { pattern.deallocate() }

    func runtimeStarted(context: Context) {
        started = ContinuousClock.now
        context.schedule(after: deadline)
        // Distinct offsets: i × 1031 stays below 1 MiB for the 1,000 connections used.
        let spread = max(1, bytesPerConnection / max(1, connectionCount))
        for index in 0..<connectionCount {
            let connection = Connection(index: index, offset: (index * 1031) % bytesPerConnection + index % spread,
                                        seed: seed &+ UInt64(index))
            do throws(ReactorError) {
                let stream = try SocketStream.connect(to: target, timeout: .seconds(30), tls: tls)
                connections[try context.register(stream)] = connection
            } catch {
                fail(connection, "connect: \(error)", context: context)
            }
        }
        finishIfDone(context)
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        guard let id = resource.id else { return }
        guard let connection = connections[id], let stream = context.resource(id, as: SocketStream.self) else { return }
        switch event {
        case .connected, .writableAgain:
            pump(connection, stream)
        case .received(let bytes):
            let expected = pattern.baseAddress! + connection.offset + connection.received
            guard connection.received + bytes.count <= bytesPerConnection else {
                fail(connection, "received \(connection.received + bytes.count) bytes, more than the \(bytesPerConnection) sent", id: id, context: context)
                return
            }
            if memcmp(bytes.buffer.baseAddress!, expected, bytes.count) != 0 {
                let at = (0..<bytes.count).first { bytes[$0] != expected.load(fromByteOffset: $0, as: UInt8.self) }!
                fail(connection, "byte \(connection.received + at) differs from what was sent (lost, reordered or foreign bytes)", id: id, context: context)
                return
            }
            connection.received += bytes.count
            report.bytesCompared += bytes.count
            pump(connection, stream)
        case .readClosed:
            if connection.received == bytesPerConnection {
                report.completed += 1
                connections[id] = nil
                context.resource(id)?.close()
                finishIfDone(context)
            } else {
                fail(connection, "the server closed after \(connection.received) of \(bytesPerConnection) bytes", id: id, context: context)
            }
        default:
            break
        }
    }

    func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        guard let id = resource.id else { return }
        guard let connection = connections.removeValue(forKey: id) else { return }
        fail(connection, "\(reason) after \(connection.sent) bytes sent, \(connection.received) received", context: context)
    }

    func timerFired(_ timer: TimerID, context: Context) {
        let stuck = connections.values.sorted { $0.index < $1.index }.prefix(3)
            .map { "#\($0.index): sent \($0.sent), received \($0.received)" }
        report.failures.append("deadline of \(deadline) passed with \(connections.count) connections unfinished (\(stuck.joined(separator: "; ")))")
        finish(context)
    }

    /// Sends random-sized chunks while fewer than `window` bytes are unanswered
    /// and the kernel takes them (a `false` from `write` means some are queued).
    private func pump(_ connection: Connection, _ stream: SocketStream) {
        guard !stream.isConnecting else { return }
        while connection.sent < bytesPerConnection && connection.sent - connection.received < window {
            let chunk = min(Int(connection.random.next() % (64 << 10)) + 1, bytesPerConnection - connection.sent)
            let start = pattern.baseAddress! + connection.offset + connection.sent
            connection.sent += chunk
            if !stream.write(UnsafeRawBufferPointer(start: start, count: chunk)) { break }
        }
        if connection.sent == bytesPerConnection && !connection.finishedSending {
            connection.finishedSending = true
            stream.shutdownWrite()
        }
    }

    private func fail(_ connection: Connection, _ why: String, id: ResourceID? = nil, context: Context) {
        report.failures.append("connection \(connection.index) (seed \(seed &+ UInt64(connection.index))): \(why)")
        if let id {
            connections[id] = nil
            context.resource(id)?.close()
        }
        finishIfDone(context)
    }

    private func finishIfDone(_ context: Context) {
        if connections.isEmpty { finish(context) }
    }

    private func finish(_ context: Context) {
        report.seconds = Double(milliseconds(elapsed(since: started)) / 1000)
        for id in connections.keys { context.resource(id)?.close() }
        connections.removeAll()
        context.stop()
    }
}

/// Runs an ``IntegrityClient`` on the calling thread with `backend`'s poller
/// (over TLS with `tls`).
func runIntegrityClient(_ backend: Backend, target: SocketAddress, connections: Int, bytesPerConnection: Int,
                        tls: StreamTLSOptions? = nil) throws -> IntegrityReport {
    struct Run: PollerVisitor {
        let target: SocketAddress, connections: Int, bytes: Int, tls: StreamTLSOptions?
        func visit<P: Poller>(_ type: P.Type) throws -> IntegrityReport {
            let client = IntegrityClient(target: target, connections: connections, bytesPerConnection: bytes, tls: tls)
            let runtime = try Runtime<P, IntegrityClient>(service: client)
            try runtime.run()
            return client.report
        }
    }
    return try backend.visit(Run(target: target, connections: connections, bytes: bytesPerConnection, tls: tls))
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64),
/// so a failing connection's chunk sizes can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
