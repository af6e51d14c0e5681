// Byte-level helpers of the kv service: hashing, Redis's integer parsing and
// case-insensitive comparison, all on raw bytes so that a command is handled
// straight from the read buffer, without building a String or an Array.

import ProtocolRESP
#if canImport(Glibc)
import Glibc
#endif

/// Raw-byte operations shared by the parser, the store and the commands.
enum KVBytes {
    /// The longest decimal `Int64`, sign included, plus one: Redis's
    /// `LONG_STR_SIZE` (21). Longer strings are never integers.
    static let longStringSize = 21

    /// Redis's `string2ll` (see ``RESPInteger/parse(_:)``, where the protocol's lengths use it too).
    @inline(__always)
    static func parseInt64(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        RESPInteger.parse(bytes)
    }

    /// True when `bytes` equals `lowercase` ignoring ASCII case. `lowercase`
    /// must be lowercase ASCII (a command or option name).
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard bytes.count == count else { return false }
        let name = lowercase.utf8Start
        for index in 0..<count where lowerASCII(bytes[index]) != name[index] { return false }
        return true
    }

    /// True when `bytes` equals `lowercase` (lowercase ASCII bytes) ignoring ASCII case.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: [UInt8]) -> Bool {
        guard bytes.count == lowercase.count else { return false }
        for index in 0..<lowercase.count where lowerASCII(bytes[index]) != lowercase[index] { return false }
        return true
    }

    /// True when both hold the same bytes (Redis's `sdscmp(a, b) == 0`).
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }

    /// ASCII `tolower` (the C locale's, as Redis uses it).
    @inline(__always)
    static func lowerASCII(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// The bytes as far as the first NUL (C's `%s`, which Redis's messages reproduce).
    static func cString(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        RESPInteger.cString(bytes)
    }
}

/// A seeded 64-bit hash of byte strings: wyhash's folded multiply, eight
/// bytes at a time. Keys are hashed once per command, so this is on the hot
/// path of every GET and SET; the per-process random seed keeps an attacker
/// from choosing keys that all collide (hash flooding), the reason Redis
/// uses SipHash.
struct KVHasher: Sendable {
    let seed: UInt64

    init(seed: UInt64) { self.seed = seed }

    @inline(__always)
    private static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    private static let p0: UInt64 = 0xa076_1d64_78bd_642f
    private static let p1: UInt64 = 0xe703_7ed1_a0b4_28db
    private static let p2: UInt64 = 0x8ebc_6af0_9c88_c6e3
    private static let p3: UInt64 = 0x5899_65cc_7537_4cc3

    @inline(__always)
    func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let count = bytes.count
        var h = seed ^ KVHasher.mix(seed ^ KVHasher.p0, UInt64(truncatingIfNeeded: count) ^ KVHasher.p1)
        guard let base = bytes.baseAddress else { return KVHasher.mix(h, KVHasher.p3) }
        var offset = 0
        while count - offset >= 16 {
            let a = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let b = base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
            h = KVHasher.mix(a ^ KVHasher.p1, b ^ h)
            offset += 16
        }
        if count - offset >= 8 {
            h = KVHasher.mix(base.loadUnaligned(fromByteOffset: offset, as: UInt64.self) ^ KVHasher.p2, h ^ KVHasher.p0)
            offset += 8
        }
        if offset < count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while offset < count {
                tail |= UInt64(base.load(fromByteOffset: offset, as: UInt8.self)) << shift
                shift += 8
                offset += 1
            }
            h = KVHasher.mix(tail ^ KVHasher.p3, h ^ KVHasher.p1)
        }
        return KVHasher.mix(h ^ KVHasher.p2, KVHasher.p0 ^ UInt64(truncatingIfNeeded: count))
    }
}
