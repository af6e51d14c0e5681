#if canImport(CReactorTLS)
import CReactorTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TLSEngine {
    // MARK: Failures

    /// Ends the engine with the error OpenSSL's queue describes for a call
    /// that returned `code` (from `SSL_get_error`), and returns it to throw.
    func fail(_ operation: String, code: Int32) -> TLSError {
        let entries = ErrorQueue.take()
        var kind: TLSError.Kind = isHandshakeComplete ? .protocolViolation : .handshake
        var reason = ErrorQueue.phrase(entries, otherwise: code == SSL_ERROR_SYSCALL
                                       ? "the transport failed" : "failed with SSL_get_error \(code)")
        func reported(_ code: Int32) -> Bool {
            entries.contains { $0.library == ERR_LIB_SSL && $0.reason == code }
        }
        if reported(SSL_R_CERTIFICATE_VERIFY_FAILED) {
            kind = .verification
            let result = SSL_get_verify_result(ssl)
            // X509_verify_cert_error_string returns a static string.
            if result != Int(X509_V_OK) { reason += " (\(String(cString: X509_verify_cert_error_string(result))))" }
        } else if reported(SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            if isHandshakeComplete {
                kind = .truncated
                reason += " (the peer ended the connection without close_notify: truncated)"
            } else {
                reason += " (the peer ended the connection during the handshake)"
            }
        } else if isHandshakeComplete && reported(SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) && SSL_version(ssl) <= TLS1_2_VERSION {
            // TLS 1.2 has one handshake after the first: a renegotiation.
            // Every configuration refuses it (a no_renegotiation warning),
            // and a peer that insists answers with this fatal alert, which
            // is all this side is told.
            reason += " (the peer's answer to its renegotiation being refused: renegotiation is disabled)"
        }
        return end(TLSError(kind, operation: operation, reason: reason))
    }

    /// Ends the engine with a failure of a setup step, in OpenSSL's words after `detail`.
    func fail(_ operation: String, kind: TLSError.Kind, detail: String) -> TLSError {
        end(TLSError(kind, operation: operation, reason: "\(detail): \(ErrorQueue.takePhrase(otherwise: "no reason given"))"))
    }

    // MARK: Handshake results

    /// What the completed handshake settled.
    func makeHandshakeInfo() -> TLSHandshakeInfo {
        // Sound, each: the cipher and its name, the ALPN bytes, the server
        // name and the peer certificate are owned by the SSL and stay valid
        // while it lives; they are copied into Swift values here.
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "unknown"
        var protocolBytes: UnsafePointer<UInt8>?
        var protocolLength: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &protocolBytes, &protocolLength)
        let applicationProtocol = protocolBytes.map {
            String(decoding: UnsafeBufferPointer(start: $0, count: Int(protocolLength)), as: UTF8.self)
        }
        let name: String?
        switch configuration.role {
        case .server: name = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)).map { String(cString: $0) }
        case .client: name = serverName
        }
        var subject: String?
        if configuration.role == .client && configuration.verification != .none
            && SSL_get_verify_result(ssl) == Int(X509_V_OK), let certificate = SSL_get0_peer_certificate(ssl) {
            subject = Self.describe(X509_get_subject_name(certificate))
        }
        return TLSHandshakeInfo(version: SSL_version(ssl) == TLS1_3_VERSION ? .tls13 : .tls12,
                                cipher: cipher, applicationProtocol: applicationProtocol,
                                serverName: name, peerSubject: subject, resumed: SSL_session_reused(ssl) == 1)
    }

    /// A certificate name in RFC 2253 form (`CN=localhost,O=Test`).
    static func describe(_ name: OpaquePointer?) -> String? {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, reactor_tls_name_flags()) >= 0 else { return nil }
        var data: UnsafeMutablePointer<CChar>?
        let count = reactor_tls_bio_get_mem_data(bio, &data)
        guard let data, count > 0 else { return "" }
        // Sound: the BIO's `count` bytes at `data` are valid until it is freed (deferred).
        return String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
    }

    // MARK: Sessions

    /// The client context's new-session callback: files `session` under the
    /// engine's key. True when it was kept (the callback's reference is then
    /// the cache's).
    static func sessionArrived(_ session: OpaquePointer, on ssl: OpaquePointer) -> Bool {
        guard let raw = SSL_get_ex_data(ssl, 0) else { return false }
        // Sound: set in init to this SSL's engine and cleared before SSL_free;
        // the callback runs inside one of that engine's OpenSSL calls.
        let engine = Unmanaged<TLSEngine>.fromOpaque(raw).takeUnretainedValue()
        #if DEBUG
        precondition(engine.ssl == ssl, "an SSL's ex_data names another engine")
        #endif
        guard let key = engine.sessionKey, let cache = engine.configuration.sessions,
              SSL_SESSION_is_resumable(session) == 1 else { return false }
        cache.store(session, for: key)
        return true
    }
}

/// Telling IP address literals from DNS names.
enum IPAddress {
    /// Whether `text` is an IPv4 or IPv6 address.
    static func isLiteral(_ text: String) -> Bool {
        var storage = in6_addr()
        // Sound: inet_pton writes at most 16 bytes, the size of in6_addr.
        return withUnsafeMutableBytes(of: &storage) { bytes in
            inet_pton(AF_INET, text, bytes.baseAddress) == 1 || inet_pton(AF_INET6, text, bytes.baseAddress) == 1
        }
    }
}
#endif
