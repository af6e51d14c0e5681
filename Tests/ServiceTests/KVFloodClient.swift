// Clients that pipeline one request endlessly and read nothing until asked,
// and the server's memory as the kernel counts it: what the back-pressure
// tests measure a kv server with.
import Foundation
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking connection that sends `request` over and over, as fast as
/// the socket takes it, and reads nothing until ``drain(expecting:timeout:)``.
final class KVFloodClient {
    let fd: Int32
    let request: [UInt8]
    /// Bytes of the endless request stream sent so far (the last request may be cut).
    private(set) var sentBytes = 0
    /// Set when the server reset the connection.
    private(set) var failure: String?
    /// Many requests back to back, whole, so a send is one large copy.
    private let run: [UInt8]

    /// Connects with small socket buffers (64 KiB, which the kernel doubles):
    /// what waits in this client's kernel is answered when it drains, and the
    /// default 4 MiB of parked requests would make that 800 MB of replies per
    /// client. The server's side of the connection is left as it is.
    init(port: UInt16, request: [UInt8], socketBuffers: Int32 = 64 << 10) throws {
        fd = try connectToLoopback(port: port, receiveBuffer: socketBuffers)
        var size = socketBuffers
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        self.request = request
        run = Array(repeating: request, count: max(1, (256 << 10) / request.count)).flatMap { $0 }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    /// Requests begun: whole ones, and one cut short if any (the server answers it once it is finished).
    var requestsBegun: Int { (sentBytes + request.count - 1) / request.count }

    /// Sends until the socket refuses (EAGAIN), `limit` bytes have gone, or
    /// the connection failed; returns the bytes sent by this call.
    @discardableResult
    func pour(limit: Int) -> Int {
        let start = sentBytes
        while failure == nil && sentBytes < limit {
            let offset = sentBytes % run.count
            let count = min(run.count - offset, limit - sentBytes)
            let n = run.withUnsafeBytes { send(fd, $0.baseAddress! + offset, count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sentBytes += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                if n < 0 && errno != EAGAIN { failure = "send: \(String(cString: strerror(errno)))" }
                break
            }
        }
        return sentBytes - start
    }

    /// Pours into every client until none has been writable for `stall` (the
    /// server stopped reading them all), each has sent `limit` bytes, or
    /// `timeout` passed. Returns how long it took.
    @discardableResult
    static func pourUntilStalled(_ clients: [KVFloodClient], limit: Int, stall: Duration = .milliseconds(300),
                                 timeout: Duration = .seconds(10)) -> Duration {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            let open = clients.filter { $0.failure == nil && $0.sentBytes < limit }
            if open.isEmpty { break }
            var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(milliseconds(stall)))
            if ready == 0 { break }
            for (index, entry) in fds.enumerated() where entry.revents != 0 { open[index].pour(limit: limit) }
        }
        return ContinuousClock.now - start
    }

    /// Finishes the request cut short, then reads the reply to every request
    /// sent, each compared byte for byte with `reply`. Returns the number of
    /// replies; throws if one differs, the connection ends first, more
    /// arrives than was asked for, or `timeout` passes.
    func drain(expecting reply: [UInt8], timeout: Duration = .seconds(20)) throws -> Int {
        let deadline = ContinuousClock.now + timeout
        let expected = requestsBegun
        let total = expected * reply.count
        let chunk = 1 << 20
        // The reply repeated, so any received chunk is checked with one comparison.
        let pattern = Array(repeating: reply, count: chunk / reply.count + 2).flatMap { $0 }
        var buffer = [UInt8](repeating: 0, count: chunk)
        var received = 0
        while received < total {
            let unsent = expected * request.count - sentBytes
            var entry = pollfd(fd: fd, events: Int16(POLLIN) | (unsent > 0 ? Int16(POLLOUT) : 0), revents: 0)
            let left = deadline - ContinuousClock.now
            guard left > .zero, poll(&entry, 1, Int32(max(1, milliseconds(left)))) > 0 else {
                throw TestFailure("timed out after \(received / reply.count) of \(expected) replies")
            }
            if unsent > 0 && entry.revents & Int16(POLLOUT) != 0 { pour(limit: expected * request.count) }
            guard entry.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, chunk, 0) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard n > 0 else {
                throw TestFailure("the connection ended after \(received / reply.count) of \(expected) replies"
                                  + (n < 0 ? ": \(String(cString: strerror(errno)))" : ""))
            }
            guard received + n <= total else { throw TestFailure("more bytes than \(expected) replies") }
            let phase = received % reply.count
            let same = buffer.withUnsafeBytes { got in pattern.withUnsafeBytes { memcmp(got.baseAddress!, $0.baseAddress! + phase, n) } }
            guard same == 0 else { throw TestFailure("reply \(received / reply.count + 1) of \(expected) differs from the expected bytes") }
            received += n
        }
        return expected
    }
}

/// A process's resident memory (VmRSS) and its peak (VmHWM), in bytes.
func kvResidentMemory(of pid: Int32) throws -> (current: Int, peak: Int) {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    func field(_ name: String) throws -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
              let kilobytes = Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).dropLast(3)) else {
            throw TestFailure("no \(name) in /proc/\(pid)/status")
        }
        return kilobytes * 1024
    }
    return (try field("VmRSS"), try field("VmHWM"))
}

/// Resets a process's peak resident memory to its current one (writing 5 to
/// clear_refs, Linux 4.0+), so that the next peak is the peak since now.
func kvResetPeakMemory(of pid: Int32) throws {
    let fd = open("/proc/\(pid)/clear_refs", O_WRONLY)
    guard fd >= 0 else { throw TestFailure("open /proc/\(pid)/clear_refs: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard write(fd, "5", 1) == 1 else { throw TestFailure("write /proc/\(pid)/clear_refs: \(String(cString: strerror(errno)))") }
}

/// The `fraction` quantile of `samples` (0.99: the 99th percentile).
func kvQuantile(_ samples: [Duration], _ fraction: Double) -> Duration {
    let sorted = samples.sorted()
    guard !sorted.isEmpty else { return .zero }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
}

/// Megabytes (10^6 bytes, as the targets are stated), for messages.
func kvMegabytes(_ bytes: Int) -> String { String(format: "%.2f MB", Double(bytes) / 1e6) }
