import ProtocolRESP
import Reactor

/// The `kv` service of one runtime: a Redis-compatible key-value server
/// (RESP2) over the ``KVDatabase`` that every runtime of the group shares.
///
/// Each runtime has its own listener on the same port (`SO_REUSEPORT`; see
/// ``KVServer``) and maybe a TLS one beside it, its own connections, and
/// its own reply buffer; only the database is shared.
///
/// **Timers only when needed.** A runtime with an armed timer pays for it
/// on every loop turn (a clock reading and a look at the timer heap), and
/// at one command per turn that is measurable. So the active expiry cycle
/// runs on a runtime only while keys with a deadline exist (a runtime arms
/// it when one of its batches leaves volatile keys behind; any runtime may
/// run it, the store being shared; it disarms when the store has none), and
/// the sweep for idle and lingering connections only while there is
/// something to sweep — one repeating timer per runtime, never one per connection.
public final class KVService: Service {
    let database: KVDatabase
    let info: KVServerInfo
    /// This runtime's position in its group.
    let index: Int
    private let listeners: [SocketListener]
    /// Every open connection, for the sweep (swap-removed by index).
    private(set) var connections: [KVConnection] = []
    /// The replies of the batch being run, reused by every connection in turn
    /// (behind a pointer, so that its hot-path mutations skip dynamic exclusivity checks).
    let reply: UnsafeMutablePointer<RESPReplyBuffer>
    /// The unsent replies of this runtime's connections (behind a pointer, for the same reason).
    let outputBudget: UnsafeMutablePointer<KVOutputBudget>
    private var sweepTimer: TimerID?
    private var expiryTimer: TimerID?

    /// A service that serves `database` on every one of `listeners` (a plain
    /// and a TLS one, say; registered when the runtime starts).
    init(database: KVDatabase, info: KVServerInfo, listeners: [SocketListener], index: Int) {
        self.database = database
        self.info = info
        self.listeners = listeners
        self.index = index
        reply = .allocate(capacity: 1)
        reply.initialize(to: RESPReplyBuffer())
        outputBudget = .allocate(capacity: 1)
        outputBudget.initialize(to: KVOutputBudget(limit: info.configuration.outputBudget))
    }

    deinit {
        reply.deinitialize(count: 1)
        reply.deallocate()
        outputBudget.deinitialize(count: 1)
        outputBudget.deallocate()
    }

    /// Registers the listeners; arms the active expiry cycle if keys with a
    /// deadline exist (a database shared with an earlier server, say).
    public func runtimeStarted(context: Context) {
        for listener in listeners {
            do {
                try context.register(listener)
            } catch {
                context.logger.error("kv: listener not registered: \(error)")
                context.stop()
                return
            }
        }
        if database.withStore({ $0.volatileCount }) > 0 { startExpiryCycle(context: context) }
    }

    /// The listeners' events (connections report to their own handlers).
    public func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        switch event {
        case .accepted(let stream):
            let connection = KVConnection(service: self, stream: stream, clientID: database.makeClientID(), now: context.now)
            stream.handler = connection
            connection.index = connections.count
            connections.append(connection)
            if info.configuration.idleTimeoutSeconds > 0 { startSweeping(context: context) }
            database.connectedClients.wrappingAdd(1, ordering: .relaxed)
            database.connectionsReceived.wrappingAdd(1, ordering: .relaxed)
        case .acceptPaused(let error):
            context.logger.warning("kv: \(error)")
        case .acceptResumed:
            context.logger.notice("kv: accepting connections again")
        default:
            break
        }
    }

    /// Only the listener reports here: it failed, and this runtime accepts no more connections.
    public func resourceDisconnected(_ resource: Resource, reason: DisconnectReason, context: Context) {
        context.logger.error("kv: listener \(resource.id.map { "\($0)" } ?? "") ended: \(reason)")
    }

    /// The active expiry cycle (disarmed once no key has a deadline) or the
    /// connection sweep (disarmed once nothing needs sweeping).
    public func timerFired(_ timer: TimerID, context: Context) {
        if timer == expiryTimer {
            if database.activeExpireCycle() == 0, let expiryTimer {
                context.cancel(expiryTimer)
                self.expiryTimer = nil
            }
        } else if timer == sweepTimer {
            sweep(now: context.now.nanoseconds)
            let needed = info.configuration.idleTimeoutSeconds > 0 ? !connections.isEmpty : connections.contains { $0.isClosing }
            if !needed, let sweepTimer {
                context.cancel(sweepTimer)
                self.sweepTimer = nil
            }
        }
    }

    /// Arms the active expiry cycle on this runtime unless it is armed.
    @inline(__always)
    func startExpiryCycle(context: Context) {
        guard expiryTimer == nil else { return }
        let interval = info.configuration.activeExpiryInterval
        expiryTimer = context.schedule(after: interval, repeating: interval)
    }

    /// Arms the connection sweep unless it is armed.
    func startSweeping(context: Context) {
        guard sweepTimer == nil else { return }
        let interval = info.configuration.sweepInterval
        sweepTimer = context.schedule(after: interval, repeating: interval)
    }

    /// The runtime closes the streams; dropping the registry frees their state.
    public func runtimeStopped(context: Context) {
        for connection in connections { connection.index = -1 }
        database.connectedClients.wrappingSubtract(connections.count, ordering: .relaxed)
        connections.removeAll()
        outputBudget.pointee.removeAll()
    }

    /// Checks every connection for the idle timeout and the linger deadline.
    /// Walks backwards so that removals (a swap with the last) skip nothing.
    private func sweep(now: UInt64) {
        let idle = UInt64(info.configuration.idleTimeoutSeconds) * 1_000_000_000
        let linger = info.configuration.lingerTimeout.nanoseconds
        var position = connections.count - 1
        while position >= 0 {
            if position < connections.count { connections[position].sweep(now: now, idleTimeout: idle, linger: linger) }
            position -= 1
        }
    }

    /// Removes a connection from the registry (idempotent).
    func forget(_ connection: KVConnection) {
        outputBudget.pointee.remove(connection)
        let position = connection.index
        guard position >= 0, position < connections.count, connections[position] === connection else { return }
        let last = connections.removeLast()
        if position < connections.count {
            connections[position] = last
            last.index = position
        }
        connection.index = -1
        database.connectedClients.wrappingSubtract(1, ordering: .relaxed)
    }
}
