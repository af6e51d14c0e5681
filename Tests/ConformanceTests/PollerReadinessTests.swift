// Contract items 2–5: level-triggered readiness, interest gating, one event
// per descriptor per wait with its token, immediate deregistration.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Poller readiness")
struct PollerReadinessTests {
    @Test("read readiness: none before data, then readable with the token, level-triggered", arguments: Backend.underTest)
    func readReadiness(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (reader, writer) = try fds.pipe()
        try probe.register(reader, token: 41, interest: .read)
        try probe.expectSilence(for: .milliseconds(30), "before any data")

        #expect(writeBytes(writer, count: 3).result == 3)
        #expect(try probe.next(41) == .readable)
        // Level-triggered: still readable, reported again on every wait.
        for _ in 0..<3 {
            let events = try probe.wait(.seconds(1))
            #expect(events == [PollEvent(token: Token(41), readiness: .readable)])
        }
        #expect(drain(reader) == 3)
        try probe.expectSilence(for: .milliseconds(30), "after the data was read")
        try probe.deregister(reader, token: 41)
    }

    @Test("write readiness: writable until the pipe is full, and again once drained", arguments: Backend.underTest)
    func writeReadiness(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (reader, writer) = try fds.pipe()
        try probe.register(writer, token: 7, interest: .write)
        #expect(try probe.next(7) == .writable)
        #expect(try probe.wait(.seconds(1)) == [PollEvent(token: Token(7), readiness: .writable)])

        fill(writer)
        try probe.expectSilence(for: .milliseconds(30), "while the pipe is full")
        drain(reader)
        #expect(try probe.next(7) == .writable)
        try probe.deregister(writer, token: 7)
    }

    @Test("interest none ↔ read ↔ write ↔ both; .none silent even after hangup; tokens follow reregister",
          arguments: Backend.underTest)
    func interestChanges(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (local, peer) = try fds.socketPair()
        #expect(writeBytes(peer).result == 1)  // `local` is now readable, and it is writable throughout

        try probe.register(local, token: 1, interest: .none)
        try probe.expectSilence(for: .milliseconds(30), "with interest none")

        try probe.reregister(local, from: 1, to: 2, interest: .read)
        #expect(try probe.next(2) == .readable)

        try probe.reregister(local, from: 2, to: 3, interest: .write)
        #expect(try probe.next(3) == .writable)

        try probe.reregister(local, from: 3, to: 4, interest: .both)
        let both = try probe.wait(.seconds(1))
        #expect(both == [PollEvent(token: Token(4), readiness: [.readable, .writable])], "one event carrying both")

        try probe.reregister(local, from: 4, to: 5, interest: .none)
        try probe.expectSilence(for: .milliseconds(30), "after going back to none")

        try probe.reregister(local, from: 5, to: 6, interest: .read)
        #expect(try probe.next(6) == .readable)
        try probe.reregister(local, from: 6, to: 7, interest: .none)

        fds.close(peer)  // the peer hangs up: .none must stay silent all the same
        try probe.expectSilence(for: .milliseconds(30), "with interest none after the peer hung up")

        try probe.reregister(local, from: 7, to: 8, interest: .read)
        let onRead = try #require(try probe.next(8))
        #expect(onRead.isSuperset(of: [.readable, .readClosed]), "read interest after hangup: \(onRead)")

        try probe.reregister(local, from: 8, to: 9, interest: .write)
        let onWrite = try #require(try probe.next(9))
        #expect(onWrite.isDisjoint(with: [.readable, .readClosed]), "write interest after hangup: \(onWrite)")
        #expect(!onWrite.isDisjoint(with: [.writable, .hangup, .error]), "write interest after hangup: \(onWrite)")

        try probe.reregister(local, from: 9, to: 10, interest: .none)
        try probe.expectSilence(for: .milliseconds(30), "none again after hangup")
        try probe.deregister(local, token: 10)
    }

    @Test("deregistration stops events at once, and the descriptor can be registered again", arguments: Backend.underTest)
    func deregistration(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (reader, writer) = try fds.pipe()
        let (other, otherWriter) = try fds.pipe()
        try probe.register(reader, token: 10, interest: .read)
        try probe.register(other, token: 20, interest: .read)
        writeBytes(writer)
        writeBytes(otherWriter)
        _ = try #require(try probe.next(10))

        try probe.deregister(reader, token: 10)
        // The other descriptor is still reported; the deregistered one never is
        // (the probe flags any event for an unregistered token).
        for _ in 0..<3 {
            #expect(try probe.wait(.seconds(1)).map(\.token) == [Token(20)])
        }
        try probe.deregister(other, token: 20)
        try probe.expectSilence(for: .milliseconds(30), "after deregistering everything")

        // Closing after deregistering is the caller's right and changes nothing.
        fds.close(other)
        try probe.expectSilence(for: .milliseconds(20), "after closing a deregistered descriptor")

        try probe.register(reader, token: 11, interest: .read)
        #expect(try probe.next(11) == .readable)
        try probe.deregister(reader, token: 11)
    }

    @Test("pipe writer closed: the reader sees hangup with readable, with or without data left", arguments: Backend.underTest)
    func pipeHangup(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let (emptyReader, emptyWriter) = try fds.pipe()
        let (fullReader, fullWriter) = try fds.pipe()
        try probe.register(emptyReader, token: 1, interest: .read)
        try probe.register(fullReader, token: 2, interest: .read)
        writeBytes(fullWriter, count: 5)
        fds.close(emptyWriter)
        fds.close(fullWriter)

        let empty = try #require(try probe.next(1))
        #expect(empty.isSuperset(of: [.readable, .hangup]), "no data left: \(empty)")
        let full = try #require(try probe.next(2))
        #expect(full.contains(.readable), "data left: \(full)")
        // The reader finds its data, then end of file; hangup persists.
        #expect(drain(fullReader) == 5)
        let after = try #require(try probe.next(2))
        #expect(after.isSuperset(of: [.readable, .hangup]), "after draining: \(after)")
        try probe.deregister(emptyReader, token: 1)
        try probe.deregister(fullReader, token: 2)
    }

    @Test("TCP peer close or shutdown(SHUT_WR) reports readClosed under read interest", arguments: Backend.underTest)
    func tcpReadClosed(_ backend: Backend) throws {
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)
        let closing = try fds.tcpPair()
        let halfClosing = try fds.tcpPair()
        try probe.register(closing.server, token: 1, interest: .read)
        try probe.register(halfClosing.server, token: 2, interest: .read)
        try probe.expectSilence(for: .milliseconds(20), "before the peers act")

        fds.close(closing.client)
        #expect(shutdown(halfClosing.client, Int32(SHUT_WR)) == 0)

        let closed = try #require(try probe.next(1))
        #expect(closed.isSuperset(of: [.readable, .readClosed]), "peer closed: \(closed)")
        let halfClosed = try #require(try probe.next(2))
        #expect(halfClosed.isSuperset(of: [.readable, .readClosed]), "peer shut down writing: \(halfClosed)")
        #expect(!halfClosed.contains(.hangup), "our side can still write: \(halfClosed)")

        // The half-closed connection still carries data the other way.
        writeBytes(halfClosing.server, count: 4)
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(read(halfClosing.client, &buffer, 8) == 4)
        try probe.deregister(closing.server, token: 1)
        try probe.deregister(halfClosing.server, token: 2)
    }
}
