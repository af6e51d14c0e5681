import ArgumentParser
import Reactor

/// The certificate flags of the examples that serve TLS: `--tls-cert FILE
/// --tls-key FILE`. Include with `@OptionGroup var tlsOptions: TLSCertificateOptions`;
/// given both, the example serves TLS (beside plain, for `http` and `kv`).
public struct TLSCertificateOptions: ParsableArguments {
    /// `--tls-cert FILE`: the certificate chain, leaf first (PEM).
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Certificate chain to serve TLS with (PEM, leaf first).", valueName: "file"))
    public var certificate: String?

    /// `--tls-key FILE`: the certificate's private key.
    @Option(name: .customLong("tls-key"), help: ArgumentHelp("Private key of --tls-cert (PEM, unencrypted).", valueName: "file"))
    public var privateKey: String?

    /// No flags: no TLS.
    public init() {}

    /// Both files or neither.
    public func validate() throws {
        if (certificate == nil) != (privateKey == nil) {
            throw ValidationError("give both --tls-cert FILE and --tls-key FILE, or neither")
        }
    }

    /// True when both files were given.
    public var isEnabled: Bool { certificate != nil && privateKey != nil }

    /// The listener settings these flags ask for, nil without them. Reads
    /// the files now: a file that cannot be used prints `program: ` and
    /// OpenSSL's reason on stderr, e.g. `http: tls config: cannot read
    /// certificate chain /x.pem: No such file or directory`, and exits with
    /// status 1, before anything listens.
    public func serverTLS(program: String, applicationProtocols: [String] = []) throws -> StreamTLSOptions? {
        guard let certificate, let privateKey else { return nil }
        do {
            let configuration = try TLSConfiguration(server: TLSServerOptions(
                certificate: TLSCertificateFiles(chain: certificate, privateKey: privateKey),
                applicationProtocols: applicationProtocols))
            return StreamTLSOptions(configuration: configuration)
        } catch {
            printError("\(program): \(error)")
            throw ExitCode.failure
        }
    }
}

/// A TLS listener beside a server's plain one: the port (0 picks a free
/// one) and what every connection it accepts speaks.
public struct TLSListening: Sendable {
    /// The TCP port; 0 for a free one.
    public var port: UInt16
    /// The settings each accepted connection gets (certificate, ALPN, timeouts).
    public var options: StreamTLSOptions

    /// TLS on `port` with `options`.
    public init(port: UInt16, options: StreamTLSOptions) {
        self.port = port
        self.options = options
    }
}
