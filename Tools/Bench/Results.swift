import Foundation

/// One measured row: a scenario, a server, and what it did.
struct BenchRow: Codable, Sendable {
    /// `echo`, `http`, `kv-set-P1`, `links`, `idle`, `timers`, `wake`, and over TLS
    /// `https`, `https-new` (a connection per request), `kv-tls-set-P1`, `idle-tls`, ...;
    /// responsiveness: `resolve-before`, `resolve-during`, `slow-reader`, `kv-flood`.
    var scenario: String
    /// `epoll`, `poll`, `libev`, `uring`, `uring-poll`, `c-epoll`, `c-uring`
    /// (the C references, epoll and io_uring), `nio`, `redis-server`,
    /// and over TLS `nio-ssl` (SwiftNIO + NIOSSL) and `nginx`.
    var server: String
    /// Connections the load used (0 where none do).
    var connections: Int
    /// Bytes per message, or 0.
    var messageBytes: Int
    /// Operations (round trips, requests, timers) per second of wall time.
    var throughput: Double
    /// Operations per second of server CPU time (user + system): what the
    /// server does with the CPU it gets, when the client is the bottleneck.
    var perServerCPUSecond: Double?
    var p50Microseconds: Double?
    var p99Microseconds: Double?
    /// The server's user + system CPU seconds over the measured window.
    var serverCPUSeconds: Double?
    /// The links scenario: the user + system CPU seconds of the redis-server
    /// behind `links` over the same window (not in `serverCPUSeconds`, nor
    /// in `perServerCPUSecond`).
    var redisCPUSeconds: Double? = nil
    /// The server's peak resident memory during the scenario, KiB.
    var peakRSSKiB: Int?
    /// Heap allocations per operation, when counted.
    var allocationsPerOperation: Double?
    /// Resident bytes per idle connection (the idle scenario).
    var bytesPerConnection: Double? = nil
    /// Anything a reader needs to read the row right.
    var note: String = ""
}

extension BenchRow {
    /// What ratios compare: operations per server CPU-second where the
    /// server's CPU was measured, else per second; nil when the row measured
    /// no rate (idle, allocations only).
    var rate: Double? {
        let value = perServerCPUSecond ?? throughput
        return value > 0 ? value : nil
    }

    /// Whether `other` ran under the same load (scenario, connections and,
    /// unless `anySize`, message size).
    func sameLoad(as other: BenchRow, anySize: Bool = false) -> Bool {
        scenario == other.scenario && connections == other.connections && (anySize || messageBytes == other.messageBytes)
    }

    /// The load's shape, for the table: `100 × 64 B`, `100 conns`, `1,000,000 timers`.
    var load: String {
        switch scenario {
        case "echo": return "\(Format.number(Double(connections))) × \(messageBytes >= 1024 ? "\(messageBytes >> 10) KiB" : "\(messageBytes) B")"
        case "idle", "idle-tls": return "\(Format.number(Double(connections))) idle"
        case "https-new": return "\(connections) conns, close"
        case "timers", "wake": return "–"
        case "resolve-before": return "1 × 64 B alone"
        case "resolve-during": return "1 × 64 B, \(Format.number(Double(Bench.burstLookups))) lookups"
        case "slow-reader": return "\(connections - 1) × 1 B, 1 flooding"
        case "kv-flood": return "PING, \(connections - 1) pouring"
        default: return "\(connections) conns"
        }
    }
}

/// Everything one `reactor-bench` run produced, as written to JSON.
struct BenchReport: Codable, Sendable {
    var started: String
    var machine: String
    var settings: String
    var rows: [BenchRow]
    /// The verdict on each target, from `rows`.
    var targets: [TargetResult] = []
    /// What the run left out and why; nil when nothing was (and in files
    /// written before runs recorded it).
    var skipped: [String]? = nil
}

enum Format {
    static func number(_ value: Double?, digits: Int = 0) -> String {
        guard let value, value.isFinite else { return "–" }
        if digits == 0 {
            let rounded = Int(value.rounded())
            // Thousands separators: 153648 → 153,648.
            let text = String(abs(rounded))
            var grouped = ""
            for (index, character) in text.enumerated() {
                if index > 0 && (text.count - index) % 3 == 0 { grouped.append(",") }
                grouped.append(character)
            }
            return (rounded < 0 ? "-" : "") + grouped
        }
        return String(format: "%.\(digits)f", value)
    }

    /// A table with right-aligned numbers, as Markdown (readable in a terminal too).
    static func table(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            "| " + row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i < 3 || i == row.count - 1 ? cell + pad : pad + cell  // names and the note read left to right
            }.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.enumerated().map { i, w in i < 3 || i == widths.count - 1 ? String(repeating: "-", count: w + 2) : String(repeating: "-", count: w + 1) + ":" }.joined(separator: "|") + "|"
        return ([line(header), rule] + rows.dropFirst().map(line)).joined(separator: "\n")
    }
}

extension BenchReport {
    /// The comparison table: one line per row, with the ratio to the scenario's
    /// peers measured under the same load (the two C references and SwiftNIO for echo, SwiftNIO
    /// for http, redis-server for kv, NIOSSL and nginx for https), per server
    /// CPU-second where known.
    func table() -> String {
        var lines = [["scenario", "load", "server", "ops/s", "per server CPU-s", "ratio (per CPU-s)", "p50 µs", "p99 µs", "server CPU s", "peak RSS MiB", "allocs/op", "note"]]
        for row in rows {
            let ratios = peerRows(for: row).compactMap { peer -> String? in
                guard let mine = row.rate, let theirs = peer.rate else { return nil }
                return Format.number(mine / theirs, digits: 2) + "× " + peer.server
            }
            let ratio = ratios.isEmpty ? "–" : ratios.joined(separator: ", ")
            lines.append([
                row.scenario, row.load, row.server, row.throughput > 0 ? Format.number(row.throughput) : "–", Format.number(row.perServerCPUSecond), ratio,
                Format.number(row.p50Microseconds, digits: 0), Format.number(row.p99Microseconds, digits: 0),
                Format.number(row.serverCPUSeconds, digits: 2),
                row.peakRSSKiB.map { Format.number(Double($0) / 1024, digits: 1) } ?? "–",
                Format.number(row.allocationsPerOperation, digits: 4), row.note,
            ])
        }
        return Format.table(lines)
    }

    /// The peers' rows measured under the same load as `row` (the C
    /// references, redis-server, SwiftNIO, NIOSSL, nginx), without `row` itself.
    func peerRows(for row: BenchRow) -> [BenchRow] {
        ["c-epoll", "c-uring", "redis-server", "nio", "nio-ssl", "nginx"].compactMap { peer in
            peer == row.server ? nil : rows.first { $0.server == peer && $0.sameLoad(as: row) }
        }
    }

    func csv() -> String {
        var out = "scenario,server,connections,message_bytes,throughput,per_server_cpu_second,p50_us,p99_us,server_cpu_s,redis_cpu_s,peak_rss_kib,allocations_per_op,note\n"
        func field(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "" }
        for row in rows {
            out += [row.scenario, row.server, "\(row.connections)", "\(row.messageBytes)", field(row.throughput),
                    field(row.perServerCPUSecond), field(row.p50Microseconds), field(row.p99Microseconds),
                    field(row.serverCPUSeconds), field(row.redisCPUSeconds), row.peakRSSKiB.map { "\($0)" } ?? "", field(row.allocationsPerOperation),
                    "\"" + row.note.replacingOccurrences(of: "\"", with: "\"\"") + "\""].joined(separator: ",") + "\n"
        }
        return out
    }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
