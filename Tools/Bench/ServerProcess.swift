import Foundation
import Reactor
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A server under measurement: a child process pinned to one CPU with
/// `taskset`, its port read from its first `listening on HOST:PORT` line
/// (or the first one containing a marker, for a server with several
/// listeners), its CPU time and peak memory read from `/proc`.
final class ServerProcess {
    let name: String
    let process: SpawnedProcess
    private(set) var port: UInt16 = 0
    /// The read end of the server's standard output.
    private let output: Int32
    private let errors: URL

    /// Starts `executable arguments` on `cpu`, with `environment` added.
    /// With `fixedPort` it waits until that port accepts; otherwise it reads
    /// the port from the first `listening on` line (containing
    /// `listenerMarker`, when given).
    init(name: String, executable: String, arguments: [String], cpu: Int, environment: [String: String] = [:],
         announces: Bool = true, port fixedPort: UInt16? = nil, listenerMarker: String? = nil) throws {
        self.name = name
        errors = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-bench-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).err")
        let errorFile = open(errors.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard errorFile >= 0 else { throw BenchError("\(name): cannot create \(errors.path): \(String(cString: strerror(errno)))") }
        defer { close(errorFile) }
        let pipe = try makePipe()
        // Ours is closed once the child has it: a read then sees end of file when the server exits.
        defer { close(pipe.write) }
        output = pipe.read
        // taskset execs the server: the child's pid is the server's own, so /proc/PID is its CPU and memory.
        do {
            process = try SpawnedProcess(executable: "/usr/bin/taskset", arguments: ["-c", "\(cpu)", executable] + arguments,
                                         environment: environment, standardOutput: pipe.write, standardError: errorFile)
        } catch {
            close(pipe.read)
            try? FileManager.default.removeItem(at: errors)
            throw error
        }
        if let fixedPort {
            port = fixedPort
            try waitUntilAccepting(port: fixedPort)
            return
        }
        guard announces else { throw BenchError("\(name): no port") }
        let deadline = ContinuousClock.now + .seconds(20)
        var line = try readLine(until: deadline)
        var earlier: [String] = []
        while let listenerMarker, line.contains("listening on ") && !line.contains(listenerMarker) {
            earlier.append(line)
            do { line = try readLine(until: deadline) } catch {
                stop()
                throw BenchError("\(name): no 'listening on' line with '\(listenerMarker)' after \(earlier.map { "'\($0)'" }.joined(separator: ", ")): \(error)")
            }
        }
        guard let range = line.range(of: "listening on "),
              let colon = line[range.upperBound...].firstIndex(of: ":"),
              let port = UInt16(line[line.index(after: colon)...].prefix { $0.isNumber }), port != 0 else {
            stop()
            throw BenchError("\(name): unexpected first line '\(line)'; stderr: \(standardError())")
        }
        self.port = port
    }

    var pid: Int32 { process.processIdentifier }

    /// CPU seconds the server has run so far (user + system, all its
    /// threads): the sum of each thread's run time in nanoseconds from
    /// `/proc/PID/task/*/schedstat`. `/proc/PID/stat` counts in clock ticks
    /// (10 ms), which is a 10% error on a quick kv window of 0.1 CPU-s; it is
    /// the fallback where schedstat is missing.
    func cpuSeconds() -> Double {
        if let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"), !threads.isEmpty {
            var nanoseconds: UInt64 = 0
            var complete = true
            for thread in threads {
                guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/schedstat", encoding: .utf8),
                      let first = text.split(separator: " ").first, let value = UInt64(first) else { complete = false; break }
                nanoseconds += value
            }
            if complete { return Double(nanoseconds) / 1e9 }
        }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return .nan }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Current and peak resident memory in KiB (VmRSS, VmHWM).
    func memoryKiB() -> (resident: Int, peak: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "0") ?? 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// Resets the peak resident memory to the current one (Linux ≥ 4.0), so a
    /// scenario's peak is its own.
    func resetPeakMemory() {
        try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
    }

    /// Open descriptors of the server.
    func descriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// The allocation counter's total so far (the server must run with
    /// `malloc_count.so` preloaded): SIGUSR2 makes it print a line on stderr.
    func allocations() throws -> Int {
        let before = standardError().components(separatedBy: "\n").filter { $0.hasPrefix("malloc_count ") }.count
        kill(pid, SIGUSR2)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let lines = standardError().components(separatedBy: "\n").filter { $0.hasPrefix("malloc_count ") }
            if lines.count > before, let last = lines.last, let range = last.range(of: "allocations="),
               let count = Int(last[range.upperBound...].prefix { $0.isNumber }) {
                return count
            }
            usleep(10_000)
        }
        throw BenchError("\(name): no malloc_count line after SIGUSR2 (is malloc_count.so preloaded?)")
    }

    func standardError() -> String {
        String(decoding: readFile(errors.path), as: UTF8.self)
    }

    /// SIGTERM, then SIGKILL if it lingers.
    func stop() {
        if process.isRunning {
            process.terminate()
            if process.waitForExit(timeout: .seconds(5)) == nil {
                process.send(SIGKILL)
                process.waitUntilExit()
            }
        }
        try? FileManager.default.removeItem(at: errors)
    }

    deinit { close(output) }

    private func readLine(until deadline: ContinuousClock.Instant) throws -> String {
        let fd = output
        var line: [UInt8] = []
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard ContinuousClock.now < deadline else {
                throw BenchError("\(name): no 'listening on' line within 20 s; stderr: \(standardError())")
            }
            if poll(&entry, 1, 100) <= 0 { continue }
            var byte: UInt8 = 0
            let n = read(fd, &byte, 1)
            if n == 1 {
                if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
                line.append(byte)
            } else if n == 0 {
                throw BenchError("\(name) exited before listening: \(standardError())")
            }
        }
    }

    private func waitUntilAccepting(port: UInt16) throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let fd = try? blockingConnect(port: port) { close(fd); return }
            guard process.isRunning else { throw BenchError("\(name) exited: \(standardError())") }
            usleep(50_000)
        }
        throw BenchError("\(name) did not accept connections on port \(port) within 20 s")
    }
}

/// A blocking TCP connection to 127.0.0.1:`port`, optionally from `source` (any 127.x.y.z).
func blockingConnect(port: UInt16, source: UInt32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
    func fail(_ what: String) -> BenchError {
        let error = errno
        close(fd)
        return BenchError("\(what): \(String(cString: strerror(error)))")
    }
    if let source {
        let host = [24, 16, 8, 0].map { String((source >> $0) & 0xFF) }.joined(separator: ".")
        let local = try SocketAddress(host: host, port: 0)
        guard local.withSockAddr({ bind(fd, $0, $1) }) == 0 else { throw fail("bind \(host)") }
    }
    guard SocketAddress.loopback(port: port).withSockAddr({ connect(fd, $0, $1) }) == 0 else {
        throw fail("connect(127.0.0.1:\(port))")
    }
    return fd
}

/// Runs a command to completion (pinned with taskset when `cpu` is given) and returns its standard output.
func runTool(_ executable: String, _ arguments: [String], cpu: Int?, timeout: Duration) throws -> String {
    let result = try runTool(URL(fileURLWithPath: cpu == nil ? executable : "/usr/bin/taskset"),
                             cpu.map { ["-c", "\($0)", executable] + arguments } ?? arguments, timeout: timeout)
    guard result.status == 0 else {
        throw BenchError("\(executable) exited with \(result.status): \(result.errorOutput.prefix(500))")
    }
    return result.output
}
