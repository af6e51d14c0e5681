import ProtocolRESP

/// The connection and server commands: PING, SELECT, INFO, CLIENT, CONFIG.
extension KVExecutor {
    static func ping(_ args: KVArgs, reply: inout RESPReplyBuffer) {
        if args.count > 2 {
            wrongArity("ping", reply: &reply)
        } else if args.count == 2 {
            reply.appendBulk(args[1])
        } else {
            reply.append("+PONG\r\n")
        }
    }

    /// SELECT index: this server has one database, number 0.
    static func select(_ args: KVArgs, reply: inout RESPReplyBuffer) {
        guard let index = KVBytes.parseInt64(args[1]), index >= Int64(Int32.min), index <= Int64(Int32.max) else {
            notAnInteger(&reply)
            return
        }
        reply.append(index == 0 ? "+OK\r\n" : "-ERR DB index is out of range\r\n")
    }

    // MARK: INFO

    private static let infoSections = ["server", "clients", "stats", "keyspace"]

    /// INFO [section ...]: a small subset of Redis's fields, in its format.
    static func info(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, context: KVCommandContext) {
        var wanted = Set<String>()
        if args.count == 1 {
            wanted = Set(infoSections)
        } else {
            for index in 1..<args.count {
                let name = args.string(index).lowercased()
                if name == "all" || name == "default" || name == "everything" {
                    wanted.formUnion(infoSections)
                } else if infoSections.contains(name) {
                    wanted.insert(name)
                }
            }
        }
        let server = context.server
        let database = context.database
        var text = ""
        func section(_ title: String, _ lines: [String]) {
            if !text.isEmpty { text += "\r\n" }
            text += "# \(title)\r\n"
            for line in lines { text += line + "\r\n" }
        }
        if wanted.contains("server") {
            let uptime = Int(database.startedAt.duration(until: .now()).components.seconds)
            section("Server", [
                "redis_version:\(redisVersion)", "redis_mode:standalone", "kv_implementation:swift-reactor",
                "os:Linux", "arch_bits:64", "multiplexing_api:\(server.backendName)",
                "process_id:\(server.processID)", "tcp_port:\(server.port)",
                "uptime_in_seconds:\(uptime)", "uptime_in_days:\(uptime / 86400)",
                "executable_threads:\(server.threadCount)",
            ])
        }
        if wanted.contains("clients") {
            section("Clients", [
                "connected_clients:\(database.connectedClients.load(ordering: .relaxed))",
                "idle_timeout_seconds:\(server.configuration.idleTimeoutSeconds)",
                "client_output_buffer_limit:\(server.configuration.outputBufferLimit)",
            ])
        }
        if wanted.contains("stats") {
            let counters = store.counters
            section("Stats", [
                "total_connections_received:\(database.connectionsReceived.load(ordering: .relaxed))",
                "total_commands_processed:\(counters.commandsProcessed)",
                "expired_keys:\(counters.expiredKeys)",
                "keyspace_hits:\(counters.keyspaceHits)", "keyspace_misses:\(counters.keyspaceMisses)",
            ])
        }
        if wanted.contains("keyspace") {
            section("Keyspace", store.count == 0 ? [] : ["db0:keys=\(store.count),expires=\(store.volatileCount),avg_ttl=0"])
        }
        reply.appendBulk(text)
    }

    // MARK: CLIENT

    /// CLIENT SETNAME name: printable ASCII without spaces; empty clears the name.
    static func clientSetName(_ args: KVArgs, reply: inout RESPReplyBuffer, context: KVCommandContext) {
        let name = args[2]
        guard isValidClientName(name) else {
            reply.append("-ERR Client names cannot contain spaces, newlines or special characters.\r\n")
            return
        }
        context.client.name = name.isEmpty ? nil : Array(name)
        reply.append("+OK\r\n")
    }

    static func clientGetName(reply: inout RESPReplyBuffer, context: KVCommandContext) {
        if let name = context.client.name { reply.appendBulk(name) } else { reply.appendNull() }
    }

    /// CLIENT HELP and CONFIG HELP, in Redis's layout.
    static func help(client: Bool, reply: inout RESPReplyBuffer) {
        let lines = client
            ? ["CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
               "GETNAME", "    Return the name of the current connection.",
               "ID", "    Return the ID of the current connection.",
               "SETNAME <connection-name>", "    Assign the name <connection-name> to the current connection.",
               "HELP", "    Print this help."]
            : ["CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
               "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
               "HELP", "    Print this help."]
        reply.appendArrayHeader(lines.count)
        for line in lines { reply.appendStatus(line) }
    }

    // MARK: CONFIG GET

    /// CONFIG GET parameter [parameter ...]: a name without glob characters
    /// is looked up (any case) and echoed as given; a pattern matches names
    /// case-insensitively. Each parameter appears once.
    static func configGet(_ args: KVArgs, reply: inout RESPReplyBuffer, context: KVCommandContext) {
        let parameters = context.server.configParameters
        var matched: [(shown: String, index: Int)] = []
        for argument in 2..<args.count {
            let pattern = args[argument]
            if !pattern.contains(where: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }) {
                if let index = parameters.firstIndex(where: { KVBytes.equalsIgnoringCase(pattern, Array($0.name.utf8)) }),
                   !matched.contains(where: { $0.index == index }) {
                    matched.append((args.string(argument), index))
                }
                continue
            }
            for (index, parameter) in parameters.enumerated() where !matched.contains(where: { $0.index == index }) {
                let name = Array(parameter.name.utf8)
                if name.withUnsafeBytes({ KVGlob.matches(pattern, $0, nocase: true) }) {
                    matched.append((parameter.name, index))
                }
            }
        }
        reply.appendArrayHeader(matched.count * 2)
        for (shown, index) in matched {
            reply.appendBulk(shown)
            reply.appendBulk(parameters[index].value)
        }
    }
}
