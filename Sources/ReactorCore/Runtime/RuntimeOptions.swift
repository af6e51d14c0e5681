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
    /// After a spell this long in which the loop handled at most
    /// ``quietEventLimit`` events, following a busier one, the runtime hands
    /// memory it no longer uses back to the kernel: the free pages of the C
    /// heap (`malloc_trim`), and the receive buffers a burst added to an
    /// io_uring ring (``Poller/releaseIdleMemory()``). nil: never. A burst of
    /// 5,000 connect/reset cycles against kv left its RSS 0.8–7 MB above the
    /// baseline over readiness and 6–16 MB over io_uring without it; within
    /// 2 MB once released (measured; `Tests/ServiceTests/KVMemoryAfterBurstTests.swift`).
    public var releaseMemoryAfterQuiet: Duration? = .seconds(2)
    /// Events (readiness reports and completions) a spell of ``releaseMemoryAfterQuiet`` may hold and still count as quiet.
    public static let quietEventLimit: UInt64 = 200
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
