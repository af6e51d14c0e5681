// How connections end: close_notify either way (and writing on after the
// peer's), the peer's end of file without one reported as truncation, and
// an engine that failed staying failed.
#if canImport(CReactorTLS)
import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct EndingTests {
    private func established() throws -> EnginePair {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        _ = try pair.handshake()
        return pair
    }

    @Test func clientClosesFirst() throws {
        let pair = try established()
        #expect(try pair.client.write(Array("bye".utf8)) == 3)
        #expect(try pair.client.close() == .awaitingPeer)
        #expect(pair.client.isCloseSent)
        try pair.settle()
        #expect(pair.serverReceived == Array("bye".utf8))
        #expect(pair.serverSawClose && pair.server.isPeerClosed)
        // Half-closed: the server may still send, and the client still reads.
        #expect(try pair.server.write(Array("late".utf8)) == 4)
        #expect(try pair.server.close() == .complete)
        try pair.settle()
        #expect(pair.clientReceived == Array("late".utf8))
        #expect(pair.clientSawClose)
        #expect(try pair.client.close() == .complete)
        #expect(throws: TLSError(.misuse, operation: "tls write", reason: "the connection was closed (close_notify sent)")) {
            try pair.client.write(Array("more".utf8))
        }
    }

    @Test func serverClosesFirst() throws {
        let pair = try established()
        #expect(try pair.server.close() == .awaitingPeer)
        try pair.settle()
        #expect(pair.clientSawClose && !pair.serverSawClose)
        #expect(try pair.client.close() == .complete)
        try pair.settle()
        #expect(pair.serverSawClose)
        #expect(try pair.server.close() == .complete)
    }

    @Test func endOfFileWithoutCloseNotifyIsTruncation() throws {
        let pair = try established()
        #expect(try pair.server.write(Array("partial answer".utf8)) == 14)
        EnginePair.transfer(from: pair.server, to: pair.client)
        pair.client.receivedEndOfFile()
        #expect(pair.client.unreadCiphertextCount > 14)
        var buffer = [UInt8](repeating: 0, count: 100)
        // What arrived is still delivered, then the truncation is reported.
        #expect(try buffer.withUnsafeMutableBytes { try pair.client.read(into: $0) } == .bytes(14))
        let error = EnginePair.readError(pair.client)
        #expect(error == TLSError(.truncated, operation: "tls read",
                                  reason: "unexpected eof while reading (the peer ended the connection without close_notify: truncated)"))
        // The engine stays failed.
        #expect(EnginePair.readError(pair.client) == error)
        #expect(throws: error!) { try pair.client.write(Array("x".utf8)) }
        #expect(try pair.client.close() == .complete)
    }

    @Test func recordCutShortIsTruncation() throws {
        let pair = try established()
        _ = try pair.server.write(randomBytes(1000))
        let ciphertext = pair.server.drainCiphertext()
        pair.client.feed(Array(ciphertext.prefix(ciphertext.count / 2)))
        pair.client.receivedEndOfFile()
        #expect(EnginePair.readError(pair.client)?.kind == .truncated)
    }

    @Test func closeNotifyThenEndOfFileIsClean() throws {
        let pair = try established()
        _ = try pair.server.close()
        EnginePair.transfer(from: pair.server, to: pair.client)
        pair.client.receivedEndOfFile()
        var buffer = [UInt8](repeating: 0, count: 100)
        #expect(try buffer.withUnsafeMutableBytes { try pair.client.read(into: $0) } == .closed)
        #expect(try buffer.withUnsafeMutableBytes { try pair.client.read(into: $0) } == .closed)
    }

    @Test func endOfFileDuringTheHandshake() throws {
        let server = try TLSEngine(configuration: Configurations.server())
        let client = try TLSEngine(configuration: Configurations.client(), serverName: "localhost")
        _ = try client.handshake()
        let hello = client.drainCiphertext()
        server.feed(Array(hello.prefix(50)))
        server.receivedEndOfFile()
        #expect(throws: TLSError(.handshake, operation: "tls handshake",
                                 reason: "unexpected eof while reading (the peer ended the connection during the handshake)")) {
            try server.handshake()
        }
    }

    @Test func writesWaitForTheHandshakeAndCloseBeforeItSendsNothing() throws {
        let client = try TLSEngine(configuration: Configurations.client(), serverName: "localhost")
        #expect(try client.write(Array("early".utf8)) == 0)
        #expect(try client.handshake() == .needsInput)
        #expect(client.pendingCiphertextCount > 0)  // the ClientHello
        _ = client.drainCiphertext()
        #expect(try client.close() == .complete)
        #expect(client.pendingCiphertextCount == 0)
    }
}
#endif
