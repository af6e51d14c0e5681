// reactor-bench: every backend and the peers side by side, under the same
// load, in one run. Servers run on one CPU, the load on another; each row
// reports throughput, throughput per server CPU-second, latency, the
// server's CPU time and peak memory; results go to a table, JSON, CSV and
// an SVG chart.
//
//   bash scripts/run.sh --quick          (builds everything it needs, then runs this)
//   .build/release/reactor-bench --help
import ArgumentParser
import Foundation
import Reactor

@main
struct ReactorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reactor-bench",
        abstract: "Compare swift-reactor's backends with each other and with C, SwiftNIO, redis-server and (over TLS) NIOSSL and nginx; and measure the links example in front of redis-server.",
        discussion: "Run through `bash scripts/run.sh`, which builds the release binaries, the C reference and the SwiftNIO peers first.")

    @Flag(help: "A few minutes: one run per row, shorter windows, fewer connection counts.")
    var quick = false

    @Option(help: "Backends, comma-separated: \(Backend.validNames) (default: every available one).")
    var backends: String?

    @Option(help: "Scenarios, comma-separated: echo, http, kv, links, idle, timers, wake, allocations, tls, responsiveness (default: all).")
    var scenarios: String?

    @Option(help: "Runs per row; each number is the median (default: 3, or 1 with --quick).")
    var runs: Int?

    @Option(help: "Seconds per measured window (default: 4, or 1.5 with --quick).")
    var seconds: Double?

    @Option(help: "redis-benchmark requests per kv row at -P 1, four times as many at -P 16 (default: 200,000, or 50,000 with --quick).")
    var kvRequests: Int?

    @Option(help: "Idle TLS connections the tls scenario opens against each server.")
    var idleTLSConnections = 10_000

    @Option(help: "The CPU the servers run on.")
    var serverCPU = 0

    @Option(help: "The CPU the load runs on (this process, wrk, redis-benchmark).")
    var loadCPU = 1

    @Option(help: "The CPU the links scenario's redis-server runs on (default: the load CPU, leaving the server CPU to links alone).")
    var redisCPU: Int?

    @Option(help: "Where the release `echo`, `http`, `kv` and `links` are (default: next to this program).")
    var binPath: String?

    @Option(help: "The package root, where Benchmarks/.build-c and Benchmarks/Peers are.")
    var root = "."

    @Option(help: "Directory for results.json, results.csv and echo.svg.")
    var output = ".build-bench/results"

    @Option(help: "Measure nothing: read an earlier run's results.json, judge the targets again, print the table and write the files to --output.")
    var report: String?

    mutating func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if let seconds, seconds <= 0 { throw ValidationError("--seconds must be positive") }
        if let kvRequests, kvRequests < 1 { throw ValidationError("--kv-requests must be at least 1") }
        if idleTLSConnections < 1 { throw ValidationError("--idle-tls-connections must be at least 1") }
        if let redisCPU, redisCPU < 0 { throw ValidationError("--redis-cpu must be a CPU number (0 or more)") }
        guard serverCPU != loadCPU else { throw ValidationError("--server-cpu and --load-cpu must differ: a client sharing the server's CPU measures neither") }
    }

    mutating func run() throws {
        if let report {
            do {
                var earlier = try JSONDecoder().decode(BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: report)))
                earlier.targets = earlier.evaluateTargets()
                try present(earlier)
                return
            } catch let error as DecodingError {
                printError("reactor-bench: \(report) is not a reactor-bench results.json: \(error)")
                throw ExitCode(2)
            } catch let error as CocoaError {
                printError("reactor-bench: cannot read \(report): \(error.localizedDescription)")
                throw ExitCode(2)
            }
        }
        let plan: Plan
        do {
            plan = try Plan(self)
        } catch {
            printError("reactor-bench: \(error)")
            throw ExitCode(2)
        }
        // The servers inherit this thread's signal mask through Process. A
        // parent that blocks signals (the test runner blocks nearly all)
        // would leave SIGUSR2 blocked in them, and the allocation counter
        // would never report: start them with none blocked, as a shell does.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        do {
            try ProcessTuning.pin(toCPU: Int32(loadCPU))
            try ProcessTuning.ensureDescriptorLimit(plan.descriptorsNeeded)
        } catch {
            printError("reactor-bench: \(error)")
            throw ExitCode.failure
        }
        var bench = Bench(plan: plan)
        try present(bench.run())
        if !bench.failures.isEmpty {
            printError("reactor-bench: \(bench.failures.count) measurement(s) failed:\n  " + bench.failures.joined(separator: "\n  "))
            throw ExitCode.failure
        }
    }

    /// Prints the table and the targets' verdicts; writes JSON, CSV and the chart to `output`.
    func present(_ report: BenchReport) throws {
        print("")
        print(report.table())
        print("")
        print(report.targetsText())
        if let skipped = report.skipped {
            print("\nLeft out of this run:\n" + skipped.map { "  - \($0)" }.joined(separator: "\n"))
        }
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try encoder.encode(report).write(to: URL(fileURLWithPath: "\(output)/results.json"))
            try report.csv().write(toFile: "\(output)/results.csv", atomically: true, encoding: .utf8)
            try Chart.echoSVG(rows: report.rows, title: "echo ping-pong, 64 B: \(report.machine)")
                .write(toFile: "\(output)/echo.svg", atomically: true, encoding: .utf8)
            print("\nwrote \(output)/results.json, results.csv and echo.svg")
        } catch {
            printError("reactor-bench: writing results to \(output): \(error)")
            throw ExitCode.failure
        }
    }
}
