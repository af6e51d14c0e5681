import Foundation

/// What `wrk` or `redis-benchmark` reported.
struct ToolLoadResult: Sendable {
    var requests: Double
    var seconds: Double
    var throughput: Double
    var p50Microseconds: Double?
    var p99Microseconds: Double?
}

/// `wrk -t1 -cN -dDs --latency URL`, pinned to the load CPU; `https` for
/// TLS (wrk does not verify the certificate), `headers` added to every
/// request (`Connection: close` makes every request a new connection),
/// `path` the one every request asks for. wrk counts a status of 400 or more
/// as an error ("Non-2xx or 3xx responses"), which fails the run; redirects
/// are answers (wrk does not follow them).
func runWrk(port: UInt16, connections: Int, seconds: Int, cpu: Int, https: Bool = false, headers: [String] = [],
            path: String = "/") throws -> ToolLoadResult {
    let url = "\(https ? "https" : "http")://127.0.0.1:\(port)\(path)"
    let output = try runTool(try tool("wrk"), ["-t1", "-c\(connections)", "-d\(seconds)s", "--latency"] + headers.flatMap { ["-H", $0] } + [url],
                             cpu: cpu, timeout: .seconds(seconds + 30))
    // "  50%  752.00us", "  99%    1.20ms", "  123456 requests in 5.00s, ...", "Requests/sec: 24691.20"
    func latency(_ label: String) -> Double? {
        guard let line = output.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }),
              let value = line.split(separator: " ").last else { return nil }
        return microseconds(String(value))
    }
    guard let rpsLine = output.split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
          let rps = Double(rpsLine.split(separator: " ").last ?? ""),
          let totalLine = output.split(separator: "\n").first(where: { $0.contains(" requests in ") }),
          let requests = Double(totalLine.split(separator: " ").first ?? "") else {
        throw BenchError("wrk: unexpected output: \(output.prefix(400))")
    }
    if output.contains("Non-2xx") || output.contains("Socket errors") {
        throw BenchError("wrk reported errors: \(output.split(separator: "\n").filter { $0.contains("Non-2xx") || $0.contains("Socket errors") }.joined(separator: "; "))")
    }
    return ToolLoadResult(requests: requests, seconds: requests / rps, throughput: rps,
                          p50Microseconds: latency("50%"), p99Microseconds: latency("99%"))
}

/// wrk's durations: "752.00us", "1.20ms", "2.00s".
private func microseconds(_ text: String) -> Double? {
    for (suffix, scale) in [("us", 1.0), ("ms", 1000.0), ("s", 1_000_000.0)] where text.hasSuffix(suffix) {
        return Double(text.dropLast(suffix.count)).map { $0 * scale }
    }
    return nil
}

/// `redis-benchmark -t TEST -n N -c 50 -P PIPELINE --csv`, pinned to the
/// load CPU; with `tlsCA`, over TLS (`--tls --cacert`), verifying the server.
func runRedisBenchmark(port: UInt16, test: String, requests: Int, pipeline: Int, cpu: Int, tlsCA: String? = nil) throws -> ToolLoadResult {
    let tls = tlsCA.map { ["--tls", "--cacert", $0] } ?? []
    let output = try runTool(try tool("redis-benchmark"),
                             ["-p", "\(port)", "-t", test, "-n", "\(requests)", "-c", "50", "-P", "\(pipeline)", "-r", "100000", "--csv"] + tls,
                             cpu: cpu, timeout: .seconds(120))
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("\"\(test.uppercased())\"") }) else {
        throw BenchError("redis-benchmark: unexpected output: \(output.prefix(400))")
    }
    let fields = line.split(separator: ",").map { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
    guard fields.count >= 7, let rps = fields[1] else { throw BenchError("redis-benchmark: cannot read '\(line)'") }
    return ToolLoadResult(requests: Double(requests), seconds: Double(requests) / rps, throughput: rps,
                          p50Microseconds: fields[4].map { $0 * 1000 }, p99Microseconds: fields[6].map { $0 * 1000 })
}

/// The path of a program on PATH (or in /usr/sbin, where nginx is, which a
/// user's PATH may lack), or an error that says which package has it.
func tool(_ name: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin"]
    for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
        return "\(directory)/\(name)"
    }
    let package = ["wrk": "wrk", "redis-benchmark": "redis-tools", "redis-server": "redis-server", "nginx": "nginx-light"][name] ?? name
    throw BenchError("\(name) not found on PATH; install Debian's \(package) (bash scripts/deps.sh)")
}
