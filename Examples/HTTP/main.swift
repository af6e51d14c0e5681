// http: an HTTP/1.1 server on one runtime per thread.
//
//   swift run -c release http --port 8080 --threads 2
//   curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/stats
//   curl --data-binary @file -H 'Content-Type: text/plain' http://127.0.0.1:8080/echo
import ArgumentParser
import ExampleServices
import Reactor

#if canImport(Glibc)
import Glibc
#endif

@main
struct HTTP: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "An HTTP/1.1 server on swift-reactor: GET /, GET /stats, POST /echo.")

    @Option(help: "Polling backend: \(Backend.validNames) (default: $\(Backend.environmentVariable), else the best available).")
    var backend: String?

    @Option(help: "TCP port (0 picks a free one).")
    var port: UInt16 = 8080

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Flag(help: "Fail instead of falling back when the requested backend cannot run.")
    var strictBackend = false

    @Option(help: "Runtimes (threads), each with its own listener on the port (default: the CPUs this process may use).")
    var threads: Int?

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
        guard requestTimeoutMs > 0, idleTimeoutMs > 0 else { throw ValidationError("timeouts must be positive") }
        guard maxBodyBytes >= 0, maxHeaderBytes >= 64 else { throw ValidationError("--max-header-bytes must be at least 64") }
    }

    mutating func run() throws {
        let choice: Backend.Choice
        do throws(ReactorError) {
            var requested: Backend? = nil
            if let backend { requested = try Backend(name: backend) } else { requested = try Backend.fromEnvironment() }
            choice = try Backend.choose(requested: requested, strict: strictBackend)
        } catch {
            printError("http: \(error.detail ?? "\(error)")")
            throw ExitCode(2)
        }
        printError("http: backend \(choice.backend) (\(choice.reason))")
        // Before any thread starts, so every thread inherits the mask and
        // only the signal thread's sigwait receives SIGINT and SIGTERM.
        blockTerminationSignals()
        let configuration = HTTPConfiguration(
            maxHeaderBytes: maxHeaderBytes, maxBodyBytes: maxBodyBytes,
            requestTimeout: .milliseconds(requestTimeoutMs), idleTimeout: .milliseconds(idleTimeoutMs))
        do {
            try choice.backend.visit(Serve(host: host, port: port, threads: threads, configuration: configuration))
        } catch {
            printError("http: \(error)")
            throw ExitCode.failure
        }
    }
}

/// The server, generic over the backend; `Backend.visit` picks the concrete
/// poller type once, so each runtime's loop is specialised for it.
struct Serve: PollerVisitor {
    let host: String
    let port: UInt16
    let threads: Int?
    let configuration: HTTPConfiguration

    func visit<P: Poller>(_ type: P.Type) throws {
        let threadCount = threads ?? RuntimeGroup<P, HTTPService>.availableCPUs
        let (group, boundPort) = try HTTPServer.start(P.self, host: host, port: port, threads: threadCount,
                                                      configuration: configuration)
        try startSignalThread { _ in group.shutdown() }
        print("http listening on \(host):\(boundPort) (backend \(P.name), \(threadCount) threads)")
        flushStandardOutput()
        group.join()
        printError("http: stopped")
    }
}

// MARK: Signals

/// The signals that stop the server gracefully.
private let terminationSignals = [SIGINT, SIGTERM]

private func terminationSet() -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in terminationSignals { sigaddset(&set, signal) }
    return set
}

/// Blocks SIGINT and SIGTERM in the calling thread and the threads it starts later.
private func blockTerminationSignals() {
    var set = terminationSet()
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// Starts a thread that waits for SIGINT or SIGTERM with `sigwait` and calls
/// `onSignal` (a graceful shutdown). A second signal exits at once, for a
/// shutdown that hangs.
private func startSignalThread(_ onSignal: @escaping @Sendable (Int32) -> Void) throws {
    final class Box: Sendable {
        let onSignal: @Sendable (Int32) -> Void
        init(_ onSignal: @escaping @Sendable (Int32) -> Void) { self.onSignal = onSignal }
    }
    // Sound: the retained box is released exactly once, by the new thread (or below if it never starts).
    let box = Unmanaged.passRetained(Box(onSignal)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        var set = terminationSet()
        var received: Int32 = 0
        var count = 0
        while sigwait(&set, &received) == 0 {
            count += 1
            if count > 1 { _exit(128 + received) }
            printError("http: signal \(received), shutting down")
            box.onSignal(received)
        }
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        throw ReactorError("pthread_create", .named("signals"), errno: .init(rawValue: rc))
    }
    pthread_detach(thread)
}
