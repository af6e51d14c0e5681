/// Redis's glob matcher (`stringmatchlen` in util.c), for KEYS and CONFIG GET:
/// `*` any run, `?` one byte, `[abc]`, `[^abc]`, `[a-z]` (either order),
/// and `\` escaping the next byte, inside brackets too.
///
/// A line-by-line port, quirks included, so that KEYS answers exactly as
/// Redis does: an unterminated `[...` matches what it has read so far, a
/// range's bounds compare as C's signed `char`, and a pattern is read as if
/// NUL-terminated. Like Redis, it gives up on patterns nested more than
/// 1000 stars deep and stops trying longer matches for an earlier `*` once
/// the rest of the pattern failed everywhere, so `a*a*a*...b` is not exponential.
enum KVGlob {
    /// True when `string` matches `pattern` (`nocase`: ASCII case-insensitively).
    static func matches(_ pattern: UnsafeRawBufferPointer, _ string: UnsafeRawBufferPointer, nocase: Bool = false) -> Bool {
        var skipLongerMatches = false
        return match(pattern, 0, pattern.count, string, 0, string.count, nocase, &skipLongerMatches, 0)
    }

    /// Text convenience for tests and CONFIG GET.
    static func matches(_ pattern: String, _ string: String, nocase: Bool = false) -> Bool {
        Array(pattern.utf8).withUnsafeBytes { p in Array(string.utf8).withUnsafeBytes { s in matches(p, s, nocase: nocase) } }
    }

    private static func match(_ pattern: UnsafeRawBufferPointer, _ p0: Int, _ pl0: Int,
                              _ string: UnsafeRawBufferPointer, _ s0: Int, _ sl0: Int,
                              _ nocase: Bool, _ skipLongerMatches: inout Bool, _ nesting: Int) -> Bool {
        if nesting > 1000 { return false }
        var p = p0, pl = pl0, s = s0, sl = sl0
        // C reads past the end of the pattern into its NUL terminator.
        @inline(__always) func pat(_ i: Int) -> UInt8 { i < pattern.count ? pattern[i] : 0 }
        @inline(__always) func str(_ i: Int) -> UInt8 { i < string.count ? string[i] : 0 }
        @inline(__always) func lower(_ c: UInt8) -> UInt8 { KVBytes.lowerASCII(c) }
        @inline(__always) func signed(_ c: UInt8) -> Int { Int(Int8(bitPattern: c)) }

        while pl > 0 && sl > 0 {
            switch pat(p) {
            case UInt8(ascii: "*"):
                while pl > 0 && pat(p + 1) == UInt8(ascii: "*") {
                    p += 1
                    pl -= 1
                }
                if pl == 1 { return true }
                while sl > 0 {
                    if match(pattern, p + 1, pl - 1, string, s, sl, nocase, &skipLongerMatches, nesting + 1) { return true }
                    if skipLongerMatches { return false }
                    s += 1
                    sl -= 1
                }
                skipLongerMatches = true
                return false
            case UInt8(ascii: "?"):
                s += 1
                sl -= 1
            case UInt8(ascii: "["):
                p += 1
                pl -= 1
                let not = pat(p) == UInt8(ascii: "^")
                if not {
                    p += 1
                    pl -= 1
                }
                var matched = false
                while true {
                    if pat(p) == UInt8(ascii: "\\") && pl >= 2 {
                        p += 1
                        pl -= 1
                        if pat(p) == str(s) { matched = true }
                    } else if pat(p) == UInt8(ascii: "]") {
                        break
                    } else if pl == 0 {
                        p -= 1
                        pl += 1
                        break
                    } else if pl >= 3 && pat(p + 1) == UInt8(ascii: "-") {
                        var start = signed(pat(p))
                        var end = signed(pat(p + 2))
                        var c = signed(str(s))
                        if start > end { swap(&start, &end) }
                        if nocase {
                            start = signed(lower(UInt8(truncatingIfNeeded: start)))
                            end = signed(lower(UInt8(truncatingIfNeeded: end)))
                            c = signed(lower(UInt8(truncatingIfNeeded: c)))
                        }
                        p += 2
                        pl -= 2
                        if c >= start && c <= end { matched = true }
                    } else if nocase ? lower(pat(p)) == lower(str(s)) : pat(p) == str(s) {
                        matched = true
                    }
                    p += 1
                    pl -= 1
                }
                if not { matched.toggle() }
                if !matched { return false }
                s += 1
                sl -= 1
            default:
                if pat(p) == UInt8(ascii: "\\") && pl >= 2 {
                    p += 1
                    pl -= 1
                }
                if nocase ? lower(pat(p)) != lower(str(s)) : pat(p) != str(s) { return false }
                s += 1
                sl -= 1
            }
            p += 1
            pl -= 1
            if sl == 0 {
                while pat(p) == UInt8(ascii: "*") {
                    p += 1
                    pl -= 1
                }
                break
            }
        }
        return pl == 0 && sl == 0
    }
}
