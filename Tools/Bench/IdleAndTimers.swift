import Reactor

#if canImport(Glibc)
import Glibc
#endif

/// Idle connections: opens `count` connections to `server` and leaves them
/// idle; returns the server's resident memory per connection (KiB), from
/// its VmRSS before and after. Source addresses cycle through 127.0.1.1 …
/// 127.0.255.254 (64 connections each), so the ephemeral port range of one
/// address is never the limit.
func measureIdle(_ server: ServerProcess, count: Int) throws -> (perConnectionKiB: Double, rssKiB: Int, note: String) {
    let before = server.memoryKiB().resident
    let descriptorsBefore = server.descriptorCount()
    var fds: [Int32] = []
    fds.reserveCapacity(count)
    defer { for fd in fds { close(fd) } }
    for index in 0..<count {
        let host = UInt32(index / 64)
        let source: UInt32 = 0x7F00_0000 | ((1 + host / 254) << 8) | (1 + host % 254)
        fds.append(try blockingConnect(port: server.port, source: source))
    }
    // Every connection accepted (the server holds a descriptor for each), then let the memory settle.
    let deadline = ContinuousClock.now + .seconds(30)
    while server.descriptorCount() < descriptorsBefore + count && ContinuousClock.now < deadline { usleep(20_000) }
    let accepted = server.descriptorCount() - descriptorsBefore
    guard accepted >= count else { throw BenchError("\(server.name): only \(accepted) of \(count) idle connections accepted") }
    usleep(300_000)
    let after = server.memoryKiB().resident
    return (Double(after - before) / Double(count), after, "RSS \(before / 1024) → \(after / 1024) MiB")
}

/// One million timers armed at once over the next `spread`, then fired:
/// the rate of arming and of firing, in-process on this thread's runtime.
final class TimerFlood: Service {
    let count: Int
    let spread: Duration
    private(set) var fired = 0
    private(set) var armSeconds = 0.0
    private(set) var totalSeconds = 0.0
    private var start = ContinuousClock.now

    init(count: Int, spread: Duration) {
        self.count = count
        self.spread = spread
    }

    func runtimeStarted(context: Context) {
        start = ContinuousClock.now
        let step = spread / count
        for index in 0..<count { context.schedule(after: step * index) }
        armSeconds = seconds(ContinuousClock.now - start)
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    func timerFired(_ timer: TimerID, context: Context) {
        fired += 1
        if fired == count {
            totalSeconds = seconds(ContinuousClock.now - start)
            context.stop()
        }
    }
}

struct RunTimerFlood: PollerVisitor {
    let count: Int
    func visit<P: Poller>(_ type: P.Type) throws -> (arm: Double, fire: Double, total: Double) {
        let flood = TimerFlood(count: count, spread: .milliseconds(500))
        let runtime = try Runtime<P, TimerFlood>(service: flood)
        try runtime.run()
        guard flood.fired == flood.count else { throw BenchError("\(P.name): \(flood.fired) of \(flood.count) timers fired") }
        return (flood.armSeconds, flood.totalSeconds - flood.armSeconds, flood.totalSeconds)
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
