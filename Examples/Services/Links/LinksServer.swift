import ProtocolRESP
import ProtocolHTTP1
import Reactor

/// Where `links` keeps its data, and how long a request waits for it.
public struct LinksConfiguration: Sendable {
    /// The redis server's host (a name, resolved without blocking, or an address).
    public var redisHost: String
    /// The redis server's port.
    public var redisPort: UInt16
    /// How each runtime's RESP client waits and retries; a request whose
    /// redis command fails or times out is answered 503.
    public var redis: RedisClientOptions
    /// The HTTP server's limits and timeouts.
    public var http: HTTPConfiguration

    /// `links` on `redisHost:redisPort`, each command waiting at most 2 s,
    /// reconnects after 100 ms doubling to 2 s; URLs of up to 8 KiB.
    public init(redisHost: String, redisPort: UInt16,
                redis: RedisClientOptions = RedisClientOptions(commandTimeout: .seconds(2), maxReconnectDelay: .seconds(2)),
                http: HTTPConfiguration = HTTPConfiguration(maxBodyBytes: 8 << 10, serverName: "links")) {
        self.redisHost = redisHost
        self.redisPort = redisPort
        self.redis = redis
        self.http = http
    }
}

/// Starts `links` on a ``RuntimeGroup``: one runtime per thread, each with
/// its own listener on the shared port (`SO_REUSEPORT`) and its own RESP
/// client, so a request's redis round trip never leaves the runtime that
/// read it.
public enum LinksServer {
    /// Starts `threads` runtimes serving on `host:port`; returns the group and the port bound.
    public static func start<P: Poller>(_ poller: P.Type, host: String = "127.0.0.1", port: UInt16, threads: Int,
                                        configuration: LinksConfiguration) throws(ReactorError) -> (group: RuntimeGroup<P, HTTPService>, port: UInt16) {
        let plain = ReusePortListeners(address: try SocketAddress(host: host, port: port))
        let (group, ports) = try ReusePortListeners.started([plain]) { () throws(ReactorError) in
            try RuntimeGroup<P, HTTPService>.start(threads: threads, name: "links") { index, _ in
                // Runs on the runtime's own thread: the listener and the client never cross threads.
                let service = HTTPService(configuration: configuration.http, listener: plain.bind(), index: index,
                                          threadCount: threads, backendName: P.name)
                service.application = LinksApplication(configuration: configuration)
                return service
            }
        }
        return (group, ports[0])
    }
}
