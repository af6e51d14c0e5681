import ReactorCore

/// Why a command got no value, naming the command and the reason:
/// `redis SET k: ERR wrong number of arguments for 'set' command`,
/// `redis GET k: connection reset before the reply`,
/// `redis INCR links:next: no reply within 2.0 seconds`,
/// `redis INCR links:next: no reply within 2.0 seconds while resolving db.internal`.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for code that reacts to particular failures.
    public enum Kind: Sendable, Equatable {
        /// The server answered with an error reply (the text as sent, its code first).
        case server(String)
        /// The connection ended after the command was sent and before its reply.
        case connectionLost(String)
        /// There was no connection to send it on (connecting failed, or the
        /// client is waiting to reconnect); the text says what the last attempt met.
        case notConnected(String)
        /// No reply arrived within the command timeout.
        case timedOut(Duration)
        /// The server's bytes broke RESP, or a reply came for no command; the connection was dropped.
        case protocolViolation(String)
        /// The client was closed (``RedisClient/close()``) before the reply.
        case closed
    }

    /// The command, by its name and first argument (`SET k`), as the message shows it.
    public var command: String
    /// What went wrong.
    public var kind: Kind
    /// What the client was still doing when a command timed out before its
    /// connection was made: `resolving db.internal`, `connecting to
    /// 10.0.0.7:6379`, `doing the TLS handshake with db.internal:6379`; nil once connected.
    public var activity: String?

    /// An error of `kind` for `command` (its name and first argument, shown as given).
    public init(command: String, kind: Kind, activity: String? = nil) {
        self.command = command
        self.kind = kind
        self.activity = activity
    }

    /// `redis COMMAND ARG: reason`.
    public var description: String {
        let reason: String
        switch kind {
        case .server(let message): reason = message
        case .connectionLost(let why): reason = why
        case .notConnected(let why): reason = "not connected: \(why)"
        case .timedOut(let timeout): reason = "no reply within \(timeout)" + (activity.map { " while \($0)" } ?? "")
        case .protocolViolation(let why): reason = "protocol violation, connection dropped: \(why)"
        case .closed: reason = "the client was closed before the reply"
        }
        return "redis \(command): \(reason)"
    }

    /// The name and first argument of a command, each cut to 64 characters (keys can be long).
    static func label(_ arguments: [String]) -> String {
        arguments.prefix(2).map { $0.count > 64 ? String($0.prefix(64)) + "…" : $0 }.joined(separator: " ")
    }

    /// How a disconnect reads to a command that was waiting for its reply.
    static func lost(_ reason: DisconnectReason) -> String {
        switch reason {
        case .closed:
            return "connection closed by the server before the reply"
        case .failed(let error) where error.errno == .connectionReset:
            return "connection reset before the reply"
        case .failed(let error):
            return "connection failed before the reply: \(error)"
        }
    }
}
