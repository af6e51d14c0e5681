// What the TLS rows need before any server starts: a CA and an ECDSA P-256
// server certificate made with the openssl command in a temporary directory
// (removed when the run ends; no key is ever committed), nginx's generated
// configuration, and whether our executables take `--tls-cert` yet.
import Foundation
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A CA and a server certificate signed by it, for `localhost` and
/// `127.0.0.1`, both ECDSA P-256, in a directory of their own.
struct BenchCertificates {
    /// The directory holding the files (and nginx's configuration and logs).
    let directory: String
    /// The CA certificate: what redis-benchmark and our TLS client trust.
    let ca: String
    /// The server's certificate (PEM) and private key (PEM, unencrypted).
    let certificate: String
    let key: String

    /// Makes a fresh set with `openssl` (about 50 ms).
    static func make() throws -> BenchCertificates {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("reactor-bench-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let made = BenchCertificates(directory: directory, ca: "\(directory)/ca.pem",
                                     certificate: "\(directory)/server.pem", key: "\(directory)/server.key")
        do {
            let config = "\(directory)/openssl.cnf"
            try """
                [req]
                distinguished_name = dn
                [dn]
                [ca]
                basicConstraints = critical,CA:TRUE
                keyUsage = critical,keyCertSign,cRLSign
                [server]
                basicConstraints = CA:FALSE
                keyUsage = critical,digitalSignature
                extendedKeyUsage = serverAuth
                subjectAltName = DNS:localhost,IP:127.0.0.1

                """.write(toFile: config, atomically: true, encoding: .utf8)
            let p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            try openssl(["req", "-x509", "-new"] + p256 + ["-keyout", "\(directory)/ca.key", "-out", made.ca, "-days", "2",
                         "-subj", "/CN=reactor-bench CA", "-config", config, "-extensions", "ca"])
            try openssl(["req", "-new"] + p256 + ["-keyout", made.key, "-out", "\(directory)/server.csr",
                         "-subj", "/CN=localhost", "-config", config])
            try openssl(["x509", "-req", "-in", "\(directory)/server.csr", "-CA", made.ca, "-CAkey", "\(directory)/ca.key",
                         "-set_serial", "2", "-days", "2", "-out", made.certificate, "-extfile", config, "-extensions", "server"])
        } catch {
            made.remove()
            throw error
        }
        return made
    }

    /// Deletes the directory and everything in it.
    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func openssl(_ arguments: [String]) throws {
        do {
            _ = try runTool(try tool("openssl"), arguments, cpu: nil, timeout: .seconds(30))
        } catch {
            throw BenchError("making the benchmark's certificates: openssl \(arguments.prefix(2).joined(separator: " ")): \(error)")
        }
    }
}

/// nginx with TLS, configured to answer as our `http` greeting does: one
/// process (`master_process off`), pid, logs and temporary files in the
/// certificates' directory, keep-alive without a request limit (wrk's
/// connections are never recycled mid-run, as with the other servers),
/// TLS 1.2 and 1.3 (1.22's default lacks 1.3).
enum NginxConfig {
    /// Writes `nginx-PORT.conf` for a TLS listener on 127.0.0.1:`port` and
    /// returns nginx's arguments for it.
    static func arguments(port: UInt16, certificates: BenchCertificates) throws -> [String] {
        let directory = "\(certificates.directory)/nginx-\(port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = "\(directory)/nginx.conf"
        try """
            daemon off;
            master_process off;
            worker_processes 1;
            worker_rlimit_nofile 30000;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log warn;
            events { worker_connections 25000; }
            http {
                access_log off;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                fastcgi_temp_path \(directory)/fastcgi;
                uwsgi_temp_path \(directory)/uwsgi;
                scgi_temp_path \(directory)/scgi;
                keepalive_requests 100000000;
                keepalive_timeout 120s;
                default_type text/plain;
                server {
                    listen 127.0.0.1:\(port) ssl;
                    # 1.22's default stops at TLS 1.2; the other servers negotiate 1.3.
                    ssl_protocols TLSv1.2 TLSv1.3;
                    ssl_certificate \(certificates.certificate);
                    ssl_certificate_key \(certificates.key);
                    location / { return 200 "\(greeting)"; }
                }
            }

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return ["-p", directory, "-c", file, "-e", "\(directory)/error.log"]
    }

    /// The `http` example's greeting body.
    static let greeting = "Hello, World!"
}

/// Whether `executable --help` lists `option`: how the bench tells an `http`
/// or `kv` built before TLS from one that serves it.
func accepts(_ executable: String, option: String) -> Bool {
    guard let help = try? runTool(executable, ["--help"], cpu: nil, timeout: .seconds(20)) else { return false }
    return help.contains(option)
}

/// What `openssl s_client` negotiates with 127.0.0.1:`port` (the protocol,
/// cipher suite and key exchange group wrk's OpenSSL is offered too), for
/// the row's note: `TLSv1.3 TLS_AES_256_GCM_SHA384 X25519`. Nil if it fails.
func negotiatedTLS(port: UInt16) -> String? {
    guard let openssl = try? tool("openssl") else { return nil }
    guard let child = try? ChildProcess(executable: URL(fileURLWithPath: openssl),
                                        arguments: ["s_client", "-connect", "127.0.0.1:\(port)", "-brief"]) else { return nil }
    guard child.waitForExit(timeout: .seconds(10)) != nil else { child.stop(); return nil }
    // -brief writes a few lines to standard error; the pipe holds them all.
    let text = child.readStandardError()
    func value(_ label: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix(label) }?.dropFirst(label.count)
            .split(separator: ",").first?.trimmingCharacters(in: .whitespaces)
    }
    guard let version = value("Protocol version:"), let cipher = value("Ciphersuite:") else { return nil }
    return [version, cipher, value("Server Temp Key:") ?? value("Negotiated TLS1.3 group:")].compactMap { $0 }.joined(separator: " ")
}
