// proxy: a TCP proxy; one runtime accepts clients and connects upstream.
//
//   swift run proxy --port 7001 --upstream 127.0.0.1:7000     (with `echo` on 7000)
//   swift run proxy --port 7001 --echo                        (its own echo upstream, same loop)
//   printf 'hello\n' | nc -q1 127.0.0.1 7001
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

    mutating func validate() throws {
        guard (upstream != nil) != echo else { throw ValidationError("give exactly one of --upstream HOST:PORT and --echo") }
        if let upstream, Proxy.parse(upstream) == nil {
            throw ValidationError("--upstream \(upstream): expected HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000")
        }
        guard connectTimeoutMs > 0 else { throw ValidationError("--connect-timeout-ms must be positive") }
    }

    static func parse(_ text: String) -> (host: String, port: UInt16)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    mutating func run() throws {
        try backendOptions.run(program: "proxy", Serve(host: host, port: port, upstream: upstream.flatMap(Proxy.parse),
                                                       connectTimeout: .milliseconds(connectTimeoutMs)))
    }
}

/// The proxy, generic over the backend, so the loop is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let upstream: (host: String, port: UInt16)?
    let connectTimeout: Duration

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
        let service = ProxyService(configuration: ProxyConfiguration(upstream: upstreamAddress, connectTimeout: connectTimeout))
        let runtime = try Runtime<P, ProxyService>(service: service)
        if let echoListener { try runtime.context.register(echoListener) }
        let listener = try SocketListener(bindingTo: SocketAddress(host: host, port: port))
        try runtime.context.register(listener)
        announceListening("proxy", on: "\(listener.localAddress)", backend: P.name,
                          note: "forwarding to \(upstreamAddress)" + (echoListener != nil ? ", an echo in the same runtime" : ""))
        try runtime.run()
    }
}
