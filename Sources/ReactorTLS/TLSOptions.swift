/// The TLS versions a configuration may require at least; nothing older
/// than TLS 1.2 is ever negotiated.
public enum TLSVersion: String, Sendable, Equatable, CustomStringConvertible {
    /// TLS 1.2 (RFC 5246).
    case tls12 = "TLSv1.2"
    /// TLS 1.3 (RFC 8446).
    case tls13 = "TLSv1.3"

    /// OpenSSL's name, `TLSv1.2` or `TLSv1.3`.
    public var description: String { rawValue }
}

/// A certificate chain and its private key, as PEM files.
public struct TLSCertificateFiles: Sendable, Equatable {
    /// The leaf certificate first, then any intermediates (PEM).
    public var chain: String
    /// The leaf certificate's private key (PEM, unencrypted).
    public var privateKey: String

    /// The chain and key at these paths (read when the configuration is made).
    public init(chain: String, privateKey: String) {
        self.chain = chain
        self.privateKey = privateKey
    }
}

/// The certificates a client trusts.
public enum TLSTrustRoots: Sendable, Equatable {
    /// The system's CA store (Debian: `/etc/ssl/certs`, from `ca-certificates`).
    case system
    /// The CA certificates in one PEM file.
    case file(String)
}

/// How much of the server a client checks.
public enum TLSVerification: Sendable, Equatable {
    /// The chain up to a trusted root, validity dates, and that the
    /// certificate names the server (DNS name or IP address): the default.
    case full
    /// The chain and dates, not the name: for peers known by other means.
    case noHostnameVerification
    /// Nothing: the connection is encrypted but the peer is unauthenticated
    /// (tests only).
    case none
}

/// What a server presents and accepts.
public struct TLSServerOptions: Sendable, Equatable {
    /// The certificate for clients that send no server name, or one not in
    /// ``certificatesByName``.
    public var certificate: TLSCertificateFiles
    /// Certificates chosen by the name a client sends (SNI), keyed by a DNS
    /// name (`api.example.com`) or a one-label wildcard (`*.example.com`);
    /// case-insensitive.
    public var certificatesByName: [String: TLSCertificateFiles]
    /// The application protocols (ALPN) the server speaks, most preferred
    /// first; the first of them the client also offers is selected. A
    /// client that offers none of them is served without ALPN.
    public var applicationProtocols: [String]
    /// The oldest version accepted.
    public var minimumVersion: TLSVersion
    /// Whether clients may resume sessions with tickets (stateless: nothing
    /// is stored per session on the server).
    public var sessionTickets: Bool

    /// A server presenting `certificate`.
    public init(certificate: TLSCertificateFiles,
                certificatesByName: [String: TLSCertificateFiles] = [:],
                applicationProtocols: [String] = [],
                minimumVersion: TLSVersion = .tls12,
                sessionTickets: Bool = true) {
        self.certificate = certificate
        self.certificatesByName = certificatesByName
        self.applicationProtocols = applicationProtocols
        self.minimumVersion = minimumVersion
        self.sessionTickets = sessionTickets
    }
}

/// What a client trusts, checks and offers.
public struct TLSClientOptions: Sendable, Equatable {
    /// The CAs it trusts.
    public var trustRoots: TLSTrustRoots
    /// How much of the server's certificate it checks.
    public var verification: TLSVerification
    /// The application protocols (ALPN) it offers, most preferred first.
    public var applicationProtocols: [String]
    /// The oldest version accepted.
    public var minimumVersion: TLSVersion
    /// How many servers' sessions the client keeps for resumption (0: none).
    public var sessionCacheCapacity: Int
    /// The largest server certificate chain accepted, in certificates.
    public var maximumChainDepth: Int

    /// A client with the system's CAs and full verification by default.
    public init(trustRoots: TLSTrustRoots = .system,
                verification: TLSVerification = .full,
                applicationProtocols: [String] = [],
                minimumVersion: TLSVersion = .tls12,
                sessionCacheCapacity: Int = 256,
                maximumChainDepth: Int = 10) {
        self.trustRoots = trustRoots
        self.verification = verification
        self.applicationProtocols = applicationProtocols
        self.minimumVersion = minimumVersion
        self.sessionCacheCapacity = sessionCacheCapacity
        self.maximumChainDepth = maximumChainDepth
    }
}
