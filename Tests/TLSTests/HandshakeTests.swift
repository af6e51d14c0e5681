// Engine to engine in memory: what a completed handshake reports, ALPN,
// certificate choice by SNI, resumption with tickets, data both ways.
#if canImport(CReactorTLS)
import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct HandshakeTests {
    @Test func clientVerifiesServerAndBothReportTheHandshake() throws {
        let pair = try EnginePair(client: Configurations.client(protocols: ["h2", "http/1.1"]), serverName: "localhost",
                                  server: Configurations.server(protocols: ["http/1.1", "h2"]))
        let (client, server) = try pair.handshake()
        #expect(client.version == .tls13 && server.version == .tls13)
        #expect(client.cipher == server.cipher && client.cipher.hasPrefix("TLS_"))
        // The server's preference wins.
        #expect(client.applicationProtocol == "http/1.1" && server.applicationProtocol == "http/1.1")
        #expect(client.peerSubject == "O=Reactor Test,CN=localhost")
        #expect(server.peerSubject == nil)  // no client certificate asked for
        #expect(client.serverName == "localhost" && server.serverName == "localhost")
        #expect(!client.resumed && !server.resumed)
        #expect(pair.client.isHandshakeComplete && pair.server.isHandshakeComplete)
        #expect(try pair.client.handshake() == .complete(client))
    }

    @Test func dataCrossesBothWaysInManyRecords() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        _ = try pair.handshake()
        let up = randomBytes(100_000), down = randomBytes(70_001)
        #expect(try pair.client.write(up) == up.count)
        #expect(try pair.server.write(down) == down.count)
        try pair.settle()
        #expect(pair.serverReceived == up)
        #expect(pair.clientReceived == down)
    }

    @Test func ciphertextFedOneByteAtATime() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        var steps = 0
        while !(pair.client.isHandshakeComplete && pair.server.isHandshakeComplete) {
            steps += 1
            #expect(steps < 100_000)
            _ = try pair.client.handshake()
            _ = try pair.server.handshake()
            for (from, to) in [(pair.client, pair.server), (pair.server, pair.client)] {
                var byte: UInt8 = 0
                if withUnsafeMutableBytes(of: &byte, { from.drainCiphertext(into: $0) }) == 1 { to.feed([byte]) }
            }
        }
        #expect(steps > 1000)  // thousands of single bytes, each a step
    }

    @Test func noCommonProtocolMeansNoALPN() throws {
        let pair = try EnginePair(client: Configurations.client(protocols: ["redis"]), serverName: "localhost",
                                  server: Configurations.server(protocols: ["http/1.1"]))
        let (client, server) = try pair.handshake()
        #expect(client.applicationProtocol == nil && server.applicationProtocol == nil)
    }

    @Test func ecdsaCertificate() throws {
        let certificates = try TestCertificates.shared()
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost",
                                  server: Configurations.server(certificates.ecdsa))
        let (client, _) = try pair.handshake()
        #expect(client.peerSubject == "O=Reactor ECDSA,CN=localhost")
    }

    @Test func ipAddressIsVerifiedAndSendsNoServerName() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "127.0.0.1", server: Configurations.server())
        let (client, server) = try pair.handshake()
        #expect(client.serverName == "127.0.0.1" && client.peerSubject != nil)
        #expect(server.serverName == nil)
    }

    @Test(arguments: [("sni.test", "CN=sni.test"), ("API.sni.test", "CN=sni.test"), ("localhost", "O=Reactor Test,CN=localhost")])
    func serverChoosesTheCertificateByName(name: String, subject: String) throws {
        let certificates = try TestCertificates.shared()
        let server = try Configurations.server(byName: ["sni.test": certificates.sni, "*.sni.test": certificates.sni],
                                               protocols: ["http/1.1"])
        let pair = try EnginePair(client: Configurations.client(protocols: ["http/1.1"]), serverName: name, server: server)
        let (client, serverInfo) = try pair.handshake()
        #expect(client.peerSubject == subject)
        #expect(serverInfo.serverName == name)
        // A context chosen by name keeps the server's protocols.
        #expect(serverInfo.applicationProtocol == "http/1.1")
    }

    @Test func secondConnectionResumesWithATicket() throws {
        let clientConfiguration = try Configurations.client()
        let serverConfiguration = try Configurations.server()
        let first = try EnginePair(client: clientConfiguration, serverName: "localhost", server: serverConfiguration)
        #expect(try !first.handshake().client.resumed)
        #expect(clientConfiguration.cachedSessionCount == 1)
        for _ in 0..<2 {  // each resumption brings a fresh ticket for the next
            let again = try EnginePair(client: clientConfiguration, serverName: "localhost", server: serverConfiguration)
            let (client, server) = try again.handshake()
            #expect(client.resumed && server.resumed)
            #expect(client.peerSubject == "O=Reactor Test,CN=localhost")
        }
        // Another key has no session.
        let other = EnginePair(client: try TLSEngine(configuration: clientConfiguration, serverName: "localhost", sessionKey: "localhost:2"),
                               server: try TLSEngine(configuration: serverConfiguration))
        #expect(try !other.handshake().client.resumed)
    }

    @Test func aFailedConnectionsSessionIsNotResumed() throws {
        let clientConfiguration = try Configurations.client()
        let serverConfiguration = try Configurations.server()
        do {
            let first = try EnginePair(client: clientConfiguration, serverName: "localhost", server: serverConfiguration)
            _ = try first.handshake()
            #expect(clientConfiguration.cachedSessionCount == 1)
            first.client.receivedEndOfFile()
            #expect(EnginePair.readError(first.client)?.kind == .truncated)
        }
        // Its session might belong to a cut-short conversation: not resumed.
        let second = try EnginePair(client: clientConfiguration, serverName: "localhost", server: serverConfiguration)
        #expect(try !second.handshake().client.resumed)
    }

    @Test func withoutTicketsNothingResumes() throws {
        let clientConfiguration = try Configurations.client()
        let serverConfiguration = try Configurations.server(tickets: false)
        for _ in 0..<2 {
            let pair = try EnginePair(client: clientConfiguration, serverName: "localhost", server: serverConfiguration)
            #expect(try !pair.handshake().client.resumed)
        }
        #expect(clientConfiguration.cachedSessionCount == 0)
    }

    @Test func minimumVersionIsEnforcedBetweenEngines() throws {
        let pair = try EnginePair(client: Configurations.client(minimum: .tls13), serverName: "localhost",
                                  server: Configurations.server(minimum: .tls13))
        #expect(try pair.handshake().client.version == .tls13)
    }
}
#endif
