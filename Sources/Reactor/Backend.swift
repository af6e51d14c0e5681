@_exported import ReactorCore
import PollEpoll
import PollPoll

#if canImport(Glibc)
import Glibc
#endif

/// A polling backend chosen at run time: by name, from the `REACTOR_BACKEND`
/// environment variable, or from a `--backend` flag.
///
/// The choice is made once, at start: ``visit(_:)`` switches over the
/// concrete poller types in the caller's module, so `Runtime<P, S>` is
/// specialised for each and no event pays for the choice.
public enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case epoll
    case poll

    /// The environment variable read by ``fromEnvironment(default:)``.
    public static let environmentVariable = "REACTOR_BACKEND"

    /// The backend used when none is named: epoll, Linux's native interface.
    public static let `default`: Backend = .epoll

    /// Every backend built into this binary, in order of preference.
    public static var built: [Backend] { allCases }

    /// The names accepted by ``init(name:)``, for error messages.
    public static var validNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public var description: String { rawValue }

    /// Parses a backend name (case-insensitive). The error lists the valid names.
    public init(name: String) throws(ReactorError) {
        guard let backend = Backend(rawValue: name.lowercased()) else {
            throw ReactorError("backend", .named(name), detail: "unknown backend '\(name)'; valid names: \(Backend.validNames)")
        }
        self = backend
    }

    /// The backend named by `REACTOR_BACKEND`, or `fallback` when it is unset or empty.
    public static func fromEnvironment(default fallback: Backend = .default) throws(ReactorError) -> Backend {
        guard let value = getenv(environmentVariable).map({ String(cString: $0) }), !value.isEmpty else { return fallback }
        do {
            return try Backend(name: value)
        } catch {
            throw ReactorError("\(environmentVariable)=\(value)", detail: error.detail)
        }
    }

    /// Calls `visitor.visit(P.self)` with this backend's concrete poller type.
    ///
    /// `@inlinable`, so the switch is compiled into the caller's module and
    /// each branch specialises the visitor's generic code for one backend.
    /// (Opening `pollerType`, an existential metatype, would instead run
    /// the loop as unspecialised generic code, with a witness-table call per
    /// poller operation and Service callback.)
    @inlinable
    public func visit<V: PollerVisitor>(_ visitor: V) throws -> V.Result {
        switch self {
        case .epoll: return try visitor.visit(EpollPoller.self)
        case .poll: return try visitor.visit(PollPoller.self)
        }
    }

    /// The `Poller` type behind this backend, type-erased (for tests and tools
    /// where specialisation does not matter; servers use ``visit(_:)``).
    public var pollerType: any Poller.Type {
        switch self {
        case .epoll: return EpollPoller.self
        case .poll: return PollPoller.self
        }
    }

    /// Creates a poller of this backend, type-erased. Pass it to a generic
    /// function (`func start<P: Poller>(_ poller: P)`) to reach the
    /// specialised path.
    public func makePoller() throws(ReactorError) -> any Poller {
        switch self {
        case .epoll: return try EpollPoller()
        case .poll: return try PollPoller()
        }
    }
}

/// Generic code to run with a backend chosen at run time; see ``Backend/visit(_:)``.
///
/// ```swift
/// struct Serve: PollerVisitor {
///     func visit<P: Poller>(_ type: P.Type) throws {
///         try Runtime<P, EchoService>(service: EchoService()).run()
///     }
/// }
/// try Backend(name: "poll").visit(Serve())
/// ```
public protocol PollerVisitor {
    associatedtype Result
    func visit<P: Poller>(_ type: P.Type) throws -> Result
}
