#if canImport(Glibc)
import Glibc
#endif

/// Integer parsing as Redis does it, shared by the request parser, the
/// reply parser and the kv example (whose integer arguments follow the same rule).
public enum RESPInteger {
    /// The longest decimal `Int64`, sign included, plus one: Redis's
    /// `LONG_STR_SIZE` (21). Longer strings are never integers.
    public static let longStringSize = 21

    /// Parses a decimal `Int64` exactly as Redis's `string2ll` does: an
    /// optional `-`, then digits with no leading zero (`0` alone is fine),
    /// nothing else — no `+`, no spaces, no `-0`. Both the protocol's lengths
    /// and integer arguments use it, so `*01` and `INCRBY k +1` fail as in Redis.
    @inlinable
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        let count = bytes.count
        guard count > 0, count < longStringSize else { return nil }
        if count == 1 && bytes[0] == UInt8(ascii: "0") { return 0 }
        var index = 0
        let negative = bytes[0] == UInt8(ascii: "-")
        if negative {
            index = 1
            if count == 1 { return nil }
        }
        let first = bytes[index] &- UInt8(ascii: "0")
        guard first >= 1 && first <= 9 else { return nil }
        var value = UInt64(first)
        index += 1
        while index < count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            if overflow1 || overflow2 { return nil }
            value = sum
            index += 1
        }
        if negative {
            guard value <= UInt64(Int64.max) + 1 else { return nil }
            return value == UInt64(Int64.max) + 1 ? Int64.min : -Int64(value)
        }
        guard value <= UInt64(Int64.max) else { return nil }
        return Int64(value)
    }

    /// The bytes as far as the first NUL: what C's `%s` prints of an argument,
    /// which Redis's error messages reproduce.
    public static func cString(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let base = bytes.baseAddress, let nul = memchr(base, 0, bytes.count) else { return bytes }
        return UnsafeRawBufferPointer(start: base, count: UnsafeRawPointer(nul) - base)
    }
}
