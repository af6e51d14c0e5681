// http: an HTTP/1.1 server on one runtime per thread.
//
//   swift run -c release http --port 8080 --threads 2
//   curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/stats
//   curl --data-binary @file -H 'Content-Type: text/plain' http://127.0.0.1:8080/echo
//   swift run -c release http --port 8080 --tls-cert cert.pem --tls-key key.pem --tls-port 8443
//   curl --cacert ca.pem https://localhost:8443/                (TLS and plain side by side)
import ArgumentParser
import ExampleServices
import Reactor

#if canImport(Glibc)
import Glibc
#endif

@main
struct HTTP: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "An HTTP/1.1 server on swift-reactor: GET /, GET /stats, POST /echo.")

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "TCP port (0 picks a free one).")
    var port: UInt16 = 8080

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Runtimes (threads), each with its own listener on the port (default: the CPUs this process may use).")
    var threads: Int?

    @OptionGroup var tlsOptions: TLSCertificateOptions

    @Option(help: "TLS port, served beside --port by every runtime (0 picks a free one; default: 8443). Needs --tls-cert and --tls-key.")
    var tlsPort: UInt16?

    @Option(help: "A request head must arrive within this many ms of its first byte, and a body keep coming at least this often (408 otherwise).")
    var requestTimeoutMs = 10_000

    @Option(help: "Idle keep-alive connections are closed after this many ms.")
    var idleTimeoutMs = 60_000

    @Option(help: "The largest request body accepted, in bytes (413 otherwise).")
    var maxBodyBytes = 1 << 20

    @Option(help: "The largest request head accepted, in bytes (431 otherwise).")
    var maxHeaderBytes = 8 << 10

    mutating func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if tlsPort != nil && !tlsOptions.isEnabled { throw ValidationError("--tls-port needs --tls-cert FILE and --tls-key FILE") }
        if tlsOptions.isEnabled && port != 0 && (tlsPort ?? 8443) == port {
            throw ValidationError("--tls-port must differ from --port (the plain listener is served beside the TLS one)")
        }
        guard requestTimeoutMs > 0, idleTimeoutMs > 0 else { throw ValidationError("timeouts must be positive") }
        guard maxBodyBytes >= 0, maxHeaderBytes >= 64 else { throw ValidationError("--max-header-bytes must be at least 64") }
    }

    mutating func run() throws {
        // Before any thread starts, so every thread inherits the mask and
        // only the signal thread's sigwait receives SIGINT and SIGTERM.
        TerminationSignals.block()
        let configuration = HTTPConfiguration(
            maxHeaderBytes: maxHeaderBytes, maxBodyBytes: maxBodyBytes,
            requestTimeout: .milliseconds(requestTimeoutMs), idleTimeout: .milliseconds(idleTimeoutMs))
        // The certificate is read now: a bad file fails here, with OpenSSL's reason, before anything listens.
        let tls = try tlsOptions.serverTLS(program: "http", applicationProtocols: ["http/1.1"])
            .map { TLSListening(port: tlsPort ?? 8443, options: $0) }
        try backendOptions.run(program: "http", Serve(host: host, port: port, threads: threads, configuration: configuration, tls: tls))
    }
}

/// The server, generic over the backend; `Backend.visit` picks the concrete
/// poller type once, so each runtime's loop is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let threads: Int?
    let configuration: HTTPConfiguration
    /// The TLS listener beside the plain one, if any.
    let tls: TLSListening?

    func visit<P: Poller>(_ type: P.Type) throws {
        let threadCount = threads ?? RuntimeGroup<P, HTTPService>.availableCPUs
        let (group, boundPort, tlsPort) = try HTTPServer.start(P.self, host: host, port: port, threads: threadCount,
                                                               configuration: configuration, tls: tls)
        try TerminationSignals.onSignal(program: "http") { group.shutdown() }
        announceListening("http", on: "\(host):\(boundPort)", backend: P.name, note: "\(threadCount) threads")
        if let tlsPort {
            announceListening("http", on: "\(host):\(tlsPort)", backend: P.name, note: "\(threadCount) threads, tls")
        }
        group.join()
        printError("http: stopped")
    }
}

