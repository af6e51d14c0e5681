// proxy: a TCP proxy; one runtime accepts clients and connects upstream.
//
//   swift run proxy --port 7001 --upstream 127.0.0.1:7000     (with `echo` on 7000)
//   swift run proxy --port 7001 --echo                        (its own echo upstream, same loop)
//   printf 'hello\n' | nc -q1 127.0.0.1 7001
//
// TLS on either side, the forwarding in plaintext between:
//
//   swift run proxy --echo --tls-cert cert.pem --tls-key key.pem        (terminates TLS)
//   openssl s_client -connect 127.0.0.1:7001 -CAfile ca.pem -servername localhost
//   swift run proxy --upstream 127.0.0.1:8443 --upstream-tls --upstream-ca ca.pem   (originates TLS)
import ArgumentParser
import ExampleServices
import Reactor

@main
struct Proxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A TCP proxy on swift-reactor: server and client in one event loop.")

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "TCP port to accept clients on (0 picks a free one).")
    var port: UInt16 = 7001

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Where to forward: HOST:PORT ([::1]:PORT for IPv6).")
    var upstream: String?

    @Flag(help: "Run an echo server in the same runtime and forward to it (many protocols in one loop).")
    var echo = false

    @Option(help: "Upstream connect timeout, in milliseconds.")
    var connectTimeoutMs = 5000

    /// With both, clients speak TLS to the proxy (it terminates TLS).
    @OptionGroup var tlsOptions: TLSCertificateOptions

    @Flag(help: "Speak TLS to the upstream, verifying its certificate (the proxy originates TLS).")
    var upstreamTls = false

    @Option(help: ArgumentHelp("CA certificates (PEM) to verify the upstream with (default: the system's).", valueName: "file"))
    var upstreamCa: String?

    @Option(help: "The name sent as SNI and checked against the upstream's certificate (default: the upstream host).")
    var upstreamName: String?

    mutating func validate() throws {
        guard (upstream != nil) != echo else { throw ValidationError("give exactly one of --upstream HOST:PORT and --echo") }
        if let upstream, HostAndPort(upstream) == nil {
            throw ValidationError("--upstream \(upstream): expected HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000")
        }
        guard connectTimeoutMs > 0 else { throw ValidationError("--connect-timeout-ms must be positive") }
        if !upstreamTls && (upstreamCa != nil || upstreamName != nil) {
            throw ValidationError("--upstream-ca and --upstream-name need --upstream-tls")
        }
        if upstreamTls && echo { throw ValidationError("--upstream-tls needs --upstream HOST:PORT (the --echo upstream is plain)") }
    }

    mutating func run() throws {
        TerminationSignals.block()
        // Certificates and CAs are read now: a bad file fails here, with OpenSSL's reason, before anything listens.
        let listenerTLS = try tlsOptions.serverTLS(program: "proxy")
        let upstream = self.upstream.flatMap(HostAndPort.init).map { (host: $0.host, port: $0.port) }
        var upstreamTLS: (options: StreamTLSOptions, name: String)?
        if upstreamTls, let upstream {
            let name = upstreamName ?? upstream.host
            do {
                let address = try SocketAddress(host: upstream.host, port: upstream.port)
                upstreamTLS = (try ProxyConfiguration.upstreamTLS(upstream: address, trusting: upstreamCa, serverName: name), name)
            } catch {
                printError("proxy: \(error)")
                throw ExitCode.failure
            }
        }
        try backendOptions.run(program: "proxy", Serve(host: host, port: port, upstream: upstream,
                                                       connectTimeout: .milliseconds(connectTimeoutMs),
                                                       listenerTLS: listenerTLS, upstreamTLS: upstreamTLS))
    }
}

/// The proxy, generic over the backend, so the loop is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let upstream: (host: String, port: UInt16)?
    let connectTimeout: Duration
    /// What clients speak to the proxy, when TLS.
    let listenerTLS: StreamTLSOptions?
    /// What the proxy speaks to the upstream, when TLS, and the name it expects.
    let upstreamTLS: (options: StreamTLSOptions, name: String)?

    func visit<P: Poller>(_ type: P.Type) throws {
        var echoListener: SocketListener?
        let upstreamAddress: SocketAddress
        if let upstream {
            upstreamAddress = try SocketAddress(host: upstream.host, port: upstream.port)
        } else {
            let listener = try SocketListener(bindingTo: .loopback(port: 0))
            // Echo beside the proxy: this listener's connections get the echo
            // handler, and its own events are logged rather than reaching the proxy.
            let echo = EchoHandler()
            listener.handler = LoggingService()
            listener.connectionHandler = { _ in echo }
            upstreamAddress = listener.localAddress
            echoListener = listener
        }
        let service = ProxyService(configuration: ProxyConfiguration(upstream: upstreamAddress, connectTimeout: connectTimeout,
                                                                     upstreamTLS: upstreamTLS?.options))
        let runtime = try Runtime<P, ProxyService>(service: service)
        if let echoListener { try runtime.context.register(echoListener) }
        let listener = try SocketListener(bindingTo: SocketAddress(host: host, port: port))
        listener.tls = listenerTLS
        try runtime.context.register(listener)
        var notes = ["forwarding to \(upstreamAddress)" + (upstreamTLS.map { " over tls, verified as \($0.name)" } ?? "")]
        if echoListener != nil { notes.append("an echo in the same runtime") }
        if listenerTLS != nil { notes.append("tls") }
        announceListening("proxy", on: "\(listener.localAddress)", backend: P.name, note: notes.joined(separator: ", "))
        // SIGTERM and SIGINT stop the loop gracefully, so the process exits
        // through main (and LeakSanitizer's check at exit runs, in a sanitizer build).
        let controller = runtime.controller
        try TerminationSignals.onSignal(program: "proxy") { controller.shutdown() }
        try runtime.run()
        printError("proxy: stopped")
    }
}
