// The umbrella: `import Reactor` gives a user the model and every backend
// that was built (`EpollPoller`, `PollPoller`, `LibevPoller`, `UringPoller`),
// so the build-time choice `Runtime<EpollPoller, S>` needs no second import.
@_exported import ReactorCore
@_exported import PollEpoll
@_exported import PollLibev
@_exported import PollPoll
@_exported import PollUring
@_exported import ReactorTLS
@_exported import ReactorNames

#if canImport(Glibc)
import Glibc
#endif

/// A polling backend chosen at run time: by name, from the `REACTOR_BACKEND`
/// environment variable, or from a `--backend` flag.
///
/// The choice is made once, at start: ``visit(_:)`` switches over the
/// concrete poller types in the caller's module, so `Runtime<P, S>` is
/// specialised for each and no event pays for the choice.
///
/// Every name always parses; libev and io_uring may be *not built* (their
/// Debian package was missing at build time) or, for io_uring, *unavailable*
/// at run time. ``availability`` says which and why.
public enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Linux epoll (level-triggered): the default where nothing else is asked for.
    case epoll
    /// poll(2): portable, O(n) per wait; the reference the others are checked against.
    case poll
    /// libev (Debian `libev-dev`), on its epoll backend here.
    case libev
    /// io_uring through liburing (Debian `liburing-dev`), in its completion
    /// mode where the kernel has it: connected streams move their bytes
    /// through the ring (``UringPoller``); poll mode otherwise, saying why
    /// (``modeDescription``).
    case uring
    /// io_uring in poll mode (`uring-poll`): poll requests on the ring,
    /// reads and writes by system calls (``UringPollModePoller``).
    case uringPoll = "uring-poll"

    /// The environment variable read by ``fromEnvironment()``.
    public static let environmentVariable = "REACTOR_BACKEND"

    /// The names accepted by ``init(name:)``, for error messages.
    public static var validNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public var description: String { rawValue }

    /// Parses a backend name (case-insensitive; `io_uring` is accepted for
    /// `uring`). The error lists the valid names.
    public init(name: String) throws(ReactorError) {
        let key = name.lowercased() == "io_uring" ? "uring" : name.lowercased() == "io_uring-poll" ? "uring-poll" : name.lowercased()
        guard let backend = Backend(rawValue: key) else {
            throw ReactorError("backend", .named(name), detail: "unknown backend '\(name)'; valid names: \(Backend.validNames)")
        }
        self = backend
    }

    /// The backend named by `REACTOR_BACKEND`, or nil when it is unset or empty.
    public static func fromEnvironment() throws(ReactorError) -> Backend? {
        guard let value = getenv(environmentVariable).map({ String(cString: $0) }), !value.isEmpty else { return nil }
        do {
            return try Backend(name: value)
        } catch {
            throw ReactorError("\(environmentVariable)=\(value)", detail: error.detail)
        }
    }

    // MARK: What is built and what can run

    /// Whether this binary contains the backend.
    public var isBuilt: Bool {
        switch self {
        case .epoll, .poll: return true
        case .libev:
            #if canImport(CLibev)
            return true
            #else
            return false
            #endif
        case .uring, .uringPoll:
            #if canImport(CUring)
            return true
            #else
            return false
            #endif
        }
    }

    /// How the backend runs here, when it has modes: for io_uring, whether
    /// the completion mode or the poll mode runs and why (the kernel may
    /// lack a feature the completion mode needs). Nil for the others, and
    /// when the backend cannot run.
    public var modeDescription: String? {
        switch self {
        case .uring:
            #if canImport(CUring)
            return (try? UringPoller())?.mode.description
            #else
            return nil
            #endif
        case .uringPoll:
            #if canImport(CUring)
            return (try? UringPollModePoller())?.mode.description
            #else
            return nil
            #endif
        default:
            return nil
        }
    }

    /// Every backend built into this binary.
    public static var built: [Backend] { allCases.filter(\.isBuilt) }

    /// Whether a backend can run here, and if not, why.
    public enum Availability: Sendable, CustomStringConvertible {
        /// Built and usable here.
        case available
        /// Compiled out: the Debian package named in the message was missing at build time.
        case notBuilt(String)
        /// Built, but the kernel or the process's limits refuse it.
        case unavailable(ReactorError)

        /// True for ``available``.
        public var isAvailable: Bool { if case .available = self { return true } else { return false } }

        public var description: String {
            switch self {
            case .available: return "available"
            case .notBuilt(let why): return "not built: \(why)"
            case .unavailable(let error): return "unavailable: \(error)"
            }
        }
    }

    /// Tries the backend (creates and drops a poller) and says whether it runs here.
    public var availability: Availability {
        guard isBuilt else {
            let package = self == .libev ? "libev-dev" : "liburing-dev"
            let name = self == .uringPoll ? "uring" : rawValue
            return .notBuilt("this binary was built without \(name); install Debian's \(package) (apt-get install -y \(package)) and rebuild clean (rm -rf .build)")
        }
        do {
            _ = try makePoller()
            return .available
        } catch {
            return .unavailable(error)
        }
    }

    /// Every backend with its availability, in ``preference`` order.
    public static var available: [(backend: Backend, availability: Availability)] {
        preference.map { ($0, $0.availability) }
    }

    /// The order in which the default is chosen: the first available wins.
    /// epoll leads because it measured fastest at the connection counts most
    /// services run (see README, "Choosing a backend"); io_uring, libev and
    /// poll follow.
    public static let preference: [Backend] = [.epoll, .uring, .libev, .poll, .uringPoll]

    // MARK: Choosing

    /// The outcome of ``choose(requested:strict:)``: the backend to run and a
    /// sentence saying why, for the log.
    public struct Choice: Sendable {
        /// The backend to run.
        public var backend: Backend
        /// Why this one: asked for, the default, or a fallback and what it fell back from.
        public var reason: String
    }

    /// Picks the backend to run.
    ///
    /// - With no request (no flag, `REACTOR_BACKEND` unset), the first
    ///   available backend in ``preference``.
    /// - With a request that is available, that backend.
    /// - With a request that is not (not built, or io_uring refused by the
    ///   kernel): when `strict`, an error naming the cause; otherwise the
    ///   default, with the cause in ``Choice/reason``. Never silent: log the reason.
    public static func choose(requested: Backend?, strict: Bool = false) throws(ReactorError) -> Choice {
        if let requested {
            let availability = requested.availability
            if availability.isAvailable { return Choice(backend: requested, reason: requested.withMode("requested")) }
            if strict {
                throw ReactorError("backend", .named(requested.rawValue), detail: "\(availability)")
            }
            let fallback = try firstAvailable(excluding: requested)
            return Choice(backend: fallback, reason: "\(requested) was requested but is \(availability); falling back to \(fallback), the best available")
        }
        let best = try firstAvailable(excluding: nil)
        return Choice(backend: best, reason: best.withMode("default: the best available backend"))
    }

    /// `reason`, and the mode the backend runs in where it has modes.
    private func withMode(_ reason: String) -> String {
        modeDescription.map { "\(reason); \($0)" } ?? reason
    }

    private static func firstAvailable(excluding excluded: Backend?) throws(ReactorError) -> Backend {
        for backend in preference where backend != excluded && backend.availability.isAvailable { return backend }
        throw ReactorError("backend", detail: "no backend can run here: " + available.map { "\($0.backend): \($0.availability)" }.joined(separator: "; "))
    }

    // MARK: Reaching the generic path

    /// Calls `visitor.visit(P.self)` with this backend's concrete poller type.
    ///
    /// `@inlinable`, so the switch is compiled into the caller's module and
    /// each branch specialises the visitor's generic code for one backend.
    /// (Opening ``pollerType``, an existential metatype, would instead run
    /// the loop as unspecialised generic code, with a witness-table call per
    /// poller operation and Service callback.) Throws for a backend that is
    /// not built.
    @inlinable
    public func visit<V: PollerVisitor>(_ visitor: V) throws -> V.Result {
        switch self {
        case .epoll: return try visitor.visit(EpollPoller.self)
        case .poll: return try visitor.visit(PollPoller.self)
        case .libev:
            #if canImport(CLibev)
            return try visitor.visit(LibevPoller.self)
            #else
            throw ReactorError("backend", .named("libev"), detail: "\(availability)")
            #endif
        case .uring:
            #if canImport(CUring)
            return try visitor.visit(UringPoller.self)
            #else
            throw ReactorError("backend", .named("uring"), detail: "\(availability)")
            #endif
        case .uringPoll:
            #if canImport(CUring)
            return try visitor.visit(UringPollModePoller.self)
            #else
            throw ReactorError("backend", .named("uring-poll"), detail: "\(availability)")
            #endif
        }
    }

    /// The `Poller` type behind this backend, type-erased (for tests and tools
    /// where specialisation does not matter; servers use ``visit(_:)``).
    /// Nil when the backend is not built.
    public var pollerType: (any Poller.Type)? {
        switch self {
        case .epoll: return EpollPoller.self
        case .poll: return PollPoller.self
        case .libev:
            #if canImport(CLibev)
            return LibevPoller.self
            #else
            return nil
            #endif
        case .uring:
            #if canImport(CUring)
            return UringPoller.self
            #else
            return nil
            #endif
        case .uringPoll:
            #if canImport(CUring)
            return UringPollModePoller.self
            #else
            return nil
            #endif
        }
    }

    /// Creates a poller of this backend, type-erased.
    public func makePoller() throws(ReactorError) -> any Poller {
        guard let type = pollerType else {
            throw ReactorError("backend", .named(rawValue), detail: "not built into this binary")
        }
        return try type.init()
    }
}

/// Generic code to run with a backend chosen at run time; see ``Backend/visit(_:)``.
///
/// ```swift
/// struct Serve: PollerVisitor {
///     func visit<P: Poller>(_ type: P.Type) throws {
///         try Runtime<P, LoggingService>(service: LoggingService()).run()
///     }
/// }
/// try Backend(name: "poll").visit(Serve())
/// ```
public protocol PollerVisitor {
    /// What ``visit(_:)`` returns.
    associatedtype Result
    /// Called once with the chosen backend's poller type; the code inside is specialised for it.
    func visit<P: Poller>(_ type: P.Type) throws -> Result
}
