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
/// A ``SpawnedProcess`` (posix_spawn) with what the tests need around it:
/// termination signals the child obeys, deadlines on every wait, and
/// ``stop(timeout:)``, which ends in SIGKILL, so no child outlives its test.
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

    /// The process: its pid, `isRunning`, `terminationStatus`,
    /// `terminationReason`, `terminate()`.
    public let process: SpawnedProcess
    /// The read end of the child's standard output.
    public let standardOutput: Int32
    /// The read end of the child's standard error, for ``ErrorOutput/pipe``.
    private let errorPipe: Int32?
    private let errorFile: URL?
    /// How much of `errorFile` ``readStandardError(within:)`` has returned.
    private var errorFileConsumed = 0

    /// Starts `executable` with `arguments`; `environment` adds to (or
    /// overrides) this process's environment.
    public init(executable: URL, arguments: [String], environment: [String: String] = [:],
                standardInput: FileHandle? = nil, standardError: ErrorOutput = .pipe) throws {
        let output = try makePipe()
        // Our copies of the ends the child writes to are closed once it has
        // them, so reads see end of file when the child exits.
        defer { close(output.write) }
        let childError: Int32
        switch standardError {
        case .pipe:
            let errorEnds: (read: Int32, write: Int32)
            do { errorEnds = try makePipe() } catch {
                close(output.read)
                throw error
            }
            errorPipe = errorEnds.read
            errorFile = nil
            childError = errorEnds.write
        case .file:
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("reactor-test-\(UUID().uuidString).stderr")
            childError = open(file.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard childError >= 0 else {
                let code = errno
                close(output.read)
                throw TestFailure("cannot create \(file.path): \(String(cString: strerror(code)))")
            }
            errorPipe = nil
            errorFile = file
        }
        defer { close(childError) }
        do {
            process = try SpawnedProcess(executable: executable.path, arguments: arguments, environment: environment,
                                         standardInput: standardInput?.fileDescriptor,
                                         standardOutput: output.write, standardError: childError)
        } catch {
            close(output.read)
            if let errorPipe { close(errorPipe) }
            if let errorFile { try? FileManager.default.removeItem(at: errorFile) }
            throw error
        }
        standardOutput = output.read
    }

    deinit {
        close(standardOutput)
        if let errorPipe { close(errorPipe) }
        if let errorFile { try? FileManager.default.removeItem(at: errorFile) }
    }

    /// The exit status (or terminating signal), or nil if the child is still
    /// running after `timeout`.
    public func waitForExit(timeout: Duration) -> Int32? {
        process.waitForExit(timeout: timeout)
    }

    /// What the child wrote to standard error since the previous call. From a
    /// pipe: all of it once the child has exited, else what arrives within
    /// `timeout`. From a file: what it holds now.
    public func readStandardError(within timeout: Duration = .seconds(1)) -> String {
        if let errorFile {
            let unread = readFile(errorFile.path, from: errorFileConsumed)
            errorFileConsumed += unread.count
            return String(decoding: unread, as: UTF8.self)
        }
        guard let errorPipe else { return "" }
        var bytes: [UInt8] = []
        _ = try? readToEnd(errorPipe, timeout: timeout, into: &bytes)
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
            process.send(SIGKILL)
            _ = waitForExit(timeout: .seconds(5))
            return false
        }
        return true
    }

    /// ``stop(timeout:)``, then nil if the child exited by itself with
    /// status 0; otherwise how it ended (still running after SIGTERM, a
    /// status, a signal) and the last 2,000 characters of its standard error.
    public func stopFailure(_ name: String, timeout: Duration = .seconds(30)) -> String? {
        let exitedBySIGTERM = stop(timeout: timeout)
        let how: String
        if !exitedBySIGTERM {
            how = "\(name) was still running \(timeout) after SIGTERM (killed)"
        } else if process.terminationReason == .uncaughtSignal {
            how = "\(name) was ended by signal \(process.terminationStatus)"
        } else if process.terminationStatus != 0 {
            how = "\(name) exited with status \(process.terminationStatus)"
        } else {
            return nil
        }
        return how + "; its standard error ends: " + String(readStandardError().suffix(2000))
    }
}

/// The bytes of the file at `path` from `offset` to its end; empty if it
/// cannot be read.
///
/// Not `Data(contentsOf:)`: FoundationEssentials (Swift 6.3.1) leaks a
/// 4 KiB buffer on every read of an empty file, which LeakSanitizer reports
/// at the exit of every process that read an empty standard error.
public func readFile(_ path: String, from offset: Int = 0) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var position = off_t(offset)
    while true {
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, position) }
        if n > 0 {
            bytes += buffer[..<n]
            position += off_t(n)
        } else if n == 0 || errno != EINTR {
            return bytes
        }
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
