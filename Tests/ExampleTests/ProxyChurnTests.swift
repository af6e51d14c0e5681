// The proxy under connection churn, pinned to one CPU as in production:
// clients that connect and at once close, reset or half-close — often
// before the proxy's upstream connect has completed — must leave nothing
// behind. (Unpinned, the upstream connect usually wins the race and a lost
// half-close goes unseen; pinned, the proxy sees the client's end first.)
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("proxy churn")
struct ProxyChurnTests {
    @Test("proxy --echo pinned to one CPU: descriptors return to baseline after 5,000 connect/close/RST/half-close cycles",
          arguments: Backend.underTest)
    func churnLeavesNothingBehind(backend: Backend) throws {
        let cpu = try firstAllowedCPU()
        let proxy = try Executables.product("proxy").path
        let child = try ChildProcess(executable: try Executables.tool("taskset"),
                                     arguments: ["-c", "\(cpu)", proxy, "--backend", backend.rawValue, "--strict-backend",
                                                 "--port", "0", "--echo"],
                                     standardError: .file)
        defer { child.stop() }
        let port = try child.readListeningPort("proxy").port
        let pid = child.process.processIdentifier
        let baseline = try openDescriptors(pid)
        let source = "127.0.0.\(30 + (Backend.allCases.firstIndex(of: backend) ?? 0))"

        for cycle in 0..<5_000 {
            let fd = try blockingConnect(port: port, from: source)
            switch cycle % 4 {
            case 0:  // connect and close, no bytes
                _ = close(fd)
            case 1:  // connect and reset
                var option = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
                _ = close(fd)
            case 2:  // half-close at once: the echo's end of file must come back through both legs
                shutdown(fd, Int32(SHUT_WR))
                let rest = try readToEnd(fd, timeout: .seconds(10))
                #expect(rest.isEmpty, "cycle \(cycle): \(rest.count) unexpected bytes")
                _ = close(fd)
            default:  // a byte, a half-close, the byte back and the end of file
                var byte = UInt8(truncatingIfNeeded: cycle)
                _ = send(fd, &byte, 1, Int32(MSG_NOSIGNAL))
                shutdown(fd, Int32(SHUT_WR))
                let rest = try readToEnd(fd, timeout: .seconds(10))
                #expect(rest == [byte], "cycle \(cycle): got \(rest)")
                _ = close(fd)
            }
        }
        var now = try openDescriptors(pid)
        _ = eventually(within: .seconds(10)) {
            now = (try? openDescriptors(pid)) ?? -1
            return now == baseline
        }
        #expect(now == baseline, "descriptors: \(baseline) before, \(now) after 5,000 cycles")
    }
}

/// The first CPU this process may run on (CI machines need not offer CPU 0).
func firstAllowedCPU() throws -> Int {
    guard let cpu = BenchToolTests.allowedCPUs().first else { throw TestFailure("no CPU in Cpus_allowed_list") }
    return cpu
}
