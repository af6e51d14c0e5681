// RedisClient over TLS (ConnectOptions.tls), on every backend, against
// redis-server --tls-port and the kv example's --tls-port: every reply type,
// 10,000 pipelined commands in order, and a server the client cannot verify.
import Foundation
import ProtocolRESP
import Reactor
import ReactorTestSupport
import Testing

/// A TLS server of either kind on a free port, with the test certificate for localhost and 127.0.0.1.
private struct TLSRESPServer {
    let port: UInt16
    let stop: () -> Void

    init(_ kind: String, backend: Backend) throws {
        let certificates = try TestCertificates.shared()
        if kind == "redis-server" {
            let redis = try TLSRedisServer(certificate: certificates.server, ca: certificates.caCertificate)
            port = redis.port
            stop = { redis.stop() }
        } else {
            let kv = try KVTestServer(backend: backend, extraArguments: certificates.serverArguments())
            port = try #require(kv.tlsPort)
            stop = { kv.stop() }
        }
    }
}

/// A client's options for TLS trusting the CA in `trust` (the test CA by default).
private func tlsOptions(trust: String? = nil) throws -> RedisClientOptions {
    let ca = try trust ?? TestCertificates.shared().caCertificate
    let configuration = try TLSConfiguration(client: TLSClientOptions(trustRoots: .file(ca)))
    return RedisClientOptions(connect: ConnectOptions(timeout: .seconds(5), tls: StreamTLSOptions(configuration: configuration)))
}

@Suite("RESP client over TLS against redis-server --tls-port and kv --tls-port", .enabled(if: TLSLibrary.isBuilt))
struct RESPTLSTests {
    @Test("every reply type over a verified connection", arguments: Backend.underTest, ["redis-server", "kv"])
    func basicCommands(backend: Backend, server: String) throws {
        let tls = try TLSRESPServer(server, backend: backend)
        defer { tls.stop() }
        let options = try tlsOptions()
        var results: [Result<RESPValue, RedisError>] = []
        var connects: UInt64 = 0
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(30)) { scenario, context in
            // By name: the certificate is checked against "localhost".
            let client = RedisClient(host: "localhost", port: tls.port, options: options)
            try! client.start(context: context)
            client.sendAll(RESPClientTests.basics.map(\.0)) { all in
                results = all
                connects = client.counters.connects
                client.close()
                scenario.finish()
            }
        }
        #expect(finished)
        #expect(results.map(\.text) == RESPClientTests.basics.map(\.1))
        #expect(connects == 1)
    }

    @Test("10,000 pipelined commands over TLS are all answered, in order", arguments: Backend.underTest, ["redis-server", "kv"])
    func pipelined(backend: Backend, server: String) throws {
        let tls = try TLSRESPServer(server, backend: backend)
        defer { tls.stop() }
        let options = try tlsOptions()
        let count = 10_000
        var answered = 0
        var outOfOrder: [String] = []
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(60)) { scenario, context in
            // By address: the certificate is checked against the IP address.
            let client = RedisClient(host: "127.0.0.1", port: tls.port, options: options)
            try! client.start(context: context)
            for i in 1...count {
                client.send(["INCR", "counter"]) { result in
                    answered += 1
                    if case .success(.integer(let value)) = result, value == Int64(i) {} else if outOfOrder.count < 5 {
                        outOfOrder.append("command \(i): \(result.text)")
                    }
                    if answered == count {
                        client.close()
                        scenario.finish()
                    }
                }
            }
        }
        #expect(finished, "\(answered) of \(count) answered before the deadline")
        #expect(answered == count)
        #expect(outOfOrder.isEmpty, "\(outOfOrder)")
    }

    @Test("a server signed by another CA: the connection is not made, and commands fail with OpenSSL's reason",
          arguments: Backend.underTest, ["redis-server", "kv"])
    func wrongCA(backend: Backend, server: String) throws {
        let tls = try TLSRESPServer(server, backend: backend)
        defer { tls.stop() }
        // The "CA" trusted is a self-signed certificate that signed nothing the server has.
        let options = try tlsOptions(trust: TestCertificates.shared().selfSigned.chain)
        var waiting: String?
        var later: String?
        var state: RedisClient.State?
        var connects: UInt64 = 99
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(30)) { scenario, context in
            let client = RedisClient(host: "localhost", port: tls.port, options: options)
            try! client.start(context: context)
            client.send(["PING"]) { result in
                waiting = result.text
                state = client.state
                client.send(["GET", "k"]) { result in
                    later = result.text
                    connects = client.counters.connects
                    client.close()
                    scenario.finish()
                }
            }
        }
        #expect(finished)
        // redis-server sends its CA with its certificate (--tls-ca-cert-file); kv sends the certificate alone.
        let reason = server == "redis-server" ? "self-signed certificate in certificate chain" : "unable to get local issuer certificate"
        let handshake = try #require(waiting, "no reply")
        #expect(handshake.hasPrefix("failure: redis PING: not connected: tls handshake(") && handshake.hasSuffix("certificate verify failed (\(reason))"),
                "\(handshake)")
        #expect(state == .waitingToReconnect)
        #expect(later?.hasPrefix("failure: redis GET k: not connected: localhost:\(tls.port) is unreachable (tls handshake(") == true
                && later?.hasSuffix("certificate verify failed (\(reason))); retrying") == true, "\(later ?? "no reply")")
        #expect(connects == 0, "a connection whose handshake failed was counted as made")
    }
}
