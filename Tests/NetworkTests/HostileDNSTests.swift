// Names against DNS servers that fail: a SERVFAIL, a REFUSED (from a
// scripted server and from dnsmasq), a NOTIMP, each named as what it is and
// by the server that sent it; a failing server followed by a good one
// (c-ares still moves on); and a silent server under resolv.conf's
// `options timeout:1 attempts:2`, asked exactly twice.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

/// Resolves `name` once on a runtime of `backend` with `configuration`; the answer, or the error's text.
func resolveOnce(_ backend: Backend, _ name: String, configuration: ResolverConfiguration) throws -> String {
    struct Run: PollerVisitor {
        let name: String
        let configuration: ResolverConfiguration
        let outcome: Shared<String>
        func visit<P: Poller>(_ type: P.Type) throws {
            var options = RuntimeOptions()
            options.resolver = configuration
            let runtime = try Runtime<P, LoggingService>(service: LoggingService(), options: options)
            let context = runtime.context
            let outcome = outcome
            context.resolver.resolve(name, port: 53) { result in
                switch result {
                case .success(let addresses): outcome.update { $0 = addresses.map(\.description).joined(separator: " ") }
                case .failure(let error): outcome.update { $0 = "\(error)" }
                }
                context.stop()
            }
            try runtime.run()
        }
    }
    let outcome = Shared("")
    try backend.visit(Run(name: name, configuration: configuration, outcome: outcome))
    return outcome.value
}

/// A resolv.conf of the test's own, removed when the value goes.
final class TemporaryResolvConf {
    let path: String

    init(_ text: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-resolv-\(UUID().uuidString).conf").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("Names under failing DNS servers")
struct HostileDNSTests {
    /// A resolv.conf that names no reachable server: the tests give theirs in `servers`.
    static let quietResolvConf = "nameserver 127.0.0.1\noptions timeout:1 attempts:2\n"

    @Test("SERVFAIL, REFUSED and NOTIMP are each named as what they are, with the server that answered", arguments: Backend.underTest)
    func failureCodes(_ backend: Backend) throws {
        for (code, words) in [(UInt8(2), "server failure (SERVFAIL"), (5, "query refused (REFUSED"), (4, "query not implemented (NOTIMP")] {
            let dns = try ScriptedDNS(.answer(code: code))
            let outcome = try resolveOnce(backend, "db.test", configuration: ResolverConfiguration(servers: [dns.server], timeout: .seconds(5), tries: 1))
            #expect(outcome == "resolve(db.test): \(words) from \(dns.server))", "code \(code)")
            #expect(dns.queries(ofType: ScriptedDNS.typeA) >= 1, "the scripted server was never asked")
        }
        let nxdomain = try ScriptedDNS(.answer(code: 3))
        let missing = try resolveOnce(backend, "db.test", configuration: ResolverConfiguration(servers: [nxdomain.server], timeout: .seconds(5), tries: 1))
        #expect(missing == "resolve(db.test): no such host (NXDOMAIN)")
    }

    @Test("a failing first server: c-ares asks the next; when every server fails, each failure is named", arguments: Backend.underTest)
    func failingThenNext(_ backend: Backend) throws {
        let failing = try ScriptedDNS(.answer(code: 2))
        let refusing = try ScriptedDNS(.answer(code: 5))
        let both = try resolveOnce(backend, "db.test", configuration: ResolverConfiguration(servers: [failing.server, refusing.server],
                                                                                           timeout: .seconds(5), tries: 1))
        #expect(both == "resolve(db.test): server failure (SERVFAIL from \(failing.server)), query refused (REFUSED from \(refusing.server))")

        let dns = try TestDNS(hosts: "127.0.0.1 a-only.test\n")
        let answered = try resolveOnce(backend, "a-only.test", configuration: ResolverConfiguration(servers: [failing.server, dns.server],
                                                                                                  timeout: .seconds(5), tries: 1))
        #expect(answered == "127.0.0.1:53", "the second server was not asked after the first failed")
    }

    @Test("dnsmasq refuses a name outside its zone with no upstream: reported as a refusal, not a server failure",
          .enabled(if: Executables.find("dnsmasq") != nil, "dnsmasq is not installed"))
    func dnsmasqRefuses() throws {
        let dns = try TestDNS(hosts: "127.0.0.1 a-only.test\n")
        let outcome = try resolveOnce(.epoll, "db.example", configuration: ResolverConfiguration(servers: [dns.server], timeout: .seconds(5), tries: 1))
        #expect(outcome == "resolve(db.example): query refused (REFUSED from \(dns.server))")
    }

    @Test("resolv.conf's `options timeout:1 attempts:2`: a silent server is asked twice, and the error says so", arguments: Backend.underTest)
    func resolvConfPatience(_ backend: Backend) throws {
        let silent = try ScriptedDNS(.silence)
        let conf = try TemporaryResolvConf(Self.quietResolvConf)
        let outcome = try resolveOnce(backend, "slow.test", configuration: ResolverConfiguration(servers: [silent.server], resolvConf: conf.path))
        #expect(outcome == "resolve(slow.test): timed out: no answer in 2 tries of 1.0 seconds (servers \(silent.server))")
        // The lookup asks A and AAAA at once; each was sent once per try. (A query still in flight would be counted by now.)
        _ = eventually(within: .seconds(2)) { silent.queries(ofType: ScriptedDNS.typeAAAA) >= 2 }
        #expect(silent.queries(ofType: ScriptedDNS.typeA) == 2)
        #expect(silent.queries(ofType: ScriptedDNS.typeAAAA) == 2)
    }

    @Test("the configuration's tries override resolv.conf's attempts; every options line is read")
    func configurationOverrides() throws {
        let silent = try ScriptedDNS(.silence)
        let conf = try TemporaryResolvConf("# a comment\noptions attempts:2\noptions timeout:1 rotate\n")
        let outcome = try resolveOnce(.epoll, "slow.test", configuration: ResolverConfiguration(servers: [silent.server], tries: 3, resolvConf: conf.path))
        #expect(outcome == "resolve(slow.test): timed out: no answer in 3 tries of 1.0 seconds (servers \(silent.server))")
        _ = eventually(within: .seconds(2)) { silent.queries(ofType: ScriptedDNS.typeA) >= 3 }
        #expect(silent.queries(ofType: ScriptedDNS.typeA) == 3)
    }
}
