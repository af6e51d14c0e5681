// Runs `reactor-bench` (the README's first command's engine) as a user would,
// on a short echo window: the rows it measures, the files it writes, and the
// errors it gives for bad input. Debug builds, so the numbers mean nothing
// here; only that they were measured.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("reactor-bench")
struct BenchToolTests {
    /// Runs reactor-bench to completion: its exit status, standard output and standard error.
    static func runBench(_ arguments: [String], timeout: Duration = .seconds(120)) throws -> ToolResult {
        let bench = try Executables.product("reactor-bench")
        guard let root = Executables.packageRoot() else { throw TestFailure("no package root above \(#filePath)") }
        let binPath = try Executables.product("echo").deletingLastPathComponent().path
        return try runTool(bench, ["--root", root.path, "--bin-path", binPath] + arguments, timeout: timeout)
    }

    /// The CPUs this process may run on, from `Cpus_allowed_list` ("0-1",
    /// "2,5-6"): the bench pins its servers and its load to two of them, and
    /// a CI machine need not hand out CPUs 0 and 1.
    static func allowedCPUs() -> [Int] {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return [] }
        var cpus: [Int] = []
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            if let low = bounds.first { cpus += Array(low...(bounds.last ?? low)) }
        }
        return cpus
    }

    @Test("echo rows for the backend and the C references, with CPU time, memory, latency; JSON, CSV and SVG written",
          .enabled(if: allowedCPUs().count >= 2, "the bench needs two CPUs: one for the servers, one for the load"))
    func echoComparison() throws {
        let cpus = Self.allowedCPUs()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-bench-test-\(getpid())")
        defer { try? FileManager.default.removeItem(at: output) }
        let run = try Self.runBench(["--quick", "--backends", "epoll", "--scenarios", "echo", "--runs", "1",
                                     "--seconds", "0.5", "--output", output.path,
                                     "--server-cpu", "\(cpus[0])", "--load-cpu", "\(cpus[1])"])
        try #require(run.status == 0, "exit \(run.status); stderr:\n\(run.errorOutput)")
        #expect(run.output.contains("echo"), "the table: \(run.output)")

        let json = try Data(contentsOf: output.appendingPathComponent("results.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let rows = try #require(report["rows"] as? [[String: Any]])
        let cBin = "\(Executables.packageRoot()!.path)/Benchmarks/.build-c"
        let cReferenceBuilt = FileManager.default.isExecutableFile(atPath: "\(cBin)/epoll_echo")
        var servers = ["epoll"]
        if cReferenceBuilt { servers.append("c-epoll") }
        // The io_uring C reference runs wherever it was built and the kernel allows rings; else the report says why not.
        var uringRefused = false
        if case .unavailable = Backend.uring.availability { uringRefused = true }
        if FileManager.default.isExecutableFile(atPath: "\(cBin)/uring_echo") && !uringRefused { servers.append("c-uring") }
        else {
            #expect((report["skipped"] as? [String] ?? []).contains { $0.hasPrefix("c-uring: ") }, "\(report["skipped"] ?? "nothing skipped")")
        }
        for server in servers {
            for connections in [1, 100, 1000] {
                let row = rows.first { $0["server"] as? String == server && $0["connections"] as? Int == connections && $0["messageBytes"] as? Int == 64 }
                let found = try #require(row, "no echo row for \(server) at \(connections) connections in \(rows)")
                #expect((found["throughput"] as? Double ?? 0) > 0, "\(found)")
                #expect((found["perServerCPUSecond"] as? Double ?? 0) > 0, "\(found)")
                #expect((found["serverCPUSeconds"] as? Double ?? 0) > 0, "\(found)")
                #expect((found["peakRSSKiB"] as? Int ?? 0) > 0, "\(found)")
                #expect((found["p99Microseconds"] as? Double ?? 0) >= (found["p50Microseconds"] as? Double ?? .infinity), "\(found)")
            }
        }
        // The targets: judged where this run measured what they need, "n/a" elsewhere.
        let targets = try #require(report["targets"] as? [[String: Any]])
        #expect(targets.count == 16, "\(targets)")
        #expect(run.output.contains("Targets (goals reported against, not assertions):"))
        let echoVersusC = try #require(targets.first { ($0["target"] as? String)?.hasPrefix("echo 100 × 64 B ≥ 0.95× c-epoll") == true })
        #expect((echoVersusC["met"] as? Bool != nil) == cReferenceBuilt, "judged exactly when the C reference ran: \(echoVersusC)")
        let kv = try #require(targets.first { ($0["target"] as? String)?.hasPrefix("kv SET and GET at -P 1 ") == true })
        #expect(kv["met"] == nil || kv["met"] is NSNull, "kv did not run, so it is not judged: \(kv)")
        // --report judges the run again without measuring, into another directory.
        let again = output.appendingPathComponent("again")
        let rejudged = try Self.runBench(["--report", output.appendingPathComponent("results.json").path, "--output", again.path],
                                         timeout: .seconds(30))
        #expect(rejudged.status == 0, "stderr: \(rejudged.errorOutput)")
        #expect(rejudged.output.contains("Targets (goals reported against, not assertions):"))
        #expect(FileManager.default.fileExists(atPath: again.appendingPathComponent("results.json").path))
        let csv = try String(contentsOf: output.appendingPathComponent("results.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == rows.count + 1, "a header and one line per row")
        let svg = try String(contentsOf: output.appendingPathComponent("echo.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("epoll"))
    }

    @Test("the tls scenario: every TLS row of each server present (or its skip explained), targets judged only where measured",
          .enabled(if: allowedCPUs().count >= 2, "the bench needs two CPUs: one for the servers, one for the load"),
          .enabled(if: Executables.find("wrk") != nil && Executables.find("openssl") != nil, "needs wrk and openssl (bash scripts/deps.sh)"))
    func tlsScenario() throws {
        let cpus = Self.allowedCPUs()
        let root = try #require(Executables.packageRoot()).path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-bench-tls-test-\(getpid())")
        defer { try? FileManager.default.removeItem(at: output) }
        // Small numbers: the code paths, not the measurements (a debug build).
        let run = try Self.runBench(["--quick", "--backends", "epoll", "--scenarios", "tls", "--runs", "1", "--seconds", "0.5",
                                     "--kv-requests", "2000", "--idle-tls-connections", "300", "--output", output.path,
                                     "--server-cpu", "\(cpus[0])", "--load-cpu", "\(cpus[1])"], timeout: .seconds(300))
        try #require(run.status == 0, "exit \(run.status); stderr:\n\(run.errorOutput)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("results.json"))) as? [String: Any])
        let rows = try #require(report["rows"] as? [[String: Any]])
        let skipped = report["skipped"] as? [String] ?? []
        func row(_ scenario: String, _ server: String) -> [String: Any]? {
            rows.first { $0["scenario"] as? String == scenario && $0["server"] as? String == server }
        }
        let help = try runTool(try Executables.product("http"), ["--help"], timeout: .seconds(30)).output
        let expected: [(server: String, present: Bool, missing: String)] = [
            ("nio-ssl", FileManager.default.isExecutableFile(atPath: "\(root)/Benchmarks/Peers/.build/release/nio-https"), "nio-ssl https: not built"),
            ("nginx", Executables.find("nginx") != nil || FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx"), "nginx https: not installed"),
            ("epoll", help.contains("--tls-cert"), "the backends' http over TLS:"),
        ]
        for (server, present, missing) in expected {
            guard present else {
                #expect(skipped.contains { $0.hasPrefix(missing) }, "\(server) is missing here, so the report says why: \(skipped)")
                #expect(run.output.contains("Left out of this run:"), "\(run.output)")
                #expect(!rows.contains { $0["server"] as? String == server }, "no rows for \(server): \(rows)")
                continue
            }
            for scenario in ["https", "https-new"] {
                let found = try #require(row(scenario, server), "no \(scenario) row for \(server) in \(rows)")
                #expect((found["throughput"] as? Double ?? 0) > 0, "\(found)")
                #expect((found["perServerCPUSecond"] as? Double ?? 0) > 0, "\(found)")
            }
            let idle = try #require(row("idle-tls", server), "no idle-tls row for \(server) in \(rows)")
            #expect(idle["connections"] as? Int == 300 && idle["bytesPerConnection"] is Double, "\(idle)")
            // Counted only where malloc_count.so can stand in front of the allocator: not in a sanitizer's build.
            if server != "nginx" && SanitizerBuild.measuresMemory && FileManager.default.fileExists(atPath: "\(root)/Benchmarks/.build-c/malloc_count.so") {
                #expect(row("https", server)?["allocationsPerOperation"] is Double, "allocations counted for \(server): \(rows)")
            }
        }
        // kv over TLS: redis-server's TLS port always (Debian's is built with TLS), ours once kv serves TLS.
        let kvServers = ["redis-server"] + (try runTool(try Executables.product("kv"), ["--help"], timeout: .seconds(30)).output.contains("--tls-cert") ? ["epoll"] : [])
        for server in kvServers {
            for scenario in ["kv-tls-set-P1", "kv-tls-get-P1", "kv-tls-set-P16", "kv-tls-get-P16"] {
                let found = try #require(row(scenario, server), "no \(scenario) row for \(server) in \(rows)")
                #expect((found["throughput"] as? Double ?? 0) > 0, "\(found)")
            }
        }
        // The TLS targets: judged exactly when a backend's rows and the peer's are there.
        let targets = try #require(report["targets"] as? [[String: Any]])
        let https = try #require(targets.first { ($0["target"] as? String)?.hasPrefix("HTTPS greeting ≥ 1.0× nginx") == true }, "\(targets)")
        #expect((https["met"] as? Bool != nil) == (row("https", "epoll") != nil && row("https", "nginx") != nil), "\(https)")
        let idleTarget = try #require(targets.first { ($0["target"] as? String)?.contains("per idle TLS connection") == true }, "\(targets)")
        #expect((idleTarget["met"] as? Bool != nil) == (row("idle-tls", "epoll") != nil), "\(idleTarget)")
    }

    @Test("the links scenario: a row per backend with requests per links CPU-second, redis-server's CPU time beside it, latency",
          .enabled(if: allowedCPUs().count >= 2, "the bench needs two CPUs: one for the servers, one for the load"),
          .enabled(if: Executables.find("wrk") != nil && Executables.find("redis-server") != nil, "needs wrk and redis-server (bash scripts/deps.sh)"))
    func linksScenario() throws {
        let cpus = Self.allowedCPUs()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-bench-links-test-\(getpid())")
        defer { try? FileManager.default.removeItem(at: output) }
        let run = try Self.runBench(["--quick", "--backends", "epoll", "--scenarios", "links", "--runs", "1", "--seconds", "0.5",
                                     "--output", output.path, "--server-cpu", "\(cpus[0])", "--load-cpu", "\(cpus[1])"])
        try #require(run.status == 0, "exit \(run.status); stderr:\n\(run.errorOutput)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("results.json"))) as? [String: Any])
        let rows = try #require(report["rows"] as? [[String: Any]])
        let row = try #require(rows.first { $0["scenario"] as? String == "links" && $0["server"] as? String == "epoll" }, "no links row in \(rows)")
        #expect(row["connections"] as? Int == 100, "\(row)")
        for field in ["throughput", "perServerCPUSecond", "serverCPUSeconds", "redisCPUSeconds"] {
            #expect((row[field] as? Double ?? 0) > 0, "\(field) in \(row)")
        }
        #expect((row["p99Microseconds"] as? Double ?? 0) >= (row["p50Microseconds"] as? Double ?? .infinity), "\(row)")
        #expect((row["note"] as? String ?? "").contains("redis-server"), "the note says redis-server's CPU time: \(row)")
        #expect(run.output.contains("| links "), "the table: \(run.output)")
        let csv = try String(contentsOf: output.appendingPathComponent("results.csv"), encoding: .utf8)
        #expect(csv.hasPrefix("scenario,") && csv.split(separator: "\n").first?.contains("redis_cpu_s") == true, "\(csv.prefix(300))")
    }

    @Test("the responsiveness scenario: its rows (or the resolving echo's skip explained) and its three verdicts, whatever they say",
          .enabled(if: allowedCPUs().count >= 2, "the bench needs two CPUs: one for the servers, one for the load"))
    func responsivenessScenario() throws {
        let cpus = Self.allowedCPUs()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-bench-responsiveness-test-\(getpid())")
        defer { try? FileManager.default.removeItem(at: output) }
        let run = try Self.runBench(["--quick", "--backends", "epoll", "--scenarios", "responsiveness", "--runs", "1",
                                     "--output", output.path, "--server-cpu", "\(cpus[0])", "--load-cpu", "\(cpus[1])"], timeout: .seconds(300))
        try #require(run.status == 0, "exit \(run.status); stderr:\n\(run.errorOutput)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("results.json"))) as? [String: Any])
        let rows = try #require(report["rows"] as? [[String: Any]])
        func row(_ scenario: String, connections: Int) -> [String: Any]? {
            rows.first { $0["scenario"] as? String == scenario && $0["server"] as? String == "epoll" && $0["connections"] as? Int == connections }
        }
        var expected = [("slow-reader", 1000), ("kv-flood", 2), ("kv-flood", 101)]
        // The resolving echo needs dnsmasq and c-ares; without either the report says which.
        let skip = (report["skipped"] as? [String] ?? []).first { $0.hasPrefix("responsiveness: echo while resolving: ") }
        if let skip {
            #expect(skip.contains("dnsmasq is not installed") || skip.contains("not built"), "\(skip)")
            #expect(row("resolve-during", connections: 1) == nil, "\(rows)")
        } else {
            expected += [("resolve-before", 1), ("resolve-during", 1)]
        }
        for (scenario, connections) in expected {
            let found = try #require(row(scenario, connections: connections), "no \(scenario) row at \(connections) connections in \(rows)")
            #expect((found["p50Microseconds"] as? Double ?? 0) > 0, "\(found)")
            #expect((found["p99Microseconds"] as? Double ?? 0) >= (found["p50Microseconds"] as? Double ?? .infinity), "\(found)")
        }
        // Each target judged (met or missed: not this test's business) where its rows are.
        let targets = try #require(report["targets"] as? [[String: Any]])
        for (prefix, measured) in [("echo p99 while 1,000 lookups resolve", skip == nil), ("999 clients' p99 beside one that floods", true),
                                   ("kv PING p99 beside 1, and beside 100", true)] {
            let target = try #require(targets.first { ($0["target"] as? String)?.hasPrefix(prefix) == true }, "\(targets)")
            #expect((target["met"] as? Bool != nil) == measured, "\(target)")
            #expect(run.output.contains(prefix), "the verdict line: \(run.output)")
        }
    }

    @Test("bad input is refused before anything runs, with what is valid",
          arguments: [
              (["--backends", "kqueue"], "unknown backend 'kqueue'; valid names:"),
              (["--scenarios", "echo,telepathy"], "unknown scenario 'telepathy'; valid: echo, http"),
              (["--server-cpu", "1", "--load-cpu", "1"], "must differ"),
              (["--runs", "0"], "--runs must be at least 1"),
              (["--report", "/nonexistent/results.json"], "cannot read /nonexistent/results.json"),
          ])
    func badInput(arguments: [String], expected: String) throws {
        let run = try Self.runBench(arguments, timeout: .seconds(30))
        #expect(run.status != 0)
        #expect(run.errorOutput.contains(expected), "stderr: \(run.errorOutput)")
        #expect(!run.output.contains("wrote"), "nothing measured or written: \(run.output)")
    }
}
