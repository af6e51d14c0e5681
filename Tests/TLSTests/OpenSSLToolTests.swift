// The engines against OpenSSL's own tools over real loopback sockets: as a
// client of `openssl s_server`, as a server for `openssl s_client`.
#if canImport(CReactorTLS)
import Foundation
import ReactorTLS
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `openssl s_server` on a free port (it prints `ACCEPT 127.0.0.1:PORT`).
private func startServer(_ certificate: TLSCertificateFiles, _ extra: [String]) throws -> (ChildProcess, UInt16) {
    let server = try ChildProcess(executable: try Executables.tool("openssl"),
                                  arguments: ["s_server", "-accept", "127.0.0.1:0", "-cert", certificate.chain,
                                              "-key", certificate.privateKey] + extra,
                                  standardError: .file)
    do {
        while true {
            let line = try readLine(server.standardOutput, timeout: .seconds(10))
            if line.hasPrefix("ACCEPT 127.0.0.1:"), let port = UInt16(line.dropFirst("ACCEPT 127.0.0.1:".count)) {
                return (server, port)
            }
        }
    } catch {
        server.stop()
        throw TestFailure("s_server did not start: \(error); stderr: \(server.readStandardError())")
    }
}

/// A verifying client engine connected to 127.0.0.1:`port`.
private func connect(_ configuration: TLSConfiguration, port: UInt16, name: String = "localhost") throws -> SocketTLS {
    SocketTLS(engine: try TLSEngine(configuration: configuration, serverName: name), fd: try connectToLoopback(port: port))
}

@Suite struct OpenSSLToolTests {
    @Test func clientAgainstSServer() throws {
        let certificates = try TestCertificates.shared()
        let (server, port) = try startServer(certificates.server, ["-rev", "-naccept", "1", "-alpn", "h2,http/1.1"])
        defer { server.stop() }
        let connection = try connect(Configurations.client(protocols: ["http/1.1"]), port: port)
        let info = try connection.handshake()
        #expect(info.version == .tls13)
        #expect(info.applicationProtocol == "http/1.1")
        #expect(info.peerSubject == "O=Reactor Test,CN=localhost")
        try connection.send("hello over tls\n")
        try connection.read { $0.contains(UInt8(ascii: "\n")) }
        #expect(connection.text == "slt revo olleh\n")  // -rev answers each line reversed
        #expect(try connection.engine.close() == .awaitingPeer)
        try connection.flush()
        // s_server -naccept 1 ends once our close_notify closes the connection.
        #expect(server.waitForExit(timeout: .seconds(5)) == 0)
        #expect(server.readStandardError().contains("CONNECTION CLOSED"))
    }

    @Test func tls12AgainstSServerResumesWithATicket() throws {
        let certificates = try TestCertificates.shared()
        let (server, port) = try startServer(certificates.ecdsa, ["-rev", "-naccept", "2", "-tls1_2"])
        defer { server.stop() }
        let configuration = try Configurations.client()
        for attempt in 0..<2 {
            let connection = try connect(configuration, port: port)
            let info = try connection.handshake()
            #expect(info.version == .tls12)
            #expect(info.cipher.hasPrefix("ECDHE-ECDSA-"))
            #expect(info.resumed == (attempt == 1))
            try connection.send("ab\n")
            try connection.read { $0.contains(UInt8(ascii: "\n")) }
            #expect(connection.text == "ba\n")
            _ = try connection.engine.close()
            try connection.flush()
        }
        #expect(server.waitForExit(timeout: .seconds(5)) == 0)
    }

    @Test(arguments: ["selfSigned", "expired", "wrongName"])
    func clientRefusesAnUntrustedSServer(_ which: String) throws {
        let certificates = try TestCertificates.shared()
        let (files, reason) = switch which {
        case "selfSigned": (certificates.selfSigned, "self-signed certificate")
        case "expired": (certificates.expired, "certificate has expired")
        default: (certificates.wrongName, "hostname mismatch")
        }
        let (server, port) = try startServer(files, ["-rev", "-naccept", "1"])
        defer { server.stop() }
        let connection = try connect(Configurations.client(), port: port)
        #expect(throws: TLSError(.verification, operation: "tls handshake", reason: "certificate verify failed (\(reason))")) {
            _ = try connection.handshake()
        }
        try connection.flush()  // the alert
    }

    /// Runs s_client against one connection served by an engine; returns
    /// the s_client child and the served connection (or the server's error).
    private func serveSClient(_ configuration: TLSConfiguration, clientArguments: [String], input: String,
                              serve: (SocketTLS) throws -> Void) throws -> (status: Int32?, output: String, errors: String) {
        let listener = try LoopbackListener()
        let stdin = try temporaryFile(Array(input.utf8))
        defer { try? FileManager.default.removeItem(at: stdin) }
        let client = try ChildProcess(executable: try Executables.tool("openssl"),
                                      arguments: ["s_client", "-connect", "127.0.0.1:\(listener.port)"] + clientArguments,
                                      standardInput: try FileHandle(forReadingFrom: stdin), standardError: .file)
        defer { client.stop() }
        let connection = SocketTLS(engine: try TLSEngine(configuration: configuration), fd: try listener.accept())
        try serve(connection)
        var output: [UInt8] = []
        try? readToEnd(client.standardOutput, timeout: .seconds(5), into: &output)
        return (client.waitForExit(timeout: .seconds(5)), String(decoding: output, as: UTF8.self), client.readStandardError())
    }

    @Test func serverForSClient() throws {
        let certificates = try TestCertificates.shared()
        var serverInfo: TLSHandshakeInfo?
        var request = ""
        let result = try serveSClient(Configurations.server(protocols: ["http/1.1"]),
                                      clientArguments: ["-CAfile", certificates.caCertificate, "-verify_return_error",
                                                        "-servername", "localhost", "-verify_hostname", "localhost",
                                                        "-alpn", "h2,http/1.1", "-ign_eof"],
                                      input: "ping\n") { connection in
            serverInfo = try connection.handshake()
            try connection.read { $0.contains(UInt8(ascii: "\n")) }
            request = connection.text
            try connection.send("pong\n")
            #expect(try connection.engine.close() == .awaitingPeer)
            try connection.flush()
            try connection.readToClose()  // s_client answers our close_notify with its own
            #expect(connection.peerClosed)
        }
        #expect(request == "ping\n")
        #expect(serverInfo?.serverName == "localhost")
        #expect(serverInfo?.applicationProtocol == "http/1.1")
        #expect(result.status == 0)
        #expect(result.output.contains("pong\n"))
        #expect(result.output.contains("ALPN protocol: http/1.1"))
        #expect(result.output.contains("Verify return code: 0 (ok)"))
    }

    @Test func serverForATLS12SClientWithECDSA() throws {
        let certificates = try TestCertificates.shared()
        var version: TLSVersion?
        let result = try serveSClient(Configurations.server(certificates.ecdsa),
                                      clientArguments: ["-CAfile", certificates.caCertificate, "-verify_return_error",
                                                        "-tls1_2", "-ign_eof"],
                                      input: "x\n") { connection in
            version = try connection.handshake().version
            try connection.read { $0.contains(UInt8(ascii: "\n")) }
            try connection.send("y\n")
            _ = try connection.engine.close()
            try connection.flush()
        }
        #expect(version == .tls12)
        #expect(result.output.contains("Cipher    : ECDHE-ECDSA-"))
        #expect(result.output.contains("y\n"))
    }

    @Test func tls11SClientIsRefused() throws {
        var error: TLSError?
        // OpenSSL 3 allows TLS 1.1 only at security level 0, so s_client
        // really offers it (and only it).
        let result = try serveSClient(Configurations.server(), clientArguments: ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                                      input: "") { connection in
            do {
                _ = try connection.handshake()
            } catch let failure as TLSError {
                error = failure
                try connection.flush()  // the protocol_version alert
            }
        }
        #expect(error == TLSError(.handshake, operation: "tls handshake", reason: "unsupported protocol"))
        #expect(result.status != 0)
        #expect(result.errors.contains("alert protocol version"))
    }
}
#endif
