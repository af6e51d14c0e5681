/// Binary frames: a 4-byte big-endian length, then that many bytes of payload.
///
/// A declared length above ``maximumFrameSize`` fails as soon as the header
/// has arrived, before any of the body is buffered, so a peer cannot make
/// the connection reserve gigabytes with four bytes.
public struct LengthPrefixedCodec: Codec, Sendable {
    /// A frame's payload, without its header.
    public typealias Inbound = [UInt8]
    /// A payload; ``encode(_:into:)`` adds the header.
    public typealias Outbound = [UInt8]

    /// The size of the length header.
    public static let headerSize = 4

    /// The largest payload accepted, in bytes (the header not counted).
    public var maximumFrameSize: Int

    /// A codec that accepts payloads of up to `maximumFrameSize` bytes (16 MiB by default).
    public init(maximumFrameSize: Int = 16 << 20) {
        precondition(maximumFrameSize >= 0, "a negative maximum frame size")
        self.maximumFrameSize = maximumFrameSize
    }

    /// Takes the next whole frame's payload; see ``Codec/decode(_:)``.
    public mutating func decode(_ buffer: inout InboundBuffer) throws(CodecError) -> [UInt8]? {
        guard buffer.readableBytes >= LengthPrefixedCodec.headerSize else { return nil }
        let length = buffer.withUnsafeReadableBytes { bytes in
            Int(UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)))
        }
        if length > maximumFrameSize {
            throw CodecError.frameTooLarge(size: length, maximum: maximumFrameSize)
        }
        guard buffer.readableBytes >= LengthPrefixedCodec.headerSize + length else { return nil }
        buffer.consume(LengthPrefixedCodec.headerSize)
        return buffer.readBytes(length)
    }

    /// Appends the header and `message`. The maximum is the receiver's to
    /// enforce (the peer may accept more than this side does); only a
    /// payload the header cannot express, 4 GiB or more, is refused.
    public mutating func encode(_ message: [UInt8], into output: inout [UInt8]) {
        precondition(message.count <= Int(UInt32.max), "a frame of \(message.count) bytes does not fit a 32-bit length")
        let length = UInt32(message.count)
        output.append(UInt8(truncatingIfNeeded: length >> 24))
        output.append(UInt8(truncatingIfNeeded: length >> 16))
        output.append(UInt8(truncatingIfNeeded: length >> 8))
        output.append(UInt8(truncatingIfNeeded: length))
        output.append(contentsOf: message)
    }
}
