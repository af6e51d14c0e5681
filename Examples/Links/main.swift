// links: a URL shortener backed by redis, the model microservice — an HTTP
// server and a RESP client in the same loop, one runtime per core, no async/await.
//
//   redis-server --port 6379 &
//   swift run -c release links --redis localhost:6379 --port 8080
//   curl -d https://example.com/ http://127.0.0.1:8080/links      {"code":"1","url":"https://example.com/"}
//   curl -i http://127.0.0.1:8080/1                               302 Found, Location: https://example.com/
//   curl http://127.0.0.1:8080/stats
import ArgumentParser
import ExampleServices
import Reactor

@main
struct Links: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A URL shortener on swift-reactor and redis: POST /links, GET /CODE (302), GET /stats.")

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "The redis server, HOST:PORT (the host is resolved by name without blocking).")
    var redis = "127.0.0.1:6379"

    @Option(help: "TCP port (0 picks a free one).")
    var port: UInt16 = 8080

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Runtimes (threads), each with its own listener and redis connection (default: the CPUs this process may use).")
    var threads: Int?

    @Option(help: "A redis command not answered within this many ms fails its request with 503.")
    var redisTimeoutMs = 2_000

    mutating func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard HostAndPort(redis) != nil else { throw ValidationError("--redis must be HOST:PORT, e.g. localhost:6379 or [::1]:6379") }
        guard redisTimeoutMs > 0 else { throw ValidationError("--redis-timeout-ms must be positive") }
    }

    mutating func run() throws {
        TerminationSignals.block()  // before any thread starts: only the signal thread receives SIGTERM
        let redis = HostAndPort(redis)!  // checked by validate()
        var configuration = LinksConfiguration(redisHost: redis.host, redisPort: redis.port)
        configuration.redis.commandTimeout = .milliseconds(redisTimeoutMs)
        try backendOptions.run(program: "links", Serve(host: host, port: port, threads: threads, configuration: configuration))
    }
}

/// The server, generic over the backend (each runtime's loop specialised for it).
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let threads: Int?
    let configuration: LinksConfiguration

    func visit<P: Poller>(_ type: P.Type) throws {
        let threadCount = threads ?? RuntimeGroup<P, HTTPService>.availableCPUs
        let (group, boundPort) = try LinksServer.start(P.self, host: host, port: port, threads: threadCount, configuration: configuration)
        try TerminationSignals.onSignal(program: "links") { group.shutdown() }
        announceListening("links", on: "\(host):\(boundPort)", backend: P.name,
                          note: "\(threadCount) threads, redis \(configuration.redisHost):\(configuration.redisPort)")
        group.join()
        printError("links: stopped")
    }
}
