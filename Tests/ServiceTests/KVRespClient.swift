// A raw RESP client for the kv tests: sends exact bytes and returns exact
// bytes, so replies are compared as the wire carries them (not as redis-cli
// formats them). Every wait has a deadline.
import Foundation
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A RESP2 request: `*N\r\n` and a bulk string per argument.
func kvCommand(_ arguments: String...) -> [UInt8] {
    kvCommand(arguments.map { Array($0.utf8) })
}

/// A RESP2 request from byte-string arguments.
func kvCommand(_ arguments: [[UInt8]]) -> [UInt8] {
    var bytes = Array("*\(arguments.count)\r\n".utf8)
    for argument in arguments {
        bytes += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
    }
    return bytes
}

/// The end of the RESP2 reply starting at `start` (one past its last
/// byte), or nil if `bytes` does not hold all of it yet.
func kvReplyEnd(_ bytes: [UInt8], from start: Int) -> Int? {
    guard start < bytes.count else { return nil }
    guard let lineEnd = kvLineEnd(bytes, from: start) else { return nil }
    let header = String(decoding: bytes[(start + 1)..<lineEnd], as: UTF8.self)
    let next = lineEnd + 2
    switch bytes[start] {
    case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"):
        return next
    case UInt8(ascii: "$"):
        guard let length = Int(header) else { return nil }
        if length < 0 { return next }
        return bytes.count >= next + length + 2 ? next + length + 2 : nil
    case UInt8(ascii: "*"):
        guard let count = Int(header) else { return nil }
        var position = next
        for _ in 0..<max(count, 0) {
            guard let end = kvReplyEnd(bytes, from: position) else { return nil }
            position = end
        }
        return position
    default:
        return nil
    }
}

private func kvLineEnd(_ bytes: [UInt8], from start: Int) -> Int? {
    var index = start
    while index + 1 < bytes.count {
        if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
        index += 1
    }
    return nil
}

/// A blocking TCP client with deadlines on every read.
final class KVClient {
    let fd: Int32
    /// Bytes received but not yet returned.
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:`port`, retrying until `connectTimeout` while
    /// `isAlive` says the server may still come up.
    init(port: UInt16, connectTimeout: Duration = .seconds(5), isAlive: () -> Bool = { true }) throws {
        let deadline = ContinuousClock.now + connectTimeout
        while true {
            do {
                fd = try connectToLoopback(port: port)
            } catch {
                guard ContinuousClock.now < deadline, isAlive() else { throw error }
                usleep(10_000)
                continue
            }
            var on: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            return
        }
    }

    deinit { close(fd) }

    /// Sends every byte (blocking).
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
            } else if n < 0 && errno != EINTR {
                throw TestFailure("send: errno \(errno)")
            }
        }
    }

    /// Reads what arrives within `timeout` into the buffer; false at end of
    /// file (or a reset), true if bytes came. Throws on timeout.
    private func fill(until deadline: ContinuousClock.Instant, what: @autoclosure () -> String) throws -> Bool {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: what())
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer += chunk[..<n]
            return true
        }
        if n == 0 || errno == ECONNRESET { return false }
        if errno == EINTR || errno == EAGAIN { return true }
        throw TestFailure("recv: errno \(errno)")
    }

    /// The bytes of the next `count` complete replies.
    func readReplies(_ count: Int, timeout: Duration = .seconds(10)) throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        while true {
            var end = 0
            var complete = 0
            while complete < count, let next = kvReplyEnd(buffer, from: end) {
                end = next
                complete += 1
            }
            if complete == count {
                let replies = Array(buffer[..<end])
                buffer.removeFirst(end)
                return replies
            }
            guard try fill(until: deadline, what: "read \(count) replies (have \(complete): \(String(decoding: buffer, as: UTF8.self).prefix(300)))") else {
                throw TestFailure("the connection closed after \(complete) of \(count) replies: \(String(decoding: buffer, as: UTF8.self).prefix(300))")
            }
        }
    }

    /// Everything until the peer closes, and whether it did within `timeout`
    /// (false: the deadline passed with the connection still open).
    func readUntilClosed(timeout: Duration = .seconds(10)) -> (bytes: [UInt8], closed: Bool) {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                if try !fill(until: deadline, what: "read until closed") { break }
            } catch {
                let bytes = buffer
                buffer.removeAll()
                return (bytes, false)
            }
        }
        let bytes = buffer
        buffer.removeAll()
        return (bytes, true)
    }

    /// Sends one command and returns its reply as text.
    func call(_ arguments: String...) throws -> String {
        try send(kvCommand(arguments.map { Array($0.utf8) }))
        return String(decoding: try readReplies(1), as: UTF8.self)
    }
}
