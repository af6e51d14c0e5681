// The `tls` scenario: the same rules as the plain rows (servers pinned,
// per server CPU-second, peers in the same run, medians), over TLS with a
// fresh ECDSA P-256 certificate: the HTTPS greeting with keep-alive, new TLS
// connections per second, kv over TLS, idle TLS connections' memory and
// allocations per HTTPS request. Peers: SwiftNIO + NIOSSL (`nio-ssl`),
// nginx, redis-server's TLS port.
import Foundation

extension Bench {
    mutating func tls() {
        let certificates: BenchCertificates
        do { certificates = try BenchCertificates.make() } catch { fail("tls", error); return }
        defer { certificates.remove() }
        let https = httpsServers(certificates)
        progress("tls: certificates in \(certificates.directory); https servers: \(https.map(\.name).joined(separator: ", "))")
        wrkRows(https, scenario: "https", what: "https greeting, wrk -c100", https: true, note: { negotiatedTLS(port: $0.port) })
        wrkRows(https, scenario: "https-new", what: "new TLS connections, wrk -c100 'Connection: close'", https: true,
                headers: ["Connection: close"], note: { _ in "one request per connection, full handshakes" })
        kvRows(kvTLSServers(certificates), prefix: "kv-tls", tlsCA: certificates.ca)
        idleTLS(https, ca: certificates.ca)
        httpsAllocations(https)
    }

    // MARK: Servers

    /// nio-ssl, nginx and each backend's `http` serving TLS beside plain
    /// (the load goes to the TLS listener); a peer that is missing, or an
    /// `http` built before it took `--tls-cert`, is skipped with the reason.
    func httpsServers(_ certificates: BenchCertificates) -> [ServerSpec] {
        var servers: [ServerSpec] = []
        if let nio = plan.peer("\(plan.peersBin)/nio-https") {
            servers.append(ServerSpec(name: "nio-ssl", executable: nio, arguments: [certificates.certificate, certificates.key, "0"]))
        } else { skip("nio-ssl https", "not built (swift build -c release --package-path Benchmarks/Peers)") }
        if let nginx = try? tool("nginx") {
            servers.append(ServerSpec(name: "nginx", executable: nginx, arguments: [],
                                      argumentsForPort: { try NginxConfig.arguments(port: $0, certificates: certificates) }))
        } else { skip("nginx https", "not installed (apt-get install nginx-light, or bash scripts/deps.sh)") }
        servers += oursOverTLS("http", certificates)
        return servers
    }

    /// redis-server on a TLS port only (`--port 0`) and each backend's `kv` serving TLS.
    func kvTLSServers(_ certificates: BenchCertificates) -> [ServerSpec] {
        var servers: [ServerSpec] = []
        if let redis = try? tool("redis-server") {
            servers.append(ServerSpec(name: "redis-server", executable: redis,
                                      arguments: ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", "0",
                                                  "--tls-cert-file", certificates.certificate, "--tls-key-file", certificates.key,
                                                  "--tls-ca-cert-file", certificates.ca, "--tls-auth-clients", "no"],
                                      argumentsForPort: { ["--tls-port", "\($0)"] }))
        } else { skip("redis-server over TLS", "not installed (apt-get install redis-server)") }
        return servers + oursOverTLS("kv", certificates)
    }

    /// `product` (http or kv) on every backend with a TLS listener beside
    /// the plain one; none when the binary does not take `--tls-cert`.
    private func oursOverTLS(_ product: String, _ certificates: BenchCertificates) -> [ServerSpec] {
        let executable = "\(plan.binPath)/\(product)"
        guard accepts(executable, option: "--tls-cert") else {
            skip("the backends' \(product) over TLS", "\(executable) does not accept --tls-cert: this build of the \(product) example has no TLS listener")
            return []
        }
        return plan.backends.map { backend in
            ServerSpec(name: backend.rawValue, executable: executable,
                       arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "1",
                                   "--tls-cert", certificates.certificate, "--tls-key", certificates.key, "--tls-port", "0"],
                       listenerMarker: ", tls)")
        }
    }

    // MARK: Memory and allocations

    /// Resident memory per idle TLS connection (handshake complete), at the
    /// plan's count (10,000 unless `--idle-tls-connections` says), against
    /// the https servers.
    mutating func idleTLS(_ servers: [ServerSpec], ca: String) {
        let count = plan.idleTLSConnections
        for spec in servers {
            let label = "idle TLS \(count), \(spec.name)"
            do {
                let server = try start(spec)
                defer { server.stop() }
                let (perConnection, rss, note) = try measureIdleTLS(server, count: count, ca: ca)
                progress("\(label): \(Format.number(perConnection * 1024)) bytes per idle TLS connection (\(note))")
                rows.append(BenchRow(scenario: "idle-tls", server: spec.name, connections: count, messageBytes: 0, throughput: 0,
                                     peakRSSKiB: rss, bytesPerConnection: perConnection * 1024,
                                     note: "\(Format.number(perConnection * 1024)) B per idle TLS connection; \(note)"))
            } catch {
                fail(label, error)
            }
        }
    }

    /// Heap allocations per HTTPS request in steady state: two wrk windows
    /// (1 s, then 3 s, or 2 s with --quick) after a warm-up, each opening
    /// the same 100 connections and handshakes, so their difference is what
    /// the extra requests cost: (allocations₂ − allocations₁) / (requests₂ −
    /// requests₁). Written into the https rows.
    mutating func httpsAllocations(_ servers: [ServerSpec]) {
        guard let counter = allocationCounter(for: "allocations per https request") else { return }
        for spec in servers {
            let label = "allocations, https, \(spec.name)"
            guard spec.name != "nginx" else {
                // nginx installs its own SIGUSR2 handler (binary upgrade) and points stderr at its error log.
                skip(label, "nginx takes over SIGUSR2, the counter's signal, and redirects stderr, where the counter reports")
                continue
            }
            do {
                let server = try start(spec, environment: ["LD_PRELOAD": counter])
                defer { server.stop() }
                _ = try runWrk(port: server.port, connections: 100, seconds: 1, cpu: plan.loadCPU, https: true)  // warm-up
                let first = try server.allocations()
                let short = try runWrk(port: server.port, connections: 100, seconds: 1, cpu: plan.loadCPU, https: true)
                let middle = try server.allocations()
                let long = try runWrk(port: server.port, connections: 100, seconds: plan.quick ? 2 : 3, cpu: plan.loadCPU, https: true)
                let end = try server.allocations()
                guard long.requests > short.requests else {
                    throw BenchError("the longer window served no more requests (\(Format.number(long.requests)) vs \(Format.number(short.requests)))")
                }
                let perRequest = Double((end - middle) - (middle - first)) / (long.requests - short.requests)
                progress("\(label): \(Format.number(perRequest, digits: 4)) per request in steady state (\(middle - first) over \(Format.number(short.requests)) and \(end - middle) over \(Format.number(long.requests)), each with 100 handshakes)")
                record(allocations: perRequest, scenario: "https", server: spec.name, connections: 100, size: 0)
            } catch {
                fail(label, error)
            }
        }
    }
}
