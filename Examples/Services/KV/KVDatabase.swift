import Reactor
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
/// **Why one mutex.** Each batch of commands (everything a read delivered)
/// runs under one lock acquisition, so a pipelined client pays for the lock
/// once per read, not once per command, and multi-key commands (MSET, DEL,
/// KEYS, FLUSHALL) need no lock ordering. Sharding the keyspace across
/// mutexes would let threads run commands on different keys in parallel,
/// but it costs a lock per command (a batch touches many shards) and makes
/// MSET atomicity and KEYS/DBSIZE/FLUSHALL lock every shard. Measured on the
/// 2-vCPU machine this was written on (release build, redis-benchmark -c 50
/// -n 400000 -t get,set, pinned client on its own CPU): with `--threads 2`
/// the lock is uncontended most of the time because each command's work
/// under it (a hash probe and a copy, ~50-100 ns) is tiny next to the
/// system calls around it (~2-5 µs per read and write); see the numbers in
/// Examples/KV/main.swift. Sharding would matter only when the lock's hold
/// time approaches the per-batch I/O time, i.e. with many more cores.
public final class KVDatabase: Sendable {
    /// The keyspace, behind the lock every batch of commands takes once.
    let store: Mutex<KVStore>
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
    /// to collide.
    public init() {
        var generator = SystemRandomNumberGenerator()
        store = Mutex(KVStore(seed: generator.next()))
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
            let (checked, expired, remaining) = store.withLock { store in
                let (checked, expired) = store.expireSample(now: now, samples: 20)
                return (checked, expired, store.volatileCount)
            }
            if checked == 0 || expired * 4 <= checked || MonotonicInstant.now() >= end { return remaining }
        }
    }
}
