// The backends the tests run on. Every parameterised test takes
// `Backend.underTest`, so one variable narrows a whole run: a sanitizer's
// run, slow as it is, can take epoll and uring alone
// (REACTOR_TEST_BACKENDS=epoll,uring), and a developer one backend.
import Reactor

#if canImport(Glibc)
import Glibc
#endif

extension Backend {
    /// The environment variable that restricts ``underTest``.
    public static let testEnvironmentVariable = "REACTOR_TEST_BACKENDS"

    /// Every backend built into this binary, or those named in
    /// `REACTOR_TEST_BACKENDS` (comma-separated, `epoll,uring`). A name that
    /// is unknown or not built stops the run at once, saying so: a typo must
    /// not turn into a run that silently tests nothing.
    public static let underTest: [Backend] = {
        guard let value = getenv(testEnvironmentVariable).map({ String(cString: $0) }), !value.isEmpty else { return built }
        var chosen: [Backend] = []
        for name in value.split(separator: ",").map({ String($0.filter { !$0.isWhitespace }) }) where !name.isEmpty {
            let backend: Backend
            do { backend = try Backend(name: name) } catch { refuse("\(testEnvironmentVariable)=\(value): \(error)") }
            guard backend.isBuilt else { refuse("\(testEnvironmentVariable)=\(value): \(backend) is \(backend.availability)") }
            if !chosen.contains(backend) { chosen.append(backend) }
        }
        guard !chosen.isEmpty else { refuse("\(testEnvironmentVariable)=\(value) names no backend; valid names: \(validNames)") }
        // In the order of `allCases`, as `built` is, whatever order the variable lists them in.
        return allCases.filter(chosen.contains)
    }()
}

/// Ends the test process with `message` on standard error (exit status 64,
/// EX_USAGE): a bad test configuration is the user's error, not a crash.
private func refuse(_ message: String) -> Never {
    let line = Array("error: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(64)
}

/// The sanitizer this test binary was built with (scripts/sanitize.sh), found
/// by the runtime's entry point, which each sanitizer exports.
public enum SanitizerBuild {
    /// AddressSanitizer: its allocator pads every block and keeps freed ones
    /// in quarantine, so a bound on resident memory says nothing under it.
    public static let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil
    /// ThreadSanitizer: it keeps shadow memory and history beside every allocation.
    public static let thread = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
    /// Whether resident-memory bounds can be judged in this build.
    public static var measuresMemory: Bool { !address && !thread }
}
