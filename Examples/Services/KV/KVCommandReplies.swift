import ProtocolRESP

/// COMMAND, COMMAND INFO, COMMAND DOCS, COMMAND LIST and COMMAND HELP, in
/// Redis 7.0's RESP2 shapes (maps flattened to arrays, sets to arrays).
///
/// redis-cli 7 sends `COMMAND DOCS` when it starts reading commands from a
/// terminal or standard input and builds its help and hints from the reply
/// (it asserts on the shape: every entry must be a name and a map holding
/// at least summary, since and group), so this reply must be well formed.
extension KVExecutor {
    /// COMMAND (every command) or COMMAND INFO [name ...] (nil for missing ones).
    static func commandInfo(_ args: KVArgs?, reply: inout RESPReplyBuffer) {
        guard let args, args.count > 2 else {
            reply.appendArrayHeader(KVCommandTable.all.count)
            for spec in KVCommandTable.all { appendInfo(spec, reply: &reply) }
            return
        }
        reply.appendArrayHeader(args.count - 2)
        for index in 2..<args.count {
            if let spec = KVCommandTable.lookup(fullName: args.string(index)) {
                appendInfo(spec, reply: &reply)
            } else {
                reply.appendNull()
            }
        }
    }

    /// `[name, arity, flags, first key, last key, step, categories, tips, key specs, subcommands]`
    private static func appendInfo(_ spec: KVCommandSpec, reply: inout RESPReplyBuffer) {
        reply.appendArrayHeader(10)
        reply.appendBulk(spec.name)
        reply.appendInteger(Int64(spec.arity))
        appendStatuses(spec.flags, reply: &reply)
        reply.appendInteger(Int64(spec.firstKey))
        reply.appendInteger(Int64(spec.lastKey))
        reply.appendInteger(Int64(spec.keyStep))
        appendStatuses(spec.categories, reply: &reply)
        reply.appendArrayHeader(0)  // tips
        reply.appendArrayHeader(0)  // key specifications (first/last/step above say it)
        reply.appendArrayHeader(spec.subcommands.count)
        for sub in spec.subcommands { appendInfo(sub, reply: &reply) }
    }

    private static func appendStatuses(_ words: [String], reply: inout RESPReplyBuffer) {
        reply.appendArrayHeader(words.count)
        for word in words { reply.appendStatus(word) }
    }

    /// COMMAND DOCS [name ...]: name → documentation, for every command or
    /// for those named (unknown names are skipped, as in Redis).
    static func commandDocs(_ args: KVArgs, reply: inout RESPReplyBuffer) {
        var specs: [KVCommandSpec] = []
        if args.count == 2 {
            specs = KVCommandTable.all
        } else {
            for index in 2..<args.count {
                if let spec = KVCommandTable.lookup(fullName: args.string(index)) { specs.append(spec) }
            }
        }
        reply.appendArrayHeader(specs.count * 2)
        for spec in specs {
            reply.appendBulk(spec.name)
            appendDoc(spec, reply: &reply)
        }
    }

    private static func appendDoc(_ spec: KVCommandSpec, reply: inout RESPReplyBuffer) {
        let doc = spec.doc
        var fields = 4
        if !doc.arguments.isEmpty { fields += 1 }
        if !spec.subcommands.isEmpty { fields += 1 }
        reply.appendArrayHeader(fields * 2)
        reply.appendBulk("summary")
        reply.appendBulk(doc.summary)
        reply.appendBulk("since")
        reply.appendBulk(doc.since)
        reply.appendBulk("group")
        reply.appendBulk(doc.group)
        reply.appendBulk("complexity")
        reply.appendBulk(doc.complexity)
        if !doc.arguments.isEmpty {
            reply.appendBulk("arguments")
            appendArguments(doc.arguments, reply: &reply)
        }
        if !spec.subcommands.isEmpty {
            reply.appendBulk("subcommands")
            reply.appendArrayHeader(spec.subcommands.count * 2)
            for sub in spec.subcommands {
                reply.appendBulk(sub.name)
                appendDoc(sub, reply: &reply)
            }
        }
    }

    private static func appendArguments(_ arguments: [KVArgumentDoc], reply: inout RESPReplyBuffer) {
        reply.appendArrayHeader(arguments.count)
        for argument in arguments {
            var flags: [String] = []
            if argument.optional { flags.append("optional") }
            if argument.multiple { flags.append("multiple") }
            var fields = 2
            if argument.type == "key" { fields += 1 }
            if argument.token != nil { fields += 1 }
            if !flags.isEmpty { fields += 1 }
            if !argument.children.isEmpty { fields += 1 }
            reply.appendArrayHeader(fields * 2)
            reply.appendBulk("name")
            reply.appendBulk(argument.name)
            reply.appendBulk("type")
            reply.appendBulk(argument.type)
            if argument.type == "key" {
                reply.appendBulk("key_spec_index")
                reply.appendInteger(0)
            }
            if let token = argument.token {
                reply.appendBulk("token")
                reply.appendBulk(token)
            }
            if !flags.isEmpty {
                reply.appendBulk("flags")
                appendStatuses(flags, reply: &reply)
            }
            if !argument.children.isEmpty {
                reply.appendBulk("arguments")
                appendArguments(argument.children, reply: &reply)
            }
        }
    }

    /// COMMAND LIST: every command and subcommand name (FILTERBY is not supported).
    static func commandList(_ args: KVArgs, reply: inout RESPReplyBuffer) {
        guard args.count == 2 else {
            syntaxError(&reply)
            return
        }
        let names = KVCommandTable.all.flatMap { [$0.name] + $0.subcommands.map(\.name) }
        reply.appendArrayHeader(names.count)
        for name in names { reply.appendBulk(name) }
    }

    static func commandHelp(reply: inout RESPReplyBuffer) {
        let lines = ["COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                     "(no subcommand)", "    Return details about all commands.",
                     "COUNT", "    Return the total number of commands in this server.",
                     "LIST", "    Return a list of all commands in this server.",
                     "INFO [<command-name> ...]", "    Return details about multiple commands.",
                     "DOCS [<command-name> ...]", "    Return documentation details about multiple commands.",
                     "HELP", "    Print this help."]
        reply.appendArrayHeader(lines.count)
        for line in lines { reply.appendStatus(line) }
    }
}
