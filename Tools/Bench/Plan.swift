import Foundation
import Reactor

/// What to measure and with what: resolved from the command line, with every
/// missing binary found (or explained) before anything runs.
struct Plan {
    var quick: Bool
    var backends: [Backend]
    var scenarios: Set<String>
    var runs: Int
    var seconds: Double
    var warmup: Double
    var serverCPU: Int
    var loadCPU: Int
    /// The CPU of the links scenario's redis-server (the load CPU unless `--redis-cpu` says).
    var redisCPU: Int
    var binPath: String
    var cBin: String
    var peersBin: String
    var echoConnections: [Int]
    var idleCounts: [Int]
    var kvRequests: Int
    var idleTLSConnections: Int
    var timerCount: Int

    static let allScenarios = ["echo", "http", "kv", "links", "idle", "timers", "wake", "allocations", "tls", "responsiveness"]

    init(_ options: ReactorBench) throws {
        quick = options.quick
        if let names = options.backends {
            backends = []
            for name in names.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                do throws(ReactorError) { backends.append(try Backend(name: name)) } catch {
                    throw BenchError(error.detail ?? "\(error)")
                }
            }
            for backend in backends where !backend.availability.isAvailable {
                throw BenchError("backend \(backend) cannot run here: \(backend.availability)")
            }
        } else {
            backends = Backend.preference.filter { $0.availability.isAvailable }
        }
        let requested = options.scenarios.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? Plan.allScenarios
        for name in requested where !Plan.allScenarios.contains(name) {
            throw BenchError("unknown scenario '\(name)'; valid: \(Plan.allScenarios.joined(separator: ", "))")
        }
        scenarios = Set(requested)
        runs = options.runs ?? (quick ? 1 : 3)
        seconds = options.seconds ?? (quick ? 1.5 : 4)
        warmup = quick ? 0.3 : 1
        serverCPU = options.serverCPU
        loadCPU = options.loadCPU
        redisCPU = options.redisCPU ?? options.loadCPU
        binPath = options.binPath ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let root = URL(fileURLWithPath: options.root).standardizedFileURL.path
        cBin = "\(root)/Benchmarks/.build-c"
        peersBin = "\(root)/Benchmarks/Peers/.build/release"
        echoConnections = quick ? [1, 100, 1000] : [1, 100, 1000, 10_000]
        idleCounts = quick ? [10_000] : [10_000, 19_000]
        kvRequests = options.kvRequests ?? (quick ? 50_000 : 200_000)
        idleTLSConnections = options.idleTLSConnections
        timerCount = 1_000_000
        for product in ["echo", "http", "kv"] + (scenarios.contains("links") ? ["links"] : []) where !FileManager.default.isExecutableFile(atPath: "\(binPath)/\(product)") {
            throw BenchError("no release \(product) at \(binPath)/\(product); build with `swift build -c release` (or run bash scripts/run.sh)")
        }
    }

    /// Descriptors this process and the servers it starts (which inherit its
    /// limit) need: the most connections a scenario opens, plus room for
    /// listeners, pipes and the tools' own files.
    var descriptorsNeeded: Int {
        var most = 100
        if scenarios.contains("echo") { most = max(most, echoConnections.max() ?? 0) }
        if scenarios.contains("idle") { most = max(most, idleCounts.max() ?? 0) }
        if scenarios.contains("tls") { most = max(most, idleTLSConnections) }
        if scenarios.contains("responsiveness") { most = max(most, 1000) }  // the slow reader and its 999 neighbours
        return most + 600
    }

    /// A peer's binary, or nil (the run says it skipped the peer and why).
    func peer(_ path: String) -> String? {
        FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }
}
