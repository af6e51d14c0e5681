// kv's memory after a burst: 200 clients at once pipeline 4,000 GETs of a
// 4 KiB value and reset mid-reply, then 1,200 connect/close/reset cycles
// (a sixth of them a big pipeline reset mid-reply). The burst grows the
// server (output queues, the C heap, io_uring's provided buffers); once it
// has passed and the runtime has been quiet, the server's RSS must come
// back to within 4 MB of what it was before. Memory is the behaviour
// judged: the wait is a generous deadline, polled.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("kv: memory comes back after a burst")
struct KVMemoryAfterBurstTests {
    static let value: [UInt8] = (0..<4096).map { UInt8(ascii: "a") + UInt8($0 % 26) }
    /// 4,000 GETs of the 4 KiB value: 88 KB of requests (they fit in the
    /// socket buffers, so sending never waits on a server that stopped
    /// reading), 16 MB of replies.
    static let pipeline: [UInt8] = Array(repeating: kvCommand("GET", "k"), count: 4000).flatMap { $0 }
    static let bound = 4_000_000

    @Test("after 200 pipelines reset at once and 1,200 connect/close/reset cycles, RSS returns to within 4 MB of its baseline",
          arguments: Backend.underTest)
    func burstPasses(_ backend: Backend) throws {
        try ensureDescriptorLimit(600)
        let server = try KVTestServer(backend: backend)
        defer { server.stop() }
        let pid = server.child.process.processIdentifier
        let client = try KVClient(port: server.port)
        try client.send(kvCommand([Array("SET".utf8), Array("k".utf8), Self.value]))
        #expect(try client.readReplies(1) == Array("+OK\r\n".utf8))

        // A small burst first, so the baseline holds what any use leaves
        // (first-touch costs), then the lowest RSS over a settling spell
        // longer than the server's quiet spell (2 s), in which it releases.
        try Self.wave(port: server.port, clients: 4)
        try Self.churn(port: server.port, cycles: 60, threads: 2)
        var baseline = Int.max
        let settle = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < settle {
            baseline = min(baseline, try kvResidentMemory(of: pid).current)
            kvSleep(.milliseconds(100))
        }
        try kvResetPeakMemory(of: pid)

        try Self.wave(port: server.port, clients: 200)
        try Self.churn(port: server.port, cycles: 1200, threads: 8)
        let peak = try kvResidentMemory(of: pid).peak
        #expect(try client.call("PING") == "+PONG\r\n", "the server no longer answers")
        // kv is built with the tests' sanitizer, if any, whose allocator (its
        // quarantine, its shadow memory) makes kv's RSS meaningless: the
        // burst still runs, and the server must still answer.
        guard SanitizerBuild.measuresMemory else { return }

        var current = try kvResidentMemory(of: pid).current
        let deadline = ContinuousClock.now + .seconds(60)
        while current > baseline + Self.bound && ContinuousClock.now < deadline {
            kvSleep(.milliseconds(200))
            current = try kvResidentMemory(of: pid).current
        }
        print("kv memory after a burst (\(backend)): baseline \(kvMegabytes(baseline)), peak +\(kvMegabytes(peak - baseline)), "
              + "after +\(kvMegabytes(current - baseline))")
        // The burst must have grown the server past the bound, or coming back within it would prove nothing.
        #expect(peak - baseline > Self.bound, "the burst grew RSS by only \(kvMegabytes(peak - baseline))")
        #expect(current <= baseline + Self.bound, "RSS stayed \(kvMegabytes(current - baseline)) above its baseline after the burst")
    }

    /// `clients` connections at once, each sending ``pipeline``; then each reads
    /// 16 KiB of its replies (less than the 32 KiB kv lets every connection
    /// queue even over its output budget) and resets.
    static func wave(port: UInt16, clients: Int) throws {
        var fds: [Int32] = []
        defer { fds.forEach { reset($0) } }
        for _ in 0..<clients {
            let fd = try connectToLoopback(port: port)
            fds.append(fd)
            try sendAll(fd, pipeline)
        }
        for fd in fds { _ = try readExactly(fd, 16 << 10, timeout: .seconds(20)) }
    }

    /// `cycles` connections, `threads` at a time: a sixth send ``pipeline``,
    /// read 64 KiB of replies and reset; a third PING, read the reply and
    /// close; a third PING and reset at once; the rest close without a word.
    static func churn(port: UInt16, cycles: Int, threads: Int) throws {
        let next = Shared(0)
        let failures = Shared<[String]>([])
        let pipeline = pipeline
        let workers = try (0..<threads).map { _ in
            try TestThread {
                while true {
                    let cycle = next.update { value -> Int in
                        defer { value += 1 }
                        return value
                    }
                    guard cycle < cycles else { return }
                    do {
                        let fd = try connectToLoopback(port: port)
                        switch cycle % 6 {
                        case 0:
                            try sendAll(fd, pipeline)
                            _ = try readExactly(fd, 64 << 10, timeout: .seconds(20))
                            reset(fd)
                        case 1, 2:
                            try sendAll(fd, kvCommand("PING"))
                            _ = try readExactly(fd, 7, timeout: .seconds(20))
                            close(fd)
                        case 3, 4:
                            try sendAll(fd, kvCommand("PING"))
                            reset(fd)
                        default:
                            close(fd)
                        }
                    } catch {
                        failures.update { $0.append("cycle \(cycle): \(error)") }
                    }
                }
            }
        }
        workers.forEach { $0.join() }
        if let first = failures.value.first { throw TestFailure("\(failures.value.count) cycles failed; first: \(first)") }
    }

    /// Closes with a reset (SO_LINGER 0): the server's stream ends with ECONNRESET, its queued replies dropped.
    static func reset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }
}
