// kv serving TLS beside plain (--tls-cert, --tls-key, --tls-port), on every
// backend, with the unmodified redis-cli --tls: every command the plain
// redis-cli tests use answers the same on both ports of one server.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

@Suite("kv over TLS: redis-cli --tls", .enabled(if: TLSLibrary.isBuilt))
struct KVTLSTests {
    /// redis-cli's TLS arguments for `port`, verifying the server as localhost.
    private func tlsArguments(_ port: UInt16) throws -> [String] {
        ["--tls", "--cacert", try TestCertificates.shared().caCertificate, "--sni", "localhost", "-p", "\(port)"]
    }

    @Test("the whole redis-cli session prints the same on the TLS port as on the plain one", arguments: Backend.underTest)
    func everyCommand(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, extraArguments: try TestCertificates.shared().serverArguments())
        defer { server.stop() }
        let tlsPort = try #require(server.tlsPort)
        let input = try temporaryFile(Array((KVCliTests.session.map(\.command).joined(separator: "\n") + "\n").utf8))
        defer { try? FileManager.default.removeItem(at: input) }
        // The session starts with FLUSHALL, so each run sees the same keys.
        let plain = try runTool("redis-cli", ["-p", "\(server.port)", "--no-raw"], input: input)
        let secure = try runTool("redis-cli", try tlsArguments(tlsPort) + ["--no-raw"], input: input)
        #expect(plain.status == 0, "redis-cli failed: \(plain.errorOutput)")
        #expect(secure.status == 0, "redis-cli --tls failed: \(secure.errorOutput)")
        let expected = KVCliTests.session.flatMap(\.output).map { $0 + "\n" }.joined()
        #expect(plain.output.replacingOccurrences(of: "\r", with: "") == expected)
        #expect(secure.output == plain.output, "over TLS:\n\(secure.output)\nplain:\n\(plain.output)")
        #expect(server.stop() == nil, "kv did not exit cleanly on SIGTERM")
    }

    @Test("commands as redis-cli --tls arguments, as the plain tests give them", arguments: Backend.underTest)
    func commandLine(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, extraArguments: try TestCertificates.shared().serverArguments())
        defer { server.stop() }
        let prefix = try tlsArguments(try #require(server.tlsPort))
        func cli(_ arguments: String...) throws -> String {
            let result = try runTool("redis-cli", prefix + arguments)
            #expect(result.status == 0, "redis-cli --tls \(arguments): \(result.errorOutput)")
            return result.output
        }
        #expect(try cli("SET", "name", "kv server") == "OK\n")
        #expect(try cli("GET", "name") == "kv server\n")
        #expect(try cli("--no-raw", "GET", "name") == "\"kv server\"\n")
        #expect(try cli("INCRBY", "n", "5") == "5\n")
        #expect(try cli("MGET", "name", "n", "none") == "kv server\n5\n\n")
        #expect(try cli("--no-raw", "COMMAND", "DOCS", "get") .contains("\"Get the value of a key\""))
        #expect(try cli("PING") == "PONG\n")
        // One database behind both ports.
        let plain = try runTool("redis-cli", ["-p", "\(server.port)", "GET", "name"])
        #expect(plain.output == "kv server\n")
    }

    @Test("redis-cli --tls --pipe loads 10,000 keys on two runtimes", arguments: Backend.underTest)
    func pipeMode(backend: Backend) throws {
        let server = try KVTestServer(backend: backend, threads: 2, extraArguments: try TestCertificates.shared().serverArguments())
        defer { server.stop() }
        var bytes: [UInt8] = []
        for index in 0..<10_000 {
            bytes += kvCommand("SET", "key:\(index)", "value:\(index)")
        }
        let input = try temporaryFile(bytes)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try runTool("redis-cli", try tlsArguments(try #require(server.tlsPort)) + ["--pipe"], input: input)
        #expect(result.status == 0, "redis-cli --tls --pipe failed: \(result.output) \(result.errorOutput)")
        #expect(result.output.contains("errors: 0, replies: 10000"), "\(result.output)")
        let client = try KVClient(port: server.port)
        #expect(try client.call("DBSIZE") == ":10000\r\n")
        #expect(try client.call("GET", "key:9999") == "$10\r\nvalue:9999\r\n")
    }

    @Test("redis-cli --tls refuses a kv whose certificate it cannot verify")
    func untrustedServer() throws {
        let certificates = try TestCertificates.shared()
        let server = try KVTestServer(backend: Backend.underTest[0], extraArguments: certificates.serverArguments(certificates.selfSigned))
        defer { server.stop() }
        let result = try runTool("redis-cli", try tlsArguments(try #require(server.tlsPort)) + ["PING"])
        #expect(result.status != 0)
        #expect((result.output + result.errorOutput).contains("certificate verify failed"), "\(result.output) \(result.errorOutput)")
    }
}
