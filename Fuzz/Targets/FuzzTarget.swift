// The fuzz targets: one function per parser the network feeds, each taking
// arbitrary bytes. libFuzzer runs them (Fuzz/Driver, built by scripts/fuzz.sh
// with -sanitize=fuzzer,address); the test suite replays the committed seed
// corpora through them (Tests/FuzzTests), so both stay compiling and valid.
//
// A target crashes (a trap, an ASan report) on a memory or parser bug, and
// throws a FuzzFailure when a check it makes fails: a round trip that did not
// come back unchanged, bytes fed in pieces parsed otherwise than in one piece.
// The driver turns a FuzzFailure into an abort, which libFuzzer records as a
// crash with its input; a test records it as an issue.

/// A check inside a fuzz target that did not hold.
public struct FuzzFailure: Error, CustomStringConvertible {
    /// What did not hold, with the values involved.
    public var description: String

    init(_ description: String) { self.description = description }
}

/// Fails the input unless `condition` holds.
@inline(__always)
func require(_ condition: Bool, _ what: @autoclosure () -> String) throws(FuzzFailure) {
    if !condition { throw FuzzFailure(what()) }
}

/// One fuzz target: its name (the corpus folder's and the driver's argument) and its function.
public struct FuzzTarget: Sendable {
    /// `resp-request`, `http-response`, ...
    public let name: String
    /// What it feeds, in a few words.
    public let summary: String
    private let body: @Sendable (UnsafeRawBufferPointer) throws(FuzzFailure) -> Void

    init(name: String, summary: String, run: @escaping @Sendable (UnsafeRawBufferPointer) throws(FuzzFailure) -> Void) {
        self.name = name
        self.summary = summary
        body = run
    }

    /// Runs one input.
    public func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) { try body(data) }

    /// Runs one input.
    public func run(_ data: [UInt8]) throws(FuzzFailure) { try data.withBytes { bytes throws(FuzzFailure) in try body(bytes) } }

    /// Every target, in the order scripts/fuzz.sh runs them (fast parsers first).
    public static let all: [FuzzTarget] = [
        FuzzTarget(name: "resp-request", summary: "RESP request parser (server side), whole and in pieces, round trip",
                   run: RESPRequestFuzz.run),
        FuzzTarget(name: "resp-reply", summary: "RESP reply parser (client side), whole and in pieces, round trip",
                   run: RESPReplyFuzz.run),
        FuzzTarget(name: "http-request", summary: "HTTP/1.1 request heads, bodies and chunked decoding (server side)",
                   run: HTTPRequestFuzz.run),
        FuzzTarget(name: "http-response", summary: "HTTP/1.1 response heads and bodies, chunked included (client side)",
                   run: HTTPResponseFuzz.run),
        FuzzTarget(name: "line-codec", summary: "LineCodec against a model, in pieces, round trip",
                   run: LineCodecFuzz.run),
        FuzzTarget(name: "length-prefixed", summary: "LengthPrefixedCodec against a model, in pieces, round trip",
                   run: LengthPrefixedFuzz.run),
        FuzzTarget(name: "message-channel", summary: "MessageChannel framing over a pipe: reads in pieces, end of stream, echo",
                   run: MessageChannelFuzz.run),
        FuzzTarget(name: "address", summary: "URLs, HOST:PORT, numeric addresses and Unix socket names from text",
                   run: AddressFuzz.run),
        FuzzTarget(name: "tls-server", summary: "a TLS server engine fed arbitrary bytes through its memory BIOs",
                   run: TLSServerFuzz.run),
    ]

    /// The target called `name`.
    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

// MARK: Deterministic choices

/// Choices a target makes about an input (where to cut it into reads, which
/// limits to parse it with) drawn from a hash of the input itself: a seed
/// file stays plain protocol bytes, and an input is reproduced exactly.
struct Choices {
    private var state: UInt64

    /// Choices for `bytes` (FNV-1a of them, then SplitMix64).
    init(_ bytes: UnsafeRawBufferPointer, salt: UInt64 = 0) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        state = hash
    }

    /// The next pseudo-random number.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `range`.
    mutating func pick(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    /// True one time in `n`.
    mutating func oneIn(_ n: Int) -> Bool { next() % UInt64(n) == 0 }

    /// Where to cut `count` bytes into reads: piece lengths that add up to
    /// `count`, mostly small (1 to 16 bytes) and sometimes larger, so both
    /// every-byte splits and whole frames per read occur.
    mutating func pieces(of count: Int) -> [Int] {
        var result: [Int] = []
        var left = count
        let style = pick(0...3)
        while left > 0 {
            let size: Int
            switch style {
            case 0: size = 1
            case 1: size = pick(1...16)
            case 2: size = pick(1...256)
            default: size = oneIn(2) ? pick(1...4) : pick(1...1024)
            }
            let taken = min(size, left)
            result.append(taken)
            left -= taken
        }
        return result
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes at `range`, as a buffer of their own.
    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self[range]) }
}

/// Bytes shown for a failure message: printable ASCII as is, the rest escaped, at most `limit` of them.
func shown<Bytes: Collection>(_ bytes: Bytes, limit: Int = 120) -> String where Bytes.Element == UInt8 {
    var text = ""
    for byte in bytes.prefix(limit) {
        switch byte {
        case 0x0D: text += "\\r"
        case 0x0A: text += "\\n"
        case 0x20..<0x7F where byte != UInt8(ascii: "\\"): text.append(Character(UnicodeScalar(byte)))
        default: text += "\\x" + String(byte, radix: 16).leftPadded(2)
        }
    }
    return "\"" + text + (bytes.count > limit ? "…" : "") + "\""
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws a typed error (the standard
    /// library's rethrows it untyped).
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { bytes in Result { () throws(E) in try body(bytes) } }
        return try result.get()
    }

    /// `withUnsafeMutableBytes` for a body that throws a typed error.
    mutating func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeMutableBytes { bytes in Result { () throws(E) in try body(bytes) } }
        return try result.get()
    }
}

/// RFC 9110's `tchar`, written out on its own (not the parser's table): a
/// byte that may appear in a method or a field name.
func isToken(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): return true
    default: return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}
