import ProtocolRESP

/// The keyspace commands: DEL, EXISTS, TYPE, the deadline commands, KEYS, FLUSHALL and FLUSHDB.
extension KVExecutor {
    static func del(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        var removed: Int64 = 0
        for index in 1..<args.count where store.remove(args[index], now: now) { removed += 1 }
        reply.appendInteger(removed)
    }

    /// EXISTS counts a key once per time it is named, as Redis does.
    static func exists(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        var found: Int64 = 0
        for index in 1..<args.count where store.find(args[index], now: now) != nil { found += 1 }
        reply.appendInteger(found)
    }

    static func type(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        reply.append(store.find(args[1], now: now) == nil ? "+none\r\n" : "+string\r\n")
    }

    /// EXPIRE/PEXPIRE key time [NX|XX|GT|LT], as Redis 7.0's expireGenericCommand:
    /// options are checked first, then the time (with its overflow checks),
    /// then the key; a time already past deletes the key. `absolute` makes it
    /// EXPIREAT/PEXPIREAT: the time is a Unix time, not one relative to now.
    static func expire(_ args: KVArgs, unitSeconds: Bool, absolute: Bool = false, name: String,
                       store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        var nx = false, xx = false, gt = false, lt = false
        for index in 3..<args.count {
            let option = args[index]
            if KVBytes.equalsIgnoringCase(option, "nx") {
                nx = true
            } else if KVBytes.equalsIgnoringCase(option, "xx") {
                xx = true
            } else if KVBytes.equalsIgnoringCase(option, "gt") {
                gt = true
            } else if KVBytes.equalsIgnoringCase(option, "lt") {
                lt = true
            } else {
                reply.appendError(Array("Unsupported option ".utf8) + KVBytes.cString(option))
                return
            }
        }
        if nx && (xx || gt || lt) {
            reply.append("-ERR NX and XX, GT or LT options at the same time are not compatible\r\n")
            return
        }
        if gt && lt {
            reply.append("-ERR GT and LT options at the same time are not compatible\r\n")
            return
        }
        guard var when = KVBytes.parseInt64(args[2]) else {
            notAnInteger(&reply)
            return
        }
        if unitSeconds {
            guard when <= Int64.max / 1000 && when >= Int64.min / 1000 else {
                invalidExpireTime(name, reply: &reply)
                return
            }
            when *= 1000
        }
        let base = absolute ? 0 : now
        guard when <= Int64.max - base else {
            invalidExpireTime(name, reply: &reply)
            return
        }
        when += base
        guard let index = store.find(args[1], now: now) else {
            reply.append(":0\r\n")
            return
        }
        let entry = store.entry(index)
        let current: Int64? = entry.volatileIndex >= 0 ? entry.deadline : nil
        // A key without a deadline counts as an infinite one for GT and LT.
        if (nx && current != nil) || (xx && current == nil)
            || (gt && (current == nil || when <= current!))
            || (lt && current != nil && when >= current!) {
            reply.append(":0\r\n")
            return
        }
        if when <= now {
            store.remove(at: index)
        } else {
            store.setDeadline(index, when)
        }
        reply.append(":1\r\n")
    }

    /// TTL (seconds, rounded) or PTTL: -2 for a missing key, -1 without a deadline.
    static func ttl(_ args: KVArgs, milliseconds: Bool, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard let index = store.find(args[1], now: now) else {
            reply.append(":-2\r\n")
            return
        }
        let entry = store.entry(index)
        guard entry.volatileIndex >= 0 else {
            reply.append(":-1\r\n")
            return
        }
        let left = max(0, entry.deadline - now)
        reply.appendInteger(milliseconds ? left : (left + 500) / 1000)
    }

    static func persist(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard let index = store.find(args[1], now: now) else {
            reply.append(":0\r\n")
            return
        }
        reply.append(store.clearDeadline(index) ? ":1\r\n" : ":0\r\n")
    }

    /// FLUSHALL and FLUSHDB [ASYNC|SYNC]: the same with one database; both
    /// flush at once (no lazy-free thread).
    static func flushall(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer) {
        if args.count > 2 || (args.count == 2 && !KVBytes.equalsIgnoringCase(args[1], "sync")
                              && !KVBytes.equalsIgnoringCase(args[1], "async")) {
            syntaxError(&reply)
            return
        }
        store.removeAll()
        reply.append("+OK\r\n")
    }

    /// KEYS pattern: every live key that matches, in table order (Redis's
    /// order is its own table's, so clients must not rely on any order).
    static func keys(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let pattern = args[1]
        let everything = pattern.count == 1 && pattern[0] == UInt8(ascii: "*")
        var matches: [Int] = []
        for index in 0..<store.count where !store.isExpired(index, now: now) {
            if everything || KVGlob.matches(pattern, store.entry(index).key) { matches.append(index) }
        }
        reply.appendArrayHeader(matches.count)
        for index in matches { reply.appendBulk(store.entry(index).key) }
    }
}
