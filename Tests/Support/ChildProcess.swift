// Child processes for the tests that run programs as a user would: the
// example executables built with the tests, and real clients and peers on
// PATH (nc, redis-cli, redis-benchmark, redis-server, curl, wrk). Every wait
// has a deadline and every child is stopped, so no child outlives its test.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// MARK: Finding executables

/// Where the programs the tests run are: the package's own executable
/// products, and tools installed on the system.
public enum Executables {
    /// An executable product built with the tests (`echo`, `kv`,
    /// `reactor-bench`…): next to the test binary first (same
    /// configuration), then next to `argv[0]`, then under the package's
    /// `.build` (`debug/`, then each `TRIPLE/debug/`). Throws, listing every
    /// place it looked, when it has not been built.
    public static func product(_ name: String) throws -> URL {
        var candidates: [URL] = []
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(testBinary.deletingLastPathComponent().appendingPathComponent(name))
        if let argument = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: argument).deletingLastPathComponent().appendingPathComponent(name))
        }
        if let root = packageRoot() {
            let build = root.appendingPathComponent(".build")
            candidates.append(build.appendingPathComponent("debug/\(name)"))
            let triples = (try? FileManager.default.contentsOfDirectory(atPath: build.path)) ?? []
            for triple in triples.sorted() {
                candidates.append(build.appendingPathComponent(triple).appendingPathComponent("debug/\(name)"))
            }
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw TestFailure("the \(name) executable was not found (build it with `swift build --build-tests`); looked at "
                          + candidates.map(\.path).joined(separator: ", "))
    }

    /// The package's root, the directory holding Package.swift, found by
    /// walking up from this source file (the tests may run from anywhere).
    public static func packageRoot() -> URL? {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    /// A program the tests need from the system, or a failure saying that it
    /// is missing and which Debian package installs it (scripts/deps.sh
    /// installs them all).
    public static func tool(_ name: String) throws -> URL {
        if let found = find(name) { return found }
        throw TestFailure("\(name) not found on PATH (apt-get install \(debianPackages[name] ?? name))")
    }

    /// A program on PATH (or in /usr/bin, should PATH lack it), or nil.
    public static func find(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// The packages that install tools not named after their package.
    private static let debianPackages = [
        "redis-cli": "redis-tools redis-server",
        "redis-benchmark": "redis-tools redis-server",
        "redis-server": "redis-tools redis-server",
        "nc": "netcat-openbsd",
        "prlimit": "util-linux",
        "runuser": "util-linux",
    ]
}

// MARK: Child processes

/// A running child process: standard input from a file handle (or nothing),
/// standard output on a pipe (``standardOutput``, read with
/// ``readLine(_:timeout:)`` and ``readToEnd(_:timeout:)``), standard error
/// on a pipe or in a temporary file.
///
/// Foundation's `Process` with what the tests need around it: termination
/// signals the child obeys, deadlines on every wait, and ``stop(timeout:)``,
/// which ends in SIGKILL, so no child outlives its test.
public final class ChildProcess {
    /// Where a child's standard error goes.
    public enum ErrorOutput {
        /// A pipe, read with ``readStandardError(within:)``. A child that
        /// fills it (64 KiB) while nobody reads blocks: for children that
        /// say little.
        case pipe
        /// A temporary file, removed with the ``ChildProcess``: a chatty child
        /// (a server under load, a benchmark tool) never blocks on it.
        case file
    }

    /// The process: its pid, `isRunning`, `terminationReason`, `terminate()`.
    public let process = Process()
    private let outputPipe = Pipe()
    private let errorPipe: Pipe?
    private let errorFile: URL?
    /// How much of `errorFile` ``readStandardError(within:)`` has returned.
    private var errorFileConsumed = 0

    /// The read end of the child's standard output.
    public var standardOutput: Int32 { outputPipe.fileHandleForReading.fileDescriptor }

    /// Starts `executable` with `arguments`; `environment` adds to (or
    /// overrides) this process's environment.
    public init(executable: URL, arguments: [String], environment: [String: String] = [:],
                standardInput: FileHandle? = nil, standardError: ErrorOutput = .pipe) throws {
        switch standardError {
        case .pipe:
            errorPipe = Pipe()
            errorFile = nil
        case .file:
            errorPipe = nil
            errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-test-\(UUID().uuidString).stderr")
        }
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardInput = standardInput ?? FileHandle.nullDevice
        process.standardOutput = outputPipe
        var errorHandle: FileHandle?
        if let errorFile {
            guard FileManager.default.createFile(atPath: errorFile.path, contents: nil) else {
                throw TestFailure("cannot create \(errorFile.path)")
            }
            errorHandle = try FileHandle(forWritingTo: errorFile)
            process.standardError = errorHandle
        } else {
            process.standardError = errorPipe
        }
        // Foundation's Process spawns with the calling thread's signal mask, and
        // the test runner's threads block nearly every signal, SIGTERM included:
        // the child would ignore `terminate()`. Unblock the termination signals
        // on this thread for the spawn, as a shell would have them.
        var termination = sigset_t()
        var previous = sigset_t()
        sigemptyset(&termination)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&termination, signal) }
        pthread_sigmask(SIG_UNBLOCK, &termination, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
        // Our copies of the write ends: closed, so reads see end of file when the child exits.
        try? outputPipe.fileHandleForWriting.close()
        try? errorPipe?.fileHandleForWriting.close()
        try? errorHandle?.close()
    }

    deinit {
        if let errorFile { try? FileManager.default.removeItem(at: errorFile) }
    }

    /// The exit status (or terminating signal), or nil if the child is still
    /// running after `timeout`.
    public func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            usleep(2_000)
        }
        return process.terminationStatus
    }

    /// What the child wrote to standard error since the previous call. From a
    /// pipe: all of it once the child has exited, else what arrives within
    /// `timeout`. From a file: what it holds now.
    public func readStandardError(within timeout: Duration = .seconds(1)) -> String {
        if let errorFile {
            let data = (try? Data(contentsOf: errorFile)) ?? Data()
            let unread = data.dropFirst(errorFileConsumed)
            errorFileConsumed = data.count
            return String(decoding: unread, as: UTF8.self)
        }
        guard let errorPipe else { return "" }
        var bytes: [UInt8] = []
        _ = try? readToEnd(errorPipe.fileHandleForReading.fileDescriptor, timeout: timeout, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// SIGTERM, then waits up to `timeout` (a watchdog: generous, for a
    /// loaded machine); SIGKILL if the child lingers. Returns false when
    /// SIGTERM was not enough (a server must exit on it).
    @discardableResult
    public func stop(timeout: Duration = .seconds(30)) -> Bool {
        guard process.isRunning else { return true }
        process.terminate()
        if waitForExit(timeout: timeout) == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(timeout: .seconds(5))
            return false
        }
        return true
    }
}

// MARK: Servers

extension ChildProcess {
    /// The port a server under test announces on its first line of output,
    /// `NAME listening on 127.0.0.1:PORT` then `suffix`, and that whole line.
    /// With a `suffix` the line must end with exactly it (`" (backend epoll)"`);
    /// without, anything may follow the port. The server failed to start if
    /// the line is anything else (the child is stopped and the failure quotes
    /// the line and its standard error, where it says why), or if no line
    /// comes within `timeout` (the child is stopped and the read's failure
    /// thrown).
    public func readListeningPort(_ name: String, suffix: String? = nil,
                                  timeout: Duration = .seconds(30)) throws -> (port: UInt16, line: String) {
        do {
            let line = try readLine(standardOutput, timeout: timeout)
            let prefix = "\(name) listening on 127.0.0.1:"
            var digits: Substring?
            if line.hasPrefix(prefix) {
                let rest = line.dropFirst(prefix.count)
                if let suffix {
                    digits = rest.hasSuffix(suffix) ? rest.dropLast(suffix.count) : nil
                } else {
                    digits = rest.prefix { $0.isNumber }
                }
            }
            guard let digits, let port = UInt16(digits), port != 0 else {
                throw TestFailure("unexpected first line from \(name): '\(line)' (stderr: \(readStandardError()))")
            }
            return (port, line)
        } catch {
            stop()
            throw error
        }
    }
}

// MARK: Running tools

/// What a finished tool printed and how it exited.
public struct ToolResult {
    /// The exit status (or terminating signal).
    public var status: Int32
    /// All of standard output.
    public var output: String
    /// All of standard error.
    public var errorOutput: String
}

/// Runs the program `name` from PATH (see ``Executables/tool(_:)``) to
/// completion, as the form that takes the executable's URL does.
public func runTool(_ name: String, _ arguments: [String], input: URL? = nil,
                    timeout: Duration = .seconds(20)) throws -> ToolResult {
    try runTool(try Executables.tool(name), arguments, input: input, timeout: timeout)
}

/// Runs `executable` to completion, with standard input from `input` if
/// given (else nothing) and standard error in a file (so a chatty tool
/// never blocks on it). Throws, with the output so far, if its output has
/// not ended within `timeout` (the tool is then stopped), or if it does not
/// exit within 10 s after that.
public func runTool(_ executable: URL, _ arguments: [String], input: URL? = nil,
                    timeout: Duration = .seconds(20)) throws -> ToolResult {
    let name = executable.lastPathComponent
    let child = try ChildProcess(executable: executable, arguments: arguments,
                                 standardInput: try input.map { try FileHandle(forReadingFrom: $0) },
                                 standardError: .file)
    defer { child.stop(timeout: .seconds(10)) }
    var output: [UInt8] = []
    do {
        try readToEnd(child.standardOutput, timeout: timeout, into: &output)
    } catch {
        throw TestFailure("\(name) \(arguments.joined(separator: " ")): \(error); output so far: "
                          + "\(String(decoding: output, as: UTF8.self)); stderr: \(child.readStandardError())")
    }
    guard let status = child.waitForExit(timeout: .seconds(10)) else {
        throw TestFailure("\(name) did not exit after closing its output")
    }
    return ToolResult(status: status, output: String(decoding: output, as: UTF8.self), errorOutput: child.readStandardError())
}
