import CReactorSys
import ReactorSync

#if canImport(Glibc)
import Glibc
#endif

/// One runtime per thread (the seeds' Vats), started together and stopped
/// together: how a service uses every core.
///
/// Each runtime has its own poller, Service and resources; nothing is shared
/// but what the Services share themselves. Spread connections across them
/// with one listener per runtime bound with `ListenerOptions(reusePort: true)`
/// (the kernel balances new connections by hash), and talk between runtimes
/// through their controllers (``controller(at:)``).
///
/// ```swift
/// let group = try RuntimeGroup<EpollPoller, KVService>.start(threads: 4) { index, group in
///     KVService(port: 6379, reusePort: true)
/// }
/// group.join()
/// ```
public final class RuntimeGroup<P: Poller, S: Service>: Sendable {
    private let controllers = ReactorMutex<[Controller<S.Command>]>([])
    /// How many runtimes the group runs.
    public let threadCount: Int

    private init(threadCount: Int) { self.threadCount = threadCount }

    /// The number of CPUs this process may run on: the default thread count.
    public static var availableCPUs: Int { Self.cpuCount() }

    /// Starts `threads` runtimes, each on its own thread named `name-N`, each
    /// with the Service `makeService(N, group)` creates on that thread. If any
    /// runtime cannot start (its poller fails, or `makeService` throws — a
    /// listener that cannot bind, say), the ones already started are shut
    /// down and the error is thrown.
    public static func start(
        threads: Int = availableCPUs,
        name: String = "reactor",
        options: RuntimeOptions = RuntimeOptions(),
        makeService: @escaping @Sendable (_ index: Int, _ group: RuntimeGroup) throws(ReactorError) -> S
    ) throws(ReactorError) -> RuntimeGroup {
        guard threads >= 1 else { throw ReactorError("RuntimeGroup.start", detail: "a group needs at least one thread, not \(threads)") }
        let group = RuntimeGroup(threadCount: threads)
        for index in 0..<threads {
            do throws(ReactorError) {
                let controller = try Runtime<P, S>.spawn(name: "\(name)-\(index)", options: options) { () throws(ReactorError) -> S in
                    try makeService(index, group)
                }
                group.controllers.withLock { $0.append(controller) }
            } catch {
                group.shutdown()
                group.join()
                throw error
            }
        }
        return group
    }

    /// The controller of runtime `index`; nil while the group is still
    /// starting it (a Service that starts early may ask before its peers exist).
    public func controller(at index: Int) -> Controller<S.Command>? {
        controllers.withLock { index < $0.count ? $0[index] : nil }
    }

    /// Every runtime's controller, in index order.
    public var allControllers: [Controller<S.Command>] { controllers.withLock { $0 } }

    /// Asks every runtime to stop gracefully (each finishes its queued
    /// writes, up to its grace period).
    public func shutdown() {
        for controller in allControllers { controller.shutdown() }
    }

    /// Waits until every runtime has stopped. Returns false on timeout.
    @discardableResult
    public func join(timeout: Duration? = nil) -> Bool {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        for controller in allControllers {
            let left = deadline.map { max(.zero, $0 - ContinuousClock.now) }
            if !controller.join(timeout: left) { return false }
        }
        return true
    }

    private static func cpuCount() -> Int {
        // The affinity mask, not the machine's CPU count: under `taskset -c 0`
        // one thread per allowed CPU is what scales.
        let allowed = Int(reactor_cpu_count())
        if allowed > 0 { return allowed }
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return online > 0 ? online : 1
    }
}
