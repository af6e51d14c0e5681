import ProtocolRESP

/// The arguments of one command, viewed in place: in the bytes the client
/// sent for a RESP request, in the parser's decoded buffer for an inline one.
struct KVArgs {
    let base: UnsafeRawPointer
    let spans: UnsafeBufferPointer<RESPSpan>

    @inline(__always) var count: Int { spans.count }

    @inline(__always)
    subscript(index: Int) -> UnsafeRawBufferPointer {
        let span = spans[index]
        return UnsafeRawBufferPointer(start: base + span.offset, count: span.length)
    }

    /// Argument `index` as text, for the rare paths that need a String.
    func string(_ index: Int) -> String { String(decoding: self[index], as: UTF8.self) }
}

/// What a command may consult besides the store: the time, its client and the server.
struct KVCommandContext {
    /// The batch's time in ``KVClock`` milliseconds (commands of one batch share it, like Redis's command time snapshot).
    let now: Int64
    // Sound: a context lives for one batch, inside a callback of the
    // connection, whose service holds the server information and the
    // database; `unowned(unsafe)` spares each batch three reference counts.
    unowned(unsafe) let client: KVConnection
    unowned(unsafe) let server: KVServerInfo
    unowned(unsafe) let database: KVDatabase
}

/// Runs commands: looks the name up, checks the arity, and dispatches to
/// the command's function, which appends its reply. Errors are worded as
/// Redis 7.0 words them.
///
/// The functions live in extensions by theme (KVStringCommands,
/// KVStringRangeCommands, KVFloatCommands, KVKeyspaceCommands,
/// KVKeyCopyCommands, KVServerCommands, KVHandshakeCommands); each takes the store and the
/// reply buffer `inout`, so a batch runs under one lock with no copies.
enum KVExecutor {
    /// Runs one command. Returns false when the connection is to close
    /// after this reply (QUIT).
    @inline(__always)
    static func execute(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, context: KVCommandContext) -> Bool {
        let name = args[0]
        guard let entry = KVCommandTable.lookup(name) else {
            unknownCommand(args, reply: &reply)
            return true
        }
        guard entry.accepts(argumentCount: args.count) else {
            wrongArity(entry.spec.name, reply: &reply)
            return true
        }
        store.counters.commandsProcessed &+= 1
        switch entry.id {
        case .get: get(args, store: &store, reply: &reply, now: context.now)
        case .set: set(args, store: &store, reply: &reply, now: context.now)
        case .incr: incrementBy(1, args, store: &store, reply: &reply, now: context.now)
        case .decr: incrementBy(-1, args, store: &store, reply: &reply, now: context.now)
        case .incrby: incrementByArgument(args, negate: false, store: &store, reply: &reply, now: context.now)
        case .decrby: incrementByArgument(args, negate: true, store: &store, reply: &reply, now: context.now)
        case .mget: mget(args, store: &store, reply: &reply, now: context.now)
        case .mset: mset(args, store: &store, reply: &reply, now: context.now)
        case .getset: getset(args, store: &store, reply: &reply, now: context.now)
        case .setnx: setnx(args, store: &store, reply: &reply, now: context.now)
        case .setex: setex(args, milliseconds: false, store: &store, reply: &reply, now: context.now)
        case .psetex: setex(args, milliseconds: true, store: &store, reply: &reply, now: context.now)
        case .strlen: strlen(args, store: &store, reply: &reply, now: context.now)
        case .append: append(args, store: &store, reply: &reply, now: context.now)
        case .getdel: getdel(args, store: &store, reply: &reply, now: context.now)
        case .del, .unlink: del(args, store: &store, reply: &reply, now: context.now)
        case .exists: exists(args, store: &store, reply: &reply, now: context.now)
        case .type: type(args, store: &store, reply: &reply, now: context.now)
        case .expire: expire(args, unitSeconds: true, name: "expire", store: &store, reply: &reply, now: context.now)
        case .pexpire: expire(args, unitSeconds: false, name: "pexpire", store: &store, reply: &reply, now: context.now)
        case .expireat: expire(args, unitSeconds: true, absolute: true, name: "expireat", store: &store, reply: &reply, now: context.now)
        case .pexpireat: expire(args, unitSeconds: false, absolute: true, name: "pexpireat", store: &store, reply: &reply, now: context.now)
        case .expiretime: expireTime(args, milliseconds: false, store: &store, reply: &reply, now: context.now)
        case .pexpiretime: expireTime(args, milliseconds: true, store: &store, reply: &reply, now: context.now)
        case .ttl: ttl(args, milliseconds: false, store: &store, reply: &reply, now: context.now)
        case .pttl: ttl(args, milliseconds: true, store: &store, reply: &reply, now: context.now)
        case .persist: persist(args, store: &store, reply: &reply, now: context.now)
        case .dbsize: reply.appendInteger(Int64(store.count))
        case .flushall, .flushdb: flushall(args, store: &store, reply: &reply)
        case .keys: keys(args, store: &store, reply: &reply, now: context.now)
        case .ping: ping(args, reply: &reply)
        case .echo: reply.appendBulk(args[1])
        case .select: select(args, reply: &reply)
        case .info: info(args, store: &store, reply: &reply, context: context)
        case .quit:
            // Redis 7.0 takes QUIT with any arguments: +OK, then close.
            reply.append("+OK\r\n")
            return false
        case .client, .config, .command:
            container(entry.spec, args, store: &store, reply: &reply, context: context)
        case .incrbyfloat: incrementByFloat(args, store: &store, reply: &reply, now: context.now)
        case .getex: getex(args, store: &store, reply: &reply, now: context.now)
        case .getrange: getrange(args, store: &store, reply: &reply, now: context.now)
        case .setrange: setrange(args, store: &store, reply: &reply, context: context)
        case .msetnx: msetnx(args, store: &store, reply: &reply, now: context.now)
        case .rename: rename(args, onlyIfNew: false, store: &store, reply: &reply, now: context.now)
        case .renamenx: rename(args, onlyIfNew: true, store: &store, reply: &reply, now: context.now)
        case .copy: copy(args, store: &store, reply: &reply, now: context.now)
        case .time: time(reply: &reply)
        case .hello: hello(args, reply: &reply, context: context)
        default:
            // Subcommand ids are reached through their container only.
            unknownCommand(args, reply: &reply)
        }
        return true
    }

    /// CLIENT, CONFIG and COMMAND: find the subcommand and check its arity.
    private static func container(_ spec: KVCommandSpec, _ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer,
                                  context: KVCommandContext) {
        if args.count == 1 {
            // Only COMMAND runs bare (its arity allows it); the others failed the arity check.
            commandInfo(nil, reply: &reply)
            return
        }
        guard let sub = spec.subcommand(args[1]) else {
            var message = Array("unknown subcommand '".utf8)
            message += KVBytes.cString(args[1]).prefix(128)
            message += Array("'. Try ".utf8)
            message += KVBytes.cString(args[0]).map { $0 &- UInt8(ascii: "a") < 26 ? $0 - 32 : $0 }
            message += Array(" HELP.".utf8)
            reply.appendError(message)
            return
        }
        guard sub.accepts(argumentCount: args.count) else {
            wrongArity(sub.name, reply: &reply)
            return
        }
        switch sub.id {
        case .clientSetName: clientSetName(args, reply: &reply, context: context)
        case .clientGetName: clientGetName(reply: &reply, context: context)
        case .clientID: reply.appendInteger(Int64(context.client.clientID))
        case .clientHelp: help(client: true, reply: &reply)
        case .configGet: configGet(args, reply: &reply, context: context)
        case .configHelp: help(client: false, reply: &reply)
        case .commandCount: reply.appendInteger(Int64(KVCommandTable.all.count))
        case .commandDocs: commandDocs(args, reply: &reply)
        case .commandInfo: commandInfo(args, reply: &reply)
        case .commandList: commandList(args, reply: &reply)
        case .commandHelp: commandHelp(reply: &reply)
        default: unknownCommand(args, reply: &reply)
        }
    }

    // MARK: Errors shared by the commands

    /// `-ERR unknown command 'NAME', with args beginning with: 'a' 'b' `,
    /// the name cut at 128 bytes and the arguments quoted until 128 bytes
    /// of them are shown, as Redis's `processCommand` formats it.
    static func unknownCommand(_ args: KVArgs, reply: inout RESPReplyBuffer) {
        var message = Array("unknown command '".utf8)
        message += KVBytes.cString(args[0]).prefix(128)
        message += Array("', with args beginning with: ".utf8)
        var shown: [UInt8] = []
        var index = 1
        while index < args.count && shown.count < 128 {
            shown.append(UInt8(ascii: "'"))
            shown += KVBytes.cString(args[index]).prefix(128 - (shown.count - 1))
            shown += [UInt8(ascii: "'"), UInt8(ascii: " ")]
            index += 1
        }
        reply.appendError(message + shown)
    }

    /// `-ERR wrong number of arguments for 'get' command`
    static func wrongArity(_ name: String, reply: inout RESPReplyBuffer) {
        reply.appendError("wrong number of arguments for '\(name)' command")
    }

    static func notAnInteger(_ reply: inout RESPReplyBuffer) {
        reply.append("-ERR value is not an integer or out of range\r\n")
    }

    static func syntaxError(_ reply: inout RESPReplyBuffer) {
        reply.append("-ERR syntax error\r\n")
    }

    static func invalidExpireTime(_ name: String, reply: inout RESPReplyBuffer) {
        reply.appendError("invalid expire time in '\(name)' command")
    }
}
