// Input that is not TLS, records that lie about their length, and the
// OpenSSL error queue: one engine's failure never shows up on another.
#if canImport(CReactorTLS)
import CReactorTLS
import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct HostileInputTests {
    /// The error a fresh server engine throws for `bytes` as its first input.
    private func serverError(after bytes: [UInt8]) throws -> TLSError? {
        let server = try TLSEngine(configuration: Configurations.server())
        server.feed(bytes)
        do {
            #expect(try server.handshake() == .needsInput)
            return nil
        } catch {
            return error
        }
    }

    @Test func anHTTPRequestIsNotAClientHello() throws {
        let error = try serverError(after: Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
        #expect(error == TLSError(.handshake, operation: "tls handshake", reason: "http request"))
    }

    @Test func textIsNotAClientHello() throws {
        let error = try serverError(after: Array("hello, this is not TLS at all\r\n".utf8))
        #expect(error?.description == "tls handshake: wrong version number")
    }

    @Test func anOversizedRecordBeforeTheHandshake() throws {
        // A handshake record header claiming 65,535 bytes (the limit is 16,384 plus expansion).
        let error = try serverError(after: [0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00])
        #expect(error?.description == "tls handshake: packet length too long")
    }

    @Test func anOversizedRecordAfterTheHandshake() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        _ = try pair.handshake()
        pair.client.feed([0x17, 0x03, 0x03, 0x48, 0x01] + [UInt8](repeating: 0, count: 32))
        let error = EnginePair.readError(pair.client)
        #expect(error?.kind == .protocolViolation)
        #expect(error?.description == "tls read: packet length too long")
        // The engine tells the peer with an alert.
        #expect(pair.client.pendingCiphertextCount > 0)
        EnginePair.transfer(from: pair.client, to: pair.server)
        #expect(EnginePair.readError(pair.server)?.description == "tls read: tlsv1 alert record overflow (SSL alert number 22)")
    }

    @Test func aTamperedRecordFailsToDecrypt() throws {
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost", server: Configurations.server())
        _ = try pair.handshake()
        _ = try pair.server.write(Array("secret".utf8))
        var ciphertext = pair.server.drainCiphertext()
        ciphertext[ciphertext.count - 1] ^= 1
        pair.client.feed(ciphertext)
        #expect(EnginePair.readError(pair.client)?.description == "tls read: decryption failed or bad record mac")
    }

    @Test func oneEnginesErrorNeverAppearsOnAnother() throws {
        // A failure on one engine...
        #expect(try serverError(after: Array("GET / HTTP/1.1\r\n\r\n".utf8))?.reason == "http request")
        #expect(ERR_peek_error() == 0)  // ...leaves nothing behind.

        // Errors OpenSSL left on this thread's queue from elsewhere...
        let stray = SSL_CTX_new(TLS_method())
        defer { SSL_CTX_free(stray) }
        #expect(SSL_CTX_use_certificate_chain_file(stray, "/nonexistent/stray.pem") == 0)
        #expect(ERR_peek_error() != 0)
        // ...neither fail a healthy handshake step nor colour another failure.
        let pair = try EnginePair(client: Configurations.client(), serverName: "localhost",
                                  server: Configurations.server(TestCertificates.shared().wrongName))
        #expect(try pair.client.handshake() == .needsInput)
        #expect(SSL_CTX_use_certificate_chain_file(stray, "/nonexistent/stray.pem") == 0)
        do {
            _ = try pair.handshake()
            Issue.record("the handshake with the wrong name succeeded")
        } catch let error as SideError {
            #expect(error.description == "client: tls handshake: certificate verify failed (hostname mismatch)")
        }
        #expect(ERR_peek_error() == 0)
    }
}
#endif
