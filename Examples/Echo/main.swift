// echo: every byte a client sends comes back. The smallest complete service.
//
//   swift run echo --backend poll --port 7000
//   printf 'hello\n' | nc -q1 127.0.0.1 7000
import ArgumentParser
import ExampleServices
import Reactor

@main
struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A TCP echo server on swift-reactor.")

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "TCP port on 127.0.0.1 (0 picks a free one).")
    var port: UInt16 = 7000

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    mutating func run() throws {
        TerminationSignals.block()
        try backendOptions.run(program: "echo", Serve(host: host, port: port))
    }
}

/// The server, generic over the backend; `Backend.visit` picks the concrete
/// poller type once, so the loop below is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16

    func visit<P: Poller>(_ type: P.Type) throws {
        let runtime = try Runtime<P, LoggingService>(service: LoggingService())
        let listener = try SocketListener(bindingTo: SocketAddress(host: host, port: port))
        let echo = EchoHandler()
        listener.connectionHandler = { _ in echo }
        try runtime.context.register(listener)
        announceListening("echo", on: "\(listener.localAddress)", backend: P.name)
        // SIGTERM and SIGINT stop the loop gracefully, so the process exits
        // through main (and LeakSanitizer's check at exit runs, in a sanitizer build).
        let controller = runtime.controller
        try TerminationSignals.onSignal(program: "echo") { controller.shutdown() }
        try runtime.run()
        printError("echo: stopped")
    }
}
