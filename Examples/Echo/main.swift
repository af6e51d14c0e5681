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

    @Option(help: "Polling backend: \(Backend.validNames) (default: $\(Backend.environmentVariable), else the best available).")
    var backend: String?

    @Option(help: "TCP port on 127.0.0.1 (0 picks a free one).")
    var port: UInt16 = 7000

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Flag(help: "Fail instead of falling back when the requested backend cannot run.")
    var strictBackend = false

    mutating func run() throws {
        let choice: Backend.Choice
        do throws(ReactorError) {
            var requested: Backend? = nil
            if let backend { requested = try Backend(name: backend) } else { requested = try Backend.fromEnvironment() }
            choice = try Backend.choose(requested: requested, strict: strictBackend)
        } catch {
            printError("echo: \(error.detail ?? "\(error)")")
            throw ExitCode(2)
        }
        printError("echo: backend \(choice.backend) (\(choice.reason))")
        do {
            try choice.backend.visit(Serve(host: host, port: port))
        } catch {
            printError("echo: \(error)")
            throw ExitCode.failure
        }
    }
}

/// The server, generic over the backend; `Backend.visit` picks the concrete
/// poller type once, so the loop below is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16

    func visit<P: Poller>(_ type: P.Type) throws {
        let runtime = try Runtime<P, EchoService>(service: EchoService())
        let listener = try TCPListener(bindingTo: SocketAddress(host: host, port: port))
        try runtime.context.register(listener)
        print("echo listening on \(listener.localAddress) (backend \(P.name))")
        flushStandardOutput()
        try runtime.run()
    }
}
