// Names without blocking the loop, against a real DNS server of the test's
// own (Debian's dnsmasq on a loopback port, answering from a generated
// hosts file): A only, AAAA only, both, NXDOMAIN, a server that never
// answers, /etc/hosts; and Happy Eyeballs over the answers.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// dnsmasq on 127.0.0.1:port, answering for `*.test` from a hosts file and NXDOMAIN for other `.test` names.
final class TestDNS {
    let port: UInt16
    let child: ChildProcess
    private let directory: URL

    init(hosts: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("hosts")
        try hosts.write(to: file, atomically: true, encoding: .utf8)
        // dnsmasq binds the port for UDP and TCP; a port taken for either
        // makes it exit with status 2, so pick one free for both, and retry.
        var attempt = 0
        var started: (UInt16, ChildProcess)?
        while started == nil && attempt < 5 {
            attempt += 1
            started = try TestDNS.start(hosts: file, directory: directory)
        }
        guard let started else { throw TestFailure("dnsmasq did not start in 5 attempts") }
        (port, child) = started
    }

    /// One try: dnsmasq on a fresh port, or nil when the port was taken meanwhile.
    private static func start(hosts file: URL, directory: URL) throws -> (UInt16, ChildProcess)? {
        let port = try freeUDPPort()
        let child = try ChildProcess(executable: try Executables.tool("dnsmasq"), arguments: [
            "-d", "-p", "\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--addn-hosts=\(file.path)", "--local=/test/", "--pid-file=\(directory.appendingPathComponent("pid").path)",
            "--user=root",
        ], standardError: .file)
        // dnsmasq logs "started" on stderr once its sockets are bound (probing
        // the port with a bind of our own could make dnsmasq's fail).
        var log = ""
        let started = eventually(within: .seconds(20)) {
            log += child.readStandardError(within: .milliseconds(100))
            return log.contains("started") || !child.process.isRunning
        }
        guard started, child.process.isRunning else {
            if !child.process.isRunning && child.process.terminationStatus == 2 { return nil }  // the port was taken
            throw TestFailure("dnsmasq did not start (status \(child.process.isRunning ? 0 : child.process.terminationStatus)): \(log)")
        }
        return (port, child)
    }

    var server: String { "127.0.0.1:\(port)" }

    deinit {
        child.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A port nobody uses now for TCP (bound and released; TestDNS retries if UDP turns out taken).
func freeUDPPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { throw TestFailure("no free UDP port") }
    return UInt16(bigEndian: address.sin_port)
}

/// Runs `body` on a runtime of `backend` whose resolver asks `servers`, until `body`'s work calls `done`.
func withResolvingRuntime(_ backend: Backend, servers: [String]?, timeout: Duration = .seconds(2),
                          _ body: @escaping (Context, @escaping () -> Void) -> Void) throws {
    struct Run: PollerVisitor {
        let servers: [String]?, timeout: Duration
        let body: (Context, @escaping () -> Void) -> Void
        func visit<P: Poller>(_ type: P.Type) throws {
            var options = RuntimeOptions()
            options.resolver = ResolverConfiguration(servers: servers, timeout: timeout, tries: 1)
            let runtime = try Runtime<P, LoggingService>(service: LoggingService(), options: options)
            let context = runtime.context
            body(context) { context.stop() }
            try runtime.run()
        }
    }
    try backend.visit(Run(servers: servers, timeout: timeout, body: body))
}

@Suite("Name resolution", .serialized, .enabled(if: Executables.find("dnsmasq") != nil, "dnsmasq is not installed"))
struct NameResolutionTests {
    static let hosts = """
        127.0.0.1 a-only.test
        ::1 aaaa-only.test
        ::1 both.test
        127.0.0.1 both.test
        """

    @Test("A only, AAAA only, both (IPv6 first), NXDOMAIN, and /etc/hosts", arguments: Backend.built)
    func answers(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        var results: [String: String] = [:]
        try withResolvingRuntime(backend, servers: [dns.server]) { context, done in
            let names = ["a-only.test", "aaaa-only.test", "both.test", "missing.test"]
            var left = names.count
            for name in names {
                context.resolver.resolve(name, port: 80) { result in
                    switch result {
                    case .success(let addresses): results[name] = addresses.map(\.description).joined(separator: " ")
                    case .failure(let error): results[name] = "\(error)"
                    }
                    left -= 1
                    if left == 0 { done() }
                }
            }
        }
        #expect(results["a-only.test"] == "127.0.0.1:80")
        #expect(results["aaaa-only.test"] == "[::1]:80")
        #expect(results["both.test"] == "[::1]:80 127.0.0.1:80")
        #expect(results["missing.test"] == "resolve(missing.test): no such host (NXDOMAIN)")

        var localhost = ""
        try withResolvingRuntime(backend, servers: nil) { context, done in
            context.resolver.resolve("localhost", port: 7) { result in
                localhost = (try? result.get().map(\.description).joined(separator: " ")) ?? "\(result)"
                done()
            }
        }
        #expect(localhost.contains("127.0.0.1:7"), "/etc/hosts's localhost: \(localhost)")
    }

    @Test("a DNS server that never answers: the lookup times out, saying after how long and which servers", arguments: Backend.built)
    func silentServer(_ backend: Backend) throws {
        // A bound UDP socket that never reads: queries vanish.
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        let server = "127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        var outcome = ""
        let started = ContinuousClock.now
        try withResolvingRuntime(backend, servers: [server], timeout: .milliseconds(600)) { context, done in
            context.resolver.resolve("db.test", port: 6379) { result in
                outcome = "\(result)"
                done()
            }
        }
        #expect(outcome.contains("resolve(db.test): timed out after 0.6 seconds (servers \(server))"), "\(outcome)")
        #expect(elapsed(since: started) < .seconds(5))
    }

    @Test("Happy Eyeballs: IPv6 refuses, IPv4 answers; and every address refusing is one error naming each",
          arguments: Backend.built)
    func happyEyeballs(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        // Something listens on 127.0.0.1:P only; [::1]:P refuses.
        let listener = try connectableIPv4Listener()
        defer { close(listener.fd) }
        var connectedTo = ""
        var refused = ""
        try withResolvingRuntime(backend, servers: [dns.server]) { context, done in
            context.connect(host: "both.test", port: listener.port) { result in
                switch result {
                case .success(let stream):
                    connectedTo = (try? stream.peerAddress().description) ?? "?"
                    stream.close()
                case .failure(let error):
                    connectedTo = "\(error)"
                }
                // Nothing listens on port 9 anywhere: both addresses refuse.
                context.connect(host: "both.test", port: 9) { result in
                    refused = "\(result)"
                    done()
                }
            }
        }
        #expect(connectedTo == "127.0.0.1:\(listener.port)")
        #expect(refused.contains("connect(both.test:9): every address failed: [::1]:9 ECONNREFUSED (Connection refused), 127.0.0.1:9 ECONNREFUSED (Connection refused)"), "\(refused)")
    }

    @Test("1,000 resolutions in flight on one runtime all answer", arguments: Backend.built)
    func thousandInFlight(_ backend: Backend) throws {
        let dns = try TestDNS(hosts: Self.hosts)
        var answered = 0
        var failures: [String] = []
        try withResolvingRuntime(backend, servers: [dns.server], timeout: .seconds(5)) { context, done in
            for index in 0..<1000 {
                context.resolver.resolve(index % 2 == 0 ? "a-only.test" : "both.test", port: 1) { result in
                    if case .failure(let error) = result { failures.append("\(error)") } else { answered += 1 }
                    if answered + failures.count == 1000 { done() }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(answered == 1000)
    }
}

/// A TCP listener on 127.0.0.1 with a free port (accepts nothing; the kernel completes handshakes into its backlog).
func connectableIPv4Listener() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok, listen(fd, 16) == 0 else { throw TestFailure("listener: errno \(errno)") }
    return (fd, UInt16(bigEndian: address.sin_port))
}
