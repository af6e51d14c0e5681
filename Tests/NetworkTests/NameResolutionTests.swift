// Names without blocking the loop, against a real DNS server of the test's
// own (Debian's dnsmasq on a loopback port, answering from a generated
// hosts file): A only, AAAA only, both, NXDOMAIN, a server that never
// answers, /etc/hosts; Happy Eyeballs over the answers; and 1,000 lookups
// in flight while the same loop keeps echoing.
import ExampleServices
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// dnsmasq on 127.0.0.1:port, answering for `*.test` from a hosts file and NXDOMAIN for other `.test` names.
final class TestDNS {
    let port: UInt16
    let child: ChildProcess
    private let directory: URL

    init(hosts: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("hosts")
        try hosts.write(to: file, atomically: true, encoding: .utf8)
        // dnsmasq binds the port for UDP and TCP; a port taken for either
        // makes it exit with status 2, so pick one free for both, and retry.
        var attempt = 0
        var started: (UInt16, ChildProcess)?
        while started == nil && attempt < 5 {
            attempt += 1
            started = try TestDNS.start(hosts: file, directory: directory)
        }
        guard let started else { throw TestFailure("dnsmasq did not start in 5 attempts") }
        (port, child) = started
    }

    /// One try: dnsmasq on a fresh port, or nil when the port was taken meanwhile.
    private static func start(hosts file: URL, directory: URL) throws -> (UInt16, ChildProcess)? {
        let port = try freeUDPPort()
        let child = try ChildProcess(executable: try Executables.tool("dnsmasq"), arguments: [
            "-d", "-p", "\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--addn-hosts=\(file.path)", "--local=/test/", "--pid-file=\(directory.appendingPathComponent("pid").path)",
            "--user=root",
        ], standardError: .file)
        // dnsmasq logs "started" on stderr once its sockets are bound (probing
        // the port with a bind of our own could make dnsmasq's fail).
        var log = ""
        let started = eventually(within: .seconds(20)) {
            log += child.readStandardError(within: .milliseconds(100))
            return log.contains("started") || !child.process.isRunning
        }
        guard started, child.process.isRunning else {
            if !child.process.isRunning && child.process.terminationStatus == 2 { return nil }  // the port was taken
            throw TestFailure("dnsmasq did not start (status \(child.process.isRunning ? 0 : child.process.terminationStatus)): \(log)")
        }
        return (port, child)
    }

    var server: String { "127.0.0.1:\(port)" }

    deinit {
        child.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A port nobody uses now for TCP (bound and released; TestDNS retries if UDP turns out taken).
func freeUDPPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { throw TestFailure("no free UDP port") }
    return UInt16(bigEndian: address.sin_port)
}

/// Runs `body` on a runtime of `backend` whose resolver asks `servers`, until `body`'s work calls `done`.
func withResolvingRuntime(_ backend: Backend, servers: [String]?, timeout: Duration = .seconds(2),
                          _ body: @escaping (Context, @escaping () -> Void) -> Void) throws {
    try withResolvingRuntime(backend, servers: servers, timeout: timeout, service: LoggingService()) { context, _, done in
        body(context, done)
    }
}

/// Runs `body` (before the loop starts; it may throw) on a runtime of
/// `backend` serving `service`, whose resolver asks `servers`, until
/// `body`'s work calls `done`.
func withResolvingRuntime<S: Service>(_ backend: Backend, servers: [String]?, timeout: Duration = .seconds(2), service: S,
                                      _ body: @escaping (Context, S, @escaping () -> Void) throws -> Void) throws {
    try backend.visit(ResolvingRun(servers: servers, timeout: timeout, service: service, body: body))
}

/// withResolvingRuntime's runtime, made for the backend's poller.
private struct ResolvingRun<S: Service>: PollerVisitor {
    let servers: [String]?, timeout: Duration
    let service: S
    let body: (Context, S, @escaping () -> Void) throws -> Void
    func visit<P: Poller>(_ type: P.Type) throws {
        var options = RuntimeOptions()
        options.resolver = ResolverConfiguration(servers: servers, timeout: timeout, tries: 1)
        let runtime = try Runtime<P, S>(service: service, options: options)
        let context = runtime.context
        try body(context, service) { context.stop() }
        try runtime.run()
    }
}

/// A Service that runs a closure when a runtime timer fires (the resources have handlers of their own).
final class TimerActions: Service {
    var actions: [TimerID: (Context) -> Void] = [:]

    /// Runs `action` on the runtime's thread after `delay`.
    func after(_ delay: Duration, context: Context, _ action: @escaping (Context) -> Void) {
        actions[context.schedule(after: delay)] = action
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
    func timerFired(_ timer: TimerID, context: Context) { actions.removeValue(forKey: timer)?(context) }
}

/// One ping-pong round trip of the echo client: when it was sent and when all of it was back.
struct RoundTrip: Sendable {
    var start: ContinuousClock.Instant
    var end: ContinuousClock.Instant
    var duration: Duration { end - start }
}

/// Ping-pong on a blocking socket to 127.0.0.1:`port`: `size` bytes out,
/// all `size` back, again, until `stop` holds, the server closes, or 60 s
/// pass. Returns every round trip; `completed` counts them as they happen,
/// and `corrupted` the replies that were not the bytes sent.
func pingPong(port: UInt16, size: Int, stop: Shared<Bool>, completed: Shared<Int>? = nil,
              corrupted: Shared<Int>? = nil) -> [RoundTrip] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return [] }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    let message = [UInt8](repeating: 0x70, count: size)
    var reply = [UInt8](repeating: 0, count: size)
    var trips: [RoundTrip] = []
    trips.reserveCapacity(200_000)
    let deadline = ContinuousClock.now + .seconds(60)
    while !stop.value {
        let start = ContinuousClock.now
        guard start < deadline, message.withUnsafeBytes({ send(fd, $0.baseAddress, size, Int32(MSG_NOSIGNAL)) }) == size else { break }
        var received = 0
        while received < size {
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + received, size - received, 0) }
            guard n > 0 else { return trips }
            received += n
        }
        trips.append(RoundTrip(start: start, end: .now))
        if reply != message { corrupted?.update { $0 += 1 } }
        completed?.update { $0 += 1 }
    }
    return trips
}

/// A UDP relay in front of a DNS server that holds every query it gets until
/// `release(when:)`'s condition holds, then forwards them, and every later
/// one, and relays the answers back by query id. It lets a test make "while
/// the lookups are in flight" a fact rather than a race with the clock.
final class GatedDNSRelay {
    let port: UInt16
    /// Queries received from the resolver (held or forwarded).
    let queries = Shared(0)
    private let stop = Shared(false)
    private let clientSide: Int32
    private let serverSide: Int32
    private var thread: TestThread?

    /// Relays to the DNS server on 127.0.0.1:`upstream`; queries wait until
    /// `release` holds (checked every millisecond while any are held).
    init(upstream: UInt16, release: @escaping @Sendable () -> Bool) throws {
        let clientSide = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        let serverSide = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(clientSide, $0, length) == 0 && getsockname(clientSide, $0, &length) == 0 }
        }
        var server = sockaddr_in()
        server.sin_family = sa_family_t(AF_INET)
        server.sin_addr.s_addr = inet_addr("127.0.0.1")
        server.sin_port = upstream.bigEndian
        let connected = withUnsafePointer(to: &server) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(serverSide, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard bound, connected else {
            close(clientSide); close(serverSide)
            throw TestFailure("DNS relay: bind or connect failed, errno \(errno)")
        }
        port = UInt16(bigEndian: address.sin_port)
        self.clientSide = clientSide
        self.serverSide = serverSide
        let (queries, stop) = (queries, stop)
        thread = try TestThread {
            var held: [[UInt8]] = []
            var released = false
            var askers: [UInt16: (sockaddr_storage, socklen_t)] = [:]
            var buffer = [UInt8](repeating: 0, count: 65536)
            var entries = [pollfd(fd: clientSide, events: Int16(POLLIN), revents: 0), pollfd(fd: serverSide, events: Int16(POLLIN), revents: 0)]
            while !stop.value {
                _ = poll(&entries, 2, 1)
                if entries[0].revents != 0 {
                    var from = sockaddr_storage()
                    var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                    let n = withUnsafeMutablePointer(to: &from) { pointer in
                        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                            buffer.withUnsafeMutableBytes { recvfrom(clientSide, $0.baseAddress, $0.count, 0, address, &fromLength) }
                        }
                    }
                    if n >= 12 {
                        queries.update { $0 += 1 }
                        askers[UInt16(buffer[0]) << 8 | UInt16(buffer[1])] = (from, fromLength)
                        held.append(Array(buffer[..<n]))
                    }
                }
                if entries[1].revents != 0 {
                    let n = buffer.withUnsafeMutableBytes { recv(serverSide, $0.baseAddress, $0.count, 0) }
                    if n >= 12, let asker = askers[UInt16(buffer[0]) << 8 | UInt16(buffer[1])] {
                        var to = asker.0
                        _ = withUnsafePointer(to: &to) { pointer in
                            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                                buffer.withUnsafeBytes { sendto(clientSide, $0.baseAddress, n, 0, address, asker.1) }
                            }
                        }
                    }
                }
                if !held.isEmpty && (released || release()) {
                    released = true
                    for query in held { _ = query.withUnsafeBytes { send(serverSide, $0.baseAddress, $0.count, 0) } }
                    held.removeAll()
                }
            }
        }
    }

    var server: String { "127.0.0.1:\(port)" }

    deinit {
        stop.update { $0 = true }
        thread?.join()
        close(clientSide)
        close(serverSide)
    }
}

@Suite("Name resolution", .serialized, .enabled(if: Executables.find("dnsmasq") != nil, "dnsmasq is not installed"))
struct NameResolutionTests {
    static let hosts = """
        127.0.0.1 a-only.test
        ::1 aaaa-only.test
        ::1 both.test
        127.0.0.1 both.test
        """

    @Test("A only, AAAA only, both (IPv6 first), NXDOMAIN, and /etc/hosts", arguments: Backend.underTest)
    func answers(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        var results: [String: String] = [:]
        try withResolvingRuntime(backend, servers: [dns.server]) { context, done in
            let names = ["a-only.test", "aaaa-only.test", "both.test", "missing.test"]
            var left = names.count
            for name in names {
                context.resolver.resolve(name, port: 80) { result in
                    switch result {
                    case .success(let addresses): results[name] = addresses.map(\.description).joined(separator: " ")
                    case .failure(let error): results[name] = "\(error)"
                    }
                    left -= 1
                    if left == 0 { done() }
                }
            }
        }
        #expect(results["a-only.test"] == "127.0.0.1:80")
        #expect(results["aaaa-only.test"] == "[::1]:80")
        #expect(results["both.test"] == "[::1]:80 127.0.0.1:80")
        #expect(results["missing.test"] == "resolve(missing.test): no such host (NXDOMAIN)")

        var localhost = ""
        try withResolvingRuntime(backend, servers: nil) { context, done in
            context.resolver.resolve("localhost", port: 7) { result in
                localhost = (try? result.get().map(\.description).joined(separator: " ")) ?? "\(result)"
                done()
            }
        }
        #expect(localhost.contains("127.0.0.1:7"), "/etc/hosts's localhost: \(localhost)")
    }

    @Test("a DNS server that never answers: the lookup times out, saying after how long and which servers", arguments: Backend.underTest)
    func silentServer(_ backend: Backend) throws {
        // A bound UDP socket that never reads: queries vanish.
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        let server = "127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        var outcome = ""
        let started = ContinuousClock.now
        try withResolvingRuntime(backend, servers: [server], timeout: .milliseconds(600)) { context, done in
            context.resolver.resolve("db.test", port: 6379) { result in
                outcome = "\(result)"
                done()
            }
        }
        // The configured timeout ended it (the message says which), never before it passed.
        #expect(outcome.contains("resolve(db.test): timed out: no answer in 1 try of 0.6 seconds (servers \(server))"), "\(outcome)")
        #expect(elapsed(since: started) >= .milliseconds(600))
    }

    @Test("Happy Eyeballs: IPv6 refuses, IPv4 answers; and every address refusing is one error naming each",
          arguments: Backend.underTest)
    func happyEyeballs(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        // Something listens on 127.0.0.1:P only; [::1]:P refuses.
        let listener = try connectableIPv4Listener()
        defer { close(listener.fd) }
        var connectedTo = ""
        var refused = ""
        try withResolvingRuntime(backend, servers: [dns.server]) { context, done in
            context.connect(host: "both.test", port: listener.port) { result in
                switch result {
                case .success(let stream):
                    connectedTo = (try? stream.peerAddress().description) ?? "?"
                    stream.close()
                case .failure(let error):
                    connectedTo = "\(error)"
                }
                // Nothing listens on port 9 anywhere: both addresses refuse.
                context.connect(host: "both.test", port: 9) { result in
                    refused = "\(result)"
                    done()
                }
            }
        }
        #expect(connectedTo == "127.0.0.1:\(listener.port)")
        #expect(refused.contains("connect(both.test:9): every address failed: [::1]:9 ECONNREFUSED (Connection refused), 127.0.0.1:9 ECONNREFUSED (Connection refused)"), "\(refused)")
    }

    @Test("1,000 resolutions in flight on one runtime all answer", arguments: Backend.underTest)
    func thousandInFlight(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        var answered = 0
        var failures: [String] = []
        try withResolvingRuntime(backend, servers: [dns.server], timeout: .seconds(5)) { context, done in
            for index in 0..<1000 {
                context.resolver.resolve(index % 2 == 0 ? "a-only.test" : "both.test", port: 1) { result in
                    if case .failure(let error) = result { failures.append("\(error)") } else { answered += 1 }
                    if answered + failures.count == 1000 { done() }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(answered == 1000)
    }

    /// One runtime serves an echo listener and its resolver; a client on a
    /// thread of its own ping-pongs 64 B against the echo. The runtime starts
    /// 1,000 lookups at once, through a relay that holds every query until
    /// the client has completed 200 more round trips: a loop that blocked on
    /// a lookup (getaddrinfo on the loop's thread) would never echo them, and
    /// the test would end at its watchdog. Then dnsmasq answers them all, and
    /// the round trips go on. How much the answers delay the echo is a
    /// benchmark's question (reactor-bench's responsiveness scenario), not
    /// this test's.
    @Test("1,000 resolutions in flight while the loop keeps echoing; every lookup answered, no echo lost", arguments: Backend.underTest)
    func echoWhileResolving(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        let stop = Shared(false)
        let completed = Shared(0)
        let corrupted = Shared(0)
        let atFirstQuery = Shared<Int?>(nil)
        let relay = try GatedDNSRelay(upstream: dns.port) {
            let now = completed.value
            let first = atFirstQuery.update { first in
                if first == nil { first = now }
                return first!
            }
            return now >= first + 200
        }
        var client: TestThread?
        var answered = 0
        var failures: [String] = []
        var echoedWhileHeld = 0
        var echoedAfter = 0
        let count = 1000
        try withResolvingRuntime(backend, servers: [relay.server], timeout: .seconds(60), service: TimerActions()) { context, timers, done in
            let listener = try listen(context, handler: EchoHandler())
            let port = listener.localAddress.port
            client = try TestThread { _ = pingPong(port: port, size: 64, stop: stop, completed: completed, corrupted: corrupted) }
            func startLookups(_ context: Context) {
                // Once the client is under way (a watchdog ends the test if it never gets there).
                guard completed.value >= 50 else { return timers.after(.milliseconds(10), context: context, startLookups) }
                for index in 0..<count {
                    context.resolver.resolve(index % 2 == 0 ? "a-only.test" : "both.test", port: 1) { result in
                        if case .failure(let error) = result { failures.append("\(error)") } else { answered += 1 }
                        guard answered + failures.count == count else { return }
                        echoedWhileHeld = completed.value - (atFirstQuery.value ?? completed.value)
                        // Round trips go on after the answers: 50 more, then the loop stops.
                        let atAnswers = completed.value
                        func finish(_ context: Context) {
                            guard completed.value >= atAnswers + 50 else { return timers.after(.milliseconds(10), context: context, finish) }
                            echoedAfter = completed.value - atAnswers
                            stop.update { $0 = true }
                            timers.after(.milliseconds(50), context: context) { _ in done() }
                        }
                        finish(context)
                    }
                }
            }
            startLookups(context)
        }
        stop.update { $0 = true }
        client?.join()
        print("echo while resolving, \(backend): \(answered) of \(count) lookups answered through \(relay.queries.value) queries; "
              + "\(echoedWhileHeld) round trips while they were held, \(echoedAfter) after the answers, \(completed.value) in all")
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(answered == count)
        #expect(echoedWhileHeld >= 200, "the loop echoed \(echoedWhileHeld) round trips with the lookups in flight")
        #expect(echoedAfter >= 50)
        #expect(corrupted.value == 0, "\(corrupted.value) echoes were not the bytes sent")
    }
}

/// A TCP listener on 127.0.0.1 with a free port (accepts nothing; the kernel completes handshakes into its backlog).
func connectableIPv4Listener() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok, listen(fd, 16) == 0 else { throw TestFailure("listener: errno \(errno)") }
    return (fd, UInt16(bigEndian: address.sin_port))
}
