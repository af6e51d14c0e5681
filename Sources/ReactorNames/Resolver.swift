#if canImport(CAres)
import CAres
#endif
import CReactorSys
import ReactorCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Names to addresses without blocking the loop.
///
/// **Why c-ares on the runtime's own poller** rather than `getaddrinfo` on
/// worker threads (libuv's and SwiftNIO's way): a runtime already waits on
/// a poller, so c-ares's sockets become resources of it and an answer is
/// one more event on the runtime's thread — no thread hand-off, no pool to
/// size, no queue that 1,000 slow lookups can fill. And c-ares can be
/// pointed at given servers per runtime (`ares_set_servers_ports_csv`),
/// which `getaddrinfo` cannot without changing the process's resolv.conf.
/// It reads `/etc/hosts` and `/etc/resolv.conf` as libc does, the
/// `options timeout:` and `attempts:` there included (``ResolverConfiguration``).
///
/// Measured (NameResolutionTests, a debug build on 2 vCPUs): 1,000 lookups
/// started from one callback against a local dnsmasq all answer in 43–61
/// ms, at most ``maximumInFlight`` of them per loop turn. A client
/// ping-ponging 64 B with an echo on the same runtime sees round trips of
/// p50 24–30 µs and p99 40–62 µs before; while the lookups run, a round
/// trip waits for at most one such turn — p50 about 2 ms, the slowest
/// 3.5–12 ms — where a lookup that held the loop for 0.1 ms (a blocking
/// `getaddrinfo` against a local server) stalled it 180–210 ms.
///
/// One resolver per runtime (``Context/resolver``), used on its thread.
/// Answers arrive through the completion, after the callback that asked has
/// returned; each lists IPv6 and IPv4 addresses interleaved, IPv6 first
/// (RFC 8305's order).
public final class Resolver {
    /// The settings asked for.
    public let configuration: ResolverConfiguration
    /// How long one query waits for its answer: the configuration's, else resolv.conf's (or `RES_OPTIONS`'s), else 5 s.
    public let timeout: Duration
    /// Rounds over the servers before a lookup fails: the configuration's, else resolv.conf's (or `RES_OPTIONS`'s), else 2.
    public let tries: Int
    unowned let context: Context

    #if canImport(CAres)
    private var channel: ares_channel?
    #if DEBUG
    /// Set once ares_destroy has returned: no callback may reach the resolver after it.
    private var channelDestroyed = false
    #endif
    /// c-ares's sockets, registered as resources of the runtime.
    var sockets: [Int32: ResolverSocket] = [:]
    /// The timer that drives c-ares's retries and timeouts.
    private var retryTimer: TimerID?
    /// The failure answers of the lookups in flight (see ``ServerFailures``).
    var serverFailures = ServerFailures()
    #endif
    /// Lookups waiting for an answer (in c-ares, or queued behind ``maximumInFlight``).
    public var pendingCount: Int { inFlight + waiting.count - waitingHead }
    /// Lookups handed to c-ares at once; the rest queue in order. c-ares
    /// 1.18 sends every query of a channel from one UDP socket, whose
    /// receive buffer (`net.core.rmem_max`, 208 KiB here) holds about 128
    /// answers: 1,000 lookups at once lost all but 128 of theirs (measured),
    /// so at most 48 (96 queries, A and AAAA) are in c-ares at a time.
    public static let maximumInFlight = 48
    private var inFlight = 0
    private var waiting: [(host: String, port: UInt16, completion: (Result<[SocketAddress], ReactorError>) -> Void)] = []
    private var waitingHead = 0

    /// A resolver for `context`'s runtime; ``Context/resolver`` makes the one a runtime uses.
    init(context: Context, configuration: ResolverConfiguration) {
        self.context = context
        self.configuration = configuration
        let system = ResolvConfOptions.read(path: configuration.resolvConf, environment: getenv("RES_OPTIONS").map { String(cString: $0) })
        timeout = configuration.timeout ?? system.timeout ?? .seconds(5)
        tries = max(1, configuration.tries ?? system.attempts ?? 2)
    }

    /// Set while the runtime stops: answers (cancellations) are delivered at once.
    var isShuttingDown = false

    /// Ends every lookup with a "cancelled: the runtime stopped" error and
    /// closes c-ares's sockets; the runtime calls it as it stops.
    func shutDown() {
        isShuttingDown = true
        #if canImport(CAres)
        if let channel {
            self.channel = nil
            ares_destroy(channel)  // calls every pending lookup's callback with ARES_EDESTRUCTION
            #if DEBUG
            channelDestroyed = true
            #endif
        }
        #endif
    }

    /// Resolves `host` (a name, or a numeric address, which answers at once
    /// without asking anyone) and calls `completion` on the runtime's thread
    /// with its addresses for `port`, or an error that says what and why:
    /// `resolve(db.internal): no such host (NXDOMAIN)`,
    /// `resolve(db.internal): server failure (SERVFAIL from 127.0.0.1:5353)`,
    /// `resolve(db.internal): timed out: no answer in 2 tries of 5.0 seconds (servers 127.0.0.1:5353)`.
    public func resolve(_ host: String, port: UInt16,
                        completion: @escaping (Result<[SocketAddress], ReactorError>) -> Void) {
        // c-ares, like inet_pton, reads a C string: a NUL would make it look up a shorter name.
        guard !host.utf8.contains(0) else {
            let error = ReactorError("resolve", .named(host), detail: "a host name cannot contain a NUL byte")
            context.runAfterCallback { completion(.failure(error)) }
            return
        }
        if Resolver.isNumeric(host), let numeric = try? SocketAddress(host: host, port: port) {
            context.runAfterCallback { completion(.success([numeric])) }
            return
        }
        #if canImport(CAres)
        guard inFlight < Resolver.maximumInFlight && waitingHead == waiting.count else {
            waiting.append((host, port, completion))
            return
        }
        startLookup(host, port: port, completion: completion)
        rearmTimer()
        #else
        let error = ReactorError("resolve", .named(host), detail: "not built: install Debian's libc-ares-dev and rebuild clean (rm -rf .build)")
        context.runAfterCallback { completion(.failure(error)) }
        #endif
    }

    #if canImport(CAres)
    private func startLookup(_ host: String, port: UInt16, completion: @escaping (Result<[SocketAddress], ReactorError>) -> Void) {
        do throws(ReactorError) {
            let channel = try openChannel()
            let request = ResolverRequest(host: host, port: port, tries: tries, resolver: self, completion: completion)
            inFlight += 1
            ask(request, on: channel)
        } catch {
            context.runAfterCallback { completion(.failure(error)) }
        }
    }

    /// One round of `request` over the servers (c-ares asks each once; ``tries`` rounds are ours, see openChannel).
    private func ask(_ request: ResolverRequest, on channel: ares_channel) {
        var hints = ares_addrinfo_hints()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        // Sound: the retained request is released exactly once, in the callback,
        // which c-ares calls exactly once per lookup (with ARES_EDESTRUCTION at worst).
        let argument = Unmanaged.passRetained(request).toOpaque()
        ares_getaddrinfo(channel, request.host, nil, &hints, { argument, status, timeouts, result in
            let request = Unmanaged<ResolverRequest>.fromOpaque(argument!).takeRetainedValue()
            #if DEBUG
            precondition(request.resolver.inFlight > 0, "c-ares answered a lookup the resolver does not count as in flight")
            #endif
            request.finish(status: status, result: result)
            if let result { ares_freeaddrinfo(result) }
        }, argument)
    }

    /// Asks again after a round timed out, while rounds are left; false when none is.
    func askAgain(_ request: ResolverRequest) -> Bool {
        guard request.triesLeft > 1, !isShuttingDown, let channel else { return false }
        request.triesLeft -= 1
        ask(request, on: channel)
        return true
    }
    #endif

    /// Whether `host` is a numeric IPv4 or IPv6 address, without making an
    /// error for every name as `SocketAddress(host:port:)` does (about 10 µs
    /// each in a debug build: two thirds of the cost of starting a burst
    /// of 1,000 lookups from one callback, measured).
    static func isNumeric(_ host: String) -> Bool {
        var address = in6_addr()
        return inet_pton(host.contains(":") ? AF_INET6 : AF_INET, host, &address) == 1
    }

    /// The servers asked, for error messages.
    var serversDescription: String {
        configuration.servers?.joined(separator: ", ") ?? "from \(configuration.resolvConf)"
    }

    #if canImport(CAres)
    private func openChannel() throws(ReactorError) -> ares_channel {
        if let channel { return channel }
        _ = Resolver.libraryReady
        var options = ares_options()
        // c-ares asks each server once per lookup, waiting `timeout` each
        // time; the rounds are ours (askAgain). Given its own tries, c-ares
        // doubles the wait every round (1 s then 2 s for timeout:1
        // attempts:2, where glibc waits 1 s then 1 s).
        options.timeout = Int32(clamping: max(1, timeout.nanoseconds / 1_000_000))
        options.tries = 1
        options.sock_state_cb = { data, fd, readable, writable in
            let resolver = Unmanaged<Resolver>.fromOpaque(data!).takeUnretainedValue()
            #if DEBUG
            precondition(!resolver.channelDestroyed, "a c-ares socket callback after the resolver's channel was destroyed")
            #endif
            resolver.socketStateChanged(fd, readable: readable != 0, writable: writable != 0)
        }
        // Sound: unretained — the channel is destroyed in deinit, before the resolver is freed.
        options.sock_state_cb_data = Unmanaged.passUnretained(self).toOpaque()
        let mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_RESOLVCONF
        var created: ares_channel?
        // c-ares copies the path during the call.
        let status = configuration.resolvConf.withCString { path in
            options.resolvconf_path = UnsafeMutablePointer(mutating: path)
            return ares_init_options(&created, &options, mask)
        }
        guard status == ARES_SUCCESS, let created else {
            throw ReactorError("resolve", detail: "c-ares could not start: \(String(cString: ares_strerror(status)))")
        }
        // Sound: unretained, as sock_state_cb_data above.
        ares_set_socket_functions(created, Resolver.socketFunctions, Unmanaged.passUnretained(self).toOpaque())
        if let servers = configuration.servers {
            let csv = servers.joined(separator: ",")
            let status = ares_set_servers_ports_csv(created, csv)
            guard status == ARES_SUCCESS else {
                ares_destroy(created)
                throw ReactorError("resolve", .named(csv), detail: "bad DNS server list: \(String(cString: ares_strerror(status)))")
            }
        }
        channel = created
        return created
    }

    private static let libraryReady: Bool = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS

    /// c-ares opened, changed or is about to close one of its sockets.
    private func socketStateChanged(_ fd: Int32, readable: Bool, writable: Bool) {
        var interest: Interest = []
        if readable { interest.insert(.read) }
        if writable { interest.insert(.write) }
        if let socket = sockets[fd] {
            if interest == .none {
                // c-ares closes the descriptor right after this: take it out of the poller first.
                sockets[fd] = nil
                socket.close()
            } else {
                socket.setInterest(interest)
            }
            return
        }
        guard interest != .none else { return }
        let socket = ResolverSocket(fd: FileDescriptor(rawValue: fd), interest: interest, resolver: self)
        do {
            try context.register(socket)
            sockets[fd] = socket
        } catch {
            context.logger.warning("resolver socket not watched: \(error)")
        }
    }

    /// Hands c-ares what a socket is ready for (or, with neither, lets it
    /// retry and time out), then starts queued lookups in the places freed.
    func process(read: Int32, write: Int32) {
        guard let channel, !isShuttingDown else { return }
        ares_process_fd(channel, read, write)
        startQueued()
        rearmTimer()
    }

    /// Hands queued lookups to c-ares while fewer than
    /// ``maximumInFlight`` are there. Only after `ares_process_fd` returns,
    /// never from the callback of a lookup that ended inside it: c-ares reads
    /// its socket until it would block, so a lookup started there is often
    /// answered in the same call, and the next, and so on — 1,000 queued
    /// lookups were answered 100–270 per call, stalling the loop 3–14 ms
    /// each time (debug build, measured in NameResolutionTests). Started
    /// here, one call answers at most the lookups already in flight.
    private func startQueued() {
        while inFlight < Resolver.maximumInFlight && waitingHead < waiting.count {
            let next = waiting[waitingHead]
            waitingHead += 1
            // A lookup c-ares answers at once (from /etc/hosts) ends inside this call, freeing its place again.
            startLookup(next.host, port: next.port, completion: next.completion)
        }
        if waitingHead > 0 && waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingHead = 0
        }
    }

    /// c-ares's next deadline (a retry or a timeout), as a resource timer of
    /// one of its sockets or, with none open yet, a short poll.
    private func rearmTimer() {
        guard let channel else { return }
        if let retryTimer { context.cancel(retryTimer) }
        retryTimer = nil
        guard inFlight > 0 else { return }
        var limit = timeval(tv_sec: 1, tv_usec: 0)
        var next = timeval()
        let result = ares_timeout(channel, &limit, &next)
        let delay = Duration.seconds(Int64(result?.pointee.tv_sec ?? 1)) + .microseconds(Int64(result?.pointee.tv_usec ?? 0))
        // Resource timers die with their resource, so the timer belongs to the
        // resolver's own tick resource, which lives as long as lookups are pending.
        retryTimer = ticker.map { context.schedule(after: max(delay, .milliseconds(1)), for: $0) } ?? nil
    }

    /// A resource that only carries the retry timer (an eventfd that is never signalled).
    private lazy var ticker: ResolverTicker? = {
        guard let ticker = try? ResolverTicker(resolver: self) else { return nil }
        do { try context.register(ticker) } catch { return nil }
        return ticker
    }()

    func tick() {
        retryTimer = nil
        process(read: ARES_SOCKET_BAD, write: ARES_SOCKET_BAD)
    }

    func requestFinished() {
        inFlight -= 1
        if inFlight == 0 { serverFailures.removeAll() }  // notes no lookup will ask for
        guard !isShuttingDown else {
            // The runtime stops: the queued lookups end too, said so.
            let queued = waiting[waitingHead...]
            waiting = []
            waitingHead = 0
            for lookup in queued {
                lookup.completion(.failure(ReactorError("resolve", .named(lookup.host), detail: "cancelled: the runtime stopped")))
            }
            return
        }
        // The next queued lookup starts once c-ares has returned (startQueued), not from inside its callback.
    }
    #endif
}

#if canImport(CAres)
/// One lookup in flight.
final class ResolverRequest {
    let host: String
    let port: UInt16
    /// Rounds over the servers still allowed, this one included.
    var triesLeft: Int
    unowned let resolver: Resolver
    let completion: (Result<[SocketAddress], ReactorError>) -> Void

    init(host: String, port: UInt16, tries: Int, resolver: Resolver, completion: @escaping (Result<[SocketAddress], ReactorError>) -> Void) {
        self.host = host
        self.port = port
        self.triesLeft = tries
        self.resolver = resolver
        self.completion = completion
    }

    func finish(status: Int32, result: UnsafeMutablePointer<ares_addrinfo>?) {
        if status == ARES_ETIMEOUT && resolver.askAgain(self) { return }
        // Taken before requestFinished, which forgets every note once no lookup is in flight.
        let answers = status == ARES_ECONNREFUSED ? resolver.serverFailures.take(for: host) : []
        resolver.requestFinished()
        let outcome: Result<[SocketAddress], ReactorError>
        if status == ARES_SUCCESS, let result {
            var v6: [SocketAddress] = []
            var v4: [SocketAddress] = []
            var node = result.pointee.nodes
            while let current = node {
                if let address = current.pointee.ai_addr,
                   let parsed = SocketAddress(sockaddr: address, length: socklen_t(current.pointee.ai_addrlen), port: port) {
                    if parsed.family == AF_INET6 { v6.append(parsed) } else { v4.append(parsed) }
                }
                node = current.pointee.ai_next
            }
            outcome = v6.isEmpty && v4.isEmpty ? .failure(failure("no addresses")) : .success(Resolver.interleave(v6, v4))
        } else {
            outcome = .failure(failure(answers.isEmpty ? Resolver.explain(status, resolver: resolver) : ServerFailures.describe(answers)))
        }
        let completion = completion
        if resolver.isShuttingDown { completion(outcome) } else { resolver.context.runAfterCallback { completion(outcome) } }
    }

    private func failure(_ detail: String) -> ReactorError {
        ReactorError("resolve", .named(host), detail: detail)
    }
}

/// One of c-ares's sockets, watched by the runtime; c-ares owns (and closes) the descriptor.
final class ResolverSocket: Resource {
    unowned let resolver: Resolver

    init(fd: FileDescriptor, interest: Interest, resolver: Resolver) {
        self.resolver = resolver
        super.init(borrowing: fd, interest: interest)
    }

    override var kind: String { "resolver-socket" }

    override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        let readable = !readiness.isDisjoint(with: [.readable, .error, .hangup])
        resolver.process(read: readable ? fd.rawValue : ARES_SOCKET_BAD,
                         write: readiness.contains(.writable) ? fd.rawValue : ARES_SOCKET_BAD)
        return .active
    }
}

/// Carries the resolver's retry timer: a resource timer needs a resource.
final class ResolverTicker: Resource {
    unowned let resolver: Resolver

    init(resolver: Resolver) throws(ReactorError) {
        self.resolver = resolver
        let fd = try Syscall.check("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        super.init(fd: FileDescriptor(rawValue: fd), interest: .none)
    }

    override var kind: String { "resolver-timer" }

    override func timerFired(_ timer: TimerID, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        resolver.tick()
        return .active
    }
}

extension Resolver {
    /// RFC 8305 §4: alternate families, IPv6 first.
    static func interleave(_ v6: [SocketAddress], _ v4: [SocketAddress]) -> [SocketAddress] {
        var result: [SocketAddress] = []
        for index in 0..<max(v6.count, v4.count) {
            if index < v6.count { result.append(v6[index]) }
            if index < v4.count { result.append(v4[index]) }
        }
        return result
    }

    /// c-ares's status, in words a user can act on. (A SERVFAIL, REFUSED or
    /// NOTIMP answer reaches here as `ARES_ECONNREFUSED`, and is described
    /// from the answers instead when one was seen: ``ServerFailures``.)
    static func explain(_ status: Int32, resolver: Resolver) -> String {
        let servers = "(servers \(resolver.serversDescription))"
        switch status {
        case ARES_ENOTFOUND: return "no such host (NXDOMAIN)"
        case ARES_ENODATA: return "the name has no addresses (NODATA)"
        case ARES_ETIMEOUT:
            let rounds = resolver.tries == 1 ? "1 try" : "\(resolver.tries) tries"
            return "timed out: no answer in \(rounds) of \(resolver.timeout) \(servers)"
        case ARES_ECONNREFUSED: return "no DNS server answered: each was unreachable or failed the query \(servers)"
        case ARES_ESERVFAIL: return "server failure (SERVFAIL) \(servers)"
        case ARES_EREFUSED: return "query refused (REFUSED) \(servers)"
        case ARES_ENOTIMP: return "query not implemented (NOTIMP) \(servers)"
        case ARES_EFORMERR: return "the DNS server could not read the query (FORMERR) \(servers)"
        case ARES_EBADRESP: return "malformed answer from the DNS server \(servers)"
        case ARES_EOF: return "the DNS server closed the connection before answering \(servers)"
        case ARES_EBADNAME: return "not a valid host name"
        case ARES_ENOMEM: return "out of memory"
        case ARES_EDESTRUCTION, ARES_ECANCELLED: return "cancelled: the runtime stopped"
        default: return "\(String(cString: ares_strerror(status))) (c-ares status \(status))"
        }
    }
}
#endif

extension Context {
    /// This runtime's resolver (made on first use, with
    /// ``RuntimeOptions/resolver``): names to addresses without blocking.
    public var resolver: Resolver {
        if let existing = resolverStorage as? Resolver { return existing }
        let made = Resolver(context: self, configuration: resolverConfiguration)
        resolverStorage = made
        // Pending lookups end with "cancelled" and c-ares's sockets close as the runtime stops.
        stopHooks.append { [unowned made] in made.shutDown() }
        return made
    }
}
