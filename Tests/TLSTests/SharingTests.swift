// One configuration per side, shared by connections on several threads at
// once: the SSL_CTX and the client's session cache are safe to share.
#if canImport(CReactorTLS)
import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct SharingTests {
    @Test func configurationsAreSharedAcrossThreads() throws {
        let client = try Configurations.client(protocols: ["http/1.1"])
        let server = try Configurations.server(protocols: ["http/1.1"])
        // Failures and resumptions per thread, gathered under a lock.
        let outcomes = Shared<[String]>([])
        let threads = try (0..<4).map { index in
            try TestThread {
                for round in 0..<5 {
                    do {
                        let pair = try EnginePair(client: client, serverName: "localhost", sessionKey: "thread-\(index)", server: server)
                        let (info, _) = try pair.handshake()
                        let message = Array("hello from \(index)".utf8)
                        _ = try pair.client.write(message)
                        try pair.settle()
                        // Every round after the first resumes the thread's own session.
                        if info.applicationProtocol != "http/1.1" || info.resumed != (round > 0) || pair.serverReceived != message {
                            outcomes.update { $0.append("thread \(index) round \(round): \(info)") }
                        }
                    } catch {
                        outcomes.update { $0.append("thread \(index) round \(round): \(error)") }
                    }
                }
            }
        }
        for thread in threads { thread.join() }
        #expect(outcomes.value == [])
        #expect(client.cachedSessionCount == 4)
    }
}
#endif
