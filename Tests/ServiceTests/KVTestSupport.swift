// Helpers of the `kv` tests: the built executable and a real redis-server as
// child processes, redis-cli and redis-benchmark run with deadlines, and a
// raw RESP client that compares replies byte for byte. Every name starts
// with `kv`/`KV`: this target is shared with the http tests.
import Foundation
import Reactor
import Testing

#if canImport(Glibc)
import Glibc
#endif

struct KVTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: The servers

/// A running `kv --backend NAME --strict-backend --port 0 --threads N ...`,
/// with the port it announced. Stop it with ``stop()``.
final class KVTestServer {
    let child: KVChild
    let port: UInt16

    init(backend: Backend, threads: Int = 1, extraArguments: [String] = []) throws {
        let arguments = ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "\(threads)"] + extraArguments
        child = try KVChild(executable: try kvExecutable(), arguments: arguments)
        do {
            let line = try kvReadLine(child.standardOutput, timeout: .seconds(10))
            let prefix = "kv listening on 127.0.0.1:"
            let suffix = " (backend \(backend.rawValue), \(threads) threads)"
            guard line.hasPrefix(prefix), line.hasSuffix(suffix),
                  let port = UInt16(line.dropFirst(prefix.count).dropLast(suffix.count)), port != 0 else {
                throw KVTestError("unexpected first line from kv: '\(line)' (stderr: \(child.standardErrorText()))")
            }
            self.port = port
        } catch {
            child.stop()
            throw error
        }
    }

    /// SIGTERM; true when the server exited by itself with status 0.
    @discardableResult
    func stop() -> Bool {
        guard child.stop() else { return false }
        return child.process.terminationReason == .exit && child.process.terminationStatus == 0
    }
}

/// A real `redis-server` on a free port, with nothing saved to disk.
final class KVRedisServer {
    let child: KVChild
    let port: UInt16

    init() throws {
        let executable = try kvTool("redis-server")
        var lastError: Error = KVTestError("redis-server did not start")
        // The free port is found by binding port 0 and closing: another
        // process may take it in between, so a failed start is retried.
        for _ in 0..<3 {
            let port = try kvFreePort()
            let child = try KVChild(executable: executable, arguments: [
                "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", "",
                "--loglevel", "warning", "--daemonize", "no",
            ])
            do {
                let client = try KVClient(port: port, connectTimeout: .seconds(5), isAlive: { child.process.isRunning })
                try client.send(kvCommand("PING"))
                guard try client.readReplies(1, timeout: .seconds(5)) == Array("+PONG\r\n".utf8) else {
                    throw KVTestError("redis-server on port \(port) did not answer PING")
                }
                self.child = child
                self.port = port
                return
            } catch {
                child.stop()
                lastError = error
            }
        }
        throw lastError
    }

    func stop() { child.stop() }
}

/// The `kv` product built with the tests: next to the test bundle first
/// (same configuration), else under the package's `.build`.
func kvExecutable() throws -> URL {
    var candidates: [URL] = []
    let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    candidates.append(testBinary.deletingLastPathComponent().appendingPathComponent("kv"))
    if let argument = CommandLine.arguments.first {
        candidates.append(URL(fileURLWithPath: argument).deletingLastPathComponent().appendingPathComponent("kv"))
    }
    var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while directory.path != "/" {
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
            candidates.append(directory.appendingPathComponent(".build/debug/kv"))
            break
        }
        directory.deleteLastPathComponent()
    }
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate
    }
    throw KVTestError("the kv executable was not found (build it with `swift build --build-tests`); looked at "
                      + candidates.map(\.path).joined(separator: ", "))
}

/// A program on PATH, or an error saying how to install it.
func kvTool(_ name: String) throws -> URL {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
        let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw KVTestError("\(name) not found on PATH (apt-get install redis-tools redis-server)")
}

/// A port nobody listened on a moment ago.
func kvFreePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw KVTestError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw KVTestError("bind to port 0: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

// MARK: Processes

/// A child process: standard output on a pipe, standard error in a file
/// (so a chatty child never blocks on a full pipe), standard input from a
/// file or nothing.
final class KVChild {
    let process = Process()
    private let outputPipe = Pipe()
    private let errorFile: URL

    var standardOutput: Int32 { outputPipe.fileHandleForReading.fileDescriptor }

    init(executable: URL, arguments: [String], standardInput: URL? = nil) throws {
        errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("kv-test-\(UUID().uuidString).stderr")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = try standardInput.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        process.standardOutput = outputPipe
        process.standardError = try FileHandle(forWritingTo: errorFile)
        // Process spawns with the calling thread's signal mask, and the test
        // runner's threads block SIGTERM: unblock it for the spawn, or the
        // child would ignore `terminate()`.
        var termination = sigset_t()
        var previous = sigset_t()
        sigemptyset(&termination)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&termination, signal) }
        pthread_sigmask(SIG_UNBLOCK, &termination, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
        try? outputPipe.fileHandleForWriting.close()
    }

    deinit {
        try? FileManager.default.removeItem(at: errorFile)
    }

    /// The exit status, or nil if still running after `timeout`.
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            usleep(2_000)
        }
        return process.terminationStatus
    }

    /// What the child has written to standard error so far.
    func standardErrorText() -> String {
        (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
    }

    /// SIGTERM, then waits; SIGKILL if it lingers. False when SIGTERM was not enough.
    @discardableResult
    func stop() -> Bool {
        guard process.isRunning else { return true }
        process.terminate()
        if waitForExit(timeout: .seconds(10)) == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(timeout: .seconds(5))
            return false
        }
        return true
    }
}

/// What a tool printed and how it exited.
struct KVToolResult {
    var status: Int32
    var output: String
    var errorOutput: String
}

/// Runs `tool` to completion (killed after `timeout`), with standard input
/// from `input` if given.
func kvRun(_ tool: String, _ arguments: [String], input: URL? = nil, timeout: Duration = .seconds(20)) throws -> KVToolResult {
    let child = try KVChild(executable: try kvTool(tool), arguments: arguments, standardInput: input)
    defer { child.stop() }
    var output: [UInt8] = []
    do {
        try kvReadToEnd(child.standardOutput, timeout: timeout, into: &output)
    } catch {
        throw KVTestError("\(tool) \(arguments.joined(separator: " ")): \(error); output so far: \(String(decoding: output, as: UTF8.self)); stderr: \(child.standardErrorText())")
    }
    guard let status = child.waitForExit(timeout: .seconds(5)) else {
        throw KVTestError("\(tool) did not exit after closing its output")
    }
    return KVToolResult(status: status, output: String(decoding: output, as: UTF8.self), errorOutput: child.standardErrorText())
}

/// Writes `bytes` to a new temporary file (removed by the caller).
func kvTemporaryFile(_ bytes: [UInt8]) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("kv-test-\(UUID().uuidString).in")
    try Data(bytes).write(to: url)
    return url
}

// MARK: I/O with deadlines

func kvWaitReady(_ fd: Int32, _ events: Int16, until deadline: ContinuousClock.Instant, what: @autoclosure () -> String) throws {
    while true {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { throw KVTestError("timed out waiting to \(what())") }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&entry, 1, milliseconds)
        if ready > 0 { return }
        if ready < 0 && errno != EINTR { throw KVTestError("poll failed: errno \(errno)") }
    }
}

/// One line (without its newline), read a byte at a time so nothing after it is consumed.
func kvReadLine(_ fd: Int32, timeout: Duration) throws -> String {
    let deadline = ContinuousClock.now + timeout
    var line: [UInt8] = []
    while true {
        try kvWaitReady(fd, Int16(POLLIN), until: deadline, what: "read a line")
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        } else if n == 0 {
            throw KVTestError("end of file before a full line; got '\(String(decoding: line, as: UTF8.self))'")
        } else if errno != EINTR && errno != EAGAIN {
            throw KVTestError("read failed: errno \(errno)")
        }
    }
}

/// Appends what `fd` delivers until end of file to `bytes`.
func kvReadToEnd(_ fd: Int32, timeout: Duration, into bytes: inout [UInt8]) throws {
    let deadline = ContinuousClock.now + timeout
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        try kvWaitReady(fd, Int16(POLLIN), until: deadline, what: "read to end of file (\(bytes.count) bytes so far)")
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            bytes.append(contentsOf: buffer[..<n])
        } else if n == 0 {
            return
        } else if errno != EINTR && errno != EAGAIN {
            throw KVTestError("read failed: errno \(errno)")
        }
    }
}

/// Sleeps the calling thread (the tests are synchronous, like the servers' clients).
func kvSleep(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    usleep(UInt32(clamping: seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
}
