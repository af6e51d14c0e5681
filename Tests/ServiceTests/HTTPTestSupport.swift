// Helpers of the `http` tests: the built executable as a child process, tools
// (curl, wrk) run with deadlines, and a raw-socket client. Every name starts
// with `http`/`HTTP`: this target is shared with the kv tests.
import Foundation
import Reactor
import Testing

#if canImport(Glibc)
import Glibc
#endif

struct HTTPTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: The server under test

/// A running `http --backend NAME --port 0 ...`, with the port it announced.
/// Stop it with ``stop()`` (SIGTERM, then SIGKILL if it lingers).
final class HTTPTestServer {
    let child: HTTPChild
    let port: UInt16
    /// The whole ready line, e.g. `http listening on 127.0.0.1:PORT (backend epoll, 1 threads)`.
    let readyLine: String

    init(backend: Backend, threads: Int = 1, extraArguments: [String] = []) throws {
        let arguments = ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "\(threads)"] + extraArguments
        child = try HTTPChild(executable: try httpExecutable(), arguments: arguments)
        do {
            readyLine = try httpReadLine(child.standardOutput, timeout: .seconds(10))
            let prefix = "http listening on 127.0.0.1:"
            let suffix = " (backend \(backend.rawValue), \(threads) threads)"
            guard readyLine.hasPrefix(prefix), readyLine.hasSuffix(suffix),
                  let port = UInt16(readyLine.dropFirst(prefix.count).dropLast(suffix.count)), port != 0
            else {
                throw HTTPTestError("unexpected first line from http: '\(readyLine)' (stderr: \(child.readStandardError()))")
            }
            self.port = port
        } catch {
            child.stop()
            throw error
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// SIGTERM; true when the server exited by itself with status 0.
    @discardableResult
    func stop() -> Bool {
        guard child.stop() else { return false }
        return child.process.terminationReason == .exit && child.process.terminationStatus == 0
    }
}

/// The `http` product built with the tests: next to the test bundle first
/// (same configuration), else under the package's `.build`.
func httpExecutable() throws -> URL {
    var candidates: [URL] = []
    let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    candidates.append(testBinary.deletingLastPathComponent().appendingPathComponent("http"))
    if let argument = CommandLine.arguments.first {
        candidates.append(URL(fileURLWithPath: argument).deletingLastPathComponent().appendingPathComponent("http"))
    }
    var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while directory.path != "/" {
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
            candidates.append(directory.appendingPathComponent(".build/debug/http"))
            break
        }
        directory.deleteLastPathComponent()
    }
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate
    }
    throw HTTPTestError("the http executable was not found (build it with `swift build --build-tests`); looked at "
                        + candidates.map(\.path).joined(separator: ", "))
}

/// A program on PATH, or an error saying how to install it.
func httpTool(_ name: String) throws -> URL {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw HTTPTestError("\(name) not found on PATH (apt-get install \(name))")
}

// MARK: Processes

/// A child process with its standard output and error on pipes.
final class HTTPChild {
    let process = Process()
    private let outputPipe = Pipe()
    private let errorPipe = Pipe()

    var standardOutput: Int32 { outputPipe.fileHandleForReading.fileDescriptor }

    init(executable: URL, arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        // Process spawns with the calling thread's signal mask, and the test
        // runner's threads block SIGTERM: unblock it for the spawn, or the
        // server would ignore `terminate()`.
        var termination = sigset_t()
        var previous = sigset_t()
        sigemptyset(&termination)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&termination, signal) }
        pthread_sigmask(SIG_UNBLOCK, &termination, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
        try? outputPipe.fileHandleForWriting.close()
        try? errorPipe.fileHandleForWriting.close()
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

    /// What the child wrote to standard error (what arrives within `timeout`).
    func readStandardError(within timeout: Duration = .seconds(1)) -> String {
        var bytes: [UInt8] = []
        let fd = errorPipe.fileHandleForReading.fileDescriptor
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while (try? httpWaitReadable(fd, until: deadline)) != nil {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// SIGTERM, then waits; SIGKILL if it lingers. False when SIGTERM was not enough.
    @discardableResult
    func stop() -> Bool {
        guard process.isRunning else { return true }
        process.terminate()
        if waitForExit(timeout: .seconds(5)) == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(timeout: .seconds(5))
            return false
        }
        return true
    }
}

/// What a finished tool printed.
struct HTTPToolResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `tool` to completion (killing it after `timeout`), with its output
/// in temporary files so a large output can never block it on a full pipe.
func httpRun(_ tool: String, _ arguments: [String], timeout: Duration = .seconds(20)) throws -> HTTPToolResult {
    let directory = FileManager.default.temporaryDirectory
    let outURL = directory.appendingPathComponent("http-test-\(UUID().uuidString).out")
    let errURL = directory.appendingPathComponent("http-test-\(UUID().uuidString).err")
    guard FileManager.default.createFile(atPath: outURL.path, contents: nil),
          FileManager.default.createFile(atPath: errURL.path, contents: nil)
    else { throw HTTPTestError("cannot create output files in \(directory.path)") }
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let process = Process()
    process.executableURL = try httpTool(tool)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        if ContinuousClock.now >= deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw HTTPTestError("\(tool) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        usleep(2_000)
    }
    return HTTPToolResult(status: process.terminationStatus,
                          output: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                          error: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

// MARK: Raw sockets with deadlines

/// Waits until `fd` is readable (or has hung up) or throws at the deadline.
func httpWaitReadable(_ fd: Int32, until deadline: ContinuousClock.Instant) throws {
    while true {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { throw HTTPTestError("timed out waiting to read") }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&entry, 1, ms)
        if ready > 0 { return }
        if ready < 0 && errno != EINTR { throw HTTPTestError("poll failed: errno \(errno)") }
    }
}

/// One line (without its newline) from `fd`, a byte at a time.
func httpReadLine(_ fd: Int32, timeout: Duration) throws -> String {
    let deadline = ContinuousClock.now + timeout
    var line: [UInt8] = []
    while true {
        try httpWaitReadable(fd, until: deadline)
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        } else if n == 0 {
            throw HTTPTestError("end of file before a full line; got '\(String(decoding: line, as: UTF8.self))'")
        } else if errno != EINTR && errno != EAGAIN {
            throw HTTPTestError("read failed: errno \(errno)")
        }
    }
}

/// A blocking TCP connection to the server under test, every read bounded by a deadline.
final class HTTPRawClient {
    let fd: Int32
    /// Received bytes not yet taken by a parse.
    private(set) var received: [UInt8] = []
    /// Set once the server closed its side (read returned 0 or a reset).
    private(set) var sawEndOfFile = false

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPTestError("socket failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw HTTPTestError("connect to port \(port) failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Sends all of `text` in one `send` call (loopback takes small writes whole).
    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HTTPTestError("send failed: errno \(errno)") }
            offset += n
        }
    }

    /// Reads once (waiting up to the deadline); false at end of file.
    @discardableResult
    private func readSome(until deadline: ContinuousClock.Instant) throws -> Bool {
        try httpWaitReadable(fd, until: deadline)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            received.append(contentsOf: buffer[..<n])
            return true
        }
        if n == 0 || errno == ECONNRESET {
            sawEndOfFile = true
            return false
        }
        if errno == EINTR || errno == EAGAIN { return true }
        throw HTTPTestError("recv failed: errno \(errno)")
    }

    /// The next `count` complete responses; `headOnly(n)` says the n-th
    /// answers a HEAD request (its Content-Length describes no body).
    func responses(_ count: Int, timeout: Duration = .seconds(5),
                   headOnly: (Int) -> Bool = { _ in false }) throws -> [HTTPTestResponse] {
        let deadline = ContinuousClock.now + timeout
        var result: [HTTPTestResponse] = []
        while result.count < count {
            if let (response, length) = HTTPTestResponse.parse(received, headOnly: headOnly(result.count)) {
                received.removeFirst(length)
                result.append(response)
                continue
            }
            guard !sawEndOfFile else {
                throw HTTPTestError("the server closed after \(result.count) of \(count) responses; left: \(String(decoding: received, as: UTF8.self))")
            }
            do {
                try readSome(until: deadline)
            } catch {
                throw HTTPTestError("\(error) after \(result.count) of \(count) responses; received: \(String(decoding: received, as: UTF8.self))")
            }
        }
        return result
    }

    /// The next response.
    func response(timeout: Duration = .seconds(5), headOnly: Bool = false) throws -> HTTPTestResponse {
        try responses(1, timeout: timeout, headOnly: { _ in headOnly })[0]
    }

    /// Waits for the server to close the connection, with nothing more sent; throws if it stays open.
    func expectEndOfFile(timeout: Duration = .seconds(5)) throws {
        let deadline = ContinuousClock.now + timeout
        while !sawEndOfFile {
            do {
                try readSome(until: deadline)
            } catch {
                throw HTTPTestError("the connection stayed open: \(error)")
            }
        }
        guard received.isEmpty else {
            throw HTTPTestError("unexpected bytes before end of file: \(String(decoding: received, as: UTF8.self))")
        }
    }

    /// True when nothing arrives and the connection stays open for `duration`.
    func staysQuiet(for duration: Duration) throws -> Bool {
        do {
            try readSome(until: ContinuousClock.now + duration)
            return false
        } catch {
            return true  // the wait timed out: quiet and open
        }
    }
}

/// One parsed response.
struct HTTPTestResponse {
    var status: Int
    /// Header names lowercased; a repeated header keeps its last value.
    var headers: [String: String]
    var body: [UInt8]
    var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// A complete response at the front of `bytes` and its length, or nil if incomplete.
    static func parse(_ bytes: [UInt8], headOnly: Bool = false) -> (HTTPTestResponse, Int)? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let bodyStart = end + separator.count
        let length = (headOnly || status == 100) ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        guard bytes.count >= bodyStart + length else { return nil }
        return (HTTPTestResponse(status: status, headers: headers, body: Array(bytes[bodyStart..<(bodyStart + length)])), bodyStart + length)
    }
}

/// Random bytes for bodies.
func httpRandomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}

/// A file of `bytes` in the temporary directory, removed by the caller.
func httpTemporaryFile(_ bytes: [UInt8]) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("http-test-\(UUID().uuidString).bin")
    try Data(bytes).write(to: url)
    return url
}
