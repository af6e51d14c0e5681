// Contract items 1 and 3: registration errors (EBADF, EEXIST, ENOENT, with
// their exact wording) and error conditions reported as events.
import Reactor
import ReactorTestSupport
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Poller errors")
struct PollerErrorTests {
    /// A descriptor number that cannot be open: it is past the process's limit.
    static var neverOpen: Int32 { Int32(descriptorLimit() + 17) }

    @Test("registering a descriptor that is not open throws EBADF, for every interest", arguments: Backend.underTest)
    func registerClosed(_ backend: Backend) throws {
        let probe = try PollerProbe(backend)
        for fd in [PollerErrorTests.neverOpen, -1] {
            for interest in [Interest.read, .write, .both, .none] {
                let error = try #require(throws: ReactorError.self) {
                    try probe.poller.register(FileDescriptor(rawValue: fd), token: Token(1), interest: interest)
                }
                #expect(error.description == "register(fd \(fd)): EBADF (Bad file descriptor)", "interest \(interest)")
                #expect(error.errno == .badFileDescriptor)
            }
        }
        // Nothing was left behind: the numbers are still unknown to the poller.
        let error = try #require(throws: ReactorError.self) {
            try probe.poller.deregister(FileDescriptor(rawValue: PollerErrorTests.neverOpen))
        }
        #expect(error.errno == .noSuchFileOrDirectory)
        try probe.expectSilence(for: .milliseconds(10))
    }

    @Test("double register throws EEXIST and leaves the first registration untouched", arguments: Backend.underTest)
    func doubleRegister(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (reader, writer) = try fds.pipe()
        let parked = try fds.pipe().reader
        try probe.register(reader, token: 5, interest: .read)
        try probe.register(parked, token: 6, interest: .none)

        for (fd, interest) in [(reader, Interest.write), (reader, .read), (parked, .read), (parked, .none)] {
            let error = try #require(throws: ReactorError.self) {
                try probe.poller.register(FileDescriptor(rawValue: fd), token: Token(99), interest: interest)
            }
            #expect(error.description == "register(fd \(fd)): EEXIST (File exists)")
            #expect(error.errno == .fileExists)
        }
        writeBytes(writer)
        #expect(try probe.wait(.seconds(1)) == [PollEvent(token: Token(5), readiness: .readable)])
        try probe.deregister(reader, token: 5)
        try probe.deregister(parked, token: 6)
    }

    @Test("reregister and deregister of an unknown descriptor throw ENOENT", arguments: Backend.underTest)
    func unknownDescriptor(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (reader, _) = try fds.pipe()

        var error = try #require(throws: ReactorError.self) {
            try probe.poller.reregister(FileDescriptor(rawValue: reader), token: Token(1), interest: .read)
        }
        #expect(error.description == "reregister(fd \(reader)): ENOENT (No such file or directory)")
        error = try #require(throws: ReactorError.self) {
            try probe.poller.deregister(FileDescriptor(rawValue: reader))
        }
        #expect(error.description == "deregister(fd \(reader)): ENOENT (No such file or directory)")

        // Once registered and deregistered, it is unknown again.
        try probe.register(reader, token: 1, interest: .read)
        try probe.deregister(reader, token: 1)
        error = try #require(throws: ReactorError.self) {
            try probe.poller.deregister(FileDescriptor(rawValue: reader))
        }
        #expect(error.errno == .noSuchFileOrDirectory)
        error = try #require(throws: ReactorError.self) {
            try probe.poller.reregister(FileDescriptor(rawValue: reader), token: Token(1), interest: .none)
        }
        #expect(error.errno == .noSuchFileOrDirectory)
    }

    @Test("TCP reset by the peer: error or hangup under any interest but none, ECONNRESET in SO_ERROR",
          arguments: Backend.underTest)
    func tcpReset(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let pair = try fds.tcpPair()
        try probe.register(pair.server, token: 1, interest: .none)
        fds.reset(pair.client)
        try probe.expectSilence(for: .milliseconds(30), "with interest none after a reset")

        try probe.reregister(pair.server, from: 1, to: 2, interest: .write)
        let onWrite = try #require(try probe.next(2))
        #expect(!onWrite.isDisjoint(with: [.error, .hangup]), "write interest: \(onWrite)")

        try probe.reregister(pair.server, from: 2, to: 3, interest: .read)
        let onRead = try #require(try probe.next(3))
        #expect(!onRead.isDisjoint(with: [.error, .hangup]), "read interest: \(onRead)")
        #expect(onRead.contains(.readable), "read interest: \(onRead)")

        #expect(socketError(pair.server) == ECONNRESET)
        try probe.deregister(pair.server, token: 3)
    }

    @Test("a pipe's write end whose reader closed reports an error", arguments: Backend.underTest)
    func brokenPipe(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (reader, writer) = try fds.pipe()
        fill(writer)
        try probe.register(writer, token: 1, interest: .write)
        try probe.expectSilence(for: .milliseconds(20), "while the pipe is full")

        fds.close(reader)
        let readiness = try #require(try probe.next(1))
        #expect(readiness.contains(.error), "writer after the reader closed: \(readiness)")
        let broken = writeBytes(writer)
        #expect(broken.result == -1 && broken.errno == EPIPE)

        try probe.reregister(writer, from: 1, to: 2, interest: .none)
        try probe.expectSilence(for: .milliseconds(30), "with interest none on a broken pipe")
        try probe.deregister(writer, token: 2)
    }
}
