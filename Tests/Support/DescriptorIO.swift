// Reads from descriptors with deadlines (a child's output, a client socket),
// and the test data written to them. Every wait has a deadline, so a broken
// server or a hung child fails its test instead of hanging the run.
import Foundation
import ReactorCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: I/O with deadlines

/// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`…) or the
/// deadline passes; then throws "timed out waiting to `what`". `what` is
/// only built on timeout, so it may describe the progress so far.
///
/// A descriptor that hung up or failed counts as ready: the read that
/// follows sees the end of file or the error.
public func waitReady(_ fd: Int32, _ events: Int16, until deadline: ContinuousClock.Instant,
                      what: @autoclosure () -> String) throws {
    while true {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { throw TestFailure("timed out waiting to \(what())") }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&entry, 1, milliseconds)
        if ready > 0 { return }
        if ready < 0 && errno != EINTR { throw TestFailure("poll failed: errno \(errno)") }
    }
}

/// One line (without its newline) from `fd` within `timeout`: a server's
/// ready line, a chat message. Read a byte at a time so nothing after the
/// line is consumed; throws at end of file before a full line, with what
/// arrived.
public func readLine(_ fd: Int32, timeout: Duration) throws -> String {
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

/// Exactly `count` bytes from `fd`, however the kernel splits them,
/// throwing if the peer ends first or they do not arrive within `timeout`.
public func readExactly(_ fd: Int32, _ count: Int, timeout: Duration = .seconds(10)) throws -> [UInt8] {
    var bytes: [UInt8] = []
    let deadline = ContinuousClock.now + timeout
    while bytes.count < count {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "\(count) bytes")
        var chunk = [UInt8](repeating: 0, count: count - bytes.count)
        let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw TestFailure("recv: \(n == 0 ? "end of file" : "errno \(errno)") after \(bytes.count) of \(count) bytes") }
        bytes += chunk[..<n]
    }
    return bytes
}

/// Everything `fd` delivers until end of file (a tool's whole output),
/// throwing if the end of file does not come within `timeout`.
public func readToEnd(_ fd: Int32, timeout: Duration) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try readToEnd(fd, timeout: timeout, into: &bytes)
    return bytes
}

/// Appends what `fd` delivers until end of file to `bytes`; on timeout,
/// throws with what arrived so far left in `bytes` (for the failure message).
public func readToEnd(_ fd: Int32, timeout: Duration, into bytes: inout [UInt8]) throws {
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

// MARK: Sockets

/// A blocking TCP socket (close-on-exec) connected to 127.0.0.1:`port`, bound
/// first to the local address `source` if given (to spread many connections
/// over several source addresses), with SO_RCVBUF set to `receiveBuffer`
/// before connecting if given (so the advertised window is small from the
/// start). The caller closes it.
public func connectToLoopback(port: UInt16, from source: String? = nil, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    func fail(_ what: String) -> TestFailure {
        let error = errno
        close(fd)
        return TestFailure("\(what): \(String(cString: strerror(error))) (errno \(error))")
    }
    if var size = receiveBuffer, setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
        throw fail("SO_RCVBUF \(size)")
    }
    if let source {
        let local = try SocketAddress(host: source, port: 0)
        guard local.withSockAddr({ bind(fd, $0, $1) }) == 0 else { throw fail("bind \(source)") }
    }
    guard SocketAddress.loopback(port: port).withSockAddr({ connect(fd, $0, $1) }) == 0 else {
        throw fail("connect to port \(port) failed")
    }
    return fd
}

// MARK: Test data

/// `count` random bytes: payloads whose every byte value must survive the
/// trip (no line or text assumptions).
public func randomBytes(_ count: Int) -> [UInt8] {
    // Eight bytes per draw, filled in place: a draw per byte through the
    // system generator is a getrandom call per byte (10 MiB took minutes
    // under AddressSanitizer).
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            var word = generator.next()
            let take = min(8, buffer.count - offset)
            withUnsafeBytes(of: &word) { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: take) }
            offset += take
        }
    }
    return bytes
}

/// Writes `bytes` to a new file in the temporary directory and returns it,
/// for a child's standard input or a tool's upload; the caller removes it.
public func temporaryFile(_ bytes: [UInt8]) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-test-\(UUID().uuidString).bin")
    try Data(bytes).write(to: url)
    return url
}
