/// Turns a byte stream into messages and messages into bytes: the framing of
/// a protocol, for a ``MessageChannel``.
///
/// A codec is a value, copied for each connection (a listener's channels
/// each get their own), so it may keep per-connection parsing state — how
/// far it has already scanned for a delimiter, say — in its properties.
/// One codec value decodes one stream.
public protocol Codec {
    /// A decoded message.
    associatedtype Inbound
    /// A message to encode.
    associatedtype Outbound

    /// Takes one whole message off the front of `buffer`, consuming its
    /// bytes, or returns nil (consuming nothing it will need again) when the
    /// buffer does not hold a whole frame yet. Throws when the bytes can never
    /// become a valid frame — too large, malformed — which ends the connection.
    mutating func decode(_ buffer: inout InboundBuffer) throws(CodecError) -> Inbound?

    /// Like ``decode(_:)``, once the peer has finished sending: nothing more
    /// will arrive, so a frame that ends with the stream (a last line without
    /// a newline) may be returned. Called until it returns nil; bytes still
    /// in the buffer after that are reported as a truncated frame. The
    /// default is ``decode(_:)``.
    mutating func decodeLast(_ buffer: inout InboundBuffer) throws(CodecError) -> Inbound?

    /// Appends the bytes of `message`, framed, to `output`. `output` is a
    /// scratch array the caller reuses, so appending (not replacing) keeps
    /// its capacity and encoding allocation-free in steady state.
    mutating func encode(_ message: Outbound, into output: inout [UInt8])
}

extension Codec {
    /// The default: a frame needs the same bytes whether or not more may follow.
    public mutating func decodeLast(_ buffer: inout InboundBuffer) throws(CodecError) -> Inbound? {
        try decode(&buffer)
    }
}

/// Why bytes could not be decoded. Its ``description`` says what was wrong
/// and by how much, e.g. `frame of 2000000 bytes exceeds the maximum of
/// 1048576` or `line of more than 8192 bytes without a newline`.
public struct CodecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for code that reacts to particular failures.
    public enum Kind: Sendable, Equatable {
        /// A frame is (or, without its end in sight yet, already is at least)
        /// `size` bytes, more than the codec accepts. Reported as soon as the
        /// size is known, so an oversized frame is never buffered.
        case frameTooLarge(size: Int, maximum: Int)
        /// The bytes break the protocol's rules.
        case malformed(reason: String)
        /// The stream ended `byteCount` bytes into a frame.
        case truncated(byteCount: Int)
    }

    /// What went wrong.
    public var kind: Kind
    /// The sentence that says so.
    public var description: String

    /// An error of `kind`, described by `description` or, when that is nil,
    /// by a sentence made from `kind`.
    public init(_ kind: Kind, description: String? = nil) {
        self.kind = kind
        self.description = description ?? CodecError.describe(kind)
    }

    /// A frame of `size` bytes (`noun` names the frame: "frame", "line",
    /// "message") is larger than `maximum`.
    public static func frameTooLarge(size: Int, maximum: Int, noun: String = "frame") -> CodecError {
        CodecError(.frameTooLarge(size: size, maximum: maximum),
                   description: "\(noun) of \(size) bytes exceeds the maximum of \(maximum)")
    }

    /// The bytes break the protocol's rules for `reason`.
    public static func malformed(_ reason: String) -> CodecError {
        CodecError(.malformed(reason: reason))
    }

    /// The stream ended `byteCount` bytes into a frame.
    public static func truncated(byteCount: Int) -> CodecError {
        CodecError(.truncated(byteCount: byteCount))
    }

    private static func describe(_ kind: Kind) -> String {
        switch kind {
        case .frameTooLarge(let size, let maximum):
            return "frame of \(size) bytes exceeds the maximum of \(maximum)"
        case .malformed(let reason):
            return "malformed frame: \(reason)"
        case .truncated(let byteCount):
            return "the stream ended inside a frame, \(byteCount) byte\(byteCount == 1 ? "" : "s") into it"
        }
    }
}
