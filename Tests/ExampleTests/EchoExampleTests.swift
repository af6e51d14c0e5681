// Runs the built `echo` executable as a user would: real processes, real
// sockets, the real `nc` client. `swift build --build-tests` builds it first.
//
// Every server listens on port 0 (tests run in parallel), every read has a
// deadline (a broken server fails a test instead of hanging it), and every
// server is terminated (SIGTERM, then waited for) when its test ends.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Backend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}

@Suite("echo example")
struct EchoExampleTests {
    @Test("echoes a few KB through nc", arguments: Backend.underTest)
    func echoesThroughNetcat(backend: Backend) throws {
        let server = try EchoServer(backend: backend)
        defer { server.stop() }
        let nc = try Executables.tool("nc")

        let input = randomBytes(6 * 1024)
        let inputFile = try temporaryFile(input)
        defer { try? FileManager.default.removeItem(at: inputFile) }

        // -N: shut the socket down after end of file on stdin, so the server sees
        // end of file, echoes what is left and closes; nc then exits.
        let client = try ChildProcess(executable: nc, arguments: ["-N", "127.0.0.1", "\(server.port)"],
                                      standardInput: FileHandle(forReadingFrom: inputFile))
        defer { client.stop() }
        let output = try readToEnd(client.standardOutput, timeout: .seconds(10))
        let status = try #require(client.waitForExit(timeout: .seconds(10)), "nc did not exit")
        #expect(status == 0, "nc failed: \(client.readStandardError())")
        #expect(output.count == input.count)
        #expect(output == input, "the echoed bytes differ from those sent")
        #expect(server.stop(), "echo did not exit on SIGTERM")
    }

    @Test("echoes chunks from a Swift client that half-closes", arguments: Backend.underTest)
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
        let child = try ChildProcess(executable: Executables.product("echo"), arguments: ["--backend", "bogus", "--port", "0"])
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
        let child = try ChildProcess(executable: Executables.product("echo"), arguments: ["--port", "0"],
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
    let child: ChildProcess
    let port: UInt16

    /// Starts echo; with `descriptorLimit`, under `prlimit --nofile` (so the
    /// server, not the test process, runs out of descriptors).
    init(backend: Backend, descriptorLimit: Int? = nil) throws {
        let arguments = ["--backend", backend.rawValue, "--port", "0"]
        if let descriptorLimit {
            let prlimit = try Executables.tool("prlimit")
            child = try ChildProcess(executable: prlimit, arguments: ["--nofile=\(descriptorLimit):\(descriptorLimit)", "--",
                                                                     try Executables.product("echo").path] + arguments)
        } else {
            child = try ChildProcess(executable: Executables.product("echo"), arguments: arguments)
        }
        // echo listening on 127.0.0.1:PORT (backend NAME)
        port = try child.readListeningPort("echo", suffix: " (backend \(backend.rawValue))").port
    }

    @discardableResult
    func stop() -> Bool { child.stop() }
}

// MARK: Sockets

/// Connects to 127.0.0.1:`port`, sends each chunk with its own writes,
/// half-closes, and returns everything received until the server closes.
/// Reads while writing, so neither side's buffers can deadlock the exchange.
func exchange(port: UInt16, chunks: [[UInt8]], timeout: Duration) throws -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    let fd = try connectToLoopback(port: port)
    defer { close(fd) }
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
