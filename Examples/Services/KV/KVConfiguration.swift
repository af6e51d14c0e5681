#if canImport(Glibc)
import Glibc
#endif

/// The limits of the `kv` service; one value shared by every runtime.
public struct KVConfiguration: Sendable {
    /// Seconds a client may stay silent before it is disconnected (Redis's
    /// `timeout`); 0 never disconnects idle clients.
    public var idleTimeoutSeconds: Int
    /// Bytes of replies a client may leave unread (queued on its connection
    /// plus those of the batch being answered) before it is disconnected,
    /// like Redis's `client-output-buffer-limit` hard limit. Back-pressure
    /// (``highWatermark``) normally stops a client long before; this cap is
    /// what a single reply larger than it (a GET of a huge value) meets.
    public var outputBufferLimit: Int
    /// The largest bulk argument accepted (Redis's `proto-max-bulk-len`);
    /// a larger declared length is a protocol error that closes the connection.
    public var maxBulkLength: Int
    /// The most bytes of one unfinished command buffered for a client
    /// (Redis's `client-query-buffer-limit`): a client past it is
    /// disconnected, so endless arguments cannot exhaust memory.
    public var maxQueryBufferLength: Int
    /// How long a connection that is closing (after QUIT or a protocol
    /// error: the reply is sent and the write side shut) waits for the client
    /// to close its end before it is closed anyway. Waiting lets the client
    /// read the reply: closing with unread input would send a reset that can
    /// destroy it in flight.
    public var lingerTimeout: Duration
    /// How often the active expiry cycle runs (Redis's `hz` 10: every 100 ms).
    public var activeExpiryInterval: Duration
    /// Bytes of unsent replies queued on a connection above which kv stops
    /// reading and running that connection's requests (back-pressure: a
    /// client that pipelines without reading costs this much, not the
    /// output-buffer limit). Requests already read wait, unrun, and run once
    /// the queue drains to ``lowWatermark``. A single reply larger than this
    /// is still sent whole.
    public var highWatermark: Int
    /// Unsent bytes at or below which a connection paused at the high watermark resumes.
    public var lowWatermark: Int
    /// The most unsent replies all the connections of one runtime may hold
    /// together, so that many slow readers at once stay bounded too. While
    /// the total is above it, every connection holding more than 32 KiB of
    /// it stops being read until it drains, and light users go on; the total
    /// stays within the budget plus 32 KiB (or one reply) per connection.
    public var outputBudget: Int

    /// Redis's defaults: no idle timeout, 512 MiB bulks, 1 GiB of query
    /// buffer; a 64 MiB output limit (Redis leaves normal clients
    /// unlimited), 2 s of lingering. Back-pressure at 512 KiB of unsent
    /// replies per connection (resuming at 128 KiB) and 8 MiB per runtime:
    /// small next to the kernel's own socket buffers (a few MiB per
    /// connection on loopback), so a client that reads keeps its full speed.
    public init(idleTimeoutSeconds: Int = 0, outputBufferLimit: Int = 64 << 20, maxBulkLength: Int = 512 << 20,
                maxQueryBufferLength: Int = 1 << 30, lingerTimeout: Duration = .seconds(2),
                activeExpiryInterval: Duration = .milliseconds(100), highWatermark: Int = 512 << 10,
                lowWatermark: Int = 128 << 10, outputBudget: Int = 8 << 20) {
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.outputBufferLimit = outputBufferLimit
        self.maxBulkLength = maxBulkLength
        self.maxQueryBufferLength = maxQueryBufferLength
        self.lingerTimeout = lingerTimeout
        self.activeExpiryInterval = activeExpiryInterval
        self.highWatermark = highWatermark
        self.lowWatermark = min(lowWatermark, highWatermark)
        self.outputBudget = outputBudget
    }

    /// How often each runtime sweeps its connections for idle and lingering
    /// ones: a tenth of the idle timeout, between 50 ms and 1 s, so a timeout
    /// is enforced within 10% without a timer per connection.
    var sweepInterval: Duration {
        guard idleTimeoutSeconds > 0 else { return .seconds(1) }
        return min(max(.seconds(idleTimeoutSeconds) / 10, .milliseconds(50)), .seconds(1))
    }
}

/// What INFO and CONFIG GET report about the running server; the same for
/// every runtime of the group.
final class KVServerInfo: Sendable {
    let host: String
    let port: UInt16
    let backendName: String
    let threadCount: Int
    let processID: Int32
    let configuration: KVConfiguration
    /// CONFIG GET's parameters (name, value), enough for redis-benchmark
    /// (`save`, `appendonly`) and a curious operator.
    let configParameters: [(name: String, value: String)]

    init(host: String, port: UInt16, backendName: String, threadCount: Int, configuration: KVConfiguration) {
        self.host = host
        self.port = port
        self.backendName = backendName
        self.threadCount = threadCount
        self.configuration = configuration
        processID = getpid()
        configParameters = [
            ("save", ""),
            ("appendonly", "no"),
            ("port", "\(port)"),
            ("bind", host),
            ("timeout", "\(configuration.idleTimeoutSeconds)"),
            ("databases", "1"),
            ("maxmemory", "0"),
            ("proto-max-bulk-len", "\(configuration.maxBulkLength)"),
            ("client-output-buffer-limit", "normal \(configuration.outputBufferLimit) \(configuration.outputBufferLimit) 0"),
        ]
    }
}
