#if canImport(Glibc)
import Glibc
#endif

/// One key of the store: its bytes, its value's, and its deadline.
///
/// Key and value share one `malloc`ed block (key first), like Redis's
/// embedded strings: a new key costs one allocation, and overwriting a value
/// that fits the block's capacity costs none (redis-benchmark's SET rewrites
/// one key over and over).
struct KVEntry {
    var hash: UInt64
    var block: UnsafeMutableRawPointer
    var keyLength: Int32
    var valueLength: Int32
    var valueCapacity: Int32
    /// The entry's position in the store's volatile list; -1 without a deadline.
    var volatileIndex: Int32
    /// When the key expires, in ``KVClock`` milliseconds; meaningful only
    /// while ``volatileIndex`` is set.
    var deadline: Int64

    var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: block, count: Int(keyLength)) }
    var value: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: block + Int(keyLength), count: Int(valueLength)) }
}

/// The keyspace: a hash table of byte-string keys and values with deadlines.
///
/// **Layout** (CPython's compact dict): a dense array of ``KVEntry`` and an
/// open-addressing index of 64-bit slots, each holding the upper 32 bits of
/// the key's hash beside the entry's position plus one (0 is empty). A probe
/// compares hash bits without touching the entries, so a lookup usually
/// reads one slot and one entry. Linear probing, at most half full, with
/// backward-shift deletion (no tombstones). Removal moves the last entry into
/// the hole, so the entries stay dense: KEYS walks an array, and random
/// sampling for active expiry picks an index.
///
/// **Deadlines**: keys with a deadline are also listed, densely, in
/// ``volatile`` (entry positions), which the active expiry cycle samples
/// like Redis samples its `expires` dictionary.
///
/// Not thread-safe: ``KVDatabase/withStore(_:)`` serialises access to it.
/// It owns raw memory (hence `~Copyable`, freed in `deinit`).
struct KVStore: ~Copyable {
    let hasher: KVHasher
    private var slots: UnsafeMutablePointer<UInt64>
    private var slotMask: Int
    private var entries: UnsafeMutablePointer<KVEntry>
    private var entryCapacity: Int
    /// The number of keys, expired ones not yet removed included (Redis's DBSIZE counts those too).
    private(set) var count = 0
    private var volatile: UnsafeMutablePointer<Int32>
    private var volatileCapacity: Int
    /// The number of keys with a deadline.
    private(set) var volatileCount = 0
    /// xorshift state for sampling (no need for a secure generator).
    private var randomState: UInt64
    /// Counters for INFO, kept here because every command holds the lock anyway.
    var counters = KVCounters()

    private static let initialSlots = 16

    init(seed: UInt64) {
        hasher = KVHasher(seed: seed)
        randomState = seed | 1
        slots = .allocate(capacity: KVStore.initialSlots)
        slots.initialize(repeating: 0, count: KVStore.initialSlots)
        slotMask = KVStore.initialSlots - 1
        entryCapacity = KVStore.initialSlots / 2
        entries = .allocate(capacity: entryCapacity)
        volatileCapacity = 8
        volatile = .allocate(capacity: volatileCapacity)
    }

    deinit {
        for index in 0..<count { free(entries[index].block) }
        slots.deallocate()
        entries.deallocate()
        volatile.deallocate()
    }

    // MARK: Reading

    /// The entry at `index` (valid until the next mutation).
    @inline(__always)
    func entry(_ index: Int) -> KVEntry { entries[index] }

    /// Hashes a key with this store's seed.
    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { hasher.hash(key) }

    /// The live entry for `key`, or nil. A key found expired (`now` past its
    /// deadline, Redis's rule) is removed on the spot: lazy expiry.
    @inline(__always)
    mutating func find(_ key: UnsafeRawBufferPointer, hash: UInt64, now: Int64) -> Int? {
        let (slot, index) = probe(key, hash: hash)
        guard index >= 0 else { return nil }
        if isExpired(index, now: now) {
            removeEntry(slot: slot, index: index)
            counters.expiredKeys &+= 1
            return nil
        }
        return index
    }

    /// The live entry for `key`, or nil (hashes it first).
    @inline(__always)
    mutating func find(_ key: UnsafeRawBufferPointer, now: Int64) -> Int? {
        find(key, hash: hasher.hash(key), now: now)
    }

    @inline(__always)
    func isExpired(_ index: Int, now: Int64) -> Bool {
        let entry = entries[index]
        return entry.volatileIndex >= 0 && now > entry.deadline
    }

    // MARK: Writing

    /// Sets `key` to `value` and returns its entry. An existing deadline is
    /// kept when `keepDeadline` (SET KEEPTTL, INCR) and cleared otherwise; a
    /// key found expired counts as new.
    @discardableResult
    mutating func set(_ key: UnsafeRawBufferPointer, hash: UInt64, value: UnsafeRawBufferPointer,
                      now: Int64, keepDeadline: Bool = false) -> Int {
        var (slot, index) = probe(key, hash: hash)
        if index >= 0 {
            if isExpired(index, now: now) {
                counters.expiredKeys &+= 1
                clearDeadline(index)
            } else if !keepDeadline {
                clearDeadline(index)
            }
            assignValue(index, value)
            return index
        }
        if (count + 1) * 2 > slotMask + 1 {
            grow()
            slot = probe(key, hash: hash).slot
        }
        if count == entryCapacity {
            let newCapacity = entryCapacity * 2
            let grown = UnsafeMutablePointer<KVEntry>.allocate(capacity: newCapacity)
            grown.moveInitialize(from: entries, count: count)
            entries.deallocate()
            entries = grown
            entryCapacity = newCapacity
        }
        let keyLength = key.count
        let block = malloc(max(1, keyLength + value.count))!
        if keyLength > 0 { block.copyMemory(from: key.baseAddress!, byteCount: keyLength) }
        if value.count > 0 { (block + keyLength).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        index = count
        (entries + index).initialize(to: KVEntry(hash: hash, block: block, keyLength: Int32(keyLength),
                                                 valueLength: Int32(value.count), valueCapacity: Int32(value.count),
                                                 volatileIndex: -1, deadline: 0))
        count += 1
        slots[slot] = (hash & 0xFFFF_FFFF_0000_0000) | UInt64(index + 1)
        return index
    }

    /// Replaces the value of entry `index`, reusing its block when the new value fits.
    mutating func assignValue(_ index: Int, _ value: UnsafeRawBufferPointer) {
        let keyLength = Int(entries[index].keyLength)
        let capacity = Int(entries[index].valueCapacity)
        // Reallocate to grow, and to shrink a block far larger than its value
        // (one big value must not pin its memory after being replaced by a small one).
        if value.count > capacity || (capacity > 64 && value.count < capacity / 4) {
            entries[index].block = realloc(entries[index].block, max(1, keyLength + value.count))!
            entries[index].valueCapacity = Int32(value.count)
        }
        if value.count > 0 {
            (entries[index].block + keyLength).copyMemory(from: value.baseAddress!, byteCount: value.count)
        }
        entries[index].valueLength = Int32(value.count)
    }

    /// Appends to entry `index`'s value (APPEND). The block grows
    /// geometrically (by up to 1 MiB at a time), so repeated appends cost
    /// amortised O(1) copies, as with Redis's sds strings.
    mutating func appendValue(_ index: Int, _ extra: UnsafeRawBufferPointer) {
        guard extra.count > 0 else { return }
        let keyLength = Int(entries[index].keyLength)
        let length = Int(entries[index].valueLength)
        let needed = length + extra.count
        if needed > Int(entries[index].valueCapacity) {
            let capacity = max(needed, min(needed * 2, needed + (1 << 20)))
            entries[index].block = realloc(entries[index].block, keyLength + capacity)!
            entries[index].valueCapacity = Int32(capacity)
        }
        (entries[index].block + keyLength + length).copyMemory(from: extra.baseAddress!, byteCount: extra.count)
        entries[index].valueLength = Int32(needed)
    }

    /// Grows entry `index`'s value to `length` bytes with zero bytes
    /// (SETRANGE past the end); a value already that long is left alone.
    mutating func extendValue(_ index: Int, zeroFilledTo length: Int) {
        let current = Int(entries[index].valueLength)
        guard length > current else { return }
        if length > Int(entries[index].valueCapacity) {
            let keyLength = Int(entries[index].keyLength)
            entries[index].block = realloc(entries[index].block, keyLength + length)!
            entries[index].valueCapacity = Int32(length)
        }
        (entries[index].block + Int(entries[index].keyLength) + current).initializeMemory(as: UInt8.self, repeating: 0,
                                                                                         count: length - current)
        entries[index].valueLength = Int32(length)
    }

    /// Removes `key` if it is live; true if it was (an expired key counts as absent).
    mutating func remove(_ key: UnsafeRawBufferPointer, now: Int64) -> Bool {
        let (slot, index) = probe(key, hash: hasher.hash(key))
        guard index >= 0 else { return false }
        let expired = isExpired(index, now: now)
        if expired { counters.expiredKeys &+= 1 }
        removeEntry(slot: slot, index: index)
        return !expired
    }

    /// Removes entry `index` (found by a lookup just before).
    mutating func remove(at index: Int) {
        removeEntry(slot: slotOf(index), index: index)
    }

    /// Removes every key, returning the memory to its initial size.
    mutating func removeAll() {
        for index in 0..<count { free(entries[index].block) }
        slots.deallocate()
        entries.deallocate()
        volatile.deallocate()
        slots = .allocate(capacity: KVStore.initialSlots)
        slots.initialize(repeating: 0, count: KVStore.initialSlots)
        slotMask = KVStore.initialSlots - 1
        entryCapacity = KVStore.initialSlots / 2
        entries = .allocate(capacity: entryCapacity)
        volatileCapacity = 8
        volatile = .allocate(capacity: volatileCapacity)
        count = 0
        volatileCount = 0
    }

    // MARK: Deadlines

    /// Gives entry `index` a deadline (``KVClock`` milliseconds).
    mutating func setDeadline(_ index: Int, _ deadline: Int64) {
        if entries[index].volatileIndex < 0 {
            if volatileCount == volatileCapacity {
                let newCapacity = volatileCapacity * 2
                let grown = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
                grown.moveInitialize(from: volatile, count: volatileCount)
                volatile.deallocate()
                volatile = grown
                volatileCapacity = newCapacity
            }
            volatile[volatileCount] = Int32(index)
            entries[index].volatileIndex = Int32(volatileCount)
            volatileCount += 1
        }
        entries[index].deadline = deadline
    }

    /// Removes entry `index`'s deadline; true if it had one.
    @discardableResult
    mutating func clearDeadline(_ index: Int) -> Bool {
        let position = Int(entries[index].volatileIndex)
        guard position >= 0 else { return false }
        removeFromVolatile(position)
        entries[index].volatileIndex = -1
        return true
    }

    /// One round of active expiry (Redis's `activeExpireCycle` step): looks
    /// at up to `samples` random keys with a deadline and removes those that
    /// have expired. Returns how many it looked at and how many it removed;
    /// the caller repeats while a quarter or more of a round had expired.
    mutating func expireSample(now: Int64, samples: Int) -> (checked: Int, expired: Int) {
        let rounds = min(samples, volatileCount)
        var expired = 0
        for _ in 0..<rounds {
            guard volatileCount > 0 else { break }
            let position = Int(nextRandom() % UInt64(volatileCount))
            let index = Int(volatile[position])
            if now > entries[index].deadline {
                remove(at: index)
                counters.expiredKeys &+= 1
                expired += 1
            }
        }
        return (rounds, expired)
    }

    // MARK: The table

    /// The slot holding `key` and its entry, or the empty slot where it
    /// would go and -1.
    @inline(__always)
    private func probe(_ key: UnsafeRawBufferPointer, hash: UInt64) -> (slot: Int, index: Int) {
        let tag = hash & 0xFFFF_FFFF_0000_0000
        var slot = Int(truncatingIfNeeded: hash) & slotMask
        while true {
            let word = slots[slot]
            if word == 0 { return (slot, -1) }
            if word & 0xFFFF_FFFF_0000_0000 == tag {
                let index = Int(truncatingIfNeeded: word & 0xFFFF_FFFF) - 1
                let entry = entries[index]
                if Int(entry.keyLength) == key.count
                    && (key.count == 0 || memcmp(entry.block, key.baseAddress!, key.count) == 0) {
                    return (slot, index)
                }
            }
            slot = (slot + 1) & slotMask
        }
    }

    /// The slot that points at entry `index`.
    private func slotOf(_ index: Int) -> Int {
        let wanted = UInt64(index + 1)
        var slot = Int(truncatingIfNeeded: entries[index].hash) & slotMask
        while slots[slot] & 0xFFFF_FFFF != wanted { slot = (slot + 1) & slotMask }
        return slot
    }

    private mutating func removeEntry(slot: Int, index: Int) {
        // Backward-shift deletion: pull later members of the probe run into
        // the hole unless that would move one before its home slot.
        var hole = slot
        var next = slot
        while true {
            next = (next + 1) & slotMask
            let word = slots[next]
            if word == 0 { break }
            let home = Int(truncatingIfNeeded: entries[Int(word & 0xFFFF_FFFF) - 1].hash) & slotMask
            if (next &- home) & slotMask >= (next &- hole) & slotMask {
                slots[hole] = word
                hole = next
            }
        }
        slots[hole] = 0

        free(entries[index].block)
        let position = Int(entries[index].volatileIndex)
        if position >= 0 { removeFromVolatile(position) }
        let last = count - 1
        if index != last {
            // Keep the entries dense: the last one fills the hole.
            let lastSlot = slotOf(last)
            entries[index] = entries[last]
            slots[lastSlot] = (slots[lastSlot] & 0xFFFF_FFFF_0000_0000) | UInt64(index + 1)
            let moved = Int(entries[index].volatileIndex)
            if moved >= 0 { volatile[moved] = Int32(index) }
        }
        (entries + last).deinitialize(count: 1)
        count -= 1
    }

    private mutating func removeFromVolatile(_ position: Int) {
        let last = volatileCount - 1
        if position != last {
            volatile[position] = volatile[last]
            entries[Int(volatile[position])].volatileIndex = Int32(position)
        }
        volatileCount -= 1
    }

    private mutating func grow() {
        let newSize = (slotMask + 1) * 2
        let grown = UnsafeMutablePointer<UInt64>.allocate(capacity: newSize)
        grown.initialize(repeating: 0, count: newSize)
        let newMask = newSize - 1
        for index in 0..<count {
            let hash = entries[index].hash
            var slot = Int(truncatingIfNeeded: hash) & newMask
            while grown[slot] != 0 { slot = (slot + 1) & newMask }
            grown[slot] = (hash & 0xFFFF_FFFF_0000_0000) | UInt64(index + 1)
        }
        slots.deallocate()
        slots = grown
        slotMask = newMask
    }

    private mutating func nextRandom() -> UInt64 {
        randomState ^= randomState >> 12
        randomState ^= randomState << 25
        randomState ^= randomState >> 27
        return randomState &* 0x2545_F491_4F6C_DD1D
    }
}

/// What INFO reports about the keyspace and the commands run.
struct KVCounters: Sendable {
    var commandsProcessed: UInt64 = 0
    var expiredKeys: UInt64 = 0
    var keyspaceHits: UInt64 = 0
    var keyspaceMisses: UInt64 = 0
}
