// Helpers of the `kv` tests: the built executable and a real redis-server as
// child processes (ReactorTestSupport's ChildProcess; redis-cli and
// redis-benchmark run with its runTool), and a raw RESP client that compares
// replies byte for byte. Every name starts with `kv`/`KV`: this target is
// shared with the http tests.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: The servers

/// A running `kv --backend NAME --strict-backend --port 0 --threads N ...`,
/// with the port it announced (and its TLS port, when started with `--tls-cert`). Stop it with ``stop()``. Its standard error
/// goes to a file: a server under load may log more than a pipe holds.
/// `KV_EXECUTABLE` in the environment names another build to run (the
/// release one, to measure it with these tests).
final class KVTestServer {
    let child: ChildProcess
    let port: UInt16
    /// The TLS port from the second ready line (`... (backend epoll, 1 threads, tls)`), with `--tls-cert`.
    let tlsPort: UInt16?

    init(backend: Backend, threads: Int = 1, extraArguments: [String] = []) throws {
        let arguments = ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "\(threads)"] + extraArguments
        let executable = try ProcessInfo.processInfo.environment["KV_EXECUTABLE"].map { URL(fileURLWithPath: $0) }
            ?? Executables.product("kv")
        child = try ChildProcess(executable: executable, arguments: arguments, standardError: .file)
        port = try child.readListeningPort("kv", suffix: " (backend \(backend.rawValue), \(threads) threads)").port
        tlsPort = extraArguments.contains("--tls-cert")
            ? try child.readListeningPort("kv", suffix: " (backend \(backend.rawValue), \(threads) threads, tls)").port : nil
    }

    /// SIGTERM; nil when the server exited by itself with status 0, else
    /// how it ended, with the end of what it wrote to standard error.
    @discardableResult
    func stop() -> String? {
        child.stopFailure("kv")
    }
}

/// A real `redis-server` on a free port, with nothing saved to disk.
final class KVRedisServer {
    let child: ChildProcess
    let port: UInt16

    /// A server on `port`, or on a free port when nil.
    init(port fixedPort: UInt16? = nil) throws {
        let executable = try Executables.tool("redis-server")
        var lastError: Error = TestFailure("redis-server did not start")
        // The free port is found by binding port 0 and closing: another
        // process may take it in between, so a failed start is retried.
        for _ in 0..<3 {
            let port = try fixedPort ?? kvFreePort()
            let child = try ChildProcess(executable: executable, arguments: [
                "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", "",
                "--loglevel", "warning", "--daemonize", "no",
            ], standardError: .file)
            do {
                let client = try KVClient(port: port, connectTimeout: .seconds(5), isAlive: { child.process.isRunning })
                try client.send(kvCommand("PING"))
                guard try client.readReplies(1, timeout: .seconds(5)) == Array("+PONG\r\n".utf8) else {
                    throw TestFailure("redis-server on port \(port) did not answer PING")
                }
                self.child = child
                self.port = port
                return
            } catch {
                child.stop(timeout: .seconds(10))
                lastError = error
            }
        }
        throw lastError
    }

    func stop() { child.stop() }
}

/// A port nobody listened on a moment ago.
func kvFreePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("bind to port 0: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

/// Sleeps the calling thread (the tests are synchronous, like the servers' clients).
func kvSleep(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    usleep(UInt32(clamping: seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
}
