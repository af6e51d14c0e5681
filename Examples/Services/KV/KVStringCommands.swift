import ProtocolRESP

/// The string commands: GET, SET and its variants, counters, MGET/MSET.
/// Only strings exist in this store, so Redis's `-WRONGTYPE` error can never
/// be returned: every key holds a string.
extension KVExecutor {
    static func get(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        if let index = store.find(args[1], now: now) {
            store.counters.keyspaceHits &+= 1
            reply.appendBulk(store.entry(index).value)
        } else {
            store.counters.keyspaceMisses &+= 1
            reply.appendNull()
        }
    }

    /// SET's options, as bits (Redis's `OBJ_SET_*` flags).
    private struct SetFlags: OptionSet {
        let rawValue: UInt16
        static let nx = SetFlags(rawValue: 1 << 0)
        static let xx = SetFlags(rawValue: 1 << 1)
        static let ex = SetFlags(rawValue: 1 << 2)
        static let px = SetFlags(rawValue: 1 << 3)
        static let keepTTL = SetFlags(rawValue: 1 << 4)
        static let get = SetFlags(rawValue: 1 << 5)
        static let exat = SetFlags(rawValue: 1 << 6)
        static let pxat = SetFlags(rawValue: 1 << 7)
        static let anyExpiry: SetFlags = [.ex, .px, .exat, .pxat]
    }

    /// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL].
    static func set(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        if args.count == 3 {
            // The common case, without option parsing.
            let key = args[1]
            store.set(key, hash: store.hash(key), value: args[2], now: now)
            reply.append("+OK\r\n")
            return
        }
        // Redis's parseExtendedStringArgumentsOrReply, condition for condition
        // (so `EX 1 EX 2` is accepted, the last one winning, as in Redis).
        var flags: SetFlags = []
        var expireIndex = -1
        var index = 3
        while index < args.count {
            let option = args[index]
            let hasNext = index < args.count - 1
            if KVBytes.equalsIgnoringCase(option, "nx") && !flags.contains(.xx) {
                flags.insert(.nx)
            } else if KVBytes.equalsIgnoringCase(option, "xx") && !flags.contains(.nx) {
                flags.insert(.xx)
            } else if KVBytes.equalsIgnoringCase(option, "get") {
                flags.insert(.get)
            } else if KVBytes.equalsIgnoringCase(option, "keepttl") && flags.isDisjoint(with: .anyExpiry) {
                flags.insert(.keepTTL)
            } else if hasNext, let kind = expiryOption(option),
                      flags.isDisjoint(with: SetFlags.anyExpiry.subtracting(kind).union(.keepTTL)) {
                flags.insert(kind)
                expireIndex = index + 1
                index += 1
            } else {
                syntaxError(&reply)
                return
            }
            index += 1
        }
        var deadline: Int64?
        if expireIndex >= 0 {
            let relative = flags.contains(.ex) || flags.contains(.px)
            let seconds = flags.contains(.ex) || flags.contains(.exat)
            guard let value = expireMilliseconds(args[expireIndex], seconds: seconds, relative: relative, name: "set",
                                                 reply: &reply, now: now) else { return }
            deadline = value
        }
        setGeneric(args[1], args[2], nx: flags.contains(.nx), xx: flags.contains(.xx), get: flags.contains(.get),
                   keepTTL: flags.contains(.keepTTL), deadline: deadline, store: &store, reply: &reply, now: now)
    }

    private static func expiryOption(_ option: UnsafeRawBufferPointer) -> SetFlags? {
        if KVBytes.equalsIgnoringCase(option, "ex") { return .ex }
        if KVBytes.equalsIgnoringCase(option, "px") { return .px }
        if KVBytes.equalsIgnoringCase(option, "exat") { return .exat }
        if KVBytes.equalsIgnoringCase(option, "pxat") { return .pxat }
        return nil
    }

    /// Redis's getExpireMillisecondsOrReply: a positive integer, in seconds
    /// or milliseconds, relative to now (EX, PX) or absolute (EXAT, PXAT);
    /// nil after replying with the error.
    static func expireMilliseconds(_ argument: UnsafeRawBufferPointer, seconds: Bool, relative: Bool, name: String,
                                           reply: inout RESPReplyBuffer, now: Int64) -> Int64? {
        guard var value = KVBytes.parseInt64(argument) else {
            notAnInteger(&reply)
            return nil
        }
        if value <= 0 || (seconds && value > Int64.max / 1000) {
            invalidExpireTime(name, reply: &reply)
            return nil
        }
        if seconds { value *= 1000 }
        if relative {
            // Redis adds and checks for a wrap to a negative value.
            guard value <= Int64.max - now else {
                invalidExpireTime(name, reply: &reply)
                return nil
            }
            value += now
        }
        return value
    }

    /// Redis's setGenericCommand: GET's reply first, then the NX/XX check, then the write.
    private static func setGeneric(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
                                   nx: Bool, xx: Bool, get: Bool, keepTTL: Bool, deadline: Int64?,
                                   okReply: StaticString = "+OK\r\n", abortReply: StaticString = "$-1\r\n",
                                   store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let hash = store.hash(key)
        let existing = store.find(key, hash: hash, now: now)
        if get {
            if let existing { reply.appendBulk(store.entry(existing).value) } else { reply.appendNull() }
        }
        if (nx && existing != nil) || (xx && existing == nil) {
            if !get { reply.append(abortReply) }
            return
        }
        let index = store.set(key, hash: hash, value: value, now: now, keepDeadline: keepTTL || deadline != nil)
        if let deadline { store.setDeadline(index, deadline) }
        if !get { reply.append(okReply) }
    }

    static func setnx(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        setGeneric(args[1], args[2], nx: true, xx: false, get: false, keepTTL: false, deadline: nil,
                   okReply: ":1\r\n", abortReply: ":0\r\n", store: &store, reply: &reply, now: now)
    }

    /// SETEX key seconds value, PSETEX key milliseconds value.
    static func setex(_ args: KVArgs, milliseconds: Bool, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard let deadline = expireMilliseconds(args[2], seconds: !milliseconds, relative: true,
                                                name: milliseconds ? "psetex" : "setex", reply: &reply, now: now) else { return }
        setGeneric(args[1], args[3], nx: false, xx: false, get: false, keepTTL: false, deadline: deadline,
                   store: &store, reply: &reply, now: now)
    }

    static func getset(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        setGeneric(args[1], args[2], nx: false, xx: false, get: true, keepTTL: false, deadline: nil,
                   store: &store, reply: &reply, now: now)
    }

    static func getdel(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard let index = store.find(args[1], now: now) else {
            reply.appendNull()
            return
        }
        reply.appendBulk(store.entry(index).value)
        store.remove(at: index)
    }

    static func strlen(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let length = store.find(args[1], now: now).map { Int64(store.entry($0).valueLength) } ?? 0
        reply.appendInteger(length)
    }

    /// APPEND key value: the new length; the deadline is kept.
    static func append(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let key = args[1]
        let hash = store.hash(key)
        guard let index = store.find(key, hash: hash, now: now) else {
            store.set(key, hash: hash, value: args[2], now: now)
            reply.appendInteger(Int64(args[2].count))
            return
        }
        let total = Int(store.entry(index).valueLength) + args[2].count
        guard total <= 512 << 20 else {
            reply.append("-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n")
            return
        }
        store.appendValue(index, args[2])
        reply.appendInteger(Int64(total))
    }

    // MARK: Counters

    /// INCRBY key increment, DECRBY key decrement.
    static func incrementByArgument(_ args: KVArgs, negate: Bool, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard var amount = KVBytes.parseInt64(args[2]) else {
            notAnInteger(&reply)
            return
        }
        if negate {
            guard amount != Int64.min else {
                reply.append("-ERR decrement would overflow\r\n")
                return
            }
            amount = -amount
        }
        incrementBy(amount, args, store: &store, reply: &reply, now: now)
    }

    /// INCR, DECR and friends: the stored value must be an integer as
    /// `string2ll` reads it; the deadline is kept.
    static func incrementBy(_ amount: Int64, _ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let key = args[1]
        let hash = store.hash(key)
        let existing = store.find(key, hash: hash, now: now)
        var current: Int64 = 0
        if let existing {
            guard let value = KVBytes.parseInt64(store.entry(existing).value) else {
                notAnInteger(&reply)
                return
            }
            current = value
        }
        if (amount < 0 && current < 0 && amount < Int64.min - current)
            || (amount > 0 && current > 0 && amount > Int64.max - current) {
            reply.append("-ERR increment or decrement would overflow\r\n")
            return
        }
        let result = current + amount
        // Format the new value into the reply first, then store those digits
        // (the reply is `:digits\r\n`): one formatting, no temporary buffer.
        let start = reply.count
        reply.appendInteger(result)
        let digits = UnsafeRawBufferPointer(rebasing: reply.bytes[(start + 1)..<(reply.count - 2)])
        if let existing {
            store.assignValue(existing, digits)
        } else {
            store.set(key, hash: hash, value: digits, now: now)
        }
    }

    // MARK: Several keys

    static func mget(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        reply.appendArrayHeader(args.count - 1)
        for index in 1..<args.count {
            if let found = store.find(args[index], now: now) {
                store.counters.keyspaceHits &+= 1
                reply.appendBulk(store.entry(found).value)
            } else {
                store.counters.keyspaceMisses &+= 1
                reply.appendNull()
            }
        }
    }

    static func mset(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        guard args.count % 2 == 1 else {
            wrongArity("mset", reply: &reply)
            return
        }
        var index = 1
        while index < args.count {
            let key = args[index]
            store.set(key, hash: store.hash(key), value: args[index + 1], now: now)
            index += 2
        }
        reply.append("+OK\r\n")
    }
}
