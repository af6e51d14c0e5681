@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: LengthPrefixedCodec

@Suite struct LengthPrefixedCodecTests {
    static let payloads: [[UInt8]] = [[], [0x42], [UInt8]("hello"), (0..<300).map { UInt8(truncatingIfNeeded: $0) }, []]

    static func encoded(_ payloads: [[UInt8]]) -> [UInt8] {
        var codec = LengthPrefixedCodec()
        var output: [UInt8] = []
        for payload in payloads { codec.encode(payload, into: &output) }
        return output
    }

    @Test func encodeWritesABigEndianHeader() {
        var codec = LengthPrefixedCodec()
        var output: [UInt8] = [0xEE]
        codec.encode((0..<300).map { _ in 1 }, into: &output)
        #expect(Array(output.prefix(5)) == [0xEE, 0x00, 0x00, 0x01, 0x2C])
        #expect(output.count == 1 + 4 + 300)
    }

    @Test("decodes at every chunk boundary", arguments: CodecFeeding.allCases)
    func everyBoundary(_ feeding: CodecFeeding) throws {
        let bytes = LengthPrefixedCodecTests.encoded(LengthPrefixedCodecTests.payloads)
        for chunks in splits(of: bytes) {
            var codec = LengthPrefixedCodec()
            let (messages, left) = try decode(&codec, chunks, feeding: feeding)
            #expect(messages == LengthPrefixedCodecTests.payloads, "chunks \(chunks.map(\.count))")
            #expect(left == 0)
        }
    }

    @Test("every cut into three pieces", arguments: CodecFeeding.allCases)
    func everyThreeWaySplit(_ feeding: CodecFeeding) throws {
        let bytes = LengthPrefixedCodecTests.encoded([[1, 2, 3], [], [UInt8]("abcdefgh"), [9]])
        for i in 1..<bytes.count {
            for j in i..<bytes.count {
                var codec = LengthPrefixedCodec()
                let chunks = [Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])]
                let messages = try decode(&codec, chunks, feeding: feeding).messages
                #expect(messages == [[1, 2, 3], [], [UInt8]("abcdefgh"), [9]], "cut at \(i), \(j)")
            }
        }
    }

    @Test("many frames in one chunk", arguments: CodecFeeding.allCases)
    func manyFramesInOneChunk(_ feeding: CodecFeeding) throws {
        let payloads = (0..<2000).map { index in (0..<(index * 7 % 513)).map { UInt8(truncatingIfNeeded: $0 ^ index) } }
        var codec = LengthPrefixedCodec()
        let (messages, left) = try decode(&codec, [LengthPrefixedCodecTests.encoded(payloads)], feeding: feeding)
        #expect(messages == payloads)
        #expect(left == 0)
    }

    @Test func anIncompleteFrameWaits() throws {
        var codec = LengthPrefixedCodec()
        var buffer = InboundBuffer()
        buffer.append(contentsOf: [0, 0, 0])
        #expect(try codec.decode(&buffer) == nil)
        buffer.append(contentsOf: [5, 1, 2, 3, 4])
        #expect(try codec.decode(&buffer) == nil)
        #expect(buffer.readableBytes == 8, "nothing consumed while the frame is incomplete")
        buffer.append(contentsOf: [5, 0, 0])
        #expect(try codec.decode(&buffer) == [1, 2, 3, 4, 5])
        #expect(Array(buffer) == [0, 0])
    }

    @Test func anOversizedLengthFailsAsSoonAsTheHeaderArrives() throws {
        var codec = LengthPrefixedCodec(maximumFrameSize: 1_048_576)
        var buffer = InboundBuffer()
        let header: [UInt8] = [0x00, 0x1E, 0x84, 0x80]  // 2,000,000
        buffer.append(contentsOf: header.prefix(3))
        #expect(try codec.decode(&buffer) == nil, "three bytes are not a header yet")
        buffer.append(contentsOf: header.suffix(1))
        do {
            _ = try codec.decode(&buffer)
            Issue.record("a 2,000,000-byte frame was accepted")
        } catch {
            #expect(error.description == "frame of 2000000 bytes exceeds the maximum of 1048576")
            #expect(error.kind == .frameTooLarge(size: 2_000_000, maximum: 1_048_576))
        }
        #expect(buffer.readableBytes == 4, "no body was waited for")
    }

    @Test func theLargestDeclarableLengthIsReportedExactly() {
        var codec = LengthPrefixedCodec()
        var buffer = InboundBuffer()
        buffer.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: CodecError.frameTooLarge(size: 4_294_967_295, maximum: 16 << 20)) { try codec.decode(&buffer) }
    }

    @Test func aFrameOfExactlyTheMaximumIsAccepted() throws {
        var codec = LengthPrefixedCodec(maximumFrameSize: 10)
        let payload = [UInt8](repeating: 3, count: 10)
        #expect(try decode(&codec, [LengthPrefixedCodecTests.encoded([payload])]).messages == [payload])
        #expect(LengthPrefixedCodec().maximumFrameSize == 16 << 20)
    }

    @Test func atTheEndAnIncompleteFrameStaysBuffered() throws {
        var codec = LengthPrefixedCodec()
        let bytes = LengthPrefixedCodecTests.encoded([[1, 2], [3, 4, 5]]).dropLast()
        let (messages, left) = try decode(&codec, [Array(bytes)], atEnd: true)
        #expect(messages == [[1, 2]])
        #expect(left == 6, "the channel reports these as a truncated frame")
    }
}
