// What needs a look inside the engine (@testable): renegotiation refused
// when a peer asks anyway, and memory BIOs that do not stay grown.
#if canImport(CReactorTLS)
import CReactorTLS
@testable import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct InsideTheEngineTests {
    @Test func renegotiationIsRefused() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        // TLS 1.2: TLS 1.3 has no renegotiation at all.
        #expect(SSL_ctrl(pair.client.ssl, SSL_CTRL_SET_MAX_PROTO_VERSION, Int(TLS1_2_VERSION), nil) == 1)
        #expect(try pair.handshake().client.version == .tls12)
        // This client is made to ask (the library's own never would).
        _ = SSL_clear_options(pair.client.ssl, reactor_tls_op_no_renegotiation())
        #expect(SSL_renegotiate(pair.client.ssl) == 1)
        do {
            try pair.settle()
            Issue.record("the renegotiation went through")
        } catch let error as SideError {
            // The server answered with a no_renegotiation alert, which ends the asking client.
            #expect(error.description == "client: tls read: no renegotiation")
        }
        EnginePair.transfer(from: pair.client, to: pair.server)
        #expect(EnginePair.readError(pair.server)?.description == "tls read: sslv3 alert handshake failure (SSL alert number 40) "
                + "(the peer's answer to its renegotiation being refused: renegotiation is disabled)")
    }

    @Test func grownBuffersAreReleasedOnceDrained() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        _ = try pair.handshake()
        let payload = randomBytes(200_000)
        #expect(try pair.client.write(payload) == payload.count)
        func capacity(_ bio: OpaquePointer) -> Int { reactor_tls_bio_get_mem_ptr(bio).map { Int($0.pointee.max) } ?? -1 }
        #expect(capacity(pair.client.output) > 200_000)
        try pair.settle()
        #expect(pair.serverReceived == payload)
        #expect(capacity(pair.client.output) <= TLSEngine.retainedBufferLimit)
        #expect(capacity(pair.server.input) <= TLSEngine.retainedBufferLimit)
        // And the replacements work.
        #expect(try pair.server.write(Array("after".utf8)) == 5)
        try pair.settle()
        #expect(pair.clientReceived == Array("after".utf8))
    }
}
#endif
