// A command whose deadline passes before its connection is made says what
// the connection was waiting for: a DNS server that never answers, a
// listener whose queue is full (the kernel drops the SYN), a server that
// accepts and never speaks TLS.
import Foundation
import ProtocolRESP
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("RESP client: a command that times out before the connection is made says what it waited for")
struct RESPConnectingTimeoutTests {
    /// The first failure of `GET k` sent at once by a client of `host:port`, with a 300 ms command timeout.
    static func firstFailure(_ backend: Backend, host: String, port: UInt16, options: RuntimeOptions = RuntimeOptions(),
                             connect: ConnectOptions = ConnectOptions(timeout: .seconds(20))) throws -> String {
        var outcome = "no reply"
        let finished = try RESPScenario.run(backend: backend, timeout: .seconds(30), options: options) { scenario, context in
            let client = RedisClient(host: host, port: port, options: RedisClientOptions(commandTimeout: .milliseconds(300), connect: connect))
            try! client.start(context: context)
            client.send(["GET", "k"]) { result in
                outcome = result.text
                client.close()
                scenario.finish()
            }
        }
        #expect(finished, "the scenario hung")
        return outcome
    }

    /// A TCP listener on 127.0.0.1 that never accepts (the kernel completes handshakes into its backlog).
    static func listener(backlog: Int32) throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, Glibc.listen(fd, backlog) == 0 else {
            close(fd)
            throw TestFailure("listener: errno \(errno)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    @Test("while resolving: the DNS server never answers", arguments: Backend.underTest)
    func whileResolving(_ backend: Backend) throws {
        let silent = try ScriptedDNS(.silence)
        var options = RuntimeOptions()
        options.resolver = ResolverConfiguration(servers: [silent.server], timeout: .seconds(5), tries: 1)
        let outcome = try Self.firstFailure(backend, host: "slow.test", port: 6379, options: options)
        #expect(outcome == "failure: redis GET k: no reply within 0.3 seconds while resolving slow.test")
    }

    @Test("while connecting: the listener's queue is full, so the kernel drops the SYN", arguments: Backend.underTest)
    func whileConnecting(_ backend: Backend) throws {
        // A backlog of 0 queues one connection; with it taken, the next SYN is dropped and the connect waits.
        let (listener, port) = try Self.listener(backlog: 0)
        defer { close(listener) }
        let filler = try connectToLoopback(port: port)
        defer { close(filler) }
        let outcome = try Self.firstFailure(backend, host: "127.0.0.1", port: port)
        #expect(outcome == "failure: redis GET k: no reply within 0.3 seconds while connecting to 127.0.0.1:\(port)")
    }

    @Test("during the TLS handshake: the server accepts and never answers", .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func duringHandshake(_ backend: Backend) throws {
        let listener = try Self.listener(backlog: 16)
        defer { close(listener.fd) }
        let ca = try TestCertificates.shared().caCertificate
        let tls = StreamTLSOptions(configuration: try TLSConfiguration(client: TLSClientOptions(trustRoots: .file(ca))))
        let outcome = try Self.firstFailure(backend, host: "127.0.0.1", port: listener.port,
                                            connect: ConnectOptions(timeout: .seconds(20), tls: tls))
        #expect(outcome == "failure: redis GET k: no reply within 0.3 seconds while doing the TLS handshake with 127.0.0.1:\(listener.port)")
    }
}
