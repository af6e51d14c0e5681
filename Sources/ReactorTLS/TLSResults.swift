/// Which end of the connection an engine is.
public enum TLSRole: Sendable, Equatable {
    /// Accepts connections: presents a certificate.
    case server
    /// Opens connections: sends the server's name, verifies its certificate.
    case client
}

/// What a completed handshake settled, for the service to log or act on.
public struct TLSHandshakeInfo: Sendable, Equatable {
    /// The negotiated version.
    public var version: TLSVersion
    /// The cipher suite, in OpenSSL's naming (`TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-ECDSA-AES128-GCM-SHA256`).
    public var cipher: String
    /// The application protocol selected by ALPN, or nil when none was.
    public var applicationProtocol: String?
    /// The server name: on a server, the one the client sent (SNI), if any;
    /// on a client, the one it connected to.
    public var serverName: String?
    /// The subject of the peer's certificate (RFC 2253, `CN=localhost,O=Test`)
    /// when it was verified; nil when the peer sent none or it was not verified.
    public var peerSubject: String?
    /// Whether an earlier session was resumed (an abbreviated handshake).
    public var resumed: Bool

    /// A handshake's outcome (the engine makes these; public for tests of layers above).
    public init(version: TLSVersion, cipher: String, applicationProtocol: String?,
                serverName: String?, peerSubject: String?, resumed: Bool) {
        self.version = version
        self.cipher = cipher
        self.applicationProtocol = applicationProtocol
        self.serverName = serverName
        self.peerSubject = peerSubject
        self.resumed = resumed
    }
}

/// Where a handshake stands after a step.
public enum TLSHandshakeProgress: Sendable, Equatable {
    /// It needs the peer's next flight: send the pending ciphertext, then
    /// feed what arrives and step again.
    case needsInput
    /// It is done (send the pending ciphertext: it may hold the last flight
    /// or session tickets).
    case complete(TLSHandshakeInfo)
}

/// What a plaintext read produced.
public enum TLSReadResult: Sendable, Equatable {
    /// This many plaintext bytes were put at the start of the buffer.
    case bytes(Int)
    /// No whole record is buffered: feed more ciphertext (after sending the
    /// pending ciphertext, which a read may have produced).
    case needsInput
    /// The peer sent `close_notify`: no more plaintext will come. Every
    /// later read says so again.
    case closed
}

/// Where a graceful close stands.
public enum TLSCloseProgress: Sendable, Equatable {
    /// Our `close_notify` is in the pending ciphertext; the peer's has not
    /// arrived yet. Send, then keep reading until ``TLSReadResult/closed``
    /// (or give up after a deadline).
    case awaitingPeer
    /// Both sides are done (or there was no session to close): send the
    /// pending ciphertext, then close the transport.
    case complete
}
