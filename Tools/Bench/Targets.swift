// The goals the benchmark reports against (set by the issue that built it):
// a verdict per run, printed under the table and written to the JSON. They
// are not test assertions; a shared two-core machine is too noisy for that.
import Foundation

/// One target's verdict in one run.
struct TargetResult: Codable, Sendable {
    /// What the goal is, e.g. `echo 100 × 64 B ≥ 1.5× nio`.
    var target: String
    /// Whether every backend measured met it; nil when the run did not
    /// measure what the target needs (a scenario or a peer left out).
    var met: Bool?
    /// The numbers behind the verdict, and by how much a miss missed.
    var detail: String
}

extension BenchReport {
    /// The library's own backends, as opposed to the peers.
    static let backendNames: Set<String> = ["epoll", "poll", "libev", "uring", "uring-poll"]

    /// Every target, judged on this run's rows (per server CPU-second).
    func evaluateTargets() -> [TargetResult] {
        [
            ratioTarget("echo 100 × 64 B ≥ 0.95× c-epoll", scenario: "echo", connections: 100, bytes: 64, peer: "c-epoll", goal: 0.95),
            ratioTarget("echo 100 × 64 B ≥ 1.5× nio", scenario: "echo", connections: 100, bytes: 64, peer: "nio", goal: 1.5),
            ratioTarget("http greeting ≥ 2× nio", scenario: "http", connections: 100, bytes: 0, peer: "nio", goal: 2),
            kvTarget(pipeline: 1),
            kvTarget(pipeline: 16),
            uringFastest(),
            idleMemory(),
            echoAllocations(),
            // Over TLS (the tls scenario).
            ratioTarget("HTTPS greeting ≥ 1.5× nio-ssl", scenario: "https", connections: 100, bytes: 0, peer: "nio-ssl", goal: 1.5),
            ratioTarget("HTTPS greeting ≥ 1.0× nginx", scenario: "https", connections: 100, bytes: 0, peer: "nginx", goal: 1.0),
            kvTarget("kv over TLS, SET and GET at -P 1 and -P 16, ≥ 1.0× redis-server over TLS", prefix: "kv-tls", pipelines: [1, 16]),
            idleMemory("≤ 16 KiB resident memory per idle TLS connection", scenario: "idle-tls", limit: 16 * 1024),
            httpsAllocations(),
            // Responsiveness (until 2026-12-07 these were unit-test assertions).
            echoWhileResolving(),
            slowReader(),
            kvFlood(),
        ]
    }

    /// The backends' rows for a load; `bytes` nil matches any message size
    /// (kv's is redis-benchmark's value size).
    private func ours(_ scenario: String, connections: Int, bytes: Int?) -> [BenchRow] {
        rows.filter { Self.backendNames.contains($0.server) && $0.scenario == scenario
            && $0.connections == connections && (bytes == nil || $0.messageBytes == bytes) }
    }

    /// Each backend's rate over the peer's under the same load.
    private func ratios(scenario: String, connections: Int, bytes: Int?, peer: String) -> [(server: String, ratio: Double)]? {
        let mine = ours(scenario, connections: connections, bytes: bytes)
        guard let first = mine.first,
              let theirs = rows.first(where: { $0.server == peer && $0.sameLoad(as: first, anySize: bytes == nil) })?.rate else { return nil }
        let found = mine.compactMap { row in row.rate.map { (row.server, $0 / theirs) } }
        return found.isEmpty ? nil : found
    }

    private func ratioTarget(_ name: String, scenario: String, connections: Int, bytes: Int, peer: String, goal: Double) -> TargetResult {
        guard let found = ratios(scenario: scenario, connections: connections, bytes: bytes, peer: peer) else {
            return TargetResult(target: name, met: nil, detail: "not measured in this run (needs the \(scenario) rows of a backend and of \(peer))")
        }
        return verdict(name, found.map { ("\($0.server) \(Format.number($0.ratio, digits: 2))×", $0.ratio) }, goal: goal)
    }

    private func kvTarget(pipeline: Int) -> TargetResult {
        kvTarget("kv SET and GET at -P \(pipeline) ≥ 1.0× redis-server", prefix: "kv", pipelines: [pipeline])
    }

    /// Every backend's SET and GET rows `PREFIX-COMMAND-PN` over redis-server's.
    private func kvTarget(_ name: String, prefix: String, pipelines: [Int]) -> TargetResult {
        var parts: [(String, Double)] = []
        for pipeline in pipelines {
            for command in ["set", "get"] {
                guard let found = ratios(scenario: "\(prefix)-\(command)-P\(pipeline)", connections: 50, bytes: nil, peer: "redis-server") else { continue }
                let shown = pipelines.count > 1 ? "\(command.uppercased()) -P \(pipeline)" : command.uppercased()
                parts += found.map { ("\(shown) \($0.server) \(Format.number($0.ratio, digits: 2))×", $0.ratio) }
            }
        }
        guard !parts.isEmpty else { return TargetResult(target: name, met: nil, detail: "not measured in this run (needs \(prefix) rows of a backend and of redis-server)") }
        return verdict(name, parts, goal: 1.0)
    }

    /// Met when every part reaches `goal`; a miss says the worst part's shortfall.
    private func verdict(_ name: String, _ parts: [(label: String, value: Double)], goal: Double) -> TargetResult {
        let worst = parts.map(\.value).min() ?? 0
        var detail = parts.map(\.label).joined(separator: ", ")
        if worst < goal { detail += " — the lowest, \(Format.number(worst, digits: 3))×, misses by \(Format.number((goal - worst) / goal * 100, digits: 1))%" }
        return TargetResult(target: "\(name) per server CPU-s", met: worst >= goal, detail: detail)
    }

    private func uringFastest() -> TargetResult {
        let name = "uring the fastest backend at ≥ 1,000 connections (echo, 64 B)"
        let counts = Set(rows.filter { $0.scenario == "echo" && $0.messageBytes == 64 && $0.connections >= 1000 }.map(\.connections)).sorted()
        var parts: [String] = []
        var met = true
        for count in counts {
            let ranked = ours("echo", connections: count, bytes: 64).compactMap { row in row.rate.map { (row.server, $0) } }.sorted { $0.1 > $1.1 }
            guard let place = ranked.firstIndex(where: { $0.0 == "uring" }), let best = ranked.first else { continue }
            if place != 0 { met = false }
            parts.append("\(Format.number(Double(count))): " + ranked.map { "\($0.0) \(Format.number($0.1 / 1000))k" }.joined(separator: ", ")
                         + (place == 0 ? "" : " (uring \(place + 1) of \(ranked.count), \(Format.number((1 - ranked[place].1 / best.1) * 100))% behind \(best.0))"))
        }
        guard !parts.isEmpty else { return TargetResult(target: name, met: nil, detail: "not measured in this run (needs uring and echo at 1,000 or more connections)") }
        return TargetResult(target: name + " per server CPU-s", met: met, detail: parts.joined(separator: "; "))
    }

    private func idleMemory(_ name: String = "≤ 1 KiB resident memory per idle connection", scenario: String = "idle",
                            limit: Double = 1024) -> TargetResult {
        let measured = rows.filter { $0.scenario == scenario && Self.backendNames.contains($0.server) }
            .compactMap { row in row.bytesPerConnection.map { (row, $0) } }
        guard !measured.isEmpty else { return TargetResult(target: name, met: nil, detail: "not measured in this run (needs the \(scenario) rows of a backend)") }
        let worst = measured.map(\.1).max() ?? 0
        let detail = measured.map { "\($0.0.server) \(Format.number($0.1)) B at \(Format.number(Double($0.0.connections)))" }.joined(separator: ", ")
        return TargetResult(target: name, met: worst <= limit, detail: detail)
    }

    private func echoAllocations() -> TargetResult {
        let name = "0 heap allocations per echo round trip in steady state"
        let measured = ours("echo", connections: 100, bytes: 64).compactMap { row in row.allocationsPerOperation.map { (row.server, $0) } }
        guard !measured.isEmpty else { return TargetResult(target: name, met: nil, detail: "not measured in this run (needs the echo and allocations scenarios)") }
        // The connections' own setup allocates a little; spread over the
        // window it stays far below one allocation per thousand round trips.
        let worst = measured.map(\.1).max() ?? 0
        return TargetResult(target: name, met: worst < 0.001,
                            detail: measured.map { "\($0.0) \(Format.number($0.1, digits: 4))" }.joined(separator: ", ") + " per round trip")
    }

    private func httpsAllocations() -> TargetResult {
        let name = "≤ 0.01 heap allocations per HTTPS request in steady state"
        let measured = ours("https", connections: 100, bytes: 0).compactMap { row in row.allocationsPerOperation.map { (row.server, $0) } }
        guard !measured.isEmpty else { return TargetResult(target: name, met: nil, detail: "not measured in this run (needs the https rows of a backend and malloc_count.so)") }
        let worst = measured.map(\.1).max() ?? 0
        return TargetResult(target: name, met: worst <= 0.01,
                            detail: measured.map { "\($0.0) \(Format.number($0.1, digits: 4))" }.joined(separator: ", ") + " per request")
    }

    /// One backend's p99 against its bound, in a latency target.
    private struct LatencyPart {
        var server: String
        var p99: Double
        var bound: Double
        /// Shown beside the p99, e.g. the p99 alone that the bound comes from.
        var aside: String? = nil
    }

    /// Each backend's p99 against its bound, in groups (the loads the target
    /// covers); `inclusive`: the bound itself meets it. A miss says which
    /// backend missed, under which load, and by how much.
    private func latencyTarget(_ name: String, _ groups: [(load: String?, parts: [LatencyPart])], inclusive: Bool, needs: String) -> TargetResult {
        let groups = groups.filter { !$0.parts.isEmpty }
        guard !groups.isEmpty else { return TargetResult(target: name, met: nil, detail: "not measured in this run (needs \(needs))") }
        var detail = groups.map { group in
            (group.load.map { "\($0): " } ?? "") + group.parts.map { part in
                "\(part.server) \(Format.number(part.p99)) µs" + (part.aside.map { " (\($0))" } ?? "")
            }.joined(separator: ", ")
        }.joined(separator: "; ")
        var met = true
        for group in groups {
            for part in group.parts where inclusive ? part.p99 > part.bound : part.p99 >= part.bound {
                met = false
                detail += " — \(part.server)\(group.load.map { " (\($0))" } ?? "") over its \(Format.number(part.bound)) µs by \(Format.number((part.p99 / part.bound - 1) * 100, digits: 1))%"
            }
        }
        return TargetResult(target: name, met: met, detail: detail)
    }

    /// The p99 of each backend's rows of `scenario` (and `connections`, when given).
    private func p99s(_ scenario: String, connections: Int? = nil) -> [(server: String, p99: Double)] {
        rows.filter { Self.backendNames.contains($0.server) && $0.scenario == scenario && (connections == nil || $0.connections == connections) }
            .compactMap { row in row.p99Microseconds.map { (row.server, $0) } }
    }

    private func echoWhileResolving() -> TargetResult {
        let alone = Dictionary(p99s("resolve-before"), uniquingKeysWith: { first, _ in first })
        let parts = p99s("resolve-during").compactMap { server, p99 -> LatencyPart? in
            guard let before = alone[server] else { return nil }
            return LatencyPart(server: server, p99: p99, bound: max(10 * before, 20_000), aside: "alone \(Format.number(before))")
        }
        return latencyTarget("echo p99 while 1,000 lookups resolve ≤ max(10× its p99 alone, 20 ms)", [(nil, parts)], inclusive: true,
                             needs: "the responsiveness scenario's resolve rows, and dnsmasq")
    }

    private func slowReader() -> TargetResult {
        latencyTarget("999 clients' p99 beside one that floods and never reads < 50 ms",
                      [(nil, p99s("slow-reader").map { LatencyPart(server: $0.server, p99: $0.p99, bound: 50_000) })],
                      inclusive: false, needs: "the responsiveness scenario")
    }

    private func kvFlood() -> TargetResult {
        let groups = [1, 100].map { pouring in
            (load: Optional("\(pouring) pouring"),
             parts: p99s("kv-flood", connections: pouring + 1).map { LatencyPart(server: $0.server, p99: $0.p99, bound: 100_000) })
        }
        return latencyTarget("kv PING p99 beside 1, and beside 100, clients pouring GETs unread < 100 ms", groups, inclusive: false,
                             needs: "the responsiveness scenario")
    }

    /// The verdicts as lines for the terminal, under the table.
    func targetsText() -> String {
        let lines = targets.map { result -> String in
            let mark = result.met.map { $0 ? "✔ met   " : "✘ missed" } ?? "– n/a   "
            return "  \(mark)  \(result.target): \(result.detail)"
        }
        return (["Targets (goals reported against, not assertions):"] + lines).joined(separator: "\n")
    }
}
