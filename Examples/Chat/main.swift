// chat: a line-based chat room (the DReactor tutorial's chat server).
//
//   swift run chat --port 7002
//   nc 127.0.0.1 7002      (in two terminals; type lines, /nick NAME, /who, /quit)
import ArgumentParser
import ExampleServices
import Reactor

@main
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A chat server on swift-reactor: each line goes to everyone else; /nick, /who, /quit.")

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "TCP port (0 picks a free one).")
    var port: UInt16 = 7002

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "The longest line a member may send, in bytes.")
    var maxLineBytes = 4096

    @Option(help: "Bytes queued for a slow member above which broadcasts skip it (it is told how many it missed).")
    var highWatermark = 64 << 10

    mutating func validate() throws {
        guard maxLineBytes > 0 else { throw ValidationError("--max-line-bytes must be positive") }
        guard highWatermark >= 1024 else { throw ValidationError("--high-watermark must be at least 1024") }
    }

    mutating func run() throws {
        TerminationSignals.block()
        let configuration = ChatConfiguration(maximumLineLength: maxLineBytes, highWatermark: highWatermark,
                                              lowWatermark: highWatermark / 4)
        try backendOptions.run(program: "chat", Serve(host: host, port: port, configuration: configuration))
    }
}

/// The server, generic over the backend, so the loop is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let configuration: ChatConfiguration

    func visit<P: Poller>(_ type: P.Type) throws {
        let runtime = try Runtime<P, ChatService>(service: ChatService(configuration: configuration))
        let listener = try SocketListener(bindingTo: SocketAddress(host: host, port: port))
        listener.connectionOptions = configuration.connectionOptions
        try runtime.context.register(listener)
        announceListening("chat", on: "\(listener.localAddress)", backend: P.name)
        // SIGTERM and SIGINT stop the loop gracefully, so the process exits
        // through main (and LeakSanitizer's check at exit runs, in a sanitizer build).
        let controller = runtime.controller
        try TerminationSignals.onSignal(program: "chat") { controller.shutdown() }
        try runtime.run()
        printError("chat: stopped")
    }
}
