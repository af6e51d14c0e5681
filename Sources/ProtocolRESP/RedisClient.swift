import DequeModule
import ReactorCore
import ReactorNames

/// A connection to a Redis (or any RESP2) server for one runtime, without
/// async/await: commands are pipelined — each is written as soon as the
/// current callback returns, whatever is still unanswered — and replies are
/// matched to them in order, each handed to its completion on the runtime's
/// thread.
///
/// ```swift
/// let redis = RedisClient(host: "db.internal", port: 6379)
/// try redis.start(context: context)
/// redis.send(["SET", "k", "v"]) { result in print(result) }   // success(OK)
/// ```
///
/// **Failures are never silent and never hang.** An error reply fails its
/// command (`redis SET k: ERR wrong number of arguments for 'set' command`);
/// a connection that ends fails every command waiting on it
/// (`redis GET k: connection reset before the reply`) and the client
/// reconnects by itself with a doubling back-off; a command sent while
/// there is no connection fails at once (`redis GET k: not connected: …`),
/// so a caller can answer its own client (an HTTP 503, say) instead of
/// queueing without bound; every command has a deadline
/// (``RedisClientOptions/commandTimeout``).
///
/// With ``RedisClientOptions/connect``'s `tls` set, the connection speaks
/// TLS (the server name defaults to `host`) and is made once the handshake
/// has verified the server: a certificate that fails verification fails
/// the waiting commands with OpenSSL's reason
/// (`redis PING: not connected: tls handshake(resource #5): certificate verify failed (self-signed certificate)`)
/// and is retried like a refused connection.
///
/// The host is resolved on the runtime's own poller and its addresses raced
/// (``ReactorCore/Context/connect(host:port:options:completion:)``). The
/// client handles its stream and a small timer-carrying resource, so it is a
/// handler of plain ``Resource``s.
public final class RedisClient: ResourceHandler {
    /// What a command's completion is given.
    public typealias Completion = (Result<RESPValue, RedisError>) -> Void

    /// Where the client is in its life.
    public enum State: Sendable, Equatable {
        /// Not started yet.
        case idle
        /// Resolving and connecting (and, over TLS, the handshake); commands sent now wait for the connection.
        case connecting
        /// Connected: commands go out.
        case connected
        /// The connection ended or an attempt failed; the next attempt is scheduled.
        case waitingToReconnect
        /// ``close()`` was called.
        case closed
    }

    /// Counts of what the client did, for a service's statistics.
    public struct Counters: Sendable {
        /// Commands handed to ``send(_:completion:)`` and written (or queued for the connection).
        public var sent: UInt64 = 0
        /// Replies received (error replies included).
        public var replies: UInt64 = 0
        /// Commands that failed without a reply: timed out, connection lost, not connected, closed.
        public var failed: UInt64 = 0
        /// Connections made (the first one included).
        public var connects: UInt64 = 0
    }

    /// The server's name (or address) as given.
    public let host: String
    /// The server's port.
    public let port: UInt16
    /// How the client connects, waits and retries.
    public let options: RedisClientOptions
    /// Where the client is in its life.
    public private(set) var state = State.idle
    /// Why the last connection or attempt ended, when one did.
    public private(set) var lastFailure: String?
    /// When ``lastFailure`` was set (the runtime's clock), for a pool naming the latest.
    private(set) var lastFailureTime: UInt64 = 0
    /// What the client did so far.
    public private(set) var counters = Counters()
    /// Commands sent and not yet answered (timed-out ones included until their late reply arrives).
    public var pendingCount: Int { pending.count }

    private struct Pending {
        let arguments: [String]
        let deadline: UInt64
        /// nil once the command timed out: its late reply is dropped.
        var completion: Completion?
    }

    private weak var context: Context?
    /// The connection by name under way (resolving, then connecting), for a timeout to say what it waited for.
    private var race: ConnectionRace?
    private var stream: SocketStream?
    /// An eventfd that is never signalled: it carries the client's timers,
    /// which must outlive any one connection (a stream's timers die with it).
    private var ticker: EventCounter?
    private var pending = Deque<Pending>()
    /// The first pending command whose deadline has not passed (the timeout sweep starts there).
    private var timeoutCursor = 0
    private var timeoutTimer: TimerID?
    private var reconnectTimer: TimerID?
    private var delay: Duration
    /// Encoded commands not yet written; flushed once per callback, so a
    /// burst of sends leaves in one write.
    private var output: [UInt8] = []
    private var flushScheduled = false
    private var input = InboundBuffer()
    private var parser: RESPReplyParser
    /// Changes whenever the connection does, so that a completion that
    /// closed or lost it stops the reply loop that called it.
    private var generation = 0

    /// A client for `host:port`; nothing happens until ``start(context:)``.
    public init(host: String, port: UInt16, options: RedisClientOptions = RedisClientOptions()) {
        self.host = host
        self.port = port
        self.options = options
        delay = options.reconnectDelay
        parser = options.parser
    }

    /// Starts connecting, on `context`'s runtime (call it on that thread,
    /// from a callback or before `run()`). Commands may be sent at once: they
    /// go out when the connection is made.
    public func start(context: Context) throws(ReactorError) {
        guard state == .idle else { return }
        self.context = context
        let ticker = try EventCounter()
        ticker.handler = self
        try context.register(ticker)
        self.ticker = ticker
        // As the runtime stops, commands still waiting fail (closed) rather
        // than vanish: their completions often hold whoever holds this
        // client, a cycle only failing them breaks (LeakSanitizer found
        // `links` leaking a client with 32 commands in flight at its exit).
        context.stopHooks.append { [weak self] in self?.close() }
        connect()
    }

    /// Sends one command (`["SET", "k", "v"]`); `completion` gets its reply,
    /// an error reply as ``RedisError/Kind/server(_:)``.
    public func send(_ arguments: [String], completion: @escaping Completion) {
        guard !arguments.isEmpty else {
            fail(completion, RedisError(command: "(empty)", kind: .protocolViolation("a command needs a name")))
            return
        }
        switch state {
        case .connecting, .connected:
            break
        case .idle:
            fail(completion, RedisError(command: RedisError.label(arguments), kind: .notConnected("the client was not started")))
            return
        case .waitingToReconnect:
            fail(completion, RedisError(command: RedisError.label(arguments),
                                        kind: .notConnected("\(name) is unreachable (\(lastFailure ?? "no connection")); retrying")),
            )
            return
        case .closed:
            fail(completion, RedisError(command: RedisError.label(arguments), kind: .closed))
            return
        }
        let now = context?.now.nanoseconds ?? MonotonicInstant.now().nanoseconds
        RESPCommand.encode(arguments, into: &output)
        pending.append(Pending(arguments: arguments, deadline: now &+ options.commandTimeout.nanoseconds, completion: completion))
        counters.sent &+= 1
        if timeoutTimer == nil { armTimeout() }
        if state == .connected { scheduleFlush() }
    }

    /// Stops: closes the connection, fails every waiting command
    /// (``RedisError/Kind/closed``) and attempts no more connections. The
    /// runtime's stop does the same by itself.
    public func close() {
        guard state != .closed else { return }
        state = .closed
        race = nil
        generation &+= 1
        if let timer = timeoutTimer { context?.cancel(timer) }
        if let timer = reconnectTimer { context?.cancel(timer) }
        timeoutTimer = nil
        reconnectTimer = nil
        stream?.close()
        stream = nil
        ticker?.close()
        ticker = nil
        failAll { RedisError(command: RedisError.label($0), kind: .closed) }
    }

    // MARK: Events

    /// The stream's bytes and end, and the ticker's timers.
    public func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        switch event {
        case .received(let bytes) where resource === stream:
            received(bytes.buffer)
        case .tlsEstablished where resource === stream && state == .connecting:
            established()
        case .readClosed where resource === stream:
            // The server finished sending: nothing more will be answered.
            stream?.close()
            if state == .connecting { return connectFailed("\(name) closed the connection during the TLS handshake") }
            lost(RedisError.lost(.closed), summary: "the server closed the connection")
        case .timerFired(let timer) where timer == timeoutTimer:
            timeoutTimer = nil
            expire(now: context.now.nanoseconds)
        case .timerFired(let timer) where timer == reconnectTimer:
            reconnectTimer = nil
            if state == .waitingToReconnect { connect() }
        default:
            break
        }
    }

    /// The stream ended on its own (a reset, say): every waiting command fails, then a reconnect.
    public func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        guard resource === stream else { return }
        if state == .connecting {
            // The TLS handshake failed, with OpenSSL's reason:
            // `tls handshake(resource #5): certificate verify failed (self-signed certificate)`.
            switch reason {
            case .failed(let error): return connectFailed(error.description)
            case .closed: return connectFailed("\(name) closed the connection during the TLS handshake")
            }
        }
        lost(RedisError.lost(reason), summary: "connection \(reason)")
    }

    // MARK: Connecting

    private var name: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    private func connect() {
        guard let context else { return }
        state = .connecting
        let attempt = generation
        race = context.connect(host: host, port: port, options: options.connect) { [self] result in
            guard state == .connecting, attempt == generation else {
                if case .success(let stream) = result { stream.close() }  // closed meanwhile
                return
            }
            race = nil
            switch result {
            case .success(let stream):
                self.stream = stream
                stream.handler = self
                // Over TLS the connection is made once the server's certificate is verified.
                if options.connect.tls == nil { established() }
            case .failure(let error):
                connectFailed(error.description)
            }
        }
    }

    /// What a connection not yet made is waiting for; nil when connected (or not connecting).
    private var activity: String? {
        guard state == .connecting else { return nil }
        if stream != nil { return "doing the TLS handshake with \(name)" }
        return race.map(\.progress.description)
    }

    private func established() {
        state = .connected
        counters.connects &+= 1
        delay = options.reconnectDelay
        if !output.isEmpty { scheduleFlush() }
    }

    /// An attempt failed (to connect, or its TLS handshake): the commands
    /// waiting for it fail, and the next attempt waits longer.
    private func connectFailed(_ why: String) {
        stream = nil
        race = nil
        generation &+= 1
        lastFailure = why
        lastFailureTime = context?.now.nanoseconds ?? 0
        waitToReconnect()
        failAll { RedisError(command: RedisError.label($0), kind: .notConnected(why)) }
    }

    private func waitToReconnect() {
        guard let context, let ticker else { return }
        state = .waitingToReconnect
        reconnectTimer = context.schedule(after: delay, for: ticker)
        delay = min(delay * 2, options.maxReconnectDelay)
    }

    /// The connection ended: `why` is what waiting commands read, `summary` what later ones do.
    private func lost(_ why: String, summary: String) {
        stream = nil
        generation &+= 1
        lastFailure = summary
        lastFailureTime = context?.now.nanoseconds ?? 0
        // The state changes first: a completion that sends again is told "not connected" at once.
        waitToReconnect()
        failAll { RedisError(command: RedisError.label($0), kind: .connectionLost(why)) }
    }

    /// Fails every waiting command (the queue is emptied first, so a
    /// completion that sends again finds a consistent client).
    private func failAll(_ error: ([String]) -> RedisError) {
        let failing = pending
        pending.removeAll()
        timeoutCursor = 0
        output.removeAll(keepingCapacity: true)
        input.removeAll()
        parser = options.parser
        if let timer = timeoutTimer { context?.cancel(timer) }
        timeoutTimer = nil
        for command in failing {
            if let completion = command.completion {
                counters.failed &+= 1
                completion(.failure(error(command.arguments)))
            }
        }
    }

    private func fail(_ completion: @escaping Completion, _ error: RedisError) {
        counters.failed &+= 1
        // Never inside the caller's own call: a completion that sends again would nest.
        if let context { context.runAfterCallback { completion(.failure(error)) } } else { completion(.failure(error)) }
    }

    // MARK: Writing and reading

    private func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        context.runAfterCallback { [self] in
            flushScheduled = false
            guard state == .connected, let stream, !output.isEmpty else { return }
            stream.write(output)
            output.removeAll(keepingCapacity: true)
            // A 100,000-command burst should not pin its megabytes.
            if output.capacity > 1 << 20 { output = [] }
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        let current = generation
        if input.readableBytes == 0 {
            // The common case: replies straight from the runtime's read buffer.
            let used = consume(bytes)
            if current == generation && used < bytes.count { input.append(UnsafeRawBufferPointer(rebasing: bytes[used...])) }
        } else {
            input.append(bytes)
            // Moved out while the completions run: one that drops the connection empties `input`.
            var buffered = input
            input = InboundBuffer()
            let used = buffered.withUnsafeReadableBytes { consume($0) }
            if current == generation {
                buffered.consume(used)
                input = buffered
            }
        }
    }

    /// Hands every complete reply in `buffer` to its command; returns the bytes used.
    private func consume(_ buffer: UnsafeRawBufferPointer) -> Int {
        let current = generation
        var offset = 0
        while offset < buffer.count {
            let parsed: (value: RESPValue, consumed: Int)?
            do {
                parsed = try parser.parse(UnsafeRawBufferPointer(rebasing: buffer[offset...]))
            } catch {
                violation(error.description)
                return buffer.count
            }
            guard let parsed else { break }
            offset += parsed.consumed
            counters.replies &+= 1
            guard let command = pending.popFirst() else {
                violation("a reply arrived with no command waiting for it: \(parsed.value)")
                return buffer.count
            }
            timeoutCursor = max(0, timeoutCursor - 1)
            if let completion = command.completion {
                if case .error(let message) = parsed.value {
                    completion(.failure(RedisError(command: RedisError.label(command.arguments), kind: .server(message))))
                } else {
                    completion(.success(parsed.value))
                }
                if generation != current { return buffer.count }  // the completion closed the client
            }
        }
        return offset
    }

    private func violation(_ why: String) {
        stream?.abort()
        lost("protocol violation from \(name), connection dropped: \(why)", summary: "protocol violation: \(why)")
    }

    // MARK: Timeouts

    private func armTimeout() {
        guard let context, let ticker, timeoutCursor < pending.count else { return }
        let now = context.now.nanoseconds
        let due = pending[timeoutCursor].deadline
        timeoutTimer = context.schedule(after: .nanoseconds(Int64(due > now ? due - now : 0)), for: ticker)
    }

    /// Fails the commands whose deadline has passed (their replies, if they
    /// come, are dropped), then re-arms for the next deadline.
    private func expire(now: UInt64) {
        while timeoutCursor < pending.count && pending[timeoutCursor].deadline <= now {
            if let completion = pending[timeoutCursor].completion {
                pending[timeoutCursor].completion = nil
                counters.failed &+= 1
                let error = RedisError(command: RedisError.label(pending[timeoutCursor].arguments),
                                       kind: .timedOut(options.commandTimeout), activity: activity)
                timeoutCursor += 1
                completion(.failure(error))
            } else {
                timeoutCursor += 1
            }
        }
        if timeoutTimer == nil { armTimeout() }
    }
}
