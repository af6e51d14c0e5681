import Reactor

/// The unsent replies of one runtime's connections, held against
/// ``KVConfiguration/outputBudget``.
///
/// **Only the backlog is tracked**: the connections whose last write left
/// bytes queued. A client that reads keeps its queue empty and never enters
/// it, so the common path costs one comparison. Queues drain without telling
/// (the runtime writes them when the socket is writable), so each count is
/// what the connection had when last looked at: at its last write, or at the
/// recount the service makes at the end of every loop turn while the backlog
/// is not empty. Between two looks a count can only be too high, which errs
/// towards pausing.
///
/// **Who stops.** While the total is over the budget, every connection
/// holding more than a small ``allowance`` is paused at its next write (the
/// heaviest holders stop, a client with little unsent keeps going), and a
/// paused one resumes once the total is back under the budget or its own
/// queue has drained below the allowance. Even over budget, each connection
/// may queue up to the allowance, so one that starts reading again is never
/// starved by others that do not; the total stays within the budget plus
/// the allowance (or one reply, if larger) per connection. A fair share
/// (the budget divided among the connections) would not bound it: queues
/// already filled while the budget was free cannot be taken back, and every
/// newcomer would still get a share of its own.
struct KVOutputBudget {
    let limit: Int
    private(set) var backlog: [KVConnection] = []
    /// The sum of the backlog's counts.
    private(set) var total = 0

    /// What a connection may hold while the runtime is over budget.
    static let allowance = 32 << 10

    init(limit: Int) { self.limit = limit }

    var isOver: Bool { total > limit }

    /// Bytes of replies `connection` may add before it must write and look
    /// again: up to its high watermark, and no more than what is left of the
    /// budget, or of the allowance when that is more. At least 1, so a batch
    /// always runs one command (whose reply may be larger: a reply is never cut).
    func room(for connection: KVConnection, queued: Int) -> Int {
        var room = connection.stream.highWatermark - queued
        if !backlog.isEmpty {
            let counted = connection.budgetSlot >= 0 ? connection.countedUnsent : 0
            room = min(room, max(limit - (total - counted + queued), KVOutputBudget.allowance - queued))
        }
        return max(room, 1)
    }

    /// Counts `connection`'s unsent bytes now (after it wrote, or before it
    /// resumes). True when it must pause: the runtime is over budget and the
    /// connection holds more than the allowance.
    mutating func record(_ connection: KVConnection) -> Bool {
        let unsent = connection.stream.queuedByteCount
        if connection.budgetSlot < 0 {
            guard unsent > 0 else { return false }
            connection.budgetSlot = backlog.count
            connection.countedUnsent = 0
            backlog.append(connection)
        }
        total += unsent - connection.countedUnsent
        connection.countedUnsent = unsent
        return isOver && unsent > KVOutputBudget.allowance
    }

    /// Recounts the backlog and drops the connections whose queue has
    /// drained, unless they are paused; returns the paused ones, for the
    /// service to offer each a chance to resume.
    mutating func recount() -> [KVConnection] {
        var paused: [KVConnection] = []
        total = 0
        var position = backlog.count - 1
        while position >= 0 {
            let connection = backlog[position]
            connection.countedUnsent = connection.stream.queuedByteCount
            if connection.isPaused {
                paused.append(connection)
            } else if connection.countedUnsent == 0 {
                remove(connection)
            }
            total += connection.countedUnsent
            position -= 1
        }
        return paused
    }

    /// Stops tracking `connection` (it drained, or it is going away); idempotent.
    mutating func remove(_ connection: KVConnection) {
        let position = connection.budgetSlot
        guard position >= 0, position < backlog.count, backlog[position] === connection else { return }
        total -= connection.countedUnsent
        let last = backlog.removeLast()
        if position < backlog.count {
            backlog[position] = last
            last.budgetSlot = position
        }
        connection.budgetSlot = -1
        connection.countedUnsent = 0
    }

    /// Forgets every connection (the runtime stopped).
    mutating func removeAll() {
        for connection in backlog {
            connection.budgetSlot = -1
            connection.countedUnsent = 0
        }
        backlog.removeAll()
        total = 0
    }
}

extension KVService {
    /// Recounts the backlog at the end of each loop turn in which it is not
    /// empty (queues drain during the turn without an event), and resumes the
    /// paused connections the budget now allows.
    public func loopTurnEnded(context: Context) {
        guard !outputBudget.pointee.backlog.isEmpty else { return }
        for connection in outputBudget.pointee.recount() {
            connection.resumeIfAllowed(context: context)
        }
    }
}
