/// Identifies a resource within one runtime. Never reused: the runtime's
/// sequence number is in the high 40 bits, the table slot in the low 24, so
/// an id also finds its slot without a dictionary. The raw value doubles as
/// the poller token, which is how a stale event for a destroyed resource is
/// recognised (its slot now holds another id, or none).
public struct ResourceID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The sequence number (high 40 bits) and slot (low 24 bits) in one value; also the poller token.
    public let rawValue: UInt64
    /// Rebuilds an id from its raw value (a poller token, say).
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    @inlinable static var slotBits: UInt64 { 24 }  // computed: a constant in other modules' specialised loops
    @inlinable static var slotMask: UInt64 { (1 << slotBits) - 1 }
    /// The largest number of resources one runtime holds at once.
    public static let maximumSlots = Int(slotMask) + 1

    init(sequence: UInt64, slot: Int) {
        rawValue = sequence << ResourceID.slotBits | UInt64(slot)
    }

    /// The registration number: 1 for the runtime's first resource, and so on.
    public var sequence: UInt64 { rawValue >> ResourceID.slotBits }
    @inlinable var slot: Int { Int(truncatingIfNeeded: rawValue & ResourceID.slotMask) }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "#\(sequence)" }
}

/// Identifies a timer within one runtime; never reused.
public struct TimerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The timer's number, in creation order.
    public let rawValue: UInt64
    /// Rebuilds a timer id from its raw value.
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "timer \(rawValue)" }
}
