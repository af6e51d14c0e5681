// reactor-microbench: what one loop costs, per backend. Not a test; build it in release.
//
//   swift build -c release --product reactor-microbench
//   .build/release/reactor-microbench --runs 5 --cpu 1 --json
//
// For every backend it measures
//   - wake-up latency: another thread sends a command through the Controller;
//     the Service answers by signalling an eventfd the sender is blocked on;
//   - one idle loop turn: `loopTimeout: .zero`, nothing registered, nothing ready;
//   - event dispatch: 1,000 pipes holding one unread byte each, registered as
//     plain level-triggered `Resource`s, so every turn reports all 1,000.
// Each figure is the median over `--runs` runs.
import ArgumentParser
import CReactorSys
import Reactor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// MARK: Services

/// Answers every command by adding 1 to the eventfd its sender waits on.
final class PingService: Service {
    typealias Command = UInt64
    let reply: Int32
    init(reply: Int32) { self.reply = reply }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    func handle(command: UInt64, context: Context) {
        var one: UInt64 = 1
        _ = write(reply, &one, 8)
    }
}

/// What the loop did during a measurement window.
struct Window {
    var nanoseconds: UInt64
    var turns: UInt64
    var events: UInt64
}

/// Lets the loop run, opens a window once `warmup` has passed, and stops the
/// runtime when the window has lasted `length`. Turn boundaries are the clock:
/// both ends are taken in `loopTurnEnded`, from the instant the turn's wait returned.
final class WindowService: Service {
    let warmup: Duration
    let length: Duration
    private var startedAt = MonotonicInstant(nanoseconds: 0)
    private var opened: (at: MonotonicInstant, turns: UInt64, events: UInt64)?
    private(set) var window: Window?

    init(warmup: Duration, length: Duration) {
        self.warmup = warmup
        self.length = length
    }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
    func runtimeStarted(context: Context) {
        startedAt = context.now
    }

    func loopTurnEnded(context: Context) {
        let now = context.now
        guard let opened else {
            if now >= startedAt.advanced(by: warmup) {
                opened = (now, context.statistics.loopTurns, context.statistics.eventsDispatched)
            }
            return
        }
        guard window == nil, now >= opened.at.advanced(by: length) else { return }
        window = Window(nanoseconds: now.nanoseconds - opened.at.nanoseconds,
                        turns: context.statistics.loopTurns - opened.turns,
                        events: context.statistics.eventsDispatched - opened.events)
        context.stop()
    }
}

// MARK: Measurements

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Settings {
    var seconds: Double
    var roundTrips: Int
    var warmupRoundTrips: Int
    var readyPipes: Int
}

/// One run's figures for one backend.
struct Sample {
    var wakeP50: Double  // µs
    var wakeP99: Double  // µs
    var idleTurn: Double  // ns
    var eventsPerSecond: Double
}

/// Runs every measurement once with backend `P`.
/// Runs `measure` with a backend's concrete poller type, so the loop being
/// measured is the specialised one a server built on `Backend.visit` runs.
struct Measure: PollerVisitor {
    let settings: Settings
    func visit<P: Poller>(_ type: P.Type) throws -> Sample { try measure(type, settings: settings) }
}

func measure<P: Poller>(_ type: P.Type, settings: Settings) throws -> Sample {
    let (p50, p99) = try wakeLatency(P.self, settings: settings)
    let idle = try idleTurn(P.self, settings: settings)
    let events = try readyPipeEvents(P.self, settings: settings)
    return Sample(wakeP50: p50, wakeP99: p99, idleTurn: idle, eventsPerSecond: events)
}

/// Round trips through `Controller.send`: median and 99th percentile, in µs.
func wakeLatency<P: Poller>(_ type: P.Type, settings: Settings) throws -> (Double, Double) {
    let reply = try Syscall.check("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) }  // blocking: the sender sleeps in read(2)
    defer { _ = close(reply) }

    let controller = try Runtime<P, PingService>.spawn(name: "bench-\(P.name)") { PingService(reply: reply) }
    defer {
        controller.shutdown()
        controller.join()
    }

    var samples: [UInt64] = []
    samples.reserveCapacity(settings.roundTrips)
    for index in 0..<(settings.warmupRoundTrips + settings.roundTrips) {
        let start = MonotonicInstant.now()
        try controller.send(UInt64(index))
        try awaitReply(reply)
        let end = MonotonicInstant.now()
        if index >= settings.warmupRoundTrips { samples.append(end.nanoseconds - start.nanoseconds) }
    }
    samples.sort()
    let p50 = samples[(samples.count - 1) / 2]
    let p99 = samples[max(0, Int((Double(samples.count) * 0.99).rounded(.up)) - 1)]
    return (Double(p50) / 1000, Double(p99) / 1000)
}

/// Blocks until the Service signals `fd`; fails after 5 s rather than hanging.
func awaitReply(_ fd: Int32) throws {
    var value: UInt64 = 0
    while true {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        switch Syscall.run({ poll(&entry, 1, 5000) }) {
        case .success(0): throw BenchError("no reply from the runtime within 5 s")
        case .success: break
        case .failure(.interrupted): continue
        case .failure(let errno): throw ReactorError("poll", .fd(fd), errno: errno)
        }
        switch Syscall.run({ read(fd, &value, 8) }) {
        case .success(8): return
        case .success, .failure(.interrupted): continue
        case .failure(let errno): throw ReactorError("read", .fd(fd), errno: errno)
        }
    }
}

/// Nanoseconds per loop turn with nothing registered and a zero timeout.
func idleTurn<P: Poller>(_ type: P.Type, settings: Settings) throws -> Double {
    let window = try runWindow(P.self, settings: settings, loopTimeout: .zero) { _ in }
    return Double(window.nanoseconds) / Double(max(window.turns, 1))
}

/// Events dispatched per second with `settings.readyPipes` pipes always readable.
func readyPipeEvents<P: Poller>(_ type: P.Type, settings: Settings) throws -> Double {
    var writeEnds: [Int32] = []
    defer { for fd in writeEnds { _ = close(fd) } }
    let window = try runWindow(P.self, settings: settings, loopTimeout: .milliseconds(10)) { context in
        for _ in 0..<settings.readyPipes {
            var fds: [Int32] = [-1, -1]
            try Syscall.check("pipe") { pipe(&fds) }
            writeEnds.append(fds[1])
            // The resource owns the read end from here on (the runtime closes it).
            let reader = Resource(fd: FileDescriptor(rawValue: fds[0]), interest: .read)
            var byte: UInt8 = 1
            try Syscall.check("write", .fd(fds[1])) { write(fds[1], &byte, 1) }
            try context.register(reader)
        }
    }
    let perTurn = Double(window.events) / Double(max(window.turns, 1))
    if perTurn.rounded() != Double(settings.readyPipes) {
        throw BenchError("expected \(settings.readyPipes) events per turn, saw \(perTurn)")
    }
    return Double(window.events) * 1e9 / Double(window.nanoseconds)
}

/// Runs a `WindowService` runtime on this thread after `setUp`, and returns its window.
func runWindow<P: Poller>(
    _ type: P.Type, settings: Settings, loopTimeout: Duration,
    setUp: (Context) throws -> Void
) throws -> Window {
    let length = Duration.seconds(settings.seconds)
    let service = WindowService(warmup: min(length / 10, .milliseconds(200)), length: length)
    let runtime = try Runtime<P, WindowService>(service: service, options: RuntimeOptions(loopTimeout: loopTimeout))
    try setUp(runtime.context)
    try runtime.run()
    guard let window = service.window else { throw BenchError("the runtime stopped before the window closed") }
    return window
}

// MARK: Process set-up

// MARK: Output

/// `value` with `digits` decimals (no Foundation needed).
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int64((abs(value) * scale).rounded())
    let unit = Int64(scale)
    var text = (value < 0 && scaled != 0 ? "-" : "") + "\(scaled / unit)"
    if digits > 0 {
        let fraction = String(scaled % unit)
        text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
    return text
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// A table with the first column left-aligned and the others right-aligned.
func table(_ rows: [[String]]) -> String {
    let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { column, cell in
            let pad = String(repeating: " ", count: widths[column] - cell.count)
            return column == 0 ? cell + pad : pad + cell
        }.joined(separator: " | ")
    }
    let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "-|-")
    return ([line(rows[0]), rule] + rows.dropFirst().map(line)).joined(separator: "\n")
}

// MARK: Command

@main
struct Microbench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reactor-microbench",
        abstract: "Wake-up latency, idle loop turn and event dispatch rate of each polling backend.",
        discussion: "Build in release: swift build -c release --product reactor-microbench"
    )

    @Option(name: .long, help: "Backends to measure, repeatable or comma-separated: \(Backend.validNames) (default: all built).")
    var backend: [String] = []

    @Option(help: "Length of each timed measurement, in seconds.")
    var seconds: Double = 1.0

    @Option(help: "Runs per backend; each figure is the median over the runs.")
    var runs: Int = 3

    @Option(help: "Controller round trips timed per run (after a warm-up of a tenth as many).")
    var roundTrips: Int = 2000

    @Option(help: "Pin the process to this CPU (sched_setaffinity). Unpinned by default.")
    var cpu: Int32?

    @Flag(help: "Also print the results as JSON.")
    var json = false

    mutating func validate() throws {
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard roundTrips >= 1 else { throw ValidationError("--round-trips must be at least 1") }
    }

    mutating func run() throws {
        var backends: [Backend] = []
        for name in backend.flatMap({ $0.split(separator: ",") }).map({ String($0).trimmingSpaces }) where !name.isEmpty {
            do throws(ReactorError) {
                let chosen = try Backend(name: name)
                if !backends.contains(chosen) { backends.append(chosen) }
            } catch {
                printError("reactor-microbench: \(error.detail ?? "\(error)")")
                throw ExitCode(2)
            }
        }
        if backends.isEmpty { backends = Backend.built.filter { $0.availability.isAvailable } }

        let settings = Settings(seconds: seconds, roundTrips: roundTrips,
                                warmupRoundTrips: max(roundTrips / 10, 1), readyPipes: 1000)
        do {
            if let cpu { try ProcessTuning.pin(toCPU: cpu) }
            try ProcessTuning.ensureDescriptorLimit(2 * settings.readyPipes + 64)
        } catch {
            printError("reactor-microbench: \(error)")
            throw ExitCode.failure
        }

        print("swift-reactor microbench: median of \(runs) run\(runs == 1 ? "" : "s"), "
              + "\(fixed(seconds, 2)) s per timed measurement, \(roundTrips) round trips, "
              + (cpu.map { "pinned to CPU \($0)" } ?? "not pinned"))
        flushStandardOutput()

        var results: [(Backend, Sample)] = []
        for chosen in backends {
            var samples: [Sample] = []
            for index in 1...runs {
                printError("measuring \(chosen) (run \(index)/\(runs))")
                do {
                    samples.append(try chosen.visit(Measure(settings: settings)))
                } catch {
                    printError("reactor-microbench: \(chosen): \(error)")
                    throw ExitCode.failure
                }
            }
            results.append((chosen, Sample(wakeP50: median(samples.map(\.wakeP50)),
                                           wakeP99: median(samples.map(\.wakeP99)),
                                           idleTurn: median(samples.map(\.idleTurn)),
                                           eventsPerSecond: median(samples.map(\.eventsPerSecond)))))
        }

        var rows = [["backend", "wake p50 µs", "wake p99 µs", "idle turn ns", "events/s (1k ready pipes)"]]
        for (chosen, sample) in results {
            rows.append([chosen.rawValue, fixed(sample.wakeP50, 1), fixed(sample.wakeP99, 1),
                         fixed(sample.idleTurn, 0), fixed(sample.eventsPerSecond / 1e6, 2) + " M"])
        }
        print("")
        print(table(rows))

        if json {
            let entries = results.map { chosen, sample in
                "{\"backend\": \"\(chosen.rawValue)\", \"wake_p50_us\": \(fixed(sample.wakeP50, 2)), "
                    + "\"wake_p99_us\": \(fixed(sample.wakeP99, 2)), \"idle_turn_ns\": \(fixed(sample.idleTurn, 1)), "
                    + "\"events_per_second\": \(fixed(sample.eventsPerSecond, 0))}"
            }
            print("")
            print("{\"runs\": \(runs), \"seconds\": \(fixed(seconds, 3)), \"round_trips\": \(roundTrips), "
                  + "\"ready_pipes\": \(settings.readyPipes), \"cpu\": \(cpu.map { "\($0)" } ?? "null"),\n"
                  + " \"results\": [\n  " + entries.joined(separator: ",\n  ") + "\n ]}")
        }
        flushStandardOutput()
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
