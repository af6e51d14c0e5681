// A client that cannot trust the server says exactly why, in the words of
// X509_verify_cert_error_string; and the server hears the client's alert.
#if canImport(CReactorTLS)
import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct VerificationTests {
    /// The client's failure (and the server's, once the client's alert reached it).
    private func failure(server certificate: TLSCertificateFiles, serverName: String,
                         verification: TLSVerification = .full) throws -> (client: TLSError, server: TLSError?) {
        let pair = try EnginePair(client: Configurations.client(verification: verification), serverName: serverName,
                                  server: Configurations.server(certificate))
        do {
            _ = try pair.handshake()
        } catch let error as SideError {
            #expect(error.side == "client")
            // The client's alert goes to the server, which fails on it.
            EnginePair.transfer(from: pair.client, to: pair.server)
            var serverError: TLSError?
            do { _ = try pair.server.handshake() } catch { serverError = error }
            return (error.error, serverError)
        }
        throw TestFailure("the handshake succeeded")
    }

    @Test func unknownCA() throws {
        let (client, server) = try failure(server: TestCertificates.shared().selfSigned, serverName: "localhost")
        #expect(client.description == "tls handshake: certificate verify failed (self-signed certificate)")
        #expect(client.kind == .verification)
        #expect(server?.description == "tls handshake: tlsv1 alert unknown ca (SSL alert number 48)")
    }

    @Test func expired() throws {
        let (client, server) = try failure(server: TestCertificates.shared().expired, serverName: "localhost")
        #expect(client.description == "tls handshake: certificate verify failed (certificate has expired)")
        #expect(server?.description == "tls handshake: sslv3 alert certificate expired (SSL alert number 45)")
    }

    @Test func wrongHostName() throws {
        let (client, _) = try failure(server: TestCertificates.shared().wrongName, serverName: "localhost")
        #expect(client.description == "tls handshake: certificate verify failed (hostname mismatch)")
        #expect(client.kind == .verification)
    }

    @Test func wrongIPAddress() throws {
        let (client, _) = try failure(server: TestCertificates.shared().server, serverName: "127.0.0.2")
        #expect(client.description == "tls handshake: certificate verify failed (IP address mismatch)")
    }

    @Test func partialWildcardsDoNotMatch() throws {
        // *.sni.test covers one label: not a.b.sni.test.
        let (client, _) = try failure(server: TestCertificates.shared().sni, serverName: "a.b.sni.test")
        #expect(client.description == "tls handshake: certificate verify failed (hostname mismatch)")
    }

    @Test func withoutHostnameVerificationTheNameIsNotChecked() throws {
        let pair = try EnginePair(client: Configurations.client(verification: .noHostnameVerification), serverName: "localhost",
                                  server: Configurations.server(TestCertificates.shared().wrongName))
        #expect(try pair.handshake().client.peerSubject == "CN=wrong.example")
        // The chain still is.
        let (client, _) = try failure(server: TestCertificates.shared().selfSigned, serverName: "localhost",
                                      verification: .noHostnameVerification)
        #expect(client.description == "tls handshake: certificate verify failed (self-signed certificate)")
    }

    @Test func withoutVerificationNothingIsCheckedOrReported() throws {
        let pair = try EnginePair(client: Configurations.client(verification: .none), serverName: "wrong.example",
                                  server: Configurations.server(TestCertificates.shared().selfSigned))
        #expect(try pair.handshake().client.peerSubject == nil)
    }
}
#endif
