#if canImport(CReactorTLS)
import CReactorTLS

/// Everything the connections of one side share: certificates, trust,
/// protocols, session resumption. Made once (it reads its files then) and
/// shared by every connection on every runtime and thread: it is one
/// OpenSSL `SSL_CTX`, which OpenSSL allows many connections to use at once,
/// freed when the last engine using it is gone.
///
/// ```swift
/// let server = try TLSConfiguration(server: TLSServerOptions(
///     certificate: TLSCertificateFiles(chain: "cert.pem", privateKey: "key.pem"),
///     applicationProtocols: ["http/1.1"]))
/// let client = try TLSConfiguration(client: TLSClientOptions(trustRoots: .file("ca.pem")))
/// ```
///
/// Every configuration requires TLS 1.2 or newer, refuses renegotiation and
/// releases a connection's record buffers while it is idle. Without OpenSSL
/// in the build, both initialisers throw ``TLSError/notBuilt``.
public final class TLSConfiguration: Sendable {
    /// Which side its engines are.
    public let role: TLSRole
    /// The application protocols (ALPN) offered (client) or accepted (server), most preferred first.
    public let applicationProtocols: [String]
    /// How a client checks servers; `.none` on a server (it asks for no client certificate).
    public let verification: TLSVerification

    let context: ContextHandle
    /// A server's SNI contexts and ALPN list, read by its callbacks.
    let callbacks: ServerCallbacks?
    /// A client's sessions for resumption (nil with a capacity of 0, and on servers).
    let sessions: SessionCache?

    /// A server configuration: reads the certificate chains and keys now and
    /// fails, naming the file and OpenSSL's reason, if one cannot be used.
    public init(server options: TLSServerOptions) throws(TLSError) {
        let protocols = try Contexts.protocolBytes(options.applicationProtocols)
        let context = try Contexts.make(server: true, minimumVersion: options.minimumVersion)
        var named: [String: ContextHandle] = [:]
        // Frees what was made so far when a later step throws.
        var succeeded = false
        defer {
            if !succeeded {
                SSL_CTX_free(context)
                for handle in named.values { SSL_CTX_free(handle.pointer) }
            }
        }
        try Contexts.load(options.certificate, into: context, for: nil)
        for (name, files) in options.certificatesByName.sorted(by: { $0.key < $1.key }) {
            let namedContext = try Contexts.make(server: true, minimumVersion: options.minimumVersion)
            named[name.lowercased()] = ContextHandle(pointer: namedContext)
            try Contexts.load(files, into: namedContext, for: name)
        }
        // Sessions resume from tickets only (stateless), so the server keeps
        // no per-session state; without tickets, nothing resumes.
        _ = reactor_tls_ctx_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        if !options.sessionTickets {
            _ = SSL_CTX_set_options(context, reactor_tls_op_no_ticket())
            _ = SSL_CTX_set_num_tickets(context, 0)
        }
        let callbacks = ServerCallbacks(contextsByName: named, protocols: protocols)
        succeeded = true  // from here `callbacks` owns the named contexts, and self the default one
        if !protocols.isEmpty {
            Contexts.installProtocolSelection(context, callbacks: callbacks)
            for handle in named.values { Contexts.installProtocolSelection(handle.pointer, callbacks: callbacks) }
        }
        if !named.isEmpty { Contexts.installServerNameSelection(context, callbacks: callbacks) }
        self.role = .server
        self.applicationProtocols = options.applicationProtocols
        self.verification = .none
        self.context = ContextHandle(pointer: context)
        self.callbacks = callbacks
        self.sessions = nil
    }

    /// A client configuration: loads the trust roots now and fails, naming
    /// the file and OpenSSL's reason, if they cannot be read.
    public init(client options: TLSClientOptions = TLSClientOptions()) throws(TLSError) {
        let protocols = try Contexts.protocolBytes(options.applicationProtocols)
        let context = try Contexts.make(server: false, minimumVersion: options.minimumVersion)
        var succeeded = false
        defer { if !succeeded { SSL_CTX_free(context) } }
        ErrorQueue.clear()
        switch options.trustRoots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw Contexts.failure("cannot load the system's CA certificates")
            }
        case .file(let path):
            guard SSL_CTX_load_verify_file(context, path) == 1 else {
                throw Contexts.failure("cannot read CA certificates \(path)")
            }
        }
        SSL_CTX_set_verify(context, options.verification == .none ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nil)
        SSL_CTX_set_verify_depth(context, Int32(clamping: options.maximumChainDepth))
        if !protocols.isEmpty {
            let wire = Contexts.wireFormat(protocols)
            // SSL_CTX_set_alpn_protos copies the list; it returns 0 on success.
            guard SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) == 0 else {
                throw Contexts.failure("cannot set the application protocols")
            }
        }
        if options.sessionCacheCapacity > 0 {
            // OpenSSL hands each new session to the callback (which the
            // engine files under its key) and keeps none itself.
            _ = reactor_tls_ctx_set_session_cache_mode(context, Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE))
            SSL_CTX_sess_set_new_cb(context) { ssl, session in
                guard let ssl, let session else { return 0 }
                return TLSEngine.sessionArrived(session, on: ssl) ? 1 : 0
            }
            sessions = SessionCache(capacity: options.sessionCacheCapacity)
        } else {
            _ = reactor_tls_ctx_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
            sessions = nil
        }
        succeeded = true
        self.role = .client
        self.applicationProtocols = options.applicationProtocols
        self.verification = options.verification
        self.context = ContextHandle(pointer: context)
        self.callbacks = nil
    }

    deinit {
        SSL_CTX_free(context.pointer)
    }

    /// How many servers a client holds a resumable session for (0 on a server).
    public var cachedSessionCount: Int { sessions?.count ?? 0 }
}
#endif
