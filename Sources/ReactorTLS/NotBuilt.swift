#if !canImport(CReactorTLS)
// This binary was built without OpenSSL (Debian's libssl-dev was missing).
// The same public API exists, so code using it builds either way; making a
// configuration throws `TLSError.notBuilt`, so no engine can exist and the
// engine's methods are never reached.

/// TLS is not built into this binary: both initialisers throw ``TLSError/notBuilt``.
public final class TLSConfiguration: Sendable {
    /// Which side its engines are.
    public let role: TLSRole
    /// The application protocols (ALPN), most preferred first.
    public let applicationProtocols: [String]
    /// How a client checks servers.
    public let verification: TLSVerification

    /// Throws ``TLSError/notBuilt``.
    public init(server options: TLSServerOptions) throws(TLSError) { throw .notBuilt }
    /// Throws ``TLSError/notBuilt``.
    public init(client options: TLSClientOptions = TLSClientOptions()) throws(TLSError) { throw .notBuilt }
    /// Always 0.
    public var cachedSessionCount: Int { 0 }
}

/// TLS is not built into this binary; an engine cannot be made (there is no configuration).
public final class TLSEngine {
    /// The configuration this connection was made from.
    public let configuration: TLSConfiguration
    /// The name a client connects to.
    public let serverName: String?
    /// Never set.
    public private(set) var handshakeInfo: TLSHandshakeInfo?
    /// Never set.
    public private(set) var isCloseSent = false
    /// Never set.
    public private(set) var isPeerClosed = false

    /// Throws ``TLSError/notBuilt``.
    public init(configuration: TLSConfiguration, serverName: String? = nil, sessionKey: String? = nil) throws(TLSError) {
        throw .notBuilt
    }
    /// Never reached.
    public var isHandshakeComplete: Bool { false }
    /// Never reached.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) {}
    /// Never reached.
    public func feed(_ ciphertext: [UInt8]) {}
    /// Never reached.
    public func receivedEndOfFile() {}
    /// Never reached.
    public var unreadCiphertextCount: Int { 0 }
    /// Never reached.
    public var pendingCiphertextCount: Int { 0 }
    /// Never reached.
    public func drainCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int { 0 }
    /// Never reached.
    public func drainCiphertext() -> [UInt8] { [] }
    /// Never reached: throws ``TLSError/notBuilt``.
    public func handshake() throws(TLSError) -> TLSHandshakeProgress { throw .notBuilt }
    /// Never reached: throws ``TLSError/notBuilt``.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> TLSReadResult { throw .notBuilt }
    /// Never reached: throws ``TLSError/notBuilt``.
    public func write(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) -> Int { throw .notBuilt }
    /// Never reached: throws ``TLSError/notBuilt``.
    public func write(_ plaintext: [UInt8]) throws(TLSError) -> Int { throw .notBuilt }
    /// Never reached: throws ``TLSError/notBuilt``.
    public func close() throws(TLSError) -> TLSCloseProgress { throw .notBuilt }
}

@available(*, unavailable, message: "a TLSEngine belongs to its connection's thread")
extension TLSEngine: Sendable {}
#endif
