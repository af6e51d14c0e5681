// The echo executable at its limits: out of descriptors, and thousands of
// connections opened and closed — real processes, real sockets.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("echo resilience")
struct EchoResilienceTests {
    @Test("out of descriptors (EMFILE): accepting pauses without spinning, reports why, and resumes", arguments: Backend.underTest)
    func survivesEMFILE(backend: Backend) throws {
        let server = try EchoServer(backend: backend, descriptorLimit: 64)
        defer { server.stop() }
        // Far more clients than the server has descriptors: the kernel completes
        // their handshakes into the backlog; the server accepts until EMFILE.
        var clients: [Int32] = []
        defer { clients.forEach { _ = close($0) } }
        for _ in 0..<120 { clients.append(try blockingConnect(port: server.port)) }

        var errors = ""
        let sawPause = eventually(within: .seconds(5)) {
            errors += server.child.readStandardError(within: .milliseconds(100))
            return errors.contains("EMFILE")
        }
        #expect(sawPause, "no EMFILE report on stderr: \(errors)")
        #expect(errors.contains("accepting paused"), "\(errors)")

        // Paused, not spinning: the server uses little CPU while out of descriptors.
        let cpuBefore = try processCPUTime(server.child.process.processIdentifier)
        usleep(1_000_000)
        let cpu = try processCPUTime(server.child.process.processIdentifier) - cpuBefore
        #expect(cpu < .milliseconds(200), "the paused server used \(cpu) of CPU in 1 s")

        // A connection accepted before the limit still echoes.
        #expect(try exchangeOn(clients[0], Array("still here".utf8)) == Array("still here".utf8))

        // Descriptors free up: accepting resumes and a new client is served.
        for fd in clients.dropFirst() { _ = close(fd) }
        clients = [clients[0]]
        let late = try blockingConnect(port: server.port)
        clients.append(late)
        #expect(try exchangeOn(late, Array("after the storm".utf8)) == Array("after the storm".utf8))
        let sawResume = eventually(within: .seconds(5)) {
            errors += server.child.readStandardError(within: .milliseconds(100))
            return errors.contains("accepting connections again")
        }
        #expect(sawResume, "no resume notice: \(errors)")
    }

    @Test("the server's descriptor count returns to its baseline after 10,000 connect/close cycles", arguments: Backend.underTest)
    func descriptorsReturnToBaseline(backend: Backend) throws {
        let server = try EchoServer(backend: backend)
        defer { server.stop() }
        let pid = server.child.process.processIdentifier
        let baseline = try openDescriptors(pid)
        // A source address per backend spreads the client ports (tests run in parallel).
        let source = "127.0.0.\(10 + (Backend.allCases.firstIndex(of: backend) ?? 0))"
        for cycle in 0..<10_000 {
            let fd = try blockingConnect(port: server.port, from: source)
            if cycle % 100 == 0 {
                // Every 100th connection proves the server really serves them.
                let reply = try exchangeOn(fd, [UInt8(truncatingIfNeeded: cycle)])
                #expect(reply == [UInt8(truncatingIfNeeded: cycle)])
            }
            _ = close(fd)
        }
        var now = try openDescriptors(pid)
        _ = eventually(within: .seconds(5)) {
            now = (try? openDescriptors(pid)) ?? -1
            return now == baseline
        }
        #expect(now == baseline, "descriptors: \(baseline) before, \(now) after 10,000 cycles")
    }
}

// MARK: Helpers

/// A blocking IPv4 client connected to 127.0.0.1:`port`, optionally from a
/// given source address, with a 10 s receive timeout.
func blockingConnect(port: UInt16, from source: String? = nil) throws -> Int32 {
    let fd = try connectToLoopback(port: port, from: source)
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// Sends `bytes` on a blocking socket and reads back as many.
func exchangeOn(_ fd: Int32, _ bytes: [UInt8]) throws -> [UInt8] {
    guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
        throw TestFailure("send: \(String(cString: strerror(errno)))")
    }
    return try readExactly(fd, bytes.count)
}

/// How many descriptors process `pid` has open.
func openDescriptors(_ pid: Int32) throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
}

/// User plus system CPU time of process `pid` (from /proc/PID/stat).
func processCPUTime(_ pid: Int32) throws -> Duration {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    guard let close = stat.lastIndex(of: ")") else { throw TestFailure("unreadable /proc/\(pid)/stat") }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let utime = Int64(fields[11]), let stime = Int64(fields[12]) else {
        throw TestFailure("unreadable /proc/\(pid)/stat")
    }
    let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
    return .milliseconds((utime + stime) * 1000 / ticks)
}
