import ProtocolRESP
#if canImport(Glibc)
import Glibc
#endif

// Redis computes INCRBYFLOAT in C's `long double`, the x87 80-bit format on
// x86-64, and parses and prints it with the C library: replies such as
// `5010.60000000000000009` only come out the same from the same arithmetic.
// Float80 is that type; elsewhere (an AArch64 `long double` is 128-bit, which
// Swift cannot compute in) Double is the closest, and digits far right may differ.
#if arch(x86_64) || arch(i386)
typealias KVLongDouble = Float80
#else
typealias KVLongDouble = Double
#endif

/// INCRBYFLOAT.
extension KVExecutor {
    /// INCRBYFLOAT key increment: the stored value (0 if missing) plus the
    /// increment, stored and returned as Redis prints it (`10.5`, `5000`);
    /// the deadline is kept.
    static func incrementByFloat(_ args: KVArgs, store: inout KVStore, reply: inout RESPReplyBuffer, now: Int64) {
        let key = args[1]
        let hash = store.hash(key)
        let existing = store.find(key, hash: hash, now: now)
        var current: KVLongDouble = 0
        if let existing {
            guard let value = KVFloat.parse(store.entry(existing).value) else {
                reply.append("-ERR value is not a valid float\r\n")
                return
            }
            current = value
        }
        guard let increment = KVFloat.parse(args[2]) else {
            reply.append("-ERR value is not a valid float\r\n")
            return
        }
        let sum = current + increment
        guard sum.isFinite else {
            reply.append("-ERR increment would produce NaN or Infinity\r\n")
            return
        }
        let text = KVFloat.format(sum)
        text.withUnsafeBytes { digits in
            if let existing {
                store.assignValue(existing, digits)
            } else {
                store.set(key, hash: hash, value: digits, now: now)
            }
            reply.appendBulk(digits)
        }
    }
}

/// Redis's `string2ld` and `ld2string` (human-friendly mode) over the C library.
enum KVFloat {
    /// Redis's `MAX_LONG_DOUBLE_CHARS`: longer strings are never numbers.
    static let maxCharacters = 5 * 1024

    /// The number `bytes` spell, as `string2ld` reads it: `strtold` over the
    /// whole string (hex, `inf` and exponents included), refusing a leading
    /// space, trailing text, NaN, and an overflow or an underflow to zero.
    /// Like Redis, the text ends at a NUL byte.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> KVLongDouble? {
        guard bytes.count > 0, bytes.count < maxCharacters else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: bytes.count + 1) { buffer in
            let text = buffer.baseAddress!
            UnsafeMutableRawPointer(text).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            text[bytes.count] = 0
            if isspace(Int32(UInt8(bitPattern: text[0]))) != 0 { return nil }
            var end: UnsafeMutablePointer<CChar>?
            errno = 0
            #if arch(x86_64) || arch(i386)
            let value = strtold(text, &end)
            #else
            let value = strtod(text, &end)
            #endif
            let failed = errno
            guard let end, end.pointee == 0, !value.isNaN, failed != EINVAL else { return nil }
            if failed == ERANGE && (value.isInfinite || value == 0) { return nil }
            return value
        }
    }

    /// `%.17Lf` without trailing zeros (nor a trailing point), and `-0` as `0`.
    static func format(_ value: KVLongDouble) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxCharacters)
        var length = buffer.withUnsafeMutableBufferPointer { buffer in
            withVaList([value]) { arguments in
                Int(vsnprintf(UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                              buffer.count, KVFloat.formatString, arguments))
            }
        }
        // Redis's ld2string gives up (an empty string) when the digits do not fit.
        guard length >= 0, length < buffer.count else { return [] }
        if buffer[..<length].contains(UInt8(ascii: ".")) {
            while buffer[length - 1] == UInt8(ascii: "0") { length -= 1 }
            if buffer[length - 1] == UInt8(ascii: ".") { length -= 1 }
        }
        if length == 2 && buffer[0] == UInt8(ascii: "-") && buffer[1] == UInt8(ascii: "0") { return [UInt8(ascii: "0")] }
        return Array(buffer[..<length])
    }

    #if arch(x86_64) || arch(i386)
    private static let formatString = "%.17Lf"
    #else
    private static let formatString = "%.17f"
    #endif
}
