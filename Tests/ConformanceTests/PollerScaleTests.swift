// 10,000 registered descriptors: only the ready ones are reported, with the
// right tokens, and deregistering them all leaves the poller silent.
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Serialized: two backends at 10,000 descriptors each would exceed RLIMIT_NOFILE (20,000).
@Suite("Poller scale", .serialized)
struct PollerScaleTests {
    @Test("10,000 descriptors (5,000 pipes): exactly the written ones are reported", arguments: Backend.underTest)
    func tenThousandDescriptors(_ backend: Backend) throws {
        let pipes = 5_000
        try #require(descriptorLimit() >= 2 * pipes + 500, "RLIMIT_NOFILE is \(descriptorLimit())")
        let fds = Descriptors()
        defer { fds.closeAll() }
        let probe = try PollerProbe(backend)

        var ends: [(reader: Int32, writer: Int32)] = []
        ends.reserveCapacity(pipes)
        for index in 0..<pipes {
            let pipe = try fds.pipe()
            ends.append(pipe)
            // Reader tokens are even, writer tokens odd; a writer with read interest never fires.
            try probe.register(pipe.reader, token: UInt64(2 * index), interest: .read)
            try probe.register(pipe.writer, token: UInt64(2 * index + 1), interest: .read)
        }
        #expect(probe.interests.count == 2 * pipes)
        try probe.expectSilence(for: .milliseconds(30), "before any data")

        let chosen = [0, 1, 777, 2_500, 3_999, 4_998, 4_999]
        for index in chosen { #expect(writeBytes(ends[index].writer).result == 1) }
        let expected = Set(chosen.map { Token(UInt64(2 * $0)) })

        // Collect until every written pipe has been seen (one wait suffices for
        // level-triggered backends; more are allowed), checking nothing else fires.
        var seen: Set<Token> = []
        let deadline = ContinuousClock.now + .seconds(3)
        while seen != expected && ContinuousClock.now < deadline {
            for event in try probe.wait(.milliseconds(500)) {
                #expect(expected.contains(event.token), "unexpected event for \(event.token)")
                #expect(event.readiness == .readable)
                seen.insert(event.token)
            }
        }
        #expect(seen == expected)
        // Level-triggered: another wait reports exactly the same set again.
        let again = Set(try probe.wait(.seconds(1)).map(\.token))
        #expect(again == expected)

        for (index, pipe) in ends.enumerated() {
            try probe.deregister(pipe.reader, token: UInt64(2 * index))
            try probe.deregister(pipe.writer, token: UInt64(2 * index + 1))
        }
        #expect(probe.interests.isEmpty)
        try probe.expectSilence(for: .milliseconds(30), "after deregistering all 10,000")
    }
}
