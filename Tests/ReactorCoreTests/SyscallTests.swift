import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SyscallTests {
    @Test func errnoIsReadBeforeTheErrorIsDescribed() {
        // The subject's description runs a call that sets errno to ENOENT;
        // the error must still carry the EBADF of the failing call.
        func clobberingSubject() -> ReactorError.Subject {
            _ = open("/nonexistent/reactor-test", O_RDONLY)
            return .named("subject built after the failure")
        }
        do {
            try Syscall.check("close", clobberingSubject()) { close(-1) }
            Issue.record("close(-1) succeeded")
        } catch {
            #expect(error.errno == .badFileDescriptor, "\(error)")
            #expect(error.description == "close(subject built after the failure): EBADF (Bad file descriptor)")
        }
    }

    @Test func runHandsBackTheValueOrTheErrno() {
        #expect(Syscall.run { dup(-1) } == .failure(.badFileDescriptor))
        guard case .success(let fd) = Syscall.run({ dup(0) }) else { Issue.record("dup(0) failed"); return }
        #expect(fd > 0)
        close(fd)
        #expect(Syscall.run { opendir("/nonexistent/reactor-test") }.map { _ in 0 } == .failure(.noSuchFileOrDirectory))
    }
}
