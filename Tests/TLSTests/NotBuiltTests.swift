// Without libssl-dev at build time, TLS is compiled out: every entry point
// says so instead of the build failing. (The other suites need OpenSSL.)
#if !canImport(CReactorTLS)
import ReactorTLS
import Testing

@Suite struct NotBuiltTests {
    @Test func configurationsSayTLSIsNotBuilt() {
        #expect(!TLSLibrary.isBuilt)
        #expect(throws: TLSError.notBuilt) { try TLSConfiguration(client: TLSClientOptions()) }
        #expect(TLSError.notBuilt.description
                == "tls: not built: install libssl-dev and rebuild (apt-get install -y libssl-dev, then rm -rf .build)")
    }
}
#endif
