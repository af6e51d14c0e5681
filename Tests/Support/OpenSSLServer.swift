// `openssl s_server` as a peer of the tests: on a port the kernel picks,
// with the certificate a test asks for; and the arguments that make an
// example executable serve TLS with the test certificates.
import Foundation
import ReactorTLS

/// A running `openssl s_server -accept 127.0.0.1:0 -cert ... -key ...`.
/// Stop it with ``stop()``.
public final class OpenSSLServer {
    /// The child process (its standard error, in a file, says what it saw).
    public let child: ChildProcess
    /// The port it accepts on.
    public let port: UInt16

    /// Starts s_server presenting `certificate`, with `arguments` (`-www`,
    /// `-rev`, `-naccept 1`…); returns once it prints `ACCEPT`.
    public init(certificate: TLSCertificateFiles, _ arguments: [String]) throws {
        child = try ChildProcess(executable: try Executables.tool("openssl"),
                                 arguments: ["s_server", "-accept", "127.0.0.1:0", "-cert", certificate.chain,
                                             "-key", certificate.privateKey] + arguments,
                                 standardError: .file)
        do {
            while true {
                // `ACCEPT 127.0.0.1:PORT` once it listens (earlier lines: `Using default temp DH parameters`).
                let line = try readLine(child.standardOutput, timeout: .seconds(10))
                if line.hasPrefix("ACCEPT 127.0.0.1:"), let port = UInt16(line.dropFirst("ACCEPT 127.0.0.1:".count)) {
                    self.port = port
                    return
                }
            }
        } catch {
            child.stop()
            throw TestFailure("openssl s_server did not start: \(error); stderr: \(child.readStandardError())")
        }
    }

    /// SIGTERM (then SIGKILL).
    public func stop() { child.stop() }
}

extension TestCertificates {
    /// `--tls-cert FILE --tls-key FILE --tls-port 0` for `http` or `kv`
    /// (`--tls-port` left out for the proxy), with the RSA server
    /// certificate unless told otherwise.
    public func serverArguments(_ files: TLSCertificateFiles? = nil, tlsPort: Bool = true) -> [String] {
        let files = files ?? server
        return ["--tls-cert", files.chain, "--tls-key", files.privateKey] + (tlsPort ? ["--tls-port", "0"] : [])
    }
}
