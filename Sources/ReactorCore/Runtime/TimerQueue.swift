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

    /// A live timer: its current deadline, its repeat interval (nil for
    /// one-shot), and the resource it belongs to (nil: the Service's).
    @usableFromInline struct Live {
        @usableFromInline var deadline: MonotonicInstant
        @usableFromInline var interval: Duration?
        @usableFromInline var owner: ResourceID?
    }

    /// Live timers by id. An entry in the heap whose id is not here, or whose
    /// deadline is not the live one, was cancelled or re-armed and is skipped
    /// when it surfaces.
    @usableFromInline var live: [TimerID: Live] = [:]
    @usableFromInline var heap = Heap<Entry>()
    @usableFromInline var nextID: UInt64 = 1

    @usableFromInline var count: Int { live.count }

    mutating func schedule(at deadline: MonotonicInstant, repeating interval: Duration?, owner: ResourceID? = nil) -> TimerID {
        let id = TimerID(rawValue: nextID)
        nextID += 1
        live[id] = Live(deadline: deadline, interval: interval, owner: owner)
        heap.insert(Entry(deadline: deadline, id: id))
        return id
    }

    /// Returns false if the timer had already fired (one-shot) or been cancelled.
    @usableFromInline
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

    /// Removes and returns the earliest timer due at or before `now`, with
    /// the resource it belongs to (nil: the Service's); a
    /// repeating timer is re-armed one interval later (or one interval after
    /// `now` if it fell behind, so a slow loop does not fire it in a burst).
    @usableFromInline
    mutating func popDue(now: MonotonicInstant) -> (timer: TimerID, owner: ResourceID?)? {
        // Every live timer has a heap entry at its deadline, so when even the
        // (possibly stale) minimum is in the future nothing is due: answer
        // without the dictionary lookup that validating it would cost.
        guard let earliest = heap.min, earliest.deadline <= now else { return nil }
        guard let deadline = nextDeadline(), deadline <= now, let top = heap.popMin() else { return nil }
        let id = top.id
        guard var entry = live[id] else { return nil }  // nextDeadline just checked it is live
        if let interval = entry.interval {
            var next = top.deadline.advanced(by: interval)
            if next <= now { next = now.advanced(by: interval) }
            entry.deadline = next
            live[id] = entry
            heap.insert(Entry(deadline: next, id: id))
        } else {
            live.removeValue(forKey: id)
        }
        return (id, entry.owner)
    }

    private mutating func compact() {
        heap = Heap(live.map { Entry(deadline: $0.value.deadline, id: $0.key) })
    }
}
