import ProtocolRESP
#if canImport(Glibc)
import Glibc
#endif

/// HELLO and TIME.
extension KVExecutor {
    /// The Redis version whose replies kv reproduces (INFO's `redis_version`,
    /// HELLO's `version`): clients choose features, and workarounds, by it.
    static let redisVersion = "7.0.15"

    /// HELLO [protover [AUTH username password] [SETNAME clientname]], as
    /// Redis 7.0's helloCommand checks it: the version, then the options'
    /// syntax, then the credentials, then the name (validated only then). Only RESP2 is built, so 3 is refused with the error Redis
    /// gives for a version it does not know. There are no users or passwords
    /// here: like Redis's `default` user with `nopass`, `default` takes any password.
    static func hello(_ args: KVArgs, reply: inout RESPReplyBuffer, context: KVCommandContext) {
        var index = 1
        if args.count >= 2 {
            guard let version = KVBytes.parseInt64(args[1]) else {
                reply.append("-ERR Protocol version is not an integer or out of range\r\n")
                return
            }
            guard version == 2 else {
                reply.append("-NOPROTO unsupported protocol version\r\n")
                return
            }
            index = 2
        }
        var username: UnsafeRawBufferPointer?
        var name: UnsafeRawBufferPointer?
        while index < args.count {
            let option = args[index]
            let more = args.count - 1 - index
            if KVBytes.equalsIgnoringCase(option, "auth") && more >= 2 {
                username = args[index + 1]
                index += 2
            } else if KVBytes.equalsIgnoringCase(option, "setname") && more >= 1 {
                name = args[index + 1]
                index += 1
            } else {
                reply.appendError(Array("Syntax error in HELLO option '".utf8) + KVBytes.cString(option) + [UInt8(ascii: "'")])
                return
            }
            index += 1
        }
        if let username, !username.elementsEqual("default".utf8) {
            reply.append("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
            return
        }
        if let name {
            guard isValidClientName(name) else {
                reply.append("-ERR Client names cannot contain spaces, newlines or special characters.\r\n")
                return
            }
            context.client.name = name.isEmpty ? nil : Array(name)
        }
        // A map in RESP3; RESP2 flattens it to key, value, key, value.
        reply.appendArrayHeader(14)
        reply.appendBulk("server")
        reply.appendBulk("redis")
        reply.appendBulk("version")
        reply.appendBulk(redisVersion)
        reply.appendBulk("proto")
        reply.appendInteger(2)
        reply.appendBulk("id")
        reply.appendInteger(Int64(context.client.clientID))
        reply.appendBulk("mode")
        reply.appendBulk("standalone")
        reply.appendBulk("role")
        reply.appendBulk("master")
        reply.appendBulk("modules")
        reply.appendArrayHeader(0)
    }

    /// Redis's rule for client names (CLIENT SETNAME, HELLO SETNAME):
    /// printable ASCII without spaces; empty is allowed and clears the name.
    static func isValidClientName(_ name: UnsafeRawBufferPointer) -> Bool {
        name.allSatisfy { $0 >= UInt8(ascii: "!") && $0 <= UInt8(ascii: "~") }
    }

    /// TIME: the wall clock as Unix seconds and the microseconds within the
    /// second, each a bulk string (Redis reads the real clock here, not the
    /// command's time snapshot, so neither does kv).
    static func time(reply: inout RESPReplyBuffer) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        reply.appendArrayHeader(2)
        reply.appendBulk(String(now.tv_sec))
        reply.appendBulk(String(now.tv_nsec / 1000))
    }
}
