import Logging

/// Settings for a ``Runtime``.
public struct RuntimeOptions: Sendable {
    /// The longest one loop turn waits; nil waits until an event, timer or wake.
    public var loopTimeout: Duration?
    /// How long a graceful shutdown waits for queued output to drain before
    /// closing the remaining resources anyway.
    public var shutdownGracePeriod: Duration
    /// Size of the read buffer all resources of the runtime share.
    public var readBufferSize: Int
    /// The logger the runtime and its Context use.
    public var logger: Logger
    /// Where the runtime's ``Context/resolver`` asks (the system's servers by default).
    public var resolver = ResolverConfiguration()
    /// Faults to inject into this runtime's system calls and io_uring
    /// completions (debug builds only; see ``FaultInjection``): by default
    /// what `REACTOR_FAULTS` says, nil when it is unset.
    public var faults: FaultInjection? = FaultInjection.fromEnvironment

    /// Options with the given values; every one has a default.
    public init(
        loopTimeout: Duration? = nil,
        shutdownGracePeriod: Duration = .seconds(5),
        readBufferSize: Int = 64 * 1024,
        // Standard error, not swift-log's default standard output: services
        // print their own output (a "listening on" line, say) on stdout.
        logger: Logger = Logger(label: "swift-reactor", factory: { StreamLogHandler.standardError(label: $0) })
    ) {
        self.loopTimeout = loopTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
        self.readBufferSize = readBufferSize
        self.logger = logger
    }
}
