import Reactor

/// Where a proxy forwards to and how it connects.
public struct ProxyConfiguration: Sendable {
    /// The upstream server every client is forwarded to.
    public var upstream: SocketAddress
    /// How long an upstream connect may take before the client is refused.
    public var connectTimeout: Duration
    /// Options of both legs (the watermarks bound what one leg buffers for the other).
    public var streamOptions: StreamOptions
    /// When set, the proxy originates TLS to the upstream with these
    /// settings: the server name to send and verify, the CAs it trusts (see
    /// ``upstreamTLS(upstream:trusting:serverName:)``). Clients still speak
    /// to the proxy in plaintext, or in TLS of their own if its listener has
    /// ``SocketListener/tls`` set.
    public var upstreamTLS: StreamTLSOptions?

    /// Forward to `upstream`; both legs get `streamOptions`; the upstream
    /// leg speaks TLS with `upstreamTLS`, if given.
    public init(upstream: SocketAddress, connectTimeout: Duration = .seconds(5),
                streamOptions: StreamOptions = StreamOptions(), upstreamTLS: StreamTLSOptions? = nil) {
        self.upstream = upstream
        self.connectTimeout = connectTimeout
        self.streamOptions = streamOptions
        self.upstreamTLS = upstreamTLS
    }

    /// TLS settings for a verified upstream: trusting the CAs in the PEM
    /// file `trusting` (nil: the system's), expecting a certificate for
    /// `serverName` (a DNS name, sent as SNI, or an IP address). Reads the
    /// CA file now and throws OpenSSL's reason if it cannot be used.
    public static func upstreamTLS(upstream: SocketAddress, trusting caFile: String?,
                                   serverName: String) throws(TLSError) -> StreamTLSOptions {
        let configuration = try TLSConfiguration(client: TLSClientOptions(trustRoots: caFile.map { .file($0) } ?? .system))
        // One name may front several ports: sessions are kept per name and address.
        return StreamTLSOptions(configuration: configuration, serverName: serverName, sessionKey: "\(serverName) \(upstream)")
    }
}

/// A TCP proxy: each client a listener accepts gets its own connection to
/// the upstream, and bytes flow both ways until both sides have finished.
/// The runtime is server and client at once — accepting, connecting,
/// forwarding, all in one loop — and can host other protocols beside it
/// (the `proxy` example can run its own echo upstream in the same runtime).
///
/// Register a ``SocketListener``; the Service pairs every connection it
/// accepts with an upstream connection (see ``ProxyConnection``). TLS on
/// either leg is the streams' business: a listener with
/// ``SocketListener/tls`` terminates it, and
/// ``ProxyConfiguration/upstreamTLS`` originates it; the forwarding sees
/// plaintext either way.
public final class ProxyService: Service {
    /// Where clients are forwarded; may change while running (new clients
    /// go to the new upstream, connected ones stay where they are).
    public var configuration: ProxyConfiguration
    /// Clients accepted so far.
    public private(set) var clientsAccepted = 0
    /// Upstream connects that failed at once (out of descriptors, say);
    /// later failures are reported by the ``ProxyConnection``.
    public private(set) var upstreamFailures = 0

    /// A proxy that forwards as `configuration` says.
    public init(configuration: ProxyConfiguration) {
        self.configuration = configuration
    }

    public func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        switch event {
        case .accepted(let client):
            clientsAccepted += 1
            forward(client, context: context)
        case .acceptPaused(let error):
            context.logger.warning("\(error)")
        case .acceptResumed:
            context.logger.notice("accepting clients again")
        default:
            break
        }
    }

    private func forward(_ client: SocketStream, context: Context) {
        do throws(ReactorError) {
            let upstream = try SocketStream.connect(to: configuration.upstream, timeout: configuration.connectTimeout,
                                                    options: configuration.streamOptions, tls: configuration.upstreamTLS)
            _ = ProxyConnection(client: client, upstream: upstream)  // the legs hold it
            try context.register(upstream)
        } catch {
            upstreamFailures += 1
            context.logger.warning("client \(client.id.map { "\($0)" } ?? "") refused: upstream unreachable: \(error)")
            client.handler = nil
            client.abort()
        }
    }
}
