import ProtocolRESP

/// GETRANGE, SETRANGE, MSETNX and GETEX, as Redis 7.0's t_string.c runs
/// them: the same order of checks, so that a request with several faults
/// gets the same error from kv as from Redis.
extension KVExecutor {
    /// GETRANGE key start end: both ends inclusive, negative ones counted
    /// from the end. The integers are checked before the key is looked up,
    /// so a bad range is an error even for a missing key.
    static func getrange(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard var start = KVBytes.parseInt64(args[2]), var end = KVBytes.parseInt64(args[3]) else {
            notAnInteger(&reply)
            return
        }
        guard let index = store.find(args[1], now: now) else {
            store.counters.keyspaceMisses &+= 1
            reply.append("$0\r\n\r\n")
            return
        }
        store.counters.keyspaceHits &+= 1
        let value = store.entry(index).value
        let length = Int64(value.count)
        if start < 0 && end < 0 && start > end {
            reply.append("$0\r\n\r\n")
            return
        }
        // Redis adds to a size_t, so LLONG_MIN wraps rather than traps.
        if start < 0 { start = length &+ start }
        if end < 0 { end = length &+ end }
        start = max(start, 0)
        end = max(end, 0)
        if end >= length { end = length - 1 }
        if start > end || length == 0 {
            reply.append("$0\r\n\r\n")
            return
        }
        reply.appendBulk(UnsafeRawBufferPointer(rebasing: value[Int(start)...Int(end)]))
    }

    /// SETRANGE key offset value: the new length. A missing key becomes a
    /// string of zero bytes up to the offset; an empty value changes nothing
    /// (and creates nothing). The result may not exceed the bulk limit
    /// (Redis's `proto-max-bulk-len`), checked with overflow in mind.
    static func setrange(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, context: KVCommandContext) {
        guard let offset = KVBytes.parseInt64(args[2]) else {
            notAnInteger(&reply)
            return
        }
        guard offset >= 0 else {
            reply.append("-ERR offset is out of range\r\n")
            return
        }
        let key = args[1]
        let value = args[3]
        let hash = store.hash(key)
        let existing = store.find(key, hash: hash, now: context.now)
        if value.isEmpty {
            reply.appendInteger(existing.map { Int64(store.entry($0).valueLength) } ?? 0)
            return
        }
        // The store keeps lengths in 32 bits: a configured limit above that cannot be honoured.
        let limit = Int64(min(context.server.configuration.maxBulkLength, Int(Int32.max)))
        let (total, overflow) = offset.addingReportingOverflow(Int64(value.count))
        guard !overflow, total <= limit else {
            reply.append("-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n")
            return
        }
        let index = existing ?? store.set(key, hash: hash, value: UnsafeRawBufferPointer(start: nil, count: 0), now: context.now)
        store.extendValue(index, zeroFilledTo: Int(total))
        let entry = store.entry(index)
        (entry.block + Int(entry.keyLength) + Int(offset)).copyMemory(from: value.baseAddress!, byteCount: value.count)
        reply.appendInteger(Int64(store.entry(index).valueLength))
    }

    /// MSETNX key value [key value ...]: 1 and every key set, or 0 and none
    /// if any of them exists.
    static func msetnx(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard args.count % 2 == 1 else {
            wrongArity("msetnx", reply: &reply)
            return
        }
        var index = 1
        while index < args.count {
            if store.find(args[index], now: now) != nil {
                reply.append(":0\r\n")
                return
            }
            index += 2
        }
        index = 1
        while index < args.count {
            let key = args[index]
            store.set(key, hash: store.hash(key), value: args[index + 1], now: now)
            index += 2
        }
        reply.append(":1\r\n")
    }

    /// GETEX's one option, as Redis's parseExtendedStringArgumentsOrReply sees it for a GET.
    private enum GetexOption {
        case none, ex, px, exat, pxat, persist
    }

    /// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: the value, and the
    /// deadline changed as asked. Redis checks the options' syntax first,
    /// then the key (a missing key is nil even with a bad time), then the
    /// time; a past EXAT/PXAT deletes the key after replying with it.
    static func getex(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        var option = GetexOption.none
        var timeIndex = -1
        var index = 2
        while index < args.count {
            let word = args[index]
            let hasNext = index < args.count - 1
            // Repeating the same option is allowed (the last wins); mixing two is not.
            if KVBytes.equalsIgnoringCase(word, "persist") && (option == .none || option == .persist) {
                option = .persist
            } else if hasNext, let timed = timedOption(word), option == .none || option == timed {
                option = timed
                timeIndex = index + 1
                index += 1
            } else {
                syntaxError(&reply)
                return
            }
            index += 1
        }
        guard let found = store.find(args[1], now: now) else {
            store.counters.keyspaceMisses &+= 1
            reply.appendNull()
            return
        }
        store.counters.keyspaceHits &+= 1
        var deadline: Int64 = 0
        if timeIndex >= 0 {
            let seconds = option == .ex || option == .exat
            let relative = option == .ex || option == .px
            guard let value = expireMilliseconds(args[timeIndex], seconds: seconds, relative: relative, name: "getex",
                                                 reply: &reply, now: now) else { return }
            deadline = value
        }
        reply.appendBulk(store.entry(found).value)
        switch option {
        case .none: break
        case .persist: store.clearDeadline(found)
        case .ex, .px: store.setDeadline(found, deadline)
        case .exat, .pxat:
            if deadline <= now { store.remove(at: found) } else { store.setDeadline(found, deadline) }
        }
    }

    private static func timedOption(_ word: UnsafeRawBufferPointer) -> GetexOption? {
        if KVBytes.equalsIgnoringCase(word, "ex") { return .ex }
        if KVBytes.equalsIgnoringCase(word, "px") { return .px }
        if KVBytes.equalsIgnoringCase(word, "exat") { return .exat }
        if KVBytes.equalsIgnoringCase(word, "pxat") { return .pxat }
        return nil
    }
}
