// kv: a Redis-compatible key-value server (RESP2) on one runtime per thread,
// sharing one database. redis-cli and redis-benchmark talk to it unmodified.
//
//   swift run -c release kv --port 6379 --threads 2
//   redis-cli -p 6379 set greeting hello
//   redis-benchmark -p 6379 -t get,set -P 16 -q
//   swift run -c release kv --port 6379 --tls-cert cert.pem --tls-key key.pem --tls-port 6380
//   redis-cli --tls --cacert ca.pem -p 6380 ping                (TLS and plain side by side)
import ArgumentParser
import ExampleServices
import Reactor

#if canImport(Glibc)
import Glibc
#endif

struct KV: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A Redis-compatible key-value server (RESP2) on swift-reactor: strings, expiry, pipelining.")

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "TCP port (0 picks a free one).")
    var port: UInt16 = 6379

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Runtimes (threads), each with its own listener on the port (default: the CPUs this process may use).")
    var threads: Int?

    @OptionGroup var tlsOptions: TLSCertificateOptions

    @Option(help: "TLS port, served beside --port by every runtime (0 picks a free one; default: 6380). Needs --tls-cert and --tls-key.")
    var tlsPort: UInt16?

    @Option(help: "Close clients idle for this many seconds (0: never), like Redis's `timeout`.")
    var idleTimeout = 0

    @Option(help: "Disconnect a client whose unread replies exceed this many bytes.")
    var outputBufferLimit = 64 << 20

    @Option(help: "Stop reading a client whose unsent replies exceed this many bytes (resuming at a quarter of it).")
    var highWatermark = 512 << 10

    @Option(help: "Unsent replies all the clients of one thread may hold before the heaviest stop being read.")
    var outputBudget = 8 << 20

    mutating func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if tlsPort != nil && !tlsOptions.isEnabled { throw ValidationError("--tls-port needs --tls-cert FILE and --tls-key FILE") }
        if tlsOptions.isEnabled && port != 0 && (tlsPort ?? 6380) == port {
            throw ValidationError("--tls-port must differ from --port (the plain listener is served beside the TLS one)")
        }
        guard idleTimeout >= 0 else { throw ValidationError("--idle-timeout must be 0 (off) or a number of seconds") }
        guard outputBufferLimit > 0 else { throw ValidationError("--output-buffer-limit must be positive") }
        guard highWatermark > 0 else { throw ValidationError("--high-watermark must be positive") }
        guard outputBudget > 0 else { throw ValidationError("--output-budget must be positive") }
    }

    mutating func run() throws {
        // Before any thread starts, so every thread inherits the mask and
        // only the signal thread's sigwait receives SIGINT and SIGTERM.
        TerminationSignals.block()
        let configuration = KVConfiguration(idleTimeoutSeconds: idleTimeout, outputBufferLimit: outputBufferLimit,
                                            highWatermark: highWatermark, lowWatermark: highWatermark / 4,
                                            outputBudget: outputBudget)
        // The certificate is read now: a bad file fails here, with OpenSSL's reason, before anything listens.
        let tls = try tlsOptions.serverTLS(program: "kv", applicationProtocols: [])
            .map { TLSListening(port: tlsPort ?? 6380, options: $0) }
        try backendOptions.run(program: "kv", Serve(host: host, port: port, threads: threads, configuration: configuration, tls: tls))
    }
}

/// The server, generic over the backend; `Backend.visit` picks the concrete
/// poller type once, so each runtime's loop is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let threads: Int?
    let configuration: KVConfiguration
    /// The TLS listener beside the plain one, if any.
    let tls: TLSListening?

    func visit<P: Poller>(_ type: P.Type) throws {
        let threadCount = threads ?? RuntimeGroup<P, KVService>.availableCPUs
        let (group, boundPort, tlsPort) = try KVServer.start(P.self, host: host, port: port, threads: threadCount,
                                                             configuration: configuration, tls: tls)
        try TerminationSignals.onSignal(program: "kv") { group.shutdown() }
        announceListening("kv", on: "\(host):\(boundPort)", backend: P.name, note: "\(threadCount) threads")
        if let tlsPort {
            announceListening("kv", on: "\(host):\(tlsPort)", backend: P.name, note: "\(threadCount) threads, tls")
        }
        group.join()
        printError("kv: stopped")
    }
}

// Top-level code rather than `@main`: SwiftPM decides whether to parse a
// lone main.swift as a library when it plans the build, and a plan cached
// from an earlier version of this file would reject `@main`. Last in the
// file, so the globals above are initialised before it runs.
KV.main()
