// resp-bench: the RESP client's pipelined throughput against redis-server,
// and what it costs the client's CPU. Not a test; build it in release.
//
//   swift build -c release --product resp-bench
//   taskset -c 1 .build/release/resp-bench --server-cpu 0
//
// It starts redis-server (pinned with taskset to --server-cpu, nothing saved)
// unless --port names one already running. Each run is one runtime on this
// thread with one RedisClient, or a RedisPool of --connections, keeping
// --depth commands in flight in all (each reply sends the next command) until
// --commands have been answered, after a warm-up. A run reports commands per
// second of wall time and the client's CPU time (getrusage: user + system of
// this process, over the measured window), and redis-server's (from
// /proc/PID/stat). The figures printed last are medians over --runs.
import ArgumentParser
import CReactorSys
import Foundation
import ProtocolRESP
import Reactor
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One measured window.
struct Sample {
    var commands: Int
    var seconds: Double
    /// User and system CPU seconds of this process.
    var clientUser: Double
    var clientSystem: Double
    var serverCPU: Double?
    var failures: Int

    var perSecond: Double { Double(commands) / seconds }
    var clientCPU: Double { clientUser + clientSystem }
}

/// Runs the window in a runtime: warm-up, then the measured commands, then stops.
final class PipelineService: Service {
    let send: (_ arguments: [String], _ completion: @escaping RedisClient.Completion) -> Void
    let start: (Context) throws -> Void
    let close: () -> Void
    let isReady: () -> Bool
    let command: (Int) -> [String]
    let depth: Int
    let warmup: Int
    let count: Int
    let serverCPU: () -> Double?
    private(set) var sample: Sample?
    private(set) var failure: String?

    private var context: Context?
    private var issued = 0
    private var answered = 0
    private var failures = 0
    private var phaseCount = 0
    private var phaseDone: (() -> Void)?
    private var started: (clock: ContinuousClock.Instant, cpu: (user: Double, system: Double), server: Double?)?

    init(depth: Int, warmup: Int, count: Int, command: @escaping (Int) -> [String], serverCPU: @escaping () -> Double?,
         client: (send: (_ arguments: [String], _ completion: @escaping RedisClient.Completion) -> Void,
                  start: (Context) throws -> Void, close: () -> Void, isReady: () -> Bool)) {
        self.depth = depth
        self.warmup = warmup
        self.count = count
        self.command = command
        self.serverCPU = serverCPU
        send = client.send
        start = client.start
        close = client.close
        isReady = client.isReady
    }

    func runtimeStarted(context: Context) {
        self.context = context
        do { try start(context) } catch { return abandon("start: \(error)") }
        watchdog = context.schedule(after: .seconds(30))
        whenReady {
            self.phase(self.warmup) {
                self.started = (ContinuousClock.now, processCPU(), self.serverCPU())
                self.failures = 0
                self.phase(self.count) { self.finish() }
            }
        }
    }

    /// Waits (1 ms at a time) until every connection is up.
    private func whenReady(_ body: @escaping () -> Void) {
        if isReady() { return body() }
        ready = body
        context?.schedule(after: .milliseconds(1))
    }

    private var ready: (() -> Void)?
    private var watchdog: TimerID?

    func timerFired(_ timer: TimerID, context: Context) {
        if timer != watchdog, let body = ready {
            ready = nil
            return whenReady(body)
        }
        abandon("no end within 30 s: \(answered) of \(phaseCount) answered")
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    /// Sends `total` commands keeping `depth` in flight, then calls `done`.
    private func phase(_ total: Int, done: @escaping () -> Void) {
        issued = 0
        answered = 0
        phaseCount = total
        phaseDone = done
        for _ in 0..<min(depth, total) { issue() }
    }

    private func issue() {
        let index = issued
        issued += 1
        send(command(index)) { [self] result in
            if case .failure = result { failures += 1 }
            answered += 1
            if issued < phaseCount { issue() }
            if answered == phaseCount, let done = phaseDone {
                phaseDone = nil
                done()
            }
        }
    }

    private func finish() {
        guard let started else { return }
        let seconds = ContinuousClock.now - started.clock
        let server = serverCPU().flatMap { end in started.server.map { end - $0 } }
        let cpu = processCPU()
        sample = Sample(commands: count, seconds: Double(seconds.components.seconds) + Double(seconds.components.attoseconds) / 1e18,
                        clientUser: cpu.user - started.cpu.user, clientSystem: cpu.system - started.cpu.system,
                        serverCPU: server, failures: failures)
        close()
        context?.stop()
    }

    private func abandon(_ why: String) {
        failure = why
        close()
        context?.stop()
    }
}

/// User and system CPU seconds of this process so far.
func processCPU() -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// User + system CPU seconds of process `pid` so far, from /proc/PID/stat.
func processCPU(pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let end = stat.lastIndex(of: ")") else { return nil }
    // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The CPUs this process may run on, as /proc shows them (`1`, `0-1`).
func allowedCPUs() -> String {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
    return line.map { $0.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces) } ?? "?"
}

/// redis-server on a free port, pinned to one CPU, saving nothing.
final class RedisServer {
    let process: SpawnedProcess
    let port: UInt16

    init(cpu: Int, executable: String) throws {
        port = try freePort()
        // Standard error stays ours: redis-server's warnings show up in the run's output.
        process = try SpawnedProcess(executable: "/usr/bin/taskset",
                                     arguments: ["-c", "\(cpu)", executable, "--port", "\(port)", "--bind", "127.0.0.1", "--save", "",
                                                 "--appendonly", "no", "--logfile", "", "--loglevel", "warning", "--daemonize", "no"],
                                     standardError: STDERR_FILENO)
        // taskset execs the server: the child's pid is redis-server's own.
        let deadline = ContinuousClock.now + .seconds(10)
        while !canConnect(port) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw ValidationError("redis-server did not start on port \(port)")
            }
            usleep(10_000)
        }
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// A port nobody listened on a moment ago.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard fd >= 0, bound else { throw ValidationError("no free port: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

/// True when a TCP connection to 127.0.0.1:`port` is accepted.
func canConnect(_ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

@main
struct RESPBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resp-bench",
        abstract: "The RESP client's pipelined throughput against redis-server, and its CPU time: one RedisClient and a RedisPool.")

    @Option(help: "Connections per row, comma-separated: 1 is one RedisClient, more a RedisPool of that many.")
    var connections = "1,4"

    @Option(help: "Commands measured per run.")
    var commands = 1_000_000

    @Option(help: "Commands answered before the measured window opens.")
    var warmup = 100_000

    @Option(help: "Commands in flight in all (over every connection of a pool).")
    var depth = 512

    @Option(help: "The command: set (SET key:N with a 16-byte value over 10,000 keys), get (GET key:N), or ping.")
    var command = "set"

    @Option(help: "Runs per row; the figures are medians.")
    var runs = 3

    @Option(help: "The backend of the client's runtime: \(Backend.validNames).")
    var backend = "epoll"

    @Option(help: "Pin this process to that CPU (as taskset -c does).")
    var cpu: Int?

    @Option(help: "The CPU redis-server runs on, when this tool starts it.")
    var serverCPU = 0

    @Option(help: "An already running redis-server on 127.0.0.1 (its CPU is then not measured).")
    var port: UInt16?

    @Option(help: "The redis-server executable, when this tool starts it.")
    var redisServer = "/usr/bin/redis-server"

    mutating func run() throws {
        if let cpu, reactor_pin_thread(0, Int32(cpu)) != 0 { throw ValidationError("cannot pin to CPU \(cpu): errno \(errno)") }
        guard ["set", "get", "ping"].contains(command) else { throw ValidationError("--command: set, get or ping") }
        let rows = try connections.split(separator: ",").map { part -> Int in
            guard let n = Int(part), n >= 1 else { throw ValidationError("--connections: positive numbers, comma-separated") }
            return n
        }
        let backend = try Backend(name: self.backend)
        let server = port == nil ? try RedisServer(cpu: serverCPU, executable: redisServer) : nil
        defer { server?.stop() }
        let port = self.port ?? server!.port
        let serverPID = server?.process.processIdentifier

        let keys = (0..<10_000).map { "key:\($0)" }
        let value = String(repeating: "v", count: 16)
        let makeCommand: (Int) -> [String] = switch command {
        case "get": { ["GET", keys[$0 % keys.count]] }
        case "ping": { _ in ["PING"] }
        default: { ["SET", keys[$0 % keys.count], value] }
        }
        print("resp-bench: \(commands) × \(command.uppercased()) per run, \(depth) in flight, backend \(backend.rawValue), client on CPU \(allowedCPUs())"
              + (server.map { _ in ", redis-server on CPU \(serverCPU)" } ?? ", redis-server on port \(port)"))
        for connections in rows {
            var samples: [Sample] = []
            for run in 1...runs {
                let sample = try measure(connections: connections, port: port, backend: backend, command: makeCommand,
                                         serverCPU: { serverPID.flatMap { processCPU(pid: $0) } })
                samples.append(sample)
                print(String(format: "  %@ run %d: %.0f commands/s, client CPU %.2f s (user %.2f + sys %.2f; %.0f%% of the time, %.2f µs per command)%@%@",
                             label(connections), run, sample.perSecond, sample.clientCPU, sample.clientUser, sample.clientSystem,
                             100 * sample.clientCPU / sample.seconds,
                             1e6 * sample.clientCPU / Double(sample.commands),
                             sample.serverCPU.map { String(format: ", redis-server CPU %.2f s (%.0f%%)", $0, 100 * $0 / sample.seconds) } ?? "",
                             sample.failures > 0 ? ", \(sample.failures) FAILED" : ""))
            }
            let median = samples.sorted { $0.perSecond < $1.perSecond }[samples.count / 2]
            let cpu = samples.map(\.clientCPU).sorted()[samples.count / 2]
            let user = samples.map(\.clientUser).sorted()[samples.count / 2]
            let system = samples.map(\.clientSystem).sorted()[samples.count / 2]
            let perCommand = samples.map { 1e6 * $0.clientCPU / Double($0.commands) }.sorted()[samples.count / 2]
            print(String(format: "%@: median %.0f commands/s, client CPU %.2f s (user %.2f, sys %.2f) per %d commands (%.2f µs per command)",
                         label(connections), median.perSecond, cpu, user, system, commands, perCommand))
        }
    }

    private func label(_ connections: Int) -> String { connections == 1 ? "1 client" : "pool of \(connections)" }

    private func measure(connections: Int, port: UInt16, backend: Backend, command: @escaping (Int) -> [String],
                         serverCPU: @escaping () -> Double?) throws -> Sample {
        struct Run: PollerVisitor {
            let service: PipelineService
            func visit<P: Poller>(_ type: P.Type) throws { try Runtime<P, PipelineService>(service: service).run() }
        }
        let service: PipelineService
        let options = RedisClientOptions(commandTimeout: .seconds(30))
        if connections == 1 {
            let client = RedisClient(host: "127.0.0.1", port: port, options: options)
            service = PipelineService(depth: depth, warmup: warmup, count: commands, command: command, serverCPU: serverCPU,
                                      client: (client.send, { try client.start(context: $0) }, client.close, { client.state == .connected }))
        } else {
            let pool = RedisPool(host: "127.0.0.1", port: port, connections: connections, options: options)
            service = PipelineService(depth: depth, warmup: warmup, count: commands, command: command, serverCPU: serverCPU,
                                      client: (pool.send, { try pool.start(context: $0) }, pool.close, { pool.connectedCount == connections }))
        }
        try backend.visit(Run(service: service))
        if let failure = service.failure { throw ValidationError("\(label(connections)): \(failure)") }
        return try service.sample ?? { throw ValidationError("\(label(connections)): no sample") }()
    }
}
