import HeapModule

/// The runtime's timers: a binary heap ordered by deadline (then by creation
/// order, so timers due at the same instant fire in the order they were
/// set), with lazy cancellation. Arming and cancelling are O(log n) and O(1);
/// 100,000 pending timers cost a few megabytes and no scans.
@usableFromInline
struct TimerQueue {
    @usableFromInline struct Entry: Comparable {
        @usableFromInline var deadline: MonotonicInstant
        @usableFromInline var id: TimerID
        @usableFromInline static func < (a: Entry, b: Entry) -> Bool {
            a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
        }
    }

    /// Live timers: id → repeat interval (nil for one-shot). An entry in the
    /// heap whose id is not here, or whose deadline is not the live one, was
    /// cancelled or re-armed and is skipped when it surfaces.
    @usableFromInline var live: [TimerID: (deadline: MonotonicInstant, interval: Duration?)] = [:]
    @usableFromInline var heap = Heap<Entry>()
    @usableFromInline var nextID: UInt64 = 1

    @usableFromInline var count: Int { live.count }

    mutating func schedule(at deadline: MonotonicInstant, repeating interval: Duration?) -> TimerID {
        let id = TimerID(rawValue: nextID)
        nextID += 1
        live[id] = (deadline, interval)
        heap.insert(Entry(deadline: deadline, id: id))
        return id
    }

    /// Returns false if the timer had already fired (one-shot) or been cancelled.
    mutating func cancel(_ id: TimerID) -> Bool {
        guard live.removeValue(forKey: id) != nil else { return false }
        // Cancelled entries stay in the heap until they surface; rebuild when
        // they dominate so a cancel-heavy workload cannot grow it without bound.
        if heap.count > 1024 && heap.count > 2 * live.count { compact() }
        return true
    }

    /// The earliest live deadline, discarding cancelled entries on the way.
    @usableFromInline
    mutating func nextDeadline() -> MonotonicInstant? {
        while let top = heap.min {
            if let entry = live[top.id], entry.deadline == top.deadline { return top.deadline }
            heap.removeMin()
        }
        return nil
    }

    /// Removes and returns the earliest timer due at or before `now`; a
    /// repeating timer is re-armed one interval later (or one interval after
    /// `now` if it fell behind, so a slow loop does not fire it in a burst).
    @usableFromInline
    mutating func popDue(now: MonotonicInstant) -> TimerID? {
        guard let deadline = nextDeadline(), deadline <= now, let top = heap.popMin() else { return nil }
        let id = top.id
        if let interval = live[id]?.interval {
            var next = top.deadline.advanced(by: interval)
            if next <= now { next = now.advanced(by: interval) }
            live[id] = (next, interval)
            heap.insert(Entry(deadline: next, id: id))
        } else {
            live.removeValue(forKey: id)
        }
        return id
    }

    private mutating func compact() {
        heap = Heap(live.map { Entry(deadline: $0.value.deadline, id: $0.key) })
    }
}
