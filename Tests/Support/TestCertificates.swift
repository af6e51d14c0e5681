// Certificates made at test time with the openssl command, once per test
// process, in a temporary directory removed at exit: no private key is
// ever committed. A CA and, signed by it, certificates for localhost and
// 127.0.0.1 (RSA and ECDSA P-256), an expired one, one for the wrong name,
// one for SNI (sni.test and *.sni.test); and a self-signed one no CA vouches for.
import Foundation
import ReactorTLS

/// The paths of every generated certificate and key.
public struct TestCertificates: Sendable {
    /// The directory holding them all.
    public let directory: String
    /// The CA every certificate except ``selfSigned`` is signed by.
    public let caCertificate: String
    /// RSA 2048, CN=localhost, for localhost and 127.0.0.1.
    public let server: TLSCertificateFiles
    /// ECDSA P-256, for localhost and 127.0.0.1.
    public let ecdsa: TLSCertificateFiles
    /// For localhost and 127.0.0.1, but its validity ended yesterday.
    public let expired: TLSCertificateFiles
    /// For wrong.example only.
    public let wrongName: TLSCertificateFiles
    /// For sni.test and *.sni.test.
    public let sni: TLSCertificateFiles
    /// For localhost, signed by itself.
    public let selfSigned: TLSCertificateFiles

    /// The set, made on first use; every test shares it.
    public static func shared() throws -> TestCertificates { try made.get() }

    private static let made: Result<TestCertificates, any Error> = Result { try make() }

    private static let directoryPath = FileManager.default.temporaryDirectory
        .appendingPathComponent("reactor-tls-\(getpid())-\(UUID().uuidString)").path

    private static func make() throws -> TestCertificates {
        let directory = directoryPath
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: TestCertificates.directoryPath) }
        let config = "\(directory)/openssl.cnf"
        try opensslConfig.write(toFile: config, atomically: true, encoding: .utf8)
        func path(_ name: String) -> String { "\(directory)/\(name)" }

        try openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "30",
                     "-subj", "/CN=Reactor Test CA", "-config", config, "-extensions", "ca"])
        var serial = 1
        /// A key (`newkey` as openssl req takes it) and a certificate signed by the CA.
        func leaf(_ name: String, subject: String, extensions: String, days: Int = 30,
                  newkey: [String] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]) throws -> TLSCertificateFiles {
            serial += 1
            try openssl(["req", "-new"] + newkey + ["-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).csr"),
                         "-subj", subject, "-config", config])
            try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                         "-set_serial", "\(serial)", "-days", "\(days)", "-out", path("\(name).pem"),
                         "-extfile", config, "-extensions", extensions])
            return TLSCertificateFiles(chain: path("\(name).pem"), privateKey: path("\(name).key"))
        }
        let server = try leaf("server", subject: "/CN=localhost/O=Reactor Test", extensions: "localhost",
                              newkey: ["-newkey", "rsa:2048"])
        let ecdsa = try leaf("ecdsa", subject: "/CN=localhost/O=Reactor ECDSA", extensions: "localhost")
        let expired = try leaf("expired", subject: "/CN=localhost/O=Reactor Expired", extensions: "localhost", days: -1)
        let wrongName = try leaf("wrong", subject: "/CN=wrong.example", extensions: "wrong")
        let sni = try leaf("sni", subject: "/CN=sni.test", extensions: "sni")
        try openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", path("self.key"), "-out", path("self.pem"), "-days", "30",
                     "-subj", "/CN=localhost", "-config", config, "-extensions", "localhost"])
        return TestCertificates(directory: directory, caCertificate: path("ca.pem"), server: server, ecdsa: ecdsa,
                                expired: expired, wrongName: wrongName, sni: sni,
                                selfSigned: TLSCertificateFiles(chain: path("self.pem"), privateKey: path("self.key")))
    }

    /// Runs the openssl command, failing with its standard error if it fails.
    private static func openssl(_ arguments: [String]) throws {
        let result = try runTool("openssl", arguments, timeout: .seconds(20))
        guard result.status == 0 else {
            throw TestFailure("openssl \(arguments.joined(separator: " ")) exited \(result.status): \(result.errorOutput)")
        }
    }

    private static let opensslConfig = """
        [req]
        distinguished_name = dn
        [dn]
        [ca]
        basicConstraints = critical,CA:TRUE
        keyUsage = critical,keyCertSign,cRLSign
        subjectKeyIdentifier = hash
        [localhost]
        basicConstraints = CA:FALSE
        keyUsage = critical,digitalSignature,keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost,IP:127.0.0.1
        [wrong]
        basicConstraints = CA:FALSE
        keyUsage = critical,digitalSignature,keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:wrong.example
        [sni]
        basicConstraints = CA:FALSE
        keyUsage = critical,digitalSignature,keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:sni.test,DNS:*.sni.test

        """
}
