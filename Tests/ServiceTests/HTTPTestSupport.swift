// Helpers of the `http` tests: the built executable as a child process
// (ReactorTestSupport's ChildProcess; curl and wrk run with its runTool), and
// a raw-socket client. Every name starts with `http`/`HTTP`: this target is
// shared with the kv tests.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: The server under test

/// A running `http --backend NAME --port 0 ...`, with the port it announced
/// (and its TLS port, when started with `--tls-cert`).
/// Stop it with ``stop()`` (SIGTERM, then SIGKILL if it lingers).
final class HTTPTestServer {
    let child: ChildProcess
    let port: UInt16
    /// The whole ready line, e.g. `http listening on 127.0.0.1:PORT (backend epoll, 1 threads)`.
    let readyLine: String
    /// The TLS port from the second ready line (`... (backend epoll, 1 threads, tls)`), with `--tls-cert`.
    let tlsPort: UInt16?

    init(backend: Backend, threads: Int = 1, extraArguments: [String] = []) throws {
        let arguments = ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "\(threads)"] + extraArguments
        child = try ChildProcess(executable: try Executables.product("http"), arguments: arguments)
        (port, readyLine) = try child.readListeningPort("http", suffix: " (backend \(backend.rawValue), \(threads) threads)")
        tlsPort = extraArguments.contains("--tls-cert")
            ? try child.readListeningPort("http", suffix: " (backend \(backend.rawValue), \(threads) threads, tls)").port : nil
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// SIGTERM; nil when the server exited by itself with status 0, else
    /// how it ended, with the end of what it wrote to standard error.
    @discardableResult
    func stop() -> String? {
        child.stopFailure("http")
    }
}

// MARK: Raw sockets with deadlines

/// A blocking TCP connection to the server under test, every read bounded by a deadline.
final class HTTPRawClient {
    let fd: Int32
    /// Received bytes not yet taken by a parse.
    private(set) var received: [UInt8] = []
    /// Set once the server closed its side (read returned 0 or a reset).
    private(set) var sawEndOfFile = false

    init(port: UInt16) throws {
        fd = try connectToLoopback(port: port)
    }

    deinit { close(fd) }

    /// Sends all of `text` in one `send` call (loopback takes small writes whole).
    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send failed: errno \(errno)") }
            offset += n
        }
    }

    /// Reads once (waiting up to the deadline); false at end of file.
    @discardableResult
    private func readSome(until deadline: ContinuousClock.Instant) throws -> Bool {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "read")
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
        throw TestFailure("recv failed: errno \(errno)")
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
                throw TestFailure("the server closed after \(result.count) of \(count) responses; left: \(String(decoding: received, as: UTF8.self))")
            }
            do {
                try readSome(until: deadline)
            } catch {
                throw TestFailure("\(error) after \(result.count) of \(count) responses; received: \(String(decoding: received, as: UTF8.self))")
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
                throw TestFailure("the connection stayed open: \(error)")
            }
        }
        guard received.isEmpty else {
            throw TestFailure("unexpected bytes before end of file: \(String(decoding: received, as: UTF8.self))")
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
