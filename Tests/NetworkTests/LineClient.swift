// A blocking line client for tests that play a human at a terminal: connect,
// send lines, read lines with a deadline. Plain sockets, so what it sees is
// what any client would.
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

final class LineClient {
    /// The socket; -1 once ``reset()`` has closed it.
    private(set) var fd: Int32
    /// Received bytes; those before `start` are consumed.
    private var buffer: [UInt8] = []
    private var start = 0
    private var chunk = [UInt8](repeating: 0, count: 64 << 10)

    /// Connects to 127.0.0.1:`port`; `receiveBuffer` shrinks SO_RCVBUF
    /// (before connecting, so the window is small from the start).
    init(port: UInt16, receiveBuffer: Int32? = nil) throws {
        fd = try connectToLoopback(port: port, receiveBuffer: receiveBuffer)
    }

    /// Takes over a connected socket.
    init(adopting fd: Int32) { self.fd = fd }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Sends `text` and a newline, all of it (blocking).
    func send(_ text: String) throws {
        try sendAll(Array((text + "\n").utf8))
    }

    func sendAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestFailure("send: errno \(errno) (\(String(cString: strerror(errno))))") }
            offset += n
        }
    }

    /// The next line (without its newline), or nil at end of stream; throws
    /// when none arrives within `timeout`.
    func readLine(timeout: Duration = .seconds(10)) throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[start..<newline], as: UTF8.self)
                start = newline + 1
                if start > 64 << 10 {
                    buffer.removeSubrange(..<start)
                    start = 0
                }
                return line
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw TestFailure("no line within \(timeout); buffered: '\(String(decoding: buffer[start...].prefix(200), as: UTF8.self))'") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(1, milliseconds(left))))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw TestFailure("recv: errno \(errno) (\(String(cString: strerror(errno))))") }
            if n == 0 {
                guard start < buffer.count else { return nil }
                defer { buffer.removeAll(); start = 0 }
                return String(decoding: buffer[start...], as: UTF8.self)
            }
            buffer += chunk[..<n]
        }
    }

    /// Reads lines until one satisfies `match`; returns it (the others are skipped).
    func readLine(timeout: Duration = .seconds(10), until match: (String) -> Bool) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let line = try readLine(timeout: max(.milliseconds(1), deadline - ContinuousClock.now)) else {
                throw TestFailure("the connection ended before the expected line")
            }
            if match(line) { return line }
        }
    }

    /// Shuts down the write side: the server reads end of file.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
}

extension LineClient {
    /// Wraps a connected socket (from ``PlainListener/accept(timeout:)``).
    convenience init(connected fd: Int32) { self.init(adopting: fd) }

    /// Reads until end of stream; returns everything, or throws on an error
    /// (ECONNRESET, say) with its errno in the message.
    func readToEnd(timeout: Duration = .seconds(10)) throws -> [UInt8] {
        var all: [UInt8] = []
        while let line = try readLine(timeout: timeout) { all += Array(line.utf8) + [0x0A] }
        return all
    }

    /// Closes with a reset (SO_LINGER 0, then close).
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
        fd = -1
    }
}

/// A blocking TCP listener on 127.0.0.1 for tests that play the upstream.
final class PlainListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, bound else { throw TestFailure("listener: errno \(errno)") }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }

    /// The next connection, within `timeout`.
    func accept(timeout: Duration = .seconds(10)) throws -> LineClient {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(milliseconds(timeout))) == 1 else { throw TestFailure("no connection within \(timeout)") }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { throw TestFailure("accept: errno \(errno)") }
        return LineClient(connected: client)
    }
}
