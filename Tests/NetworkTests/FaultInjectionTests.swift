// Faults injected into one server runtime (RuntimeOptions.faults, so tests
// running beside these are undisturbed): the transparent kinds change
// nothing a client can see; resets and broken pipes end just their
// connection, with the reason; EMFILE pauses accepting and loses nobody.
// Every case also checks the kernel's socket table: no server connection
// left open once the runtime has stopped. (scripts/faults.sh runs the big
// suites with REACTOR_FAULTS for every runtime.)
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the server saw, shared with the test thread.
struct FaultRecord: Sendable {
    var accepted = 0
    var endings: [DisconnectReason] = []
    var paused: [ReactorError] = []
    var resumed = 0
    var injected: [String: Int] = [:]
}

/// An echo Service (with back-pressure) that records how every connection
/// ended and what its listener reported.
final class FaultRecordingEcho: Service {
    let record: Shared<FaultRecord>
    init(_ record: Shared<FaultRecord>) { self.record = record }

    func resourceRegistered(_ resource: Resource, context: Context) {
        if resource is SocketStream { record.update { $0.accepted += 1 } }
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        switch event {
        case .received(let bytes):
            guard let stream = resource as? SocketStream else { return }
            if !stream.write(bytes) && stream.isAboveHighWatermark { stream.setReading(false) }
        case .writableAgain:
            (resource as? SocketStream)?.setReading(true)
        case .acceptPaused(let error):
            record.update { $0.paused.append(error) }
        case .acceptResumed:
            record.update { $0.resumed += 1 }
        default:
            break
        }
    }

    func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        if resource is SocketStream { record.update { $0.endings.append(reason) } }
    }

    func loopTurnEnded(context: Context) {
        let counts = context.faultsInjected
        record.update { $0.injected = counts }
    }
}

/// Writes one large reply to every connection and closes it once flushed.
final class BlobSender: Service {
    let blob: [UInt8]
    let record: Shared<FaultRecord>
    init(_ blob: [UInt8], _ record: Shared<FaultRecord>) {
        self.blob = blob
        self.record = record
    }

    func resourceRegistered(_ resource: Resource, context: Context) {
        guard let stream = resource as? SocketStream else { return }
        record.update { $0.accepted += 1 }
        stream.write(blob)
        stream.closeWhenFlushed()
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        if resource is SocketStream { record.update { $0.endings.append(reason) } }
    }

    func loopTurnEnded(context: Context) {
        let counts = context.faultsInjected
        record.update { $0.injected = counts }
    }
}

@Suite("Fault injection: calls failing the ways kernels fail them")
struct FaultInjectionTests {
    /// An echo server on `backend` whose runtime injects `faults`, the
    /// integrity client against it (its own runtime clean), and the checks
    /// every case shares: every connection accounted for by the client,
    /// every server connection ended and reported, none left open.
    func run(_ backend: Backend, _ faults: FaultInjection?, connections: Int, bytes: Int)
        throws -> (report: IntegrityReport, record: FaultRecord, completionMode: Bool) {
        try ensureDescriptorLimit(4 * connections + 500)
        var options = RuntimeOptions()
        options.faults = faults
        let record = Shared(FaultRecord())
        let server = try ServerThread(backend, name: "faults-\(backend)", options: options,
                                      makeService: { FaultRecordingEcho(record) }) { _, context throws(ReactorError) in
            try listen(context).localAddress.port
        }
        let completionMode = try server.inspect { $0.streamTransport != nil }
        let report = try runIntegrityClient(backend, target: .loopback(port: server.port), connections: connections,
                                            bytesPerConnection: bytes)
        // The client has closed every connection: the server hears each end (a watchdog, not a timing claim).
        let ended = eventually(within: .seconds(20)) { record.value.endings.count >= record.value.accepted }
        let open = try server.inspect { $0.resourceCount }
        try server.stop()
        let seen = record.value
        print("faults \(faults.map { "\($0)" } ?? "none") on \(backend): \(report); server: \(seen.accepted) accepted, \(seen.endings.count) ended, injected \(seen.injected)")
        #expect(report.completed + report.failures.count == connections, "a connection neither completed nor failed: \(report)")
        #expect(!report.failures.contains { $0.contains("differs") || $0.contains("more than") }, "bytes corrupted: \(report)")
        #expect(ended && seen.accepted == connections, "\(seen.accepted) accepted, \(seen.endings.count) ended")
        #expect(open == 1, "only the listener should remain registered; \(open) resources are")
        let leaked = openTCPSockets(localPort: server.port)
        #expect(leaked.isEmpty, "sockets still open on the server's port after it stopped: \(leaked)")
        return (report, seen, completionMode)
    }

    @Test("transparent faults at a quarter of the calls: every byte back, every connection closed cleanly",
          arguments: Backend.underTest)
    func transparent(_ backend: Backend) throws {
        let (report, record, completionMode) = try run(backend, FaultInjection(seed: 11, rate: 0.25), connections: 48, bytes: 256 << 10)
        #expect(report.failures.isEmpty, "\(report)")
        #expect(record.endings.allSatisfy { if case .closed = $0 { true } else { false } }, "\(record.endings)")
        // Each kind that fits this backend's path happened (else the case proves less than it says).
        let expected = completionMode ? ["uring-nobufs", "uring-short", "uring-end", "uring-cancel"] : ["eintr", "eagain", "short", "nobufs"]
        for kind in expected { #expect(record.injected[kind, default: 0] > 0, "no \(kind) injected: \(record.injected)") }
    }

    @Test("ECONNRESET and EPIPE mid-stream end just their connection, with that reason; the others stay whole",
          arguments: Backend.underTest)
    func resetsAndBrokenPipes(_ backend: Backend) throws {
        let (report, record, _) = try run(backend, FaultInjection(seed: 5, rate: 0.02, kinds: [.connectionReset, .brokenPipe]),
                                          connections: 48, bytes: 256 << 10)
        var failed = 0
        for ending in record.endings {
            guard case .failed(let error) = ending else { continue }
            failed += 1
            #expect(error.errno == .connectionReset || error.errno == .brokenPipe, "an ending for another reason: \(error)")
        }
        let injected = record.injected["reset", default: 0] + record.injected["pipe", default: 0]
        #expect(injected > 0, "nothing was injected: \(record.injected)")
        // One fault ends one connection, and nothing else fails.
        #expect(failed == injected, "\(failed) connections failed, \(injected) faults injected")
        // A client is cut short only where the server reported why.
        #expect(report.failures.count <= failed, "\(report.failures.count) clients cut short, \(failed) failures reported: \(report)")
        #expect(report.completed >= report.connections - failed)
    }

    @Test("EMFILE on accept pauses accepting with the reason, resumes, and loses no connection",
          arguments: Backend.underTest)
    func outOfDescriptors(_ backend: Backend) throws {
        // A seed whose first decision fails the accept: io_uring decides once per multishot accept.
        let seed = (UInt64(0)...).first {
            FaultInjector(FaultInjection(seed: $0, rate: 0.5, kinds: .tooManyOpenFiles)).decide(.uringAccept) != nil
        }!
        let (report, record, _) = try run(backend, FaultInjection(seed: seed, rate: 0.5, kinds: .tooManyOpenFiles),
                                          connections: 32, bytes: 64 << 10)
        #expect(report.failures.isEmpty, "\(report)")
        #expect(record.injected["emfile", default: 0] > 0, "\(record.injected)")
        #expect(!record.paused.isEmpty && record.paused.allSatisfy { $0.errno == .tooManyOpenFiles }, "\(record.paused)")
        #expect(record.resumed > 0)
    }

    // Regressions: each kind alone, at half the calls, where it once ended or stalled streams.

    @Test("ENOBUFS from writes is retried when the socket is next writable, not the end of the stream",
          arguments: Backend.underTest)
    func noBuffersOnWrites(_ backend: Backend) throws {
        let (report, record, _) = try run(backend, FaultInjection(seed: 3, rate: 0.5, kinds: .noBuffers), connections: 16, bytes: 256 << 10)
        #expect(report.failures.isEmpty, "\(report)")
        #expect(record.endings.allSatisfy { if case .closed = $0 { true } else { false } }, "\(record.endings)")
    }

    @Test("io_uring: receives, sends and accepts cancelled unasked are started again, nothing lost or stalled",
          .enabled(if: Backend.uring.availability.isAvailable))
    func uringCancellations() throws {
        let (report, record, completionMode) = try run(.uring, FaultInjection(seed: 9, rate: 0.5, kinds: .uringCancelled),
                                                       connections: 16, bytes: 256 << 10)
        #expect(report.failures.isEmpty, "\(report)")
        if completionMode { #expect(record.injected["uring-cancel", default: 0] > 0, "\(record.injected)") }
    }

    @Test("a reply far larger than the socket buffers arrives whole while sends are cut short, refused and cancelled",
          arguments: Backend.underTest)
    func largeReply(_ backend: Backend) throws {
        var blob = [UInt8](repeating: 0, count: 8 << 20)
        var random = SplitMix64(seed: 21)
        for i in blob.indices { blob[i] = UInt8(truncatingIfNeeded: random.next()) }
        var options = RuntimeOptions()
        options.faults = FaultInjection(seed: 21, rate: 0.5)
        let record = Shared(FaultRecord())
        let server = try ServerThread(backend, name: "faults-blob-\(backend)", options: options,
                                      makeService: { [blob] in BlobSender(blob, record) }) { _, context throws(ReactorError) in
            try listen(context).localAddress.port
        }
        // A small receive buffer: the server's sends wait on a full socket, where a cancel or an EAGAIN finds them.
        let fd = try connectToLoopback(port: server.port, receiveBuffer: 16 << 10)
        defer { close(fd) }
        var received: [UInt8] = []
        let ended: Bool
        do {
            try readToEnd(fd, timeout: .seconds(60), into: &received)
            ended = true
        } catch {
            ended = false
        }
        try server.stop()
        let seen = record.value
        print("faults \(options.faults!) on \(backend), 8 MiB reply: \(received.count) bytes, injected \(seen.injected)")
        #expect(ended, "no end of file after \(received.count) of \(blob.count) bytes")
        // Compared outside #expect, whose message for two unequal 8 MiB arrays would be a diff of them.
        let whole = received == blob, prefix = received.elementsEqual(blob.prefix(received.count))
        #expect(whole, "\(received.count) of \(blob.count) bytes arrived; \(prefix ? "in order" : "not what was sent")")
        #expect(seen.accepted == 1)
        #expect(!seen.injected.isEmpty)
        #expect(openTCPSockets(localPort: server.port).isEmpty)
    }

    @Test("REACTOR_FAULTS: seed:rate[:kinds] parses; a bad value says which part and what fits")
    func parsing() throws {
        #expect(try FaultInjection(parsing: "7:0.05") == FaultInjection(seed: 7, rate: 0.05, kinds: .transparent))
        #expect(try FaultInjection(parsing: "7:1:reset,pipe").kinds == [.connectionReset, .brokenPipe])
        #expect(try FaultInjection(parsing: "0:0.5:fatal,eintr").kinds == [.fatal, .interrupted])
        for (bad, says) in [("7", "1 parts"), ("x:0.1", "seed 'x'"), ("7:0", "rate '0'"), ("7:2", "rate '2'"),
                            ("7:0.1:sometimes", "unknown kind 'sometimes'"), ("7:0.1:", "no kinds")] {
            let error = #expect(throws: ReactorError.self) { try FaultInjection(parsing: bad) }
            #expect(error?.description.contains(says) == true, "\(bad): \(error.map { "\($0)" } ?? "no error")")
            #expect(error?.description.contains("expected seed:rate[:kinds]") == true)
        }
    }
}
