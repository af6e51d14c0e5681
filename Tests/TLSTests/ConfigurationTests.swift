// Configurations that cannot be made say which file and why; engines
// refuse settings that make no sense for their side.
#if canImport(CReactorTLS)
import Foundation
import ReactorTLS
import ReactorTestSupport
import Testing

@Suite struct ConfigurationTests {
    private func serverError(_ files: TLSCertificateFiles) -> TLSError? {
        do {
            _ = try TLSConfiguration(server: TLSServerOptions(certificate: files))
            return nil
        } catch {
            return error
        }
    }

    @Test func missingAndBadFilesAreNamedWithOpenSSLsReason() throws {
        let certificates = try TestCertificates.shared()
        let garbage = "\(certificates.directory)/garbage.pem"
        try "hello\n".write(toFile: garbage, atomically: true, encoding: .utf8)

        let missing = serverError(TLSCertificateFiles(chain: "/nonexistent/x.pem", privateKey: certificates.server.privateKey))
        #expect(missing?.description == "tls config: cannot read certificate chain /nonexistent/x.pem: No such file or directory")
        #expect(missing?.kind == .configuration)

        let bad = serverError(TLSCertificateFiles(chain: garbage, privateKey: certificates.server.privateKey))
        #expect(bad?.description == "tls config: cannot read certificate chain \(garbage): no start line (Expecting: TRUSTED CERTIFICATE)")

        let noKey = serverError(TLSCertificateFiles(chain: certificates.server.chain, privateKey: "/nonexistent/k.pem"))
        #expect(noKey?.description == "tls config: cannot use private key /nonexistent/k.pem: No such file or directory")

        let mismatch = serverError(TLSCertificateFiles(chain: certificates.ecdsa.chain, privateKey: certificates.expired.privateKey))
        #expect(mismatch?.description == "tls config: cannot use private key \(certificates.expired.privateKey): key values mismatch")

        #expect(throws: TLSError(.configuration, operation: "tls config",
                                 reason: "cannot read CA certificates /nonexistent/ca.pem: No such file or directory")) {
            try TLSConfiguration(client: TLSClientOptions(trustRoots: .file("/nonexistent/ca.pem")))
        }
        #expect(throws: TLSError(.configuration, operation: "tls config",
                                 reason: "cannot read CA certificates \(garbage): no certificate or crl found")) {
            try TLSConfiguration(client: TLSClientOptions(trustRoots: .file(garbage)))
        }
    }

    @Test func aBadNameForSNIIsNamed() throws {
        let certificates = try TestCertificates.shared()
        let options = TLSServerOptions(certificate: certificates.server,
                                       certificatesByName: ["a.test": TLSCertificateFiles(chain: "/nonexistent/a.pem", privateKey: "/x")])
        #expect(throws: TLSError(.configuration, operation: "tls config",
                                 reason: "cannot read certificate chain /nonexistent/a.pem for server name a.test: No such file or directory")) {
            try TLSConfiguration(server: options)
        }
    }

    @Test func applicationProtocolNamesMustFitALPN() throws {
        #expect(throws: TLSError(.configuration, operation: "tls config", reason: "application protocol '' must be 1 to 255 bytes long")) {
            try TLSConfiguration(client: TLSClientOptions(applicationProtocols: ["http/1.1", ""]))
        }
    }

    @Test func enginesRefuseNamesThatMakeNoSense() throws {
        #expect(throws: TLSError(.misuse, operation: "tls engine",
                                 reason: "full verification needs the server's name (or verification .noHostnameVerification)")) {
            try TLSEngine(configuration: Configurations.client())
        }
        #expect(throws: TLSError(.misuse, operation: "tls engine",
                                 reason: "a server engine takes no server name (it learns the client's from SNI)")) {
            try TLSEngine(configuration: Configurations.server(), serverName: "localhost")
        }
        // Without hostname checks, no name is needed.
        _ = try TLSEngine(configuration: Configurations.client(verification: .noHostnameVerification))
    }

    @Test func systemTrustRootsLoad() throws {
        let configuration = try TLSConfiguration(client: TLSClientOptions())
        #expect(configuration.role == .client && configuration.verification == .full)
        #expect(TLSLibrary.isBuilt)
        #expect(TLSLibrary.version.hasPrefix("OpenSSL 3."))
    }
}
#endif
