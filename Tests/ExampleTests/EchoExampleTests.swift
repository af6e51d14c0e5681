// Runs the built `echo` executable as a user would: real processes, real
// sockets, the real `nc` client. `swift build --build-tests` builds it first.
//
// Every server listens on port 0 (tests run in parallel), every read has a
// deadline (a broken server fails a test instead of hanging it), and every
// server is terminated (SIGTERM, then waited for) when its test ends.
import Foundation
import Reactor
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Backend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}

@Suite("echo example")
struct EchoExampleTests {
    @Test("echoes a few KB through nc", arguments: Backend.built)
    func echoesThroughNetcat(backend: Backend) throws {
        let server = try EchoServer(backend: backend)
        defer { server.stop() }
        let nc = try #require(Executable.find("nc"), "nc not found on PATH; run scripts/deps.sh (netcat-openbsd)")

        let input = randomBytes(6 * 1024)
        let inputFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("echo-test-\(UUID().uuidString).bin")
        try Data(input).write(to: inputFile)
        defer { try? FileManager.default.removeItem(at: inputFile) }

        // -N: shut the socket down after end of file on stdin, so the server sees
        // end of file, echoes what is left and closes; nc then exits.
        let client = try Child(executable: nc, arguments: ["-N", "127.0.0.1", "\(server.port)"],
                               standardInput: FileHandle(forReadingFrom: inputFile))
        defer { client.stop() }
        let output = try readToEnd(client.standardOutput, timeout: .seconds(10))
        let status = try #require(client.waitForExit(timeout: .seconds(10)), "nc did not exit")
        #expect(status == 0, "nc failed: \(client.readStandardError())")
        #expect(output.count == input.count)
        #expect(output == input, "the echoed bytes differ from those sent")
        #expect(server.stop(), "echo did not exit on SIGTERM")
    }

    @Test("echoes chunks from a Swift client that half-closes", arguments: Backend.built)
    func echoesChunksAfterHalfClose(backend: Backend) throws {
        let server = try EchoServer(backend: backend)
        defer { server.stop() }

        let chunks = [1, 100, 1500, 4096, 7, 60_000, 3].map(randomBytes)
        let received = try exchange(port: server.port, chunks: chunks, timeout: .seconds(10))
        let sent = chunks.flatMap { $0 }
        #expect(received.count == sent.count)
        #expect(received == sent, "the echoed bytes differ from those sent")
        #expect(server.stop(), "echo did not exit on SIGTERM")
    }

    @Test("--backend with an unknown name exits 2 and lists the valid names")
    func unknownBackendFlag() throws {
        let child = try Child(executable: Executable.echo(), arguments: ["--backend", "bogus", "--port", "0"])
        defer { child.stop() }
        let status = try #require(child.waitForExit(timeout: .seconds(10)), "echo did not exit")
        #expect(status == 2 && child.process.terminationReason == .exit)
        let message = child.readStandardError()
        for name in Backend.built.map(\.rawValue) {
            #expect(message.contains(name), "stderr does not list '\(name)': \(message)")
        }
    }

    @Test("REACTOR_BACKEND with an unknown name exits 2 and lists the valid names")
    func unknownBackendEnvironment() throws {
        let child = try Child(executable: Executable.echo(), arguments: ["--port", "0"],
                              environment: [Backend.environmentVariable: "bogus"])
        defer { child.stop() }
        let status = try #require(child.waitForExit(timeout: .seconds(10)), "echo did not exit")
        #expect(status == 2 && child.process.terminationReason == .exit)
        let message = child.readStandardError()
        #expect(message.contains("bogus"), "stderr does not name the bad value: \(message)")
        for name in Backend.built.map(\.rawValue) {
            #expect(message.contains(name), "stderr does not list '\(name)': \(message)")
        }
    }
}

// MARK: The server under test

/// A running `echo --backend NAME --port 0`, with the port it announced.
struct EchoServer {
    let child: Child
    let port: UInt16

    /// Starts echo; with `descriptorLimit`, under `prlimit --nofile` (so the
    /// server, not the test process, runs out of descriptors).
    init(backend: Backend, descriptorLimit: Int? = nil) throws {
        let arguments = ["--backend", backend.rawValue, "--port", "0"]
        if let descriptorLimit {
            let prlimit = try Executable.find("prlimit") ?? { throw TestFailure("prlimit (util-linux) not found on PATH") }()
            child = try Child(executable: prlimit, arguments: ["--nofile=\(descriptorLimit):\(descriptorLimit)", "--", try Executable.echo().path] + arguments)
        } else {
            child = try Child(executable: Executable.echo(), arguments: arguments)
        }
        do {
            let line = try readLine(child.standardOutput, timeout: .seconds(10))
            // echo listening on 127.0.0.1:PORT (backend NAME)
            let prefix = "echo listening on 127.0.0.1:"
            let suffix = " (backend \(backend.rawValue))"
            guard line.hasPrefix(prefix), line.hasSuffix(suffix),
                  let port = UInt16(line.dropFirst(prefix.count).dropLast(suffix.count)), port != 0
            else {
                throw TestFailure("unexpected first line from echo: '\(line)' (stderr: \(child.readStandardError()))")
            }
            self.port = port
        } catch {
            child.stop()
            throw error
        }
    }

    @discardableResult
    func stop() -> Bool { child.stop() }
}

// MARK: Processes

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Executable {
    /// The `echo` product built with the tests.
    static func echo() throws -> URL { try product("echo") }

    /// An executable product built with the tests: next to the test bundle
    /// first (same configuration), else under the package's `.build`.
    static func product(_ name: String) throws -> URL {
        var candidates: [URL] = []
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(testBinary.deletingLastPathComponent().appendingPathComponent(name))
        if let argument = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: argument).deletingLastPathComponent().appendingPathComponent(name))
        }
        if let root = packageRoot() {
            let build = root.appendingPathComponent(".build")
            candidates.append(build.appendingPathComponent("debug/\(name)"))
            let triples = (try? FileManager.default.contentsOfDirectory(atPath: build.path)) ?? []
            for triple in triples.sorted() {
                candidates.append(build.appendingPathComponent(triple).appendingPathComponent("debug/\(name)"))
            }
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw TestFailure("the \(name) executable was not found (build it with `swift build --build-tests`); looked at "
                          + candidates.map(\.path).joined(separator: ", "))
    }

    /// The directory holding Package.swift, found by walking up from this file.
    static func packageRoot(from file: String = #filePath) -> URL? {
        var directory = URL(fileURLWithPath: file).deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    /// A program on PATH.
    static func find(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }
}

/// A child process with its standard output and error on pipes.
final class Child {
    let process = Process()
    private let outputPipe = Pipe()
    private let errorPipe = Pipe()

    var standardOutput: Int32 { outputPipe.fileHandleForReading.fileDescriptor }

    init(executable: URL, arguments: [String], environment: [String: String] = [:],
         standardInput: FileHandle? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = standardInput ?? FileHandle.nullDevice
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        // Foundation's Process spawns with the calling thread's signal mask, and
        // the test runner's threads block nearly every signal, SIGTERM included:
        // the child would ignore `terminate()`. Unblock the termination signals
        // on this thread for the spawn, as a shell would have them.
        var termination = sigset_t()
        var previous = sigset_t()
        sigemptyset(&termination)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&termination, signal) }
        pthread_sigmask(SIG_UNBLOCK, &termination, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
        // Our copies of the write ends: closed, so reads see end of file when the child exits.
        try? outputPipe.fileHandleForWriting.close()
        try? errorPipe.fileHandleForWriting.close()
    }

    /// The exit status (or terminating signal), or nil if still running after `timeout`.
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            usleep(5_000)
        }
        return process.terminationStatus
    }

    /// What the child wrote to standard error: all of it once the child has
    /// exited, else what arrives within a second.
    func readStandardError(within timeout: Duration = .seconds(1)) -> String {
        var bytes: [UInt8] = []
        _ = try? readToEnd(errorPipe.fileHandleForReading.fileDescriptor, timeout: timeout, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// SIGTERM, then waits; SIGKILL if it lingers. Returns false when SIGTERM
    /// was not enough.
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

// MARK: I/O with deadlines

/// Waits until `fd` is ready for `events` or the deadline passes (then throws).
func waitReady(_ fd: Int32, _ events: Int16, until deadline: ContinuousClock.Instant, what: String) throws {
    while true {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { throw TestFailure("timed out waiting to \(what)") }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&entry, 1, milliseconds)
        if ready > 0 { return }
        if ready < 0 && errno != EINTR { throw TestFailure("poll failed: errno \(errno)") }
    }
}

/// One line (without its newline) from `fd`, read a byte at a time so nothing after it is consumed.
func readLine(_ fd: Int32, timeout: Duration) throws -> String {
    let deadline = ContinuousClock.now + timeout
    var line: [UInt8] = []
    while true {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "read a line")
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        } else if n == 0 {
            throw TestFailure("end of file before a full line; got '\(String(decoding: line, as: UTF8.self))'")
        } else if errno != EINTR && errno != EAGAIN {
            throw TestFailure("read failed: errno \(errno)")
        }
    }
}

/// Everything `fd` delivers until end of file.
func readToEnd(_ fd: Int32, timeout: Duration) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try readToEnd(fd, timeout: timeout, into: &bytes)
    return bytes
}

/// Appends what `fd` delivers until end of file to `bytes`; on timeout, throws
/// with what arrived so far left in `bytes`.
func readToEnd(_ fd: Int32, timeout: Duration, into bytes: inout [UInt8]) throws {
    let deadline = ContinuousClock.now + timeout
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "read to end of file (\(bytes.count) bytes so far)")
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            bytes.append(contentsOf: buffer[..<n])
        } else if n == 0 {
            return
        } else if errno != EINTR && errno != EAGAIN {
            throw TestFailure("read failed: errno \(errno)")
        }
    }
}

/// Connects to 127.0.0.1:`port`, sends each chunk with its own writes,
/// half-closes, and returns everything received until the server closes.
/// Reads while writing, so neither side's buffers can deadlock the exchange.
func exchange(port: UInt16, chunks: [[UInt8]], timeout: Duration) throws -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed: errno \(errno)") }
    defer { close(fd) }

    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestFailure("connect to port \(port) failed: errno \(errno)") }
    guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else { throw TestFailure("fcntl failed: errno \(errno)") }

    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var chunkIndex = 0
    var offset = 0
    var halfClosed = false
    while true {
        if !halfClosed && chunkIndex == chunks.count {
            guard shutdown(fd, Int32(SHUT_WR)) == 0 else { throw TestFailure("shutdown failed: errno \(errno)") }
            halfClosed = true
        }
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else {
            throw TestFailure("timed out: sent \(chunkIndex) of \(chunks.count) chunks, received \(received.count) bytes")
        }
        var entry = pollfd(fd: fd, events: Int16(POLLIN) | (halfClosed ? 0 : Int16(POLLOUT)), revents: 0)
        let ready = poll(&entry, 1, 100)
        if ready < 0 && errno != EINTR { throw TestFailure("poll failed: errno \(errno)") }
        if ready <= 0 { continue }

        if entry.revents & Int16(POLLOUT) != 0 && !halfClosed {
            let chunk = chunks[chunkIndex]
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
                if offset == chunk.count { chunkIndex += 1; offset = 0 }
            } else if n < 0 && errno != EAGAIN && errno != EINTR {
                throw TestFailure("send failed: errno \(errno)")
            }
        }
        if entry.revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received.append(contentsOf: buffer[..<n])
            } else if n == 0 {
                guard halfClosed else {
                    throw TestFailure("the server closed after \(received.count) bytes, before the client finished sending")
                }
                return received
            } else if errno != EAGAIN && errno != EINTR {
                throw TestFailure("recv failed: errno \(errno)")
            }
        }
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}
