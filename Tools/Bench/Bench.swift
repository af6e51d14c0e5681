import Foundation
import PollEpoll
import Reactor
import ReactorTestSupport

/// A server the bench can start: its name in the table and its command line.
struct ServerSpec {
    var name: String
    var executable: String
    var arguments: [String]
    /// For servers that print no `listening on HOST:PORT` line (redis-server,
    /// nginx): given a free port, the arguments that make the server listen
    /// there, appended to `arguments` (it may write a file they name).
    var argumentsForPort: ((UInt16) throws -> [String])? = nil
    /// The server announces several listeners: the load goes to the port of
    /// the first `listening on` line containing this (`, tls)` for the TLS one).
    var listenerMarker: String? = nil
}

/// Runs the plan's scenarios, collecting one row per (scenario, server),
/// each the median over the runs. A failed measurement is reported and the
/// run goes on; `failures` lists them for the exit status.
struct Bench {
    let plan: Plan
    /// The rows measured so far (the scenarios append theirs).
    var rows: [BenchRow] = []
    /// One line per failed measurement.
    var failures: [String] = []
    /// What the run left out and why (a peer not built, an executable
    /// without TLS), for the report.
    private let skipped = SkipLog()

    init(plan: Plan) { self.plan = plan }

    mutating func run() -> BenchReport {
        let started = ISO8601DateFormatter().string(from: Date())
        progress("backends \(plan.backends.map(\.rawValue).joined(separator: ", ")); scenarios \(Plan.allScenarios.filter(plan.scenarios.contains).joined(separator: ", ")); \(plan.runs) run(s) of \(plan.seconds) s; servers on CPU \(plan.serverCPU), load on CPU \(plan.loadCPU)"
                 + (plan.scenarios.contains("links") ? ", links' redis-server on CPU \(plan.redisCPU)" : ""))
        if plan.scenarios.contains("echo") { echo() }
        if plan.scenarios.contains("http") { http() }
        if plan.scenarios.contains("kv") { kv() }
        if plan.scenarios.contains("links") { links() }
        if plan.scenarios.contains("idle") { idle() }
        if plan.scenarios.contains("timers") { timers() }
        if plan.scenarios.contains("wake") { wake() }
        if plan.scenarios.contains("allocations") { allocations() }
        if plan.scenarios.contains("tls") { tls() }
        if plan.scenarios.contains("responsiveness") { responsiveness() }
        var report = BenchReport(started: started, machine: Self.machine(), settings: "\(plan.quick ? "quick" : "full"): \(plan.runs) run(s), \(plan.seconds) s windows, servers on CPU \(plan.serverCPU), load on CPU \(plan.loadCPU)", rows: rows)
        report.skipped = skipped.lines.isEmpty ? nil : skipped.lines
        report.targets = report.evaluateTargets()
        return report
    }

    // MARK: Servers

    var echoServers: [ServerSpec] {
        var servers: [ServerSpec] = []
        if let c = plan.peer("\(plan.cBin)/epoll_echo") { servers.append(ServerSpec(name: "c-epoll", executable: c, arguments: ["--port", "0"])) }
        else { skip("c-epoll", "not built (bash Benchmarks/build.sh)") }
        // The io_uring C reference: skipped where the kernel refuses rings
        // (the same check as the uring backend's), not reported as a failure.
        if let c = plan.peer("\(plan.cBin)/uring_echo") {
            if case .unavailable(let why) = Backend.uring.availability { skip("c-uring", "io_uring cannot run here: \(why)") }
            else { servers.append(ServerSpec(name: "c-uring", executable: c, arguments: ["--port", "0"])) }
        } else { skip("c-uring", "not built (bash Benchmarks/build.sh; needs liburing-dev)") }
        if let nio = plan.peer("\(plan.peersBin)/nio-echo") { servers.append(ServerSpec(name: "nio", executable: nio, arguments: ["0"])) }
        else { skip("nio echo", "not built (swift build -c release --package-path Benchmarks/Peers)") }
        for backend in plan.backends {
            servers.append(ServerSpec(name: backend.rawValue, executable: "\(plan.binPath)/echo",
                                      arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0"]))
        }
        return servers
    }

    var httpServers: [ServerSpec] {
        var servers: [ServerSpec] = []
        if let nio = plan.peer("\(plan.peersBin)/nio-http") { servers.append(ServerSpec(name: "nio", executable: nio, arguments: ["0"])) }
        else { skip("nio http", "not built (swift build -c release --package-path Benchmarks/Peers)") }
        for backend in plan.backends {
            servers.append(ServerSpec(name: backend.rawValue, executable: "\(plan.binPath)/http",
                                      arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "1"]))
        }
        return servers
    }

    var kvServers: [ServerSpec] {
        var servers: [ServerSpec] = []
        if let redis = try? tool("redis-server") {
            servers.append(ServerSpec(name: "redis-server", executable: redis,
                                      arguments: ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                                      argumentsForPort: { ["--port", "\($0)"] }))
        } else { skip("redis-server", "not installed (apt-get install redis-server)") }
        for backend in plan.backends {
            servers.append(ServerSpec(name: backend.rawValue, executable: "\(plan.binPath)/kv",
                                      arguments: ["--backend", backend.rawValue, "--strict-backend", "--port", "0", "--threads", "1"]))
        }
        return servers
    }

    func start(_ spec: ServerSpec, environment: [String: String] = [:]) throws -> ServerProcess {
        if let argumentsForPort = spec.argumentsForPort {
            let port = try freePort()
            return try ServerProcess(name: spec.name, executable: spec.executable, arguments: spec.arguments + argumentsForPort(port),
                                     cpu: plan.serverCPU, environment: environment, port: port)
        }
        return try ServerProcess(name: spec.name, executable: spec.executable, arguments: spec.arguments,
                                 cpu: plan.serverCPU, environment: environment, listenerMarker: spec.listenerMarker)
    }

    // MARK: Scenarios

    mutating func echo() {
        let shapes = plan.echoConnections.map { ($0, 64) } + [(10, 16 << 10)]
        let servers = echoServers
        for (connections, size) in shapes {
            var samples: [String: [BenchRow]] = [:]
            for run in 1...plan.runs {
                // Interleaved: every server once per run, so drift in the machine's speed hits all alike.
                for spec in servers {
                    let label = "echo \(connections)×\(size) B, \(spec.name), run \(run)/\(plan.runs)"
                    do {
                        let server = try start(spec)
                        defer { server.stop() }
                        let warmup = plan.warmup + (connections >= 10_000 ? 1 : 0)
                        let (result, cpu) = try measureEcho(server, settings: EchoLoad.Settings(
                            port: server.port, connections: connections, messageBytes: size,
                            warmup: .milliseconds(Int(warmup * 1000)), duration: .milliseconds(Int(plan.seconds * 1000))))
                        let row = BenchRow(scenario: "echo", server: spec.name, connections: connections, messageBytes: size,
                                           throughput: result.throughput, perServerCPUSecond: Double(result.roundTrips) / cpu,
                                           p50Microseconds: result.p50Microseconds, p99Microseconds: result.p99Microseconds,
                                           serverCPUSeconds: cpu, peakRSSKiB: server.memoryKiB().peak)
                        progress("\(label): \(Format.number(row.throughput)) rt/s, p99 \(Format.number(row.p99Microseconds)) µs, \(Format.number(cpu, digits: 2)) CPU-s")
                        samples[spec.name, default: []].append(row)
                    } catch {
                        fail(label, error)
                    }
                }
            }
            for spec in servers { if let row = Self.median(samples[spec.name] ?? []) { rows.append(row) } }
        }
    }

    mutating func http() {
        wrkRows(httpServers, scenario: "http", what: "http greeting, wrk -c100")
    }

    /// One row per server: `wrk -c100` for the plan's window (`https` over
    /// TLS, `headers` on every request), the median over the runs.
    mutating func wrkRows(_ servers: [ServerSpec], scenario: String, what: String, https: Bool = false, headers: [String] = [],
                          note: (ServerProcess) -> String? = { _ in nil }) {
        do { _ = try tool("wrk") } catch { fail(scenario, error); return }
        var samples: [String: [BenchRow]] = [:]
        var notes: [String: String] = [:]
        for run in 1...plan.runs {
            for spec in servers {
                let label = "\(what), \(spec.name), run \(run)/\(plan.runs)"
                do {
                    let server = try start(spec)
                    defer { server.stop() }
                    if notes[spec.name] == nil { notes[spec.name] = note(server) }
                    let cpuBefore = server.cpuSeconds()
                    let result = try runWrk(port: server.port, connections: 100, seconds: max(1, Int(plan.seconds.rounded())), cpu: plan.loadCPU,
                                            https: https, headers: headers)
                    let cpu = server.cpuSeconds() - cpuBefore
                    let row = BenchRow(scenario: scenario, server: spec.name, connections: 100, messageBytes: 0,
                                       throughput: result.throughput, perServerCPUSecond: result.requests / cpu,
                                       p50Microseconds: result.p50Microseconds, p99Microseconds: result.p99Microseconds,
                                       serverCPUSeconds: cpu, peakRSSKiB: server.memoryKiB().peak)
                    progress("\(label): \(Format.number(row.throughput)) req/s, \(Format.number(row.perServerCPUSecond)) per CPU-s")
                    samples[spec.name, default: []].append(row)
                } catch {
                    fail(label, error)
                }
            }
        }
        for spec in servers {
            guard var row = Self.median(samples[spec.name] ?? []) else { continue }
            row.note = [notes[spec.name], row.note].compactMap { $0?.isEmpty == false ? $0 : nil }.joined(separator: "; ")
            rows.append(row)
        }
    }

    mutating func kv() {
        kvRows(kvServers, prefix: "kv")
    }

    /// redis-benchmark SET and GET at -P 1 and -P 16 against each server,
    /// rows `PREFIX-set-P1` …; over TLS with `tlsCA`.
    mutating func kvRows(_ servers: [ServerSpec], prefix: String, tlsCA: String? = nil) {
        let tests = [("set", 1), ("get", 1), ("set", 16), ("get", 16)]
        var samples: [String: [BenchRow]] = [:]
        for run in 1...plan.runs {
            for spec in servers {
                let label = "\(prefix), \(spec.name), run \(run)/\(plan.runs)"
                do {
                    let server = try start(spec)
                    defer { server.stop() }
                    for (test, pipeline) in tests {
                        let scenario = "\(prefix)-\(test)-P\(pipeline)"
                        let cpuBefore = server.cpuSeconds()
                        let result = try runRedisBenchmark(port: server.port, test: test, requests: plan.kvRequests * (pipeline == 16 ? 4 : 1),
                                                           pipeline: pipeline, cpu: plan.loadCPU, tlsCA: tlsCA)
                        let cpu = server.cpuSeconds() - cpuBefore
                        let row = BenchRow(scenario: scenario, server: spec.name, connections: 50, messageBytes: 3,
                                           throughput: result.throughput, perServerCPUSecond: result.requests / cpu,
                                           p50Microseconds: result.p50Microseconds, p99Microseconds: result.p99Microseconds,
                                           serverCPUSeconds: cpu, peakRSSKiB: server.memoryKiB().peak)
                        progress("\(label), \(test.uppercased()) -P \(pipeline): \(Format.number(row.throughput)) req/s, \(Format.number(row.perServerCPUSecond)) per CPU-s")
                        samples["\(scenario) \(spec.name)", default: []].append(row)
                    }
                } catch {
                    fail(label, error)
                }
            }
        }
        for (test, pipeline) in tests {
            for spec in servers { if let row = Self.median(samples["\(prefix)-\(test)-P\(pipeline) \(spec.name)"] ?? []) { rows.append(row) } }
        }
    }

    mutating func idle() {
        for count in plan.idleCounts {
            for spec in echoServers {
                let label = "idle \(count), \(spec.name)"
                do {
                    let server = try start(spec)
                    defer { server.stop() }
                    let (perConnection, rss, note) = try measureIdle(server, count: count)
                    progress("\(label): \(Format.number(perConnection * 1024)) bytes per idle connection (\(note))")
                    rows.append(BenchRow(scenario: "idle", server: spec.name, connections: count, messageBytes: 0, throughput: 0,
                                         peakRSSKiB: rss, bytesPerConnection: perConnection * 1024,
                                         note: "\(Format.number(perConnection * 1024)) B per idle connection; \(note)"))
                } catch {
                    fail(label, error)
                }
            }
        }
    }

    mutating func timers() {
        for backend in plan.backends {
            let label = "timers \(Format.number(Double(plan.timerCount))), \(backend)"
            do {
                let (arm, fire, total) = try backend.visit(RunTimerFlood(count: plan.timerCount))
                let note = "armed in \(Format.number(arm * 1000)) ms (\(Format.number(Double(plan.timerCount) / arm / 1e6, digits: 1)) M/s), fired over 0.5 s + \(Format.number((fire - 0.5) * 1000)) ms"
                progress("\(label): \(note)")
                rows.append(BenchRow(scenario: "timers", server: backend.rawValue, connections: 0, messageBytes: 0,
                                     throughput: Double(plan.timerCount) / total, note: note))
            } catch {
                fail(label, error)
            }
        }
    }

    mutating func wake() {
        let microbench = "\(plan.binPath)/reactor-microbench"
        guard FileManager.default.isExecutableFile(atPath: microbench) else {
            skip("wake", "no reactor-microbench at \(microbench) (swift build -c release)")
            return
        }
        do {
            let output = try runTool(microbench, ["--cpu", "\(plan.serverCPU)", "--json", "--runs", "\(plan.runs)",
                                                  "--seconds", plan.quick ? "0.3" : "1",
                                                  "--backend", plan.backends.map(\.rawValue).joined(separator: ",")],
                                     cpu: nil, timeout: .seconds(300))
            guard let start = output.range(of: "{\"runs\"") else { throw BenchError("reactor-microbench printed no JSON") }
            struct Micro: Decodable {
                struct Result: Decodable {
                    var backend: String
                    var wake_p50_us: Double
                    var wake_p99_us: Double
                    var idle_turn_ns: Double
                    var events_per_second: Double
                }
                var results: [Result]
            }
            let parsed = try JSONDecoder().decode(Micro.self, from: Data(output[start.lowerBound...].utf8))
            for result in parsed.results {
                let note = "latency: another thread wakes the loop; ops/s: events dispatched, 1,000 ready pipes; idle turn \(Format.number(result.idle_turn_ns)) ns"
                progress("wake, \(result.backend): p50 \(Format.number(result.wake_p50_us, digits: 1)) µs, p99 \(Format.number(result.wake_p99_us, digits: 1)) µs")
                rows.append(BenchRow(scenario: "wake", server: result.backend, connections: 0, messageBytes: 0,
                                     throughput: result.events_per_second, p50Microseconds: result.wake_p50_us,
                                     p99Microseconds: result.wake_p99_us, note: note))
            }
        } catch {
            fail("wake", error)
        }
    }

    /// `malloc_count.so`, to preload into the servers whose allocations
    /// `scenario` counts; nil (the skip said why) when it is not built, or in
    /// a sanitizer's build, whose allocator it cannot stand in front of (the
    /// servers are built the same way).
    mutating func allocationCounter(for scenario: String) -> String? {
        guard let counter = plan.peer("\(plan.cBin)/malloc_count.so") else {
            skip(scenario, "no malloc_count.so (bash Benchmarks/build.sh)")
            return nil
        }
        guard SanitizerBuild.measuresMemory else {
            skip(scenario, "built with a sanitizer, whose allocator malloc_count.so cannot stand in front of")
            return nil
        }
        return counter
    }

    /// Heap allocations per echo round trip (100 connections × 64 B) and
    /// per HTTP request, counted by `malloc_count.so` preloaded into each
    /// server, over a window after warm-up. Written into the echo and http
    /// rows when those ran, as rows of their own otherwise.
    mutating func allocations() {
        guard let counter = allocationCounter(for: "allocations") else { return }
        let preload = ["LD_PRELOAD": counter]
        for spec in echoServers {
            let label = "allocations, echo 100×64 B, \(spec.name)"
            do {
                let server = try start(spec, environment: preload)
                defer { server.stop() }
                let load = EchoLoad(settings: EchoLoad.Settings(port: server.port, connections: 100, messageBytes: 64,
                                                                warmup: .milliseconds(500), duration: .seconds(1)))
                var before = 0, after = 0
                var counterError: Error?
                load.onMeasure = { starting in
                    do { if starting { before = try server.allocations() } else { after = try server.allocations() } } catch { counterError = error }
                }
                try Runtime<EpollPoller, EchoLoad>(service: load).run()
                if let counterError { throw counterError }
                guard let result = load.result else { throw BenchError(load.failure ?? "no result") }
                let perRoundTrip = Double(after - before) / Double(result.roundTrips)
                progress("\(label): \(Format.number(perRoundTrip, digits: 4)) per round trip (\(after - before) over \(result.roundTrips))")
                record(allocations: perRoundTrip, scenario: "echo", server: spec.name, connections: 100, size: 64)
            } catch {
                fail(label, error)
            }
        }
        for spec in httpServers {
            let label = "allocations, http, \(spec.name)"
            do {
                let server = try start(spec, environment: preload)
                defer { server.stop() }
                _ = try runWrk(port: server.port, connections: 100, seconds: 1, cpu: plan.loadCPU)  // warm-up
                let before = try server.allocations()
                let result = try runWrk(port: server.port, connections: 100, seconds: 2, cpu: plan.loadCPU)
                let after = try server.allocations()
                let perRequest = Double(after - before) / result.requests
                progress("\(label): \(Format.number(perRequest, digits: 4)) per request (\(after - before) over \(Format.number(result.requests)); includes 100 new connections)")
                record(allocations: perRequest, scenario: "http", server: spec.name, connections: 100, size: 0)
            } catch {
                fail(label, error)
            }
        }
    }

    mutating func record(allocations: Double, scenario: String, server: String, connections: Int, size: Int) {
        if let index = rows.firstIndex(where: { $0.scenario == scenario && $0.server == server && $0.connections == connections && $0.messageBytes == size }) {
            rows[index].allocationsPerOperation = allocations
        } else {
            rows.append(BenchRow(scenario: scenario, server: server, connections: connections, messageBytes: size, throughput: 0,
                                 allocationsPerOperation: allocations, note: "allocations only"))
        }
    }

    // MARK: Helpers

    static func median(_ samples: [BenchRow]) -> BenchRow? {
        guard var row = samples.first else { return nil }
        row.throughput = Reactor_median(samples.map(\.throughput))
        row.perServerCPUSecond = samples.compactMap(\.perServerCPUSecond).nonEmptyMedian
        row.p50Microseconds = samples.compactMap(\.p50Microseconds).nonEmptyMedian
        row.p99Microseconds = samples.compactMap(\.p99Microseconds).nonEmptyMedian
        row.serverCPUSeconds = samples.compactMap(\.serverCPUSeconds).nonEmptyMedian
        row.redisCPUSeconds = samples.compactMap(\.redisCPUSeconds).nonEmptyMedian
        row.peakRSSKiB = samples.compactMap(\.peakRSSKiB).max()
        if samples.count > 1 { row.note = "median of \(samples.count)" }
        return row
    }

    func progress(_ text: String) {
        printError("reactor-bench: \(text)")
    }

    func skip(_ what: String, _ why: String) {
        printError("reactor-bench: skipping \(what): \(why)")
        if !skipped.lines.contains("\(what): \(why)") { skipped.lines.append("\(what): \(why)") }
    }

    mutating func fail(_ what: String, _ error: Error) {
        failures.append("\(what): \(error)")
        printError("reactor-bench: FAILED \(what): \(error)")
    }

    static func machine() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?
            .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "\(ProcessInfo.processInfo.activeProcessorCount) CPUs, \(model), Linux \(release)"
    }
}

/// The skips of a run, collected from scenarios that only read the bench.
private final class SkipLog {
    var lines: [String] = []
}

private func Reactor_median(_ values: [Double]) -> Double { median(values) }

extension Array where Element == Double {
    var nonEmptyMedian: Double? { isEmpty ? nil : median(self) }
}

/// A TCP port nothing listens on now (bound, then released).
func freePort() throws -> UInt16 {
    let listener = try SocketListener(bindingTo: .loopback(port: 0))
    return listener.localAddress.port
}
