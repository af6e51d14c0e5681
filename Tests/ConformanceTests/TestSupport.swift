// Helpers shared by the conformance suite: descriptors (pipes, socket pairs,
// loopback TCP pairs), threads, clocks, and a probe that checks the Poller
// contract on every wait.
import Dispatch

import Reactor
import ReactorTestSupport
import SystemPackage
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Backend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}


// MARK: Descriptors

/// Raw descriptors a test owns; `closeAll()` (in a `defer`) closes whatever is
/// still open. Not closed in `deinit`: Swift may release an object after its
/// last use, which would close descriptors a poller still watches.
final class Descriptors {
    private(set) var open: Set<Int32> = []

    init() { Syscall.ignoreSIGPIPE() }

    /// A pipe, both ends non-blocking.
    func pipe() throws -> (reader: Int32, writer: Int32) {
        var fds: [Int32] = [-1, -1]
        guard Glibc.pipe(&fds) == 0 else { throw TestFailure("pipe: errno \(errno)") }
        track(fds[0]); track(fds[1])
        try setNonBlocking(fds[0]); try setNonBlocking(fds[1])
        return (fds[0], fds[1])
    }

    /// A connected AF_UNIX stream pair, both ends non-blocking.
    func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw TestFailure("socketpair: errno \(errno)")
        }
        track(fds[0]); track(fds[1])
        try setNonBlocking(fds[0]); try setNonBlocking(fds[1])
        return (fds[0], fds[1])
    }

    /// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
    func tcpListener(backlog: Int32 = 16) throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        track(fd)
        var address = loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, backlog) == 0 else { throw TestFailure("bind/listen: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestFailure("getsockname: errno \(errno)") }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A blocking client socket connected to 127.0.0.1:`port`; its reads
    /// time out after 5 s, so a server that never answers fails a test
    /// instead of hanging it.
    func tcpConnect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        track(fd)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestFailure("connect: errno \(errno)") }
        return fd
    }

    /// A non-blocking client socket with a connect to 127.0.0.1:`port` under way.
    func tcpConnectNonBlocking(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        track(fd)
        try setNonBlocking(fd)
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 || errno == EINPROGRESS else { throw TestFailure("connect: errno \(errno)") }
        return fd
    }

    /// A connected loopback TCP pair, both ends non-blocking.
    func tcpPair() throws -> (client: Int32, server: Int32) {
        let listener = try tcpListener()
        defer { close(listener.fd) }
        let client = try tcpConnect(port: listener.port)
        let server = accept(listener.fd, nil, nil)
        guard server >= 0 else { throw TestFailure("accept: errno \(errno)") }
        track(server)
        try setNonBlocking(client); try setNonBlocking(server)
        return (client, server)
    }

    func close(_ fd: Int32) {
        if open.remove(fd) != nil { _ = Glibc.close(fd) }
    }

    /// Closes a TCP socket with SO_LINGER 0, so the peer gets a reset.
    func reset(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    /// Stops tracking `fd`: a Resource has adopted it and will close it.
    func release(_ fd: Int32) -> FileDescriptor {
        open.remove(fd)
        return FileDescriptor(rawValue: fd)
    }

    func closeAll() {
        for fd in open { _ = Glibc.close(fd) }
        open.removeAll()
    }

    private func track(_ fd: Int32) { open.insert(fd) }
}

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

func setNonBlocking(_ fd: Int32) throws {
    let flags = fcntl(fd, F_GETFL)
    guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw TestFailure("fcntl: errno \(errno)") }
}

/// Writes `count` bytes (default 1); returns what write(2) returned and errno.
@discardableResult
func writeBytes(_ fd: Int32, count: Int = 1) -> (result: Int, errno: Int32) {
    let bytes = [UInt8](repeating: 0x61, count: count)
    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    return (n, n < 0 ? errno : 0)
}

/// Reads until the descriptor would block (or end of file); returns the byte count.
@discardableResult
func drain(_ fd: Int32) -> Int {
    var total = 0
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return total }
        total += n
    }
}

/// Fills a non-blocking descriptor until write(2) says EAGAIN.
func fill(_ fd: Int32) {
    let chunk = [UInt8](repeating: 0x62, count: 65536)
    while chunk.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) > 0 {}
}

/// `SO_ERROR` of a socket (0 when none).
func socketError(_ fd: Int32) -> Int32 {
    var code: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return -1 }
    return code
}

// MARK: Poller probe

/// Drives a Poller directly and checks, on every wait, the parts of the
/// contract that hold for any event: one event per descriptor per wait, only
/// registered tokens, readiness allowed by the interest, and `.error` or
/// `.hangup` accompanied by `.readable` under read interest.
final class PollerProbe {
    let poller: any Poller
    private(set) var interests: [Token: Interest] = [:]
    private var events: [PollEvent] = []

    init(_ backend: Backend) throws {
        poller = try backend.makePoller()
    }

    func register(_ fd: Int32, token: UInt64, interest: Interest) throws {
        try poller.register(FileDescriptor(rawValue: fd), token: Token(token), interest: interest)
        interests[Token(token)] = interest
    }

    func reregister(_ fd: Int32, from oldToken: UInt64, to token: UInt64, interest: Interest) throws {
        try poller.reregister(FileDescriptor(rawValue: fd), token: Token(token), interest: interest)
        interests[Token(oldToken)] = nil
        interests[Token(token)] = interest
    }

    func deregister(_ fd: Int32, token: UInt64) throws {
        try poller.deregister(FileDescriptor(rawValue: fd))
        interests[Token(token)] = nil
    }

    /// One wait, checked against the contract.
    func wait(_ timeout: Duration?, sourceLocation: SourceLocation = #_sourceLocation) throws -> [PollEvent] {
        try poller.wait(timeout: timeout, into: &events)
        var seen: Set<Token> = []
        for event in events {
            #expect(seen.insert(event.token).inserted, "two events for \(event.token) in one wait", sourceLocation: sourceLocation)
            guard let interest = interests[event.token] else {
                Issue.record("event \(event.readiness) for \(event.token), which is not registered", sourceLocation: sourceLocation)
                continue
            }
            #expect(!event.readiness.isEmpty, "empty readiness for \(event.token)", sourceLocation: sourceLocation)
            let allowed = PollerProbe.allowed(interest)
            #expect(allowed.isSuperset(of: event.readiness),
                    "\(event.token) with interest \(interest) reported \(event.readiness)", sourceLocation: sourceLocation)
            if interest.contains(.read), !event.readiness.isDisjoint(with: [.error, .hangup]) {
                #expect(event.readiness.contains(.readable),
                        "\(event.readiness) under read interest must come with readable", sourceLocation: sourceLocation)
            }
        }
        return events
    }

    /// Waits (up to `within`) for an event carrying `token`; nil if none came.
    func next(_ token: UInt64, within: Duration = .seconds(2), sourceLocation: SourceLocation = #_sourceLocation) throws -> Readiness? {
        let deadline = ContinuousClock.now + within
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return nil }
            if let event = try wait(left, sourceLocation: sourceLocation).first(where: { $0.token == Token(token) }) {
                return event.readiness
            }
        }
    }

    /// Expects no event at all over `duration`.
    func expectSilence(for duration: Duration = .milliseconds(30), _ why: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let deadline = ContinuousClock.now + duration
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return }
            let events = try wait(left, sourceLocation: sourceLocation)
            if !events.isEmpty {
                Issue.record("expected no events \(why), got \(events.map { "\($0.token) \($0.readiness)" })", sourceLocation: sourceLocation)
                return
            }
        }
    }

    static func allowed(_ interest: Interest) -> Readiness {
        var allowed: Readiness = []
        if interest.contains(.read) { allowed.formUnion([.readable, .readClosed, .error, .hangup]) }
        if interest.contains(.write) { allowed.formUnion([.writable, .error, .hangup]) }
        return allowed
    }
}

// MARK: A scripted Service

/// A Service whose callbacks are closures, for tests that run the runtime on
/// their own thread. It records which callbacks ran, checks that callbacks
/// never nest, and arms a watchdog timer that stops the runtime if a test
/// would otherwise hang.
final class ScriptedService: Service {
    enum Call: Equatable, CustomStringConvertible {
        case started, registered(ResourceID), event(ResourceID), disconnected(ResourceID), timer(TimerID), stopped
        var description: String {
            switch self {
            case .started: return "started"
            case .registered(let id): return "registered \(id)"
            case .event(let id): return "event \(id)"
            case .disconnected(let id): return "disconnected \(id)"
            case .timer(let id): return "\(id)"
            case .stopped: return "stopped"
            }
        }
    }

    var onStart: (Context) -> Void = { _ in }
    var onRegistered: (ResourceID, Context) -> Void = { _, _ in }
    var onEvent: (ResourceEvent, ResourceID, Context) -> Void = { _, _, _ in }
    var onDisconnect: (ResourceID, Resource, DisconnectReason, Context) -> Void = { _, _, _, _ in }
    var onTimer: (TimerID, Context) -> Void = { _, _ in }
    var onTurnEnd: (Context) -> Void = { _ in }
    var onStop: (Context) -> Void = { _ in }
    /// Called (on the runtime's thread) if the watchdog fires.
    var onWatchdog: () -> Void = {}

    private(set) var calls: [Call] = []
    private(set) var turnsEnded = 0
    private(set) var nestedCallbacks = 0
    private(set) var watchdogFired = false
    private var depth = 0
    private var watchdog: TimerID?
    private let watchdogDelay: Duration

    init(watchdog: Duration = .seconds(20)) { watchdogDelay = watchdog }

    private func enter() { if depth > 0 { nestedCallbacks += 1 }; depth += 1 }
    private func leave() { depth -= 1 }

    func runtimeStarted(context: Context) {
        enter(); defer { leave() }
        calls.append(.started)
        watchdog = context.schedule(after: watchdogDelay)
        onStart(context)
    }

    func resourceRegistered(_ resource: Resource, context: Context) {
        guard let id = resource.id else { return }
        enter(); defer { leave() }
        calls.append(.registered(id))
        onRegistered(id, context)
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        guard let id = resource.id else { return }
        enter(); defer { leave() }
        calls.append(.event(id))
        onEvent(event, id, context)
    }

    func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        guard let id = resource.id else { return }
        enter(); defer { leave() }
        calls.append(.disconnected(id))
        onDisconnect(id, resource, reason, context)
    }

    func timerFired(_ timer: TimerID, context: Context) {
        enter(); defer { leave() }
        if timer == watchdog {
            watchdogFired = true
            onWatchdog()
            context.stop()
            return
        }
        calls.append(.timer(timer))
        onTimer(timer, context)
    }

    func loopTurnEnded(context: Context) {
        enter(); defer { leave() }
        turnsEnded += 1
        onTurnEnd(context)
    }

    func runtimeStopped(context: Context) {
        enter(); defer { leave() }
        calls.append(.stopped)
        onStop(context)
    }

    func events(for id: ResourceID) -> Int { calls.count { $0 == .event(id) } }
}

/// Runs a runtime of poller type `P` around `service` on the calling thread
/// until it stops, after `setup` has registered what it needs, and checks
/// that the watchdog did not have to stop it and no callback nested.
@discardableResult
func runHere<P: Poller>(
    _ type: P.Type,
    _ service: ScriptedService,
    options: RuntimeOptions = RuntimeOptions(),
    sourceLocation: SourceLocation = #_sourceLocation,
    setup: (Context) throws -> Void = { _ in }
) throws -> Runtime<P, ScriptedService> {
    let runtime = try Runtime<P, ScriptedService>(service: service, options: options)
    try setup(runtime.context)
    try runtime.run()
    #expect(!service.watchdogFired, "the watchdog had to stop the runtime (\(P.name))", sourceLocation: sourceLocation)
    #expect(service.nestedCallbacks == 0, "callbacks nested", sourceLocation: sourceLocation)
    return runtime
}

/// Runs `body`, recording a thrown error as an issue (for Service callbacks, which cannot throw).
func attempt(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do { try body() } catch { Issue.record("\(error)", sourceLocation: sourceLocation) }
}

/// Options for tests that count loop turns: a turn at least every 5 ms.
let fastTurns = RuntimeOptions(loopTimeout: .milliseconds(5))

/// The backend's Poller type, to open with `func body<P: Poller>(_: P.Type)`.
func pollerType(of backend: Backend) throws -> any Poller.Type {
    guard let type = backend.pollerType else { throw TestFailure("\(backend) is not built into this binary") }
    return type
}
