// Resident memory, measured where nothing else moves it. A test process
// runs many tests at once, each allocating and freeing, so this process's
// VmRSS says little about one server. A test that weighs memory therefore
// runs alone: in a child process of this same test binary that runs only
// that test, for one backend; the test here checks the child's result and
// prints its measurements.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

enum MeasuredAlone {
    /// Set in the child: which test and backend it measures (`test/backend`).
    static let variable = "REACTOR_MEASURED_ALONE"

    /// True in the child chosen for `test` on `backend`: measure now. False
    /// everywhere else: in a child chosen for another case there is nothing
    /// to do; in the test run itself, the child has run here (its failures
    /// recorded, its lines starting with `prefix` printed).
    static func isChosen(_ test: String, _ backend: Backend, reports prefix: String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        let key = "\(test)/\(backend.rawValue)"
        if let chosen = ProcessInfo.processInfo.environment[variable] { return chosen == key }
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let child = try ChildProcess(executable: binary, arguments: ["--testing-library", "swift-testing", "--filter", test],
                                     environment: [variable: key], standardError: .file)
        defer { child.stop() }
        var output: [UInt8] = []
        try readToEnd(child.standardOutput, timeout: .seconds(300), into: &output)
        let status = child.waitForExit(timeout: .seconds(10))
        let lines = (String(decoding: output, as: UTF8.self) + child.readStandardError()).split(separator: "\n")
        let reports = lines.filter { $0.hasPrefix(prefix) }
        for line in reports { print(line) }
        let failures = lines.filter { $0.contains("Expectation failed") || $0.contains("recorded an issue") || $0.contains("error") }
        #expect(status == 0 && reports.count == 1, """
            the child measuring \(key) exited \(status.map { "\($0)" } ?? "not at all") with \(reports.count) reports; \
            \(failures.prefix(6).joined(separator: " | "))
            """, sourceLocation: sourceLocation)
        return false
    }
}

/// This process's resident memory (VmRSS), in bytes.
func residentMemory() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(String(line.filter(\.isNumber))) else {
        throw TestFailure("no VmRSS in /proc/self/status")
    }
    return kilobytes * 1024
}

/// Resident memory once malloc has handed its free pages back (malloc_trim):
/// what is in use, not what glibc keeps for reuse; the least of the samples
/// taken over `settle`, while the server finishes closing what it closes.
func residentMemoryInUse(settle: Duration = .milliseconds(500)) throws -> Int {
    var least = Int.max
    let deadline = ContinuousClock.now + settle
    repeat {
        _ = mallocTrim?(0)
        least = min(least, try residentMemory())
        usleep(100_000)
    } while ContinuousClock.now < deadline
    return least
}

/// glibc's malloc_trim (in <malloc.h>, which Swift's Glibc module leaves out).
private let mallocTrim: (@convention(c) (Int) -> Int32)? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
    .map { unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self) }

func megabytes(_ bytes: Int) -> String {
    let tenths = (bytes * 10) / (1 << 20)
    return "\(tenths / 10).\(abs(tenths % 10)) MiB"
}
