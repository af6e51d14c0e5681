#if canImport(Glibc)
import Glibc
#endif
import ReactorSync
import Synchronization

/// Faults to inject into a runtime's system calls and io_uring completions,
/// failing them the ways kernels do, to prove that what the library promises
/// (no byte lost, every ending with its reason, no descriptor leaked) holds
/// when the kernel is less kind than loopback usually is.
///
/// **Debug builds only.** The injection point is compiled into debug builds
/// (`swift build`, `swift test`) and out of release builds, whose hot path
/// is then the same instructions as without it (BENCHMARKS.md has the
/// callgrind counts); a release build that is asked for faults says so in a
/// warning and injects nothing.
///
/// **From the environment**: `REACTOR_FAULTS=seed:rate[:kinds]`, read once
/// per process, applies to every runtime the process runs (so the example
/// binaries a test starts inherit it): `REACTOR_FAULTS=7:0.05` fails 5% of
/// eligible calls with a transparent kind, from seed 7;
/// `REACTOR_FAULTS=7:0.02:reset,pipe` only resets and broken pipes.
/// ``RuntimeOptions/faults`` sets (or clears) it for one runtime.
///
/// **Reproducible**: whether a runtime's n-th eligible call fails, and how,
/// depends only on the seed and n (a counter hashed with SplitMix64), not
/// on the clock or on other runtimes.
public struct FaultInjection: Sendable, Equatable, CustomStringConvertible {
    /// The ways a call can fail.
    public struct Kinds: OptionSet, Sendable, Hashable {
        /// One bit per kind, in the order of ``names``.
        public let rawValue: UInt32
        /// The kinds whose bits are set in `rawValue`.
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `EINTR` from a transfer or `accept4` (retried in place).
        public static let interrupted = Kinds(rawValue: 1 << 0)
        /// `EAGAIN` from a transfer or `accept4` on a descriptor the poller reported ready.
        public static let wouldBlock = Kinds(rawValue: 1 << 1)
        /// Reads and writes of 1 byte (`recv`, `read`, `send`, `write`, `writev`).
        public static let shortTransfers = Kinds(rawValue: 1 << 2)
        /// `ENOBUFS` from a write (the kernel short of memory for a moment).
        public static let noBuffers = Kinds(rawValue: 1 << 3)
        /// io_uring: a multishot receive ended with `-ENOBUFS` (its buffer ring ran dry).
        public static let uringNoBuffers = Kinds(rawValue: 1 << 4)
        /// io_uring: sends of 1 byte.
        public static let uringShortSends = Kinds(rawValue: 1 << 5)
        /// io_uring: a multishot receive ended by the kernel after a few bytes (a completion without `IORING_CQE_F_MORE`).
        public static let uringEarlyEnd = Kinds(rawValue: 1 << 6)
        /// io_uring: receives, sends and accepts cancelled by the kernel (`-ECANCELED`) although nobody asked.
        public static let uringCancelled = Kinds(rawValue: 1 << 7)
        /// `ECONNRESET` from a receive: the peer reset the connection mid-stream.
        public static let connectionReset = Kinds(rawValue: 1 << 8)
        /// `EPIPE` from a write or send: the peer is gone mid-stream.
        public static let brokenPipe = Kinds(rawValue: 1 << 9)
        /// `EMFILE` from `accept4` or a multishot accept: out of descriptors.
        public static let tooManyOpenFiles = Kinds(rawValue: 1 << 10)

        /// What the library hides from its users: each is retried or resumed, and no handler sees a difference.
        public static let transparent: Kinds = [.interrupted, .wouldBlock, .shortTransfers, .noBuffers,
                                               .uringNoBuffers, .uringShortSends, .uringEarlyEnd, .uringCancelled]
        /// What ends a connection (with its reason) or pauses accepting.
        public static let fatal: Kinds = [.connectionReset, .brokenPipe, .tooManyOpenFiles]
        /// Every kind.
        public static let all: Kinds = [.transparent, .fatal]

        /// Every kind by its name in `REACTOR_FAULTS`, in bit order.
        public static let names: [(String, Kinds)] = [
            ("eintr", .interrupted), ("eagain", .wouldBlock), ("short", .shortTransfers), ("nobufs", .noBuffers),
            ("uring-nobufs", .uringNoBuffers), ("uring-short", .uringShortSends), ("uring-end", .uringEarlyEnd),
            ("uring-cancel", .uringCancelled), ("reset", .connectionReset), ("pipe", .brokenPipe), ("emfile", .tooManyOpenFiles),
        ]
        /// Group names in `REACTOR_FAULTS`.
        public static let groups: [(String, Kinds)] = [("transparent", .transparent), ("fatal", .fatal), ("all", .all)]

        /// The kinds' names, comma-separated.
        public var names: String {
            Kinds.names.filter { contains($0.1) }.map(\.0).joined(separator: ",")
        }
    }

    /// The environment variable read by ``environment``.
    public static let environmentVariable = "REACTOR_FAULTS"

    /// Where the decisions start: the same seed fails the same calls.
    public var seed: UInt64
    /// The share of eligible calls that fail, in (0, 1].
    public var rate: Double
    /// How they may fail; each failing call picks one of those that fit it.
    public var kinds: Kinds

    /// Faults of `kinds` (transparent ones by default) in `rate` of the eligible calls.
    public init(seed: UInt64, rate: Double, kinds: Kinds = .transparent) {
        self.seed = seed
        self.rate = rate
        self.kinds = kinds
    }

    /// Parses `seed:rate[:kinds]`: a seed (an unsigned integer), a rate in
    /// (0, 1], and kinds by name or group, comma-separated (`transparent`
    /// when omitted). The error says which part is wrong and what fits.
    public init(parsing text: String) throws(ReactorError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func bad(_ why: String) -> ReactorError {
            ReactorError("fault injection", .named(text), detail: "\(why); expected seed:rate[:kinds], e.g. 7:0.05 or 7:0.02:reset,pipe")
        }
        guard parts.count == 2 || parts.count == 3 else { throw bad("\(parts.count) parts separated by ':'") }
        guard let seed = UInt64(parts[0]) else { throw bad("the seed '\(parts[0])' is not an unsigned integer") }
        guard let rate = Double(parts[1]), rate > 0, rate <= 1 else {
            throw bad("the rate '\(parts[1])' is not a number in (0, 1]")
        }
        var kinds: Kinds = parts.count == 3 ? [] : .transparent
        if parts.count == 3 {
            for name in parts[2].split(separator: ",").map({ $0.lowercased() }) {
                guard let kind = (Kinds.names + Kinds.groups).first(where: { $0.0 == name })?.1 else {
                    let valid = (Kinds.groups + Kinds.names).map(\.0).joined(separator: ", ")
                    throw bad("unknown kind '\(name)'; kinds: \(valid)")
                }
                kinds.formUnion(kind)
            }
            guard !kinds.isEmpty else { throw bad("no kinds after the second ':'") }
        }
        self.init(seed: seed, rate: rate, kinds: kinds)
    }

    /// `seed:rate:kinds`, as `REACTOR_FAULTS` takes it.
    public var description: String { "\(seed):\(rate):\(kinds.names)" }

    /// `REACTOR_FAULTS`, parsed once per process: nil when unset or empty;
    /// the error when it does not parse (a runtime's `run()` throws it).
    public static let environment: Result<FaultInjection?, ReactorError> = {
        guard let value = getenv(environmentVariable).map({ String(cString: $0) }), !value.isEmpty else { return .success(nil) }
        do throws(ReactorError) {
            return .success(try FaultInjection(parsing: value))
        } catch {
            return .failure(ReactorError("\(environmentVariable)=\(value)", detail: error.detail))
        }
    }()

    /// ``environment``'s faults, or nil when it is unset or does not parse
    /// (the runtime reports that when it starts): ``RuntimeOptions``' default.
    public static var fromEnvironment: FaultInjection? {
        if case .success(let faults) = environment { return faults }
        return nil
    }

    /// True in debug builds, where faults can be injected.
    public static var isCompiledIn: Bool {
        #if DEBUG
        return true
        #else
        return false
        #endif
    }
}

#if DEBUG
/// The injection point: one per running runtime, on its loop's thread,
/// asked by the ``Syscall`` transfers, `accept4` and the io_uring transport
/// whether this call fails and how. Debug builds only.
public final class FaultInjector {
    /// A call the injector may fail.
    public enum Site: Sendable {
        /// `recv`/`read` on a stream (`socket`: whether `ECONNRESET` fits).
        case read(socket: Bool)
        /// `send`/`write`/`writev` on a stream.
        case write
        /// `accept4` on a listener.
        case accept
        /// io_uring: a multishot receive about to be submitted.
        case uringReceive
        /// io_uring: a send about to be submitted.
        case uringSend
        /// io_uring: a multishot accept about to be submitted.
        case uringAccept

        var fits: FaultInjection.Kinds {
            switch self {
            case .read(let socket): return socket ? [.interrupted, .wouldBlock, .shortTransfers, .connectionReset]
                                                  : [.interrupted, .wouldBlock, .shortTransfers]
            case .write: return [.interrupted, .wouldBlock, .shortTransfers, .noBuffers, .brokenPipe]
            case .accept: return [.interrupted, .wouldBlock, .tooManyOpenFiles]
            case .uringReceive: return [.uringNoBuffers, .uringEarlyEnd, .uringCancelled, .connectionReset]
            case .uringSend: return [.uringShortSends, .uringCancelled, .brokenPipe]
            case .uringAccept: return [.uringCancelled, .tooManyOpenFiles]
            }
        }
    }

    /// What this injector injects, and from which seed.
    public let configuration: FaultInjection
    private let threshold: UInt64
    private var calls: UInt64 = 0
    /// Faults injected by this injector, by kind (bit index).
    private var injected = [Int](repeating: 0, count: FaultInjection.Kinds.names.count)

    /// An injector of `configuration` (a runtime makes its own; tests use this to choose a seed).
    public init(_ configuration: FaultInjection) {
        self.configuration = configuration
        threshold = configuration.rate >= 1 ? .max : UInt64(configuration.rate * 18_446_744_073_709_551_616.0)
    }

    /// Whether this call fails, and how: nil for most calls.
    public func decide(_ site: Site) -> FaultInjection.Kinds? {
        let candidates = site.fits.intersection(configuration.kinds)
        guard !candidates.isEmpty else { return nil }
        calls &+= 1
        let roll = FaultInjector.mix(configuration.seed &+ calls &* 0x9E37_79B9_7F4A_7C15)
        guard roll <= threshold else { return nil }
        // The choice among the kinds that fit, from bits the threshold test did not use.
        var pick = Int(FaultInjector.mix(roll) % UInt64(candidates.rawValue.nonzeroBitCount))
        var bits = candidates.rawValue
        while true {
            let bit = bits.trailingZeroBitCount
            if pick == 0 {
                injected[bit] += 1
                FaultInjector.totals.withLock { $0[bit] += 1 }
                return FaultInjection.Kinds(rawValue: 1 << bit)
            }
            pick -= 1
            bits &= bits - 1
        }
    }

    /// A number in 1..<`limit` for a fault that needs one (how many bytes a short receive takes).
    public func amount(below limit: Int) -> Int {
        calls &+= 1
        return 1 + Int(FaultInjector.mix(configuration.seed ^ calls) % UInt64(max(limit - 1, 1)))
    }

    /// Faults this injector has injected, by kind name (those that happened).
    public var counts: [String: Int] {
        var counts: [String: Int] = [:]
        for (bit, count) in injected.enumerated() where count > 0 { counts[FaultInjection.Kinds.names[bit].0] = count }
        return counts
    }

    /// SplitMix64's finaliser: a good 64-bit mix of a counter.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: The current injector of this thread

    /// The thread-local slot: a runtime runs on one thread, and so do its
    /// system calls, so the injector needs no lock and each runtime can have its own.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The injector of the runtime running on this thread, if it injects.
    @inline(__always)
    public static var current: FaultInjector? {
        guard let raw = pthread_getspecific(key) else { return nil }
        // Sound: `install` stored a retained reference and it stays until `uninstall` on this same thread.
        return Unmanaged<FaultInjector>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Makes `configuration` this thread's injection until ``uninstall()``.
    static func install(_ configuration: FaultInjection) -> FaultInjector {
        uninstall()
        let injector = FaultInjector(configuration)
        pthread_setspecific(key, Unmanaged.passRetained(injector).toOpaque())
        FaultInjector.reportAtExit()
        return injector
    }

    static func uninstall() {
        guard let raw = pthread_getspecific(key) else { return }
        pthread_setspecific(key, nil)
        Unmanaged<FaultInjector>.fromOpaque(raw).release()
    }

    // MARK: The process's totals

    /// Faults injected by every injector of the process, by kind.
    static let totals = ReactorMutex([Int](repeating: 0, count: FaultInjection.Kinds.names.count))

    /// Faults injected in this process so far, by kind name.
    public static var processCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for (bit, count) in totals.withLock({ $0 }).enumerated() where count > 0 { counts[FaultInjection.Kinds.names[bit].0] = count }
        return counts
    }

    /// Once per process with faults from the environment: a line on
    /// standard error at exit, so a run under `REACTOR_FAULTS` shows what it
    /// injected (and a run that injected nothing shows that too).
    private static let registeredAtExit: Bool = {
        guard FaultInjection.fromEnvironment != nil else { return false }
        atexit {
            let counts = FaultInjector.processCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            let line = "\(FaultInjection.environmentVariable): pid \(getpid()) injected \(counts.isEmpty ? "nothing" : counts.joined(separator: ", "))\n"
            _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count - 1) }
        }
        return true
    }()

    private static func reportAtExit() { _ = registeredAtExit }
}
#endif

extension Context {
    /// Called by `run()` on the loop's thread before the first turn: makes
    /// `faults` this thread's injection (debug builds), and throws when
    /// `REACTOR_FAULTS` is set but does not parse, so that a run meant to be
    /// under faults never passes without them.
    @usableFromInline func startFaultInjection(_ faults: FaultInjection?) throws(ReactorError) {
        if case .failure(let error) = FaultInjection.environment { throw error }
        guard let faults else { return }
        #if DEBUG
        _ = FaultInjector.install(faults)
        #else
        if FaultInjection.warnedInRelease.withLock({ warned in defer { warned = true }; return !warned }) {
            logger.warning("fault injection (\(faults)) asked for, but this is a release build: no faults are injected")
        }
        #endif
    }

    /// Called by `run()` on the loop's thread as it ends.
    @usableFromInline func stopFaultInjection() {
        #if DEBUG
        FaultInjector.uninstall()
        #endif
    }

    /// The faults injected into this runtime so far, by kind name (see
    /// ``FaultInjection/Kinds/names``); empty without injection, and in
    /// release builds. On the runtime's thread, while it runs.
    public var faultsInjected: [String: Int] {
        #if DEBUG
        return FaultInjector.current?.counts ?? [:]
        #else
        return [:]
        #endif
    }
}

#if !DEBUG
extension FaultInjection {
    /// One warning per process that a release build injects nothing.
    static let warnedInRelease = ReactorMutex(false)
}
#endif
