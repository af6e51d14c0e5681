#if canImport(CReactorTLS)
import CReactorTLS

/// One `SSL_CTX`.
///
/// Sound to share between threads: a context is only configured while its
/// ``TLSConfiguration`` is being made, before anything else can see it;
/// after that it is only read (`SSL_new`, `SSL_set_SSL_CTX`), and OpenSSL
/// locks what it changes itself (reference counts, caches).
struct ContextHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// What a server context's C callbacks read: the contexts chosen by server
/// name and the application protocols. Immutable once made; its contexts
/// are freed with it. The callbacks get it as an unretained pointer: the
/// configuration keeps it, and every engine keeps the configuration, so it
/// outlives every connection that can call back.
final class ServerCallbacks: Sendable {
    /// Lowercased DNS names or `*.suffix` wildcards → their context.
    let contextsByName: [String: ContextHandle]
    /// The server's protocols in preference order, as bytes.
    let protocols: [[UInt8]]

    init(contextsByName: [String: ContextHandle], protocols: [[UInt8]]) {
        self.contextsByName = contextsByName
        self.protocols = protocols
    }

    deinit {
        for context in contextsByName.values { SSL_CTX_free(context.pointer) }
    }

    /// The context for a name a client sent: an exact match, else a
    /// wildcard for its parent domain (one label only, as in certificates).
    func context(for name: String) -> ContextHandle? {
        let name = name.lowercased()
        if let exact = contextsByName[name] { return exact }
        guard let dot = name.firstIndex(of: ".") else { return nil }
        return contextsByName["*" + name[dot...]]
    }

    /// The server's first protocol that the client's ALPN list (`offered`,
    /// in wire format: length-prefixed names) also holds: its position in
    /// `offered` and length.
    func selectProtocol(from offered: UnsafeBufferPointer<UInt8>) -> (start: Int, count: Int)? {
        for wanted in protocols {
            var index = 0
            while index < offered.count {
                let length = Int(offered[index])
                let start = index + 1
                guard length > 0, start + length <= offered.count else { return nil }
                if length == wanted.count && offered[start..<start + length].elementsEqual(wanted) {
                    return (start, length)
                }
                index = start + length
            }
        }
        return nil
    }
}

/// Making and filling `SSL_CTX`s. Every function runs with a cleared error
/// queue and leaves it empty, reporting what OpenSSL said in its error.
enum Contexts {
    private static let operation = "tls config"

    static func failure(_ what: String) -> TLSError {
        TLSError(.configuration, operation: operation, reason: "\(what): \(ErrorQueue.takePhrase(otherwise: "no reason given"))")
    }

    /// A new context with the settings every context of this module has:
    /// the minimum version, renegotiation refused, buffers released while idle.
    static func make(server: Bool, minimumVersion: TLSVersion) throws(TLSError) -> OpaquePointer {
        ErrorQueue.clear()
        guard let context = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw failure("cannot create an SSL context")
        }
        let version = minimumVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard reactor_tls_ctx_set_min_proto_version(context, version) == 1 else {
            SSL_CTX_free(context)
            throw failure("cannot set the minimum version \(minimumVersion)")
        }
        var options = reactor_tls_op_no_renegotiation()
        if server { options |= reactor_tls_op_cipher_server_preference() }
        _ = SSL_CTX_set_options(context, options)
        // Idle connections give their record buffers back; memory BIOs never
        // block, so partial writes and moving write buffers are not needed.
        _ = reactor_tls_ctx_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        return context
    }

    /// Loads a certificate chain and its key into `context` and checks they match.
    static func load(_ files: TLSCertificateFiles, into context: OpaquePointer, for name: String?) throws(TLSError) {
        let suffix = name.map { " for server name \($0)" } ?? ""
        ErrorQueue.clear()
        guard SSL_CTX_use_certificate_chain_file(context, files.chain) == 1 else {
            throw failure("cannot read certificate chain \(files.chain)\(suffix)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, files.privateKey, SSL_FILETYPE_PEM) == 1 else {
            throw failure("cannot use private key \(files.privateKey)\(suffix)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw failure("private key \(files.privateKey) does not match certificate chain \(files.chain)\(suffix)")
        }
    }

    /// The protocol names as bytes, each checked to be 1 to 255 bytes (ALPN's limit).
    static func protocolBytes(_ names: [String]) throws(TLSError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for name in names {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                throw TLSError(.configuration, operation: operation,
                               reason: "application protocol '\(name)' must be 1 to 255 bytes long")
            }
            result.append(bytes)
        }
        return result
    }

    /// Installs the ALPN selection callback on a server context.
    static func installProtocolSelection(_ context: OpaquePointer, callbacks: ServerCallbacks) {
        // Sound: `callbacks` outlives every connection (see ServerCallbacks),
        // so the unretained pointer is valid whenever OpenSSL calls back.
        let argument = Unmanaged.passUnretained(callbacks).toOpaque()
        SSL_CTX_set_alpn_select_cb(context, { _, out, outLength, offered, offeredLength, argument in
            guard let out, let outLength, let offered, let argument else { return SSL_TLSEXT_ERR_NOACK }
            let callbacks = Unmanaged<ServerCallbacks>.fromOpaque(argument).takeUnretainedValue()
            // Sound: OpenSSL passes the client's list and its length; it is
            // valid during the callback, and OpenSSL copies the selected name
            // out of it before the list is freed.
            let list = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
            guard let (start, count) = callbacks.selectProtocol(from: list) else { return SSL_TLSEXT_ERR_NOACK }
            out.pointee = offered + start
            outLength.pointee = UInt8(count)
            return SSL_TLSEXT_ERR_OK
        }, argument)
    }

    /// Installs the server-name (SNI) callback on the default server context.
    static func installServerNameSelection(_ context: OpaquePointer, callbacks: ServerCallbacks) {
        // Sound: as for the ALPN callback, `callbacks` outlives every connection.
        let argument = Unmanaged.passUnretained(callbacks).toOpaque()
        _ = reactor_tls_ctx_set_servername_callback(context, { ssl, _, argument in
            guard let ssl, let argument else { return SSL_TLSEXT_ERR_OK }
            let callbacks = Unmanaged<ServerCallbacks>.fromOpaque(argument).takeUnretainedValue()
            // Sound: SSL_get_servername returns the name from this handshake's
            // ClientHello, owned by the SSL, valid during the callback.
            guard let name = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)) else { return SSL_TLSEXT_ERR_OK }
            if let chosen = callbacks.context(for: String(cString: name)) {
                // Takes a reference to the chosen context for this connection.
                _ = SSL_set_SSL_CTX(ssl, chosen.pointer)
            }
            return SSL_TLSEXT_ERR_OK
        }, argument)
    }

    /// The client's protocols in ALPN's wire format (each name after its length).
    static func wireFormat(_ protocols: [[UInt8]]) -> [UInt8] {
        var wire: [UInt8] = []
        for name in protocols {
            wire.append(UInt8(name.count))
            wire.append(contentsOf: name)
        }
        return wire
    }
}
#endif
