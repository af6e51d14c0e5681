import ArgumentParser
import Reactor

/// The backend flags every example takes: `--backend NAME` (default:
/// `$REACTOR_BACKEND`, else the best available) and `--strict-backend`.
/// Include with `@OptionGroup var backendOptions: BackendOptions`.
public struct BackendOptions: ParsableArguments {
    /// `--backend NAME`: the backend asked for, if any.
    @Option(help: "Polling backend: \(Backend.validNames) (default: $\(Backend.environmentVariable), else the best available).")
    public var backend: String?

    /// `--strict-backend`: fail rather than fall back.
    @Flag(help: "Fail instead of falling back when the requested backend cannot run.")
    public var strictBackend = false

    public init() {}

    /// Picks the backend and says on stderr which one runs and why (a
    /// fallback is never silent). A bad name, or a strict request that cannot
    /// run, prints the reason and exits with status 2.
    public func choose(program: String) throws -> Backend.Choice {
        do throws(ReactorError) {
            var requested: Backend?
            if let backend { requested = try Backend(name: backend) } else { requested = try Backend.fromEnvironment() }
            let choice = try Backend.choose(requested: requested, strict: strictBackend)
            printError("\(program): backend \(choice.backend) (\(choice.reason))")
            return choice
        } catch {
            printError("\(program): \(error.detail ?? "\(error)")")
            throw ExitCode(2)
        }
    }

    /// The one way an example starts: chooses the backend (see
    /// ``choose(program:)``) and runs `server` on it, specialised for that
    /// backend's poller. A failure prints `program: error` on stderr and
    /// exits with status 1.
    ///
    /// `@inlinable` so that `Backend.visit` is compiled into the example's own
    /// module, where `Server` is concrete: each backend then gets its own
    /// specialised loop (`scripts/check-specialization.sh` checks it). Without
    /// it, the loop ran unspecialised (measured: ~6% more instructions per
    /// echo round trip under callgrind).
    @inlinable
    public func run<Server: PollerVisitor>(program: String, _ server: Server) throws where Server.Result == Void {
        let choice = try choose(program: program)
        do {
            try choice.backend.visit(server)
        } catch {
            printError("\(program): \(error)")
            throw ExitCode.failure
        }
    }
}

/// Prints the line tests and scripts wait for — `PROGRAM listening on
/// ADDRESS (backend NAME[, NOTE])` — and flushes it at once, so a parent
/// reading the pipe sees it before the loop starts.
public func announceListening(_ program: String, on address: String, backend: String, note: String? = nil) {
    print("\(program) listening on \(address) (backend \(backend)\(note.map { ", \($0)" } ?? ""))")
    flushStandardOutput()
}
