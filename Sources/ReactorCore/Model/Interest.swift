// Interest and Readiness are `@frozen` with computed `@inlinable` members
// rather than `static let`s: a stored static is a lazily initialised global,
// and the backends (other modules) reached each one through an accessor call
// — seven calls per echo round trip on epoll, 3% of its instructions
// (callgrind). As constants they fold into the bit tests.

/// What a resource wants to hear about from the poller.
///
/// `.none` parks a descriptor: it stays registered, but the backend reports
/// nothing for it (not even hangup or error) until the interest changes.
@frozen public struct Interest: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Nothing: the descriptor stays registered but is parked (no events at all).
    @inlinable public static var none: Interest { [] }
    /// Readability: data, a pending connection, end of file or an error.
    @inlinable public static var read: Interest { Interest(rawValue: 1) }
    /// Writability: the kernel would take more bytes.
    @inlinable public static var write: Interest { Interest(rawValue: 2) }
    /// Readability and writability.
    @inlinable public static var both: Interest { [.read, .write] }

    public var description: String {
        switch self {
        case .none: return "none"
        case .read: return "read"
        case .write: return "write"
        default: return "both"
        }
    }
}

/// What the poller found ready on a descriptor.
@frozen public struct Readiness: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A read would not block (data, a pending connection, or end of file).
    @inlinable public static var readable: Readiness { Readiness(rawValue: 1) }
    /// A write would not block.
    @inlinable public static var writable: Readiness { Readiness(rawValue: 2) }
    /// The descriptor has an error pending (for sockets, read it with `SO_ERROR`).
    @inlinable public static var error: Readiness { Readiness(rawValue: 4) }
    /// Both directions are closed (`POLLHUP`): the peer is gone.
    @inlinable public static var hangup: Readiness { Readiness(rawValue: 8) }
    /// The peer shut down its writing side (`POLLRDHUP`): reads will reach end of file.
    @inlinable public static var readClosed: Readiness { Readiness(rawValue: 16) }

    public var description: String {
        var names: [String] = []
        if contains(.readable) { names.append("readable") }
        if contains(.writable) { names.append("writable") }
        if contains(.error) { names.append("error") }
        if contains(.hangup) { names.append("hangup") }
        if contains(.readClosed) { names.append("readClosed") }
        return "[" + names.joined(separator: ", ") + "]"
    }
}

/// An opaque 64-bit value a backend stores with a registration and hands back
/// with each event. The runtime uses the `ResourceID`'s raw value, so a backend
/// never holds a pointer (mio's rule: tokens, not pointers).
public struct Token: Hashable, Sendable, CustomStringConvertible {
    /// The value handed back with each event.
    public var rawValue: UInt64
    /// A token carrying `rawValue`.
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "token \(rawValue)" }
}

/// One readiness report from `Poller.wait`.
public struct PollEvent: Sendable, Hashable {
    /// The token the descriptor was (re)registered with.
    public var token: Token
    /// What is ready, normalised to the registration's interest (see the ``Poller`` contract).
    public var readiness: Readiness
    /// An event for `token`.
    @inlinable public init(token: Token, readiness: Readiness) {
        self.token = token
        self.readiness = readiness
    }
}

extension Readiness {
    /// What the contract lets a backend report for a descriptor registered
    /// with `interest` (contract item 3), from what the kernel said:
    /// `.readable` and `.readClosed` only under read interest, `.writable`
    /// only under write interest, `.error` and `.hangup` under any interest
    /// but `.none` — and under read interest they bring `.readable` with
    /// them, because a pipe's `POLLHUP` arrives without `POLLIN` and a reader
    /// must still be told to read its end of file or its error.
    ///
    /// Every backend calls this once per event, so they all agree.
    @inlinable
    public func normalized(for interest: Interest) -> Readiness {
        var result = self
        if interest.contains(.read) {
            if !result.isDisjoint(with: [.error, .hangup]) { result.insert(.readable) }
        } else {
            result.subtract([.readable, .readClosed])
        }
        if !interest.contains(.write) { result.remove(.writable) }
        return interest == .none ? [] : result
    }
}
