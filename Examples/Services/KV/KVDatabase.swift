import Reactor
import ReactorSync
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The clock of deadlines: Unix milliseconds, as Redis keeps them (so EXAT,
/// PXAT and the overflow checks of EXPIRE behave as Redis's do), but advanced
/// by the monotonic clock from a wall-clock reading taken once at start, so
/// that a wall-clock step (NTP, an operator) neither expires nor revives keys.
struct KVClock: Sendable {
    private let baseUnixMilliseconds: Int64
    private let baseMonotonic: UInt64

    init() {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        baseUnixMilliseconds = Int64(wall.tv_sec) * 1000 + Int64(wall.tv_nsec) / 1_000_000
        baseMonotonic = MonotonicInstant.now().nanoseconds
    }

    /// The time of `instant` (a runtime's batch time, say) in Unix milliseconds.
    @inline(__always)
    func milliseconds(at instant: MonotonicInstant) -> Int64 {
        baseUnixMilliseconds + Int64(bitPattern: (instant.nanoseconds &- baseMonotonic)) / 1_000_000
    }

    /// The current time in Unix milliseconds.
    func now() -> Int64 { milliseconds(at: .now()) }
}

/// The one logical database every runtime of the service shares.
///
/// **Why one mutex.** Each batch of commands (everything one read
/// delivered) runs under one lock acquisition, so a pipelining client pays
/// for the lock once per read, not once per command, and multi-key commands
/// (MSET, DEL, KEYS, FLUSHALL) need no lock ordering and stay atomic. The
/// work done under the lock (a probe and a copy per command, well under a
/// microsecond) is small next to the system calls around each batch, so
/// the threads rarely meet on it. Measured on the 2-vCPU machine this was
/// written on (release build, `--threads 2`, redis-benchmark -c 50
/// unpinned, medians of 3 interleaved runs, SET and GET each):
///
/// | design | -P 1 req/s | -P 1 req per CPU-s | -P 16 req/s | -P 16 req per CPU-s | futex calls per 1,000 reads |
/// |---|---:|---:|---:|---:|---:|
/// | one mutex, per batch (this) | 43-44 k | 86-88 k | 650-730 k | 1.18-1.25 M | < 1 (P 1), 2-10 (P 16) |
/// | 16 shards, a lock per command | 44-45 k | 84-88 k | 640-880 k | 1.13-1.17 M | < 0.1 (P 1), 0.4-4 (P 16) |
///
/// No difference above the noise of a shared 2-CPU machine (±20% between
/// runs), and sharding costs a little more CPU at -P 16 (16 lock round
/// trips per batch instead of one). Sharding would pay off only when the
/// lock's hold time approached the per-batch I/O time, with many more cores.
///
/// **No lock for one thread.** A database made for a single runtime
/// (`concurrent: false`, what ``KVServer`` does for `--threads 1`) skips the
/// mutex altogether, as Redis's single thread does: at one command per read
/// the lock's two atomic operations are a measurable share of the work.
public final class KVDatabase: @unchecked Sendable {
    // Sound (@unchecked Sendable): `store` is reached only through
    // `withStore`, which holds `lock` when the database is concurrent; a
    // database that is not concurrent is used by one runtime's thread only
    // (the contract of `init(concurrent:)`).
    private let store: UnsafeMutablePointer<KVStore>
    private let lock = ReactorMutex<Void>(())
    /// False when one runtime alone uses the database (no locking).
    let isConcurrent: Bool
    /// Deadlines' clock.
    let clock = KVClock()
    /// When the service started, for INFO's uptime.
    let startedAt = MonotonicInstant.now()
    /// Client ids, unique across runtimes (CLIENT ID).
    private let nextClientID = Atomic<UInt64>(1)
    /// Connections open across every runtime (INFO's connected_clients).
    let connectedClients = Atomic<Int>(0)
    /// Connections ever accepted (INFO's total_connections_received).
    let connectionsReceived = Atomic<UInt64>(0)

    /// An empty database; its hash seed is random, so keys cannot be chosen
    /// to collide. Pass `concurrent: false` only if a single thread (one
    /// runtime) will ever use it: it then takes no lock.
    public init(concurrent: Bool = true) {
        var generator = SystemRandomNumberGenerator()
        store = .allocate(capacity: 1)
        store.initialize(to: KVStore(seed: generator.next()))
        isConcurrent = concurrent
    }

    deinit {
        store.deinitialize(count: 1)
        store.deallocate()
    }

    /// Runs `body` with exclusive access to the keyspace: under the lock
    /// (one acquisition for a whole batch of commands), or directly when the
    /// database is not concurrent.
    @inline(__always)
    func withStore<Result: Sendable>(_ body: (inout KVStore) -> Result) -> Result {
        if isConcurrent {
            return lock.withLock { _ in body(&store.pointee) }
        }
        return body(&store.pointee)
    }

    /// A new client id.
    func makeClientID() -> UInt64 {
        nextClientID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// One active expiry cycle (Redis's `activeExpireCycle`, "slow" kind):
    /// rounds of 20 random keys that have a deadline, removing the expired
    /// ones, repeated while a round finds more than a quarter expired and
    /// `budget` is not used up. The lock is taken per round, so commands
    /// of other threads interleave with a long cycle. Returns how many keys
    /// with a deadline remain.
    @discardableResult
    func activeExpireCycle(budget: Duration = .milliseconds(25)) -> Int {
        let end = MonotonicInstant.now().advanced(by: budget)
        while true {
            let now = clock.milliseconds(at: .now())
            let (checked, expired, remaining) = withStore { store in
                let (checked, expired) = store.expireSample(now: now, samples: 20)
                return (checked, expired, store.volatileCount)
            }
            if checked == 0 || expired * 4 <= checked || MonotonicInstant.now() >= end { return remaining }
        }
    }
}
