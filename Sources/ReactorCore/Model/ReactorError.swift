import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The one error type of swift-reactor.
///
/// Every error names the operation that failed, what it failed on (a file
/// descriptor or a resource), and, when the kernel said why, the errno's
/// symbolic name and text:
///
/// ```
/// register(fd 12): EBADF (Bad file descriptor)
/// send(command): the runtime has shut down; the command was not delivered
/// ```
public struct ReactorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the operation acted on.
    public enum Subject: Sendable, Equatable, CustomStringConvertible {
        /// Nothing in particular (a failure of the runtime itself).
        case none
        /// A file descriptor, by number.
        case fd(Int32)
        /// A registered resource.
        case resource(ResourceID)
        /// Anything else, by name: an address, a path, a host.
        case named(String)

        public var description: String {
            switch self {
            case .none: return ""
            case .fd(let fd): return "fd \(fd)"
            case .resource(let id): return "resource \(id)"
            case .named(let name): return name
            }
        }
    }

    /// The operation that failed, e.g. `register`, `epoll_wait`, `connect`.
    public var operation: String
    /// What the operation acted on.
    public var subject: Subject
    /// The kernel's reason, when there is one.
    public var errno: Errno?
    /// A sentence for failures that have no errno, or extra context for one that does.
    public var detail: String?

    /// An error of `operation` on `subject`, with the kernel's `errno` and/or a `detail` sentence.
    public init(_ operation: String, _ subject: Subject = .none, errno: Errno? = nil, detail: String? = nil) {
        self.operation = operation
        self.subject = subject
        self.errno = errno
        self.detail = detail
    }


    public var description: String {
        var text = operation
        if subject != .none { text += "(\(subject))" }
        text += ":"
        if let errno {
            text += " \(ReactorError.name(of: errno)) (\(ReactorError.text(of: errno)))"
        }
        if let detail { text += errno == nil ? " \(detail)" : "; \(detail)" }
        return text
    }

    /// The symbolic name of an errno, such as `EBADF`.
    public static func name(of errno: Errno) -> String {
        // strerrorname_np returns a pointer to a static string, or NULL for unknown values.
        guard let name = strerrorname_np(errno.rawValue) else { return "errno \(errno.rawValue)" }
        return String(cString: name)
    }

    /// The kernel's text for an errno, such as `Bad file descriptor` (swift-system's wording).
    public static func text(of errno: Errno) -> String {
        errno.description
    }
}
