// io_uring where it cannot start: the echo example run as an unprivileged
// user with `ulimit -l 0`, where creating a ring fails with ENOMEM. The
// message must name the cause, and the documented fallback (the best
// available backend, epoll) must happen, or, with --strict-backend, a clear
// failure instead.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("io_uring unavailable", .enabled(if: geteuid() == 0 && Backend.uring.isBuilt, "needs root (to drop to 'nobody') and the uring backend"))
struct UringFallbackTests {
    /// The echo binary copied where the unprivileged user can run it (the
    /// checkout may sit under a directory only root can enter).
    static func echoForNobody() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-nobody-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let copy = directory.appendingPathComponent("echo")
        try FileManager.default.copyItem(at: try Executables.product("echo"), to: copy)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy.path)
        return copy
    }

    static func asNobodyWithoutLockedMemory(_ echo: URL, _ arguments: String) throws -> ChildProcess {
        let runuser = try Executables.tool("runuser")
        return try ChildProcess(executable: runuser,
                                arguments: ["-u", "nobody", "--", "/bin/sh", "-c", "ulimit -l 0 && exec \(echo.path) \(arguments)"])
    }

    @Test("asking for uring falls back to epoll and says why")
    func fallsBackWithTheCause() throws {
        let echo = try Self.echoForNobody()
        defer { try? FileManager.default.removeItem(at: echo.deletingLastPathComponent()) }
        let child = try Self.asNobodyWithoutLockedMemory(echo, "--backend uring --port 0")
        defer { child.stop() }

        let line = try readLine(child.standardOutput, timeout: .seconds(10))
        #expect(line.hasPrefix("echo listening on 127.0.0.1:") && line.hasSuffix("(backend epoll)"),
                "expected the fallback to epoll, got '\(line)'")
        // The fallback server works.
        let port = try #require(UInt16(line.split(separator: ":").last!.split(separator: " ").first!))
        let sent = randomBytes(1000)
        #expect(try exchange(port: port, chunks: [sent], timeout: .seconds(10)) == sent)

        #expect(child.stop())
        let log = child.readStandardError()
        #expect(log.contains("uring was requested but is unavailable"), "log: \(log)")
        #expect(log.contains("io_uring_queue_init: ENOMEM (Cannot allocate memory)"), "log: \(log)")
        #expect(log.contains("locked-memory limit (ulimit -l is 0 KiB)"), "log: \(log)")
        #expect(log.contains("falling back to epoll"), "log: \(log)")
    }

    @Test("with --strict-backend it fails with the cause instead")
    func strictFailsWithTheCause() throws {
        let echo = try Self.echoForNobody()
        defer { try? FileManager.default.removeItem(at: echo.deletingLastPathComponent()) }
        let child = try Self.asNobodyWithoutLockedMemory(echo, "--backend uring --strict-backend --port 0")
        defer { child.stop() }
        let status = try #require(child.waitForExit(timeout: .seconds(10)), "echo did not exit")
        #expect(status == 2)
        let log = child.readStandardError()
        #expect(log.contains("ENOMEM") && log.contains("locked-memory limit"), "log: \(log)")
    }
}
