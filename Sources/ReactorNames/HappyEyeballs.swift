import ReactorCore

/// How a connection by name is made (RFC 8305, Happy Eyeballs v2).
public struct ConnectOptions: Sendable {
    /// The delay before the next address is tried while earlier attempts
    /// are still under way (RFC 8305's recommended 250 ms).
    public var attemptDelay: Duration
    /// The longest one address's connect may take.
    public var attemptTimeout: Duration
    /// The longest the whole connection may take, resolution included.
    public var timeout: Duration
    /// Options of the stream that wins.
    public var stream: StreamOptions
    /// TLS for the stream; its server name defaults to the host connected to.
    public var tls: StreamTLSOptions?

    /// Happy Eyeballs with RFC 8305's stagger, a 5 s attempt and a 10 s overall timeout.
    public init(attemptDelay: Duration = .milliseconds(250), attemptTimeout: Duration = .seconds(5),
                timeout: Duration = .seconds(10), stream: StreamOptions = StreamOptions(), tls: StreamTLSOptions? = nil) {
        self.attemptDelay = attemptDelay
        self.attemptTimeout = attemptTimeout
        self.timeout = timeout
        self.stream = stream
        self.tls = tls
    }
}

extension Context {
    /// Connects to `host:port` without blocking the loop: resolves the name
    /// (``resolver``), then races the addresses Happy-Eyeballs style — IPv6
    /// first, the next address every ``ConnectOptions/attemptDelay`` while
    /// none has answered, the first to connect wins and the others are
    /// closed. `completion` gets the winning stream, registered and
    /// connected (set its handler there), or an error that says what failed
    /// for each address:
    /// `connect(db.internal:6379): every address failed: [::1]:6379 ECONNREFUSED (Connection refused), 127.0.0.1:6379 ECONNREFUSED (Connection refused)`.
    /// The race it returns says what it is waiting for, for a caller whose
    /// own deadline passes first (``ConnectionRace/progress``).
    @discardableResult
    public func connect(host: String, port: UInt16, options: ConnectOptions = ConnectOptions(),
                        completion: @escaping (Result<SocketStream, ReactorError>) -> Void) -> ConnectionRace {
        let race = ConnectionRace(host: host, port: port, options: options, context: self, completion: completion)
        race.start()
        return race
    }
}

/// Where a connection by name is.
public enum ConnectProgress: Sendable, Equatable, CustomStringConvertible {
    /// Waiting for the host's addresses.
    case resolving(String)
    /// Waiting for one of these addresses to accept (the attempts under way).
    case connecting([SocketAddress])
    /// Connected, or failed: the completion was called.
    case finished

    /// `resolving db.internal`, `connecting to [::1]:6379, 127.0.0.1:6379`, `finished`.
    public var description: String {
        switch self {
        case .resolving(let host): return "resolving \(host)"
        case .connecting(let addresses): return "connecting to " + addresses.map(\.description).joined(separator: ", ")
        case .finished: return "finished"
        }
    }
}

/// One connection by name: the resolution, then the attempts, each a
/// stream whose handler this is until one wins.
public final class ConnectionRace: ResourceHandler {
    let host: String
    let port: UInt16
    let options: ConnectOptions
    unowned let context: Context
    private var completion: ((Result<SocketStream, ReactorError>) -> Void)?
    private var addresses: [SocketAddress] = []
    private var nextAddress = 0
    private var attempts: [SocketStream] = []
    private var failures: [String] = []
    private var staggerTimer: TimerID?
    private var deadline = MonotonicInstant.now()
    /// What the race is waiting for now.
    public private(set) var progress: ConnectProgress

    init(host: String, port: UInt16, options: ConnectOptions, context: Context,
         completion: @escaping (Result<SocketStream, ReactorError>) -> Void) {
        self.host = host
        self.port = port
        self.options = options
        self.context = context
        self.completion = completion
        progress = .resolving(host)
    }

    private var name: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func start() {
        deadline = MonotonicInstant.now().advanced(by: options.timeout)
        // The race holds itself through the resolver's completion and then through its attempts' handler.
        context.resolver.resolve(host, port: port) { [self] result in
            switch result {
            case .success(let found):
                addresses = found
                attemptNext()
            case .failure(let error):
                finish(.failure(error))
            }
        }
    }

    /// Starts the next address, and arms the stagger for the one after it.
    private func attemptNext() {
        guard completion != nil else { return }
        while nextAddress < addresses.count {
            let address = addresses[nextAddress]
            nextAddress += 1
            let remaining = MonotonicInstant.now().duration(until: deadline)
            guard remaining > .zero else { break }
            do throws(ReactorError) {
                var tls = options.tls
                if tls != nil && tls?.serverName == nil { tls?.serverName = host }
                let stream = try SocketStream.connect(to: address, timeout: min(options.attemptTimeout, remaining),
                                                      options: options.stream, tls: tls)
                stream.handler = self
                try context.register(stream)
                attempts.append(stream)
                progress = .connecting(attempts.compactMap(\.remoteAddress))
                if nextAddress < addresses.count {
                    staggerTimer = context.schedule(after: options.attemptDelay, for: stream)
                }
                return
            } catch {
                failures.append("\(address) \(Self.reason(error))")
            }
        }
        if attempts.isEmpty { finishFailed() }
    }

    public func handle(_ event: ResourceEvent, on stream: SocketStream, context: Context) {
        switch event {
        case .connected:
            won(stream)
        case .timerFired(let timer) where timer == staggerTimer:
            staggerTimer = nil
            attemptNext()
        default:
            break
        }
    }

    public func resourceDisconnected(_ stream: SocketStream, reason: DisconnectReason, context: Context) {
        attempts.removeAll { $0 === stream }
        if completion != nil { progress = .connecting(attempts.compactMap(\.remoteAddress)) }
        if case .failed(let error) = reason, let address = stream.remoteAddress {
            failures.append("\(address) \(Self.reason(error))")
        }
        guard completion != nil else { return }
        // An attempt failed: the next address need not wait for the stagger.
        if let staggerTimer { context.cancel(staggerTimer) }
        staggerTimer = nil
        attemptNext()
    }

    private func won(_ stream: SocketStream) {
        if let staggerTimer { context.cancel(staggerTimer) }
        staggerTimer = nil
        for loser in attempts where loser !== stream {
            loser.handler = nil
            loser.close()
        }
        attempts = []
        stream.handler = nil  // the caller's to set, in the completion
        finish(.success(stream))
    }

    private func finishFailed() {
        let detail = failures.isEmpty ? "no address answered within \(options.timeout)"
                                      : "every address failed: " + failures.joined(separator: ", ")
        finish(.failure(ReactorError("connect", .named(name), detail: detail)))
    }

    private func finish(_ result: Result<SocketStream, ReactorError>) {
        guard let completion else { return }
        self.completion = nil
        progress = .finished
        completion(result)
    }

    /// "ECONNREFUSED (Connection refused)", or the error's own words.
    static func reason(_ error: ReactorError) -> String {
        if let errno = error.errno { return "\(ReactorError.name(of: errno)) (\(ReactorError.text(of: errno)))" }
        return error.detail ?? "\(error)"
    }
}
