import ProtocolRESP

/// RENAME, RENAMENX, COPY, EXPIRETIME and PEXPIRETIME, with Redis 7.0's
/// order of checks and its replies.
///
/// A key's bytes and value share one block in the store, so renaming copies
/// the value into the new key's block: O(length) where Redis moves a
/// pointer, which for strings (the only type here) is no worse than COPY.
extension KVExecutor {
    /// RENAME key newkey (`+OK`), RENAMENX key newkey (1, or 0 if newkey
    /// exists). The deadline moves with the value. A missing key is
    /// `-ERR no such key`, even when both names are the same.
    static func rename(_ args: KVArgs, onlyIfNew: Bool, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let source = args[1]
        let destination = args[2]
        let sameKey = KVBytes.equal(source, destination)
        // The destination first: finding it may remove it (expired), which
        // moves another entry, and the source's position must be taken after.
        let destinationExists = !sameKey && store.find(destination, now: now) != nil
        guard let index = store.find(source, now: now) else {
            reply.append("-ERR no such key\r\n")
            return
        }
        if sameKey {
            reply.append(onlyIfNew ? ":0\r\n" : "+OK\r\n")
            return
        }
        if destinationExists && onlyIfNew {
            reply.append(":0\r\n")
            return
        }
        duplicate(index, to: destination, store: &store, now: now)
        store.remove(at: index)
        reply.append(onlyIfNew ? ":1\r\n" : "+OK\r\n")
    }

    /// COPY source destination [DB destination-db] [REPLACE]: 1 if copied,
    /// 0 if the source is missing or the destination exists (without
    /// REPLACE). This server has database 0 only: any other DB is out of range.
    static func copy(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        var replace = false
        var index = 3
        while index < args.count {
            let option = args[index]
            if KVBytes.equalsIgnoringCase(option, "replace") {
                replace = true
            } else if KVBytes.equalsIgnoringCase(option, "db") && index + 1 < args.count {
                guard let database = KVBytes.parseInt64(args[index + 1]) else {
                    notAnInteger(&reply)
                    return
                }
                guard database >= Int64(Int32.min), database <= Int64(Int32.max) else {
                    reply.append("-ERR value is out of range, value must between -2147483648 and 2147483647\r\n")
                    return
                }
                guard database == 0 else {
                    reply.append("-ERR DB index is out of range\r\n")
                    return
                }
                index += 1
            } else {
                syntaxError(&reply)
                return
            }
            index += 1
        }
        let source = args[1]
        let destination = args[2]
        if KVBytes.equal(source, destination) {
            reply.append("-ERR source and destination objects are the same\r\n")
            return
        }
        let destinationExists = store.find(destination, now: now) != nil  // first: see rename
        guard let found = store.find(source, now: now) else {
            store.counters.keyspaceMisses &+= 1
            reply.append(":0\r\n")
            return
        }
        store.counters.keyspaceHits &+= 1
        if destinationExists && !replace {
            reply.append(":0\r\n")
            return
        }
        duplicate(found, to: destination, store: &store, now: now)
        reply.append(":1\r\n")
    }

    /// Sets `destination` to entry `index`'s value and deadline (no deadline
    /// if it has none). Entry `index` stays where it is: setting appends a
    /// new entry or rewrites one in place, and the source's block is only read.
    private static func duplicate(_ index: Int, to destination: UnsafeRawBufferPointer, store: inout KVStore, now: Int64) {
        let entry = store.entry(index)
        let deadline: Int64? = entry.volatileIndex >= 0 ? entry.deadline : nil
        let copied = store.set(destination, hash: store.hash(destination), value: entry.value, now: now)
        if let deadline { store.setDeadline(copied, deadline) }
    }

    /// EXPIRETIME (seconds, rounded) or PEXPIRETIME: the Unix time the key
    /// expires at; -2 for a missing key, -1 without a deadline.
    static func expireTime(_ args: KVArgs, milliseconds: Bool, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard let index = store.find(args[1], now: now) else {
            reply.append(":-2\r\n")
            return
        }
        let entry = store.entry(index)
        guard entry.volatileIndex >= 0 else {
            reply.append(":-1\r\n")
            return
        }
        let deadline = max(0, entry.deadline)
        // Rounded without overflowing near Int64.max (PEXPIREAT accepts it),
        // which gives what Redis's `(ttl+500)/1000` prints there.
        reply.appendInteger(milliseconds ? deadline : deadline / 1000 + (deadline % 1000 + 500) / 1000)
    }
}
