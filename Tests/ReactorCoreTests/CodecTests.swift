@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: Helpers

/// How bytes reach a codec: copied into the buffer (`append`), or viewed in
/// place while nothing is buffered, as MessageChannel does (`inPlace`).
enum CodecFeeding: CaseIterable, CustomTestStringConvertible {
    case append, inPlace
    var testDescription: String { self == .append ? "appended" : "decoded in place" }
}

/// Feeds `chunks` to `codec` one at a time, decoding every whole message
/// after each; with `atEnd`, finishes with `decodeLast` as at end of stream.
/// Returns the messages and what was left buffered.
private func decode<C: Codec>(_ codec: inout C, _ chunks: [[UInt8]], feeding: CodecFeeding = .append,
                      atEnd: Bool = false) throws(CodecError) -> (messages: [C.Inbound], left: Int) {
    var buffer = InboundBuffer()
    var messages: [C.Inbound] = []
    for chunk in chunks {
        let lend = feeding == .inPlace && buffer.readableBytes == 0
        // withUnsafeBytes rethrows untyped errors: carry the codec's error out as a Result.
        let outcome: Result<Void, CodecError> = chunk.withUnsafeBytes { bytes in
            if lend { buffer.lend(bytes) } else { buffer.append(bytes) }
            defer { buffer.stopBorrowing() }
            do throws(CodecError) {
                while let message = try codec.decode(&buffer) { messages.append(message) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try outcome.get()
        #expect(!buffer.isBorrowing)
    }
    if atEnd {
        while let message = try codec.decodeLast(&buffer) { messages.append(message) }
    }
    return (messages, buffer.readableBytes)
}

/// Every way to cut `bytes` in two, then byte by byte, then in one piece.
private func splits(of bytes: [UInt8]) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
    for cut in 1..<max(bytes.count, 1) {
        result.append([Array(bytes[..<cut]), Array(bytes[cut...])])
    }
    return result
}

extension Array where Element == UInt8 {
    fileprivate init(_ text: String) { self = Array(text.utf8) }
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// `F_SETPIPE_SZ`, which Swift's Glibc module does not export.
private let setPipeSize: Int32 = 1031

// MARK: InboundBuffer

@Suite struct CodecInboundBufferTests {
    @Test func appendPeekConsume() {
        var buffer = InboundBuffer()
        #expect(buffer.readableBytes == 0 && buffer.count == 0 && buffer.capacity == 0, "nothing allocated while empty")
        buffer.append(contentsOf: [UInt8]("hello world"))
        #expect(buffer.readableBytes == 11 && buffer.count == 11)
        #expect(buffer.withUnsafeReadableBytes { Array($0) } == [UInt8]("hello world"))
        buffer.consume(6)
        #expect(Array(buffer) == [UInt8]("world"))
        #expect(buffer[0] == UInt8(ascii: "w") && buffer.first == UInt8(ascii: "w"))
        #expect(buffer.readBytes(3) == [UInt8]("wor"))
        #expect(Array(buffer) == [UInt8]("ld"))
        buffer.consume(2)
        #expect(buffer.isEmpty && buffer.readerIndex == 0, "an emptied buffer starts over at the front")
        buffer.append(contentsOf: [UInt8]("again"))
        buffer.removeAll()
        #expect(buffer.isEmpty && buffer.capacity > 0, "removeAll keeps the storage")
    }

    @Test func peekingDoesNotCopy() {
        var buffer = InboundBuffer()
        buffer.append(contentsOf: [UInt8](repeating: 7, count: 100))
        let first = buffer.withUnsafeReadableBytes { $0.baseAddress }
        let second = buffer.withUnsafeReadableBytes { $0.baseAddress }
        #expect(first == second && first == UnsafeRawPointer(buffer.storage!.base))
        buffer.consume(10)
        #expect(buffer.withUnsafeReadableBytes { $0.baseAddress } == first! + 10, "consuming only moves the reader index")
    }

    @Test func compactsInsteadOfReallocatingOnceGrown() {
        var buffer = InboundBuffer()
        // Frames of 300 bytes arriving in reads of 700: each read leaves a
        // partial frame, so the buffer keeps hitting its end.
        var stream: [UInt8] = []
        for frame in 0..<3000 { stream += (0..<300).map { UInt8(truncatingIfNeeded: $0 &+ frame) } }
        var offset = 0
        var frame = 0
        var generations: Set<Int> = []
        var capacities: Set<Int> = []
        while offset < stream.count {
            let end = min(offset + 700, stream.count)
            stream[offset..<end].withUnsafeBytes { buffer.append($0) }
            offset = end
            generations.insert(buffer.storage!.generation)
            capacities.insert(buffer.capacity)
            while buffer.readableBytes >= 300 {
                let expected = (0..<300).map { UInt8(truncatingIfNeeded: $0 &+ frame) }
                #expect(buffer.readBytes(300) == expected, "frame \(frame)")
                frame += 1
            }
        }
        #expect(frame == 3000)
        #expect(generations == [1], "the storage was reallocated \(generations.count - 1) times")
        #expect(capacities == [InboundBuffer.minimumCapacity])
    }

    @Test func growsForALargeFrameKeepingItsBytes() {
        var buffer = InboundBuffer()
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        buffer.append(contentsOf: [1, 2, 3])
        buffer.consume(1)
        for start in stride(from: 0, to: big.count, by: 4096) {
            big[start..<min(start + 4096, big.count)].withUnsafeBytes { buffer.append($0) }
        }
        #expect(buffer.capacity >= 100_002)
        #expect(buffer.storage!.generation > 1)
        #expect(buffer.readBytes(2) == [2, 3])
        let same = buffer.readBytes(big.count) == big
        #expect(same)
        #expect(buffer.isEmpty)
    }

    @Test func copiesDoNotShareWrites() {
        var a = InboundBuffer()
        a.append(contentsOf: [UInt8]("abc"))
        var b = a
        b.append(contentsOf: [UInt8]("def"))
        a.consume(1)
        #expect(Array(a) == [UInt8]("bc"))
        #expect(Array(b) == [UInt8]("abcdef"))
    }

    @Test func lentBytesAreViewedInPlaceAndOnlyTheLeftoverIsCopied() {
        var buffer = InboundBuffer()
        var source = [UInt8]("frame one|partial")
        source.withUnsafeBytes { bytes in
            buffer.lend(bytes)
            #expect(buffer.isBorrowing)
            #expect(buffer.withUnsafeReadableBytes { $0.baseAddress } == bytes.baseAddress, "viewed in place")
            #expect(buffer.readBytes(10) == [UInt8]("frame one|"))
            #expect(buffer.capacity == 0, "nothing copied yet")
            buffer.stopBorrowing()
        }
        #expect(!buffer.isBorrowing)
        for index in source.indices { source[index] = 0 }
        #expect(Array(buffer) == [UInt8]("partial"), "the leftover was copied before the lender went away")

        // Appending while borrowing copies the lent bytes first.
        var other = InboundBuffer()
        [UInt8]("ab").withUnsafeBytes { bytes in
            other.lend(bytes)
            other.append(contentsOf: [UInt8]("cd"))
            #expect(!other.isBorrowing)
        }
        #expect(Array(other) == [UInt8]("abcd"))

        // Wholly consumed: nothing to keep, nothing allocated.
        var whole = InboundBuffer()
        [UInt8]("xyz").withUnsafeBytes { bytes in
            whole.lend(bytes)
            whole.consume(3)
            whole.stopBorrowing()
        }
        #expect(whole.isEmpty && whole.capacity == 0)
    }
}

// MARK: LineCodec

@Suite struct LineCodecTests {
    static let stream = [UInt8]("hello\nworld\r\n\n\r\nsp ace \t\nlast line\n")
    static let lines = ["hello", "world", "", "", "sp ace \t", "last line"]

    @Test("splits lines at every chunk boundary", arguments: CodecFeeding.allCases)
    func everyBoundary(_ feeding: CodecFeeding) throws {
        for chunks in splits(of: LineCodecTests.stream) {
            var codec = LineCodec()
            let (messages, left) = try decode(&codec, chunks, feeding: feeding)
            #expect(messages.map(text) == LineCodecTests.lines, "chunks \(chunks.map(\.count))")
            #expect(left == 0)
        }
    }

    @Test("every cut into three pieces", arguments: CodecFeeding.allCases)
    func everyThreeWaySplit(_ feeding: CodecFeeding) throws {
        let bytes = LineCodecTests.stream
        for i in 1..<bytes.count {
            for j in i..<bytes.count {
                var codec = LineCodec()
                let chunks = [Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])]
                let messages = try decode(&codec, chunks, feeding: feeding).messages
                #expect(messages.map(text) == LineCodecTests.lines, "cut at \(i), \(j)")
            }
        }
    }

    @Test("many lines in one chunk", arguments: CodecFeeding.allCases)
    func manyLinesInOneChunk(_ feeding: CodecFeeding) throws {
        let lines = (0..<5000).map { "line \($0) " + String(repeating: "x", count: $0 % 50) }
        let chunk = [UInt8](lines.map { $0 + ($0.count % 2 == 0 ? "\r\n" : "\n") }.joined())
        var codec = LineCodec()
        let (messages, left) = try decode(&codec, [chunk], feeding: feeding)
        #expect(messages.map(text) == lines)
        #expect(left == 0)
    }

    @Test func onlyATrailingCarriageReturnIsStripped() throws {
        var codec = LineCodec()
        let messages = try decode(&codec, [[UInt8]("a\rb\r\n\r\r\n\r\n\rx\n")]).messages
        #expect(messages == [[UInt8]("a\rb"), [0x0D], [], [0x0D, 0x78]])
    }

    @Test func bytesPassThroughExactly() throws {
        // Not UTF-8, NULs, a lone \r: a line protocol's bytes are the peer's business.
        let odd: [UInt8] = [0x00, 0xFF, 0xC3, 0x28, 0x0D, 0x41, 0x80]
        var codec = LineCodec()
        let messages = try decode(&codec, [odd + [0x0A] + odd + [0x0D, 0x0A]]).messages
        #expect(messages == [odd, odd])
    }

    @Test func aLineOfExactlyTheMaximumIsAccepted() throws {
        var codec = LineCodec(maximumLineLength: 8)
        let messages = try decode(&codec, [[UInt8]("12345678\n12345678\r\n")]).messages
        #expect(messages.map(text) == ["12345678", "12345678"])
    }

    @Test func aCompleteLineOverTheMaximumFailsWithItsSize() {
        var codec = LineCodec(maximumLineLength: 8)
        #expect(throws: CodecError.frameTooLarge(size: 9, maximum: 8, noun: "line")) {
            try decode(&codec, [[UInt8]("ok\n123456789\n")])
        }
        let error = CodecError.frameTooLarge(size: 9, maximum: 8, noun: "line")
        #expect(error.description == "line of 9 bytes exceeds the maximum of 8")
        #expect(error.kind == .frameTooLarge(size: 9, maximum: 8))
    }

    @Test("a line without a newline fails as soon as it exceeds the maximum", arguments: CodecFeeding.allCases)
    func failsBeforeTheNewline(_ feeding: CodecFeeding) throws {
        var codec = LineCodec(maximumLineLength: 8192)
        var buffer = InboundBuffer()
        buffer.append(contentsOf: [UInt8](repeating: 0x61, count: 8192))
        #expect(try codec.decode(&buffer) == nil, "8192 bytes may still be a whole line")
        buffer.append(contentsOf: [0x61])
        do {
            _ = try codec.decode(&buffer)
            Issue.record("8193 bytes without a newline were accepted")
        } catch {
            #expect(error.description == "line of more than 8192 bytes without a newline")
            #expect(error.kind == .frameTooLarge(size: 8193, maximum: 8192))
        }

        // In small reads, the failure comes with the read that crosses the limit.
        let chunks = Array(repeating: [UInt8](repeating: 0x62, count: 7), count: 20)
        var failedAt: Int?
        for count in 1...chunks.count {
            var small = LineCodec(maximumLineLength: 100)
            do {
                _ = try decode(&small, Array(chunks[..<count]), feeding: feeding)
            } catch {
                #expect(error.description == "line of more than 100 bytes without a newline")
                failedAt = count
                break
            }
        }
        #expect(failedAt == 15, "101 bytes arrive with the 15th read of 7")
    }

    @Test func aCarriageReturnJustPastTheMaximumWaitsForItsNewline() throws {
        var codec = LineCodec(maximumLineLength: 4)
        var buffer = InboundBuffer()
        buffer.append(contentsOf: [UInt8]("abcd\r"))
        #expect(try codec.decode(&buffer) == nil, "the \\r may be half of a \\r\\n")
        buffer.append(contentsOf: [0x0A])
        #expect(try codec.decode(&buffer) == [UInt8]("abcd"))

        buffer.append(contentsOf: [UInt8]("abcd\rx"))
        #expect(throws: CodecError.self) { try codec.decode(&buffer) }
    }

    @Test func theDefaultMaximumIs64KiB() {
        #expect(LineCodec().maximumLineLength == 65536)
    }

    @Test func aLongLineInManyReadsIsFoundOnce() throws {
        // The codec remembers how far it scanned; the result is the same either way.
        var codec = LineCodec()
        let line = [UInt8](repeating: 0x7A, count: 60_000)
        var chunks: [[UInt8]] = []
        for start in stride(from: 0, to: line.count, by: 1000) { chunks.append(Array(line[start..<start + 1000])) }
        chunks.append([UInt8]("\nnext\n"))
        let messages = try decode(&codec, chunks).messages
        #expect(messages.count == 2 && messages[0] == line && messages[1] == [UInt8]("next"))

        // A codec moved to a fresh buffer does not trust what it scanned before.
        var fresh = InboundBuffer()
        fresh.append(contentsOf: [UInt8]("a\n"))
        #expect(try codec.decode(&fresh) == [UInt8]("a"))
    }

    @Test func atTheEndTheUnterminatedRestIsTheLastLine() throws {
        var codec = LineCodec()
        let (messages, left) = try decode(&codec, [[UInt8]("one\ntwo\r\nthree")], atEnd: true)
        #expect(messages.map(text) == ["one", "two", "three"])
        #expect(left == 0)

        var crlf = LineCodec()
        #expect(try decode(&crlf, [[UInt8]("last\r")], atEnd: true).messages.map(text) == ["last"])

        var empty = LineCodec()
        #expect(try decode(&empty, [[UInt8]("done\n")], atEnd: true).messages.map(text) == ["done"])

        var atLimit = LineCodec(maximumLineLength: 3)
        #expect(try decode(&atLimit, [[UInt8]("abc\r")], atEnd: true).messages.map(text) == ["abc"])
    }

    @Test func encodeAppendsTheLineAndANewline() {
        var codec = LineCodec()
        var output: [UInt8] = [0x3E]
        codec.encode([UInt8]("hi"), into: &output)
        codec.encode([], into: &output)
        #expect(output == [UInt8](">hi\n\n"))
    }

    @Test func encodeThenDecodeRoundTrips() throws {
        var codec = LineCodec()
        var output: [UInt8] = []
        let lines = ["alpha", "", "gamma delta", String(repeating: "é", count: 300)]
        for line in lines { codec.encode([UInt8](line), into: &output) }
        var decoder = LineCodec()
        #expect(try decode(&decoder, [output]).messages.map(text) == lines)
    }
}

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

// MARK: CodecError

/// A codec with a rule to break: `key=value` lines.
private struct KeyValueCodec: Codec {
    var lines = LineCodec(maximumLineLength: 1024)

    mutating func decode(_ buffer: inout InboundBuffer) throws(CodecError) -> (key: String, value: String)? {
        guard let line = try lines.decode(&buffer) else { return nil }
        guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else {
            throw CodecError.malformed("no '=' in line '\(text(line))'")
        }
        return (text(Array(line[..<equals])), text(Array(line[(equals + 1)...])))
    }

    mutating func encode(_ message: (key: String, value: String), into output: inout [UInt8]) {
        lines.encode([UInt8]("\(message.key)=\(message.value)"), into: &output)
    }
}

@Suite struct CodecErrorTests {
    @Test func descriptionsSayWhatAndWhy() {
        #expect(CodecError.frameTooLarge(size: 2_000_000, maximum: 1_048_576).description
                == "frame of 2000000 bytes exceeds the maximum of 1048576")
        #expect(CodecError(.frameTooLarge(size: 5, maximum: 4)).description == "frame of 5 bytes exceeds the maximum of 4")
        #expect(CodecError.malformed("no '=' in line 'x'").description == "malformed frame: no '=' in line 'x'")
        #expect(CodecError.truncated(byteCount: 1).description == "the stream ended inside a frame, 1 byte into it")
        #expect(CodecError.truncated(byteCount: 7).description == "the stream ended inside a frame, 7 bytes into it")
        let wrapped = ReactorError("decode", .resource(ResourceID(rawValue: 3 << 24 | 5)),
                                   detail: CodecError.frameTooLarge(size: 9, maximum: 8).description)
        #expect(wrapped.description == "decode(resource #3): frame of 9 bytes exceeds the maximum of 8")
    }

    @Test func malformedInputFromACodecOfOneOwn() throws {
        var codec = KeyValueCodec()
        var buffer = InboundBuffer()
        buffer.append(contentsOf: [UInt8]("a=1\nb=\nbroken\nc=3\n"))
        let first = try #require(try codec.decode(&buffer))
        #expect(first.key == "a" && first.value == "1")
        let second = try #require(try codec.decode(&buffer))
        #expect(second.key == "b" && second.value == "")
        #expect(throws: CodecError.malformed("no '=' in line 'broken'")) { try codec.decode(&buffer) }
    }
}

// MARK: MessageChannel, driven by hand

/// A poller that accepts every registration and never reports anything: the
/// tests below hand the channel its events themselves, with exact chunking.
private final class InertPoller: Poller {
    struct Waker: PollerWaker { func wake() {} }
    static var name: String { "inert" }
    let waker = Waker()
    init() {}
    func register(_ fd: FileDescriptor, token: Token, interest: Interest) {}
    func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) {}
    func deregister(_ fd: FileDescriptor) {}
    func wait(timeout: Duration?, into events: inout [PollEvent]) { events.removeAll() }
}

private final class InertService: Service {
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
}

/// A channel over a real pipe registered with an inert runtime: `feed`
/// delivers bytes as a read would, what the channel sends lands in the pipe.
private final class ChannelRig<C: Codec> {
    let runtime = Runtime<InertPoller, InertService>(poller: InertPoller(), service: InertService())
    let reader: PipeEnd
    let writer: PipeEnd
    private(set) var id = ResourceID(rawValue: 0)
    private(set) weak var weakChannel: MessageChannel<C>?
    var channel: MessageChannel<C>?
    var messages: [C.Inbound] = []
    var closes: [DisconnectReason] = []
    var onMessage: (C.Inbound, MessageChannel<C>) -> Void = { _, _ in }

    var context: Context { runtime.context }

    init(codec: C) throws {
        let (reader, writer) = try PipeEnd.pipe()
        self.reader = reader
        self.writer = writer
        let channel = MessageChannel(stream: writer, codec: codec, onMessage: { [weak self] message, channel, _ in
            self?.messages.append(message)
            self?.onMessage(message, channel)
        }, onClose: { [weak self] reason, _, _ in
            self?.closes.append(reason)
        })
        self.channel = channel
        weakChannel = channel
        id = try runtime.context.register(writer)
    }

    func feed(_ bytes: [UInt8]) {
        // Through the runtime's read buffer, as a real read delivers them.
        let buffer = context.readBuffer
        bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[..<$0.count]).copyMemory(from: $0) }
        deliver(.received(ReceivedBytes(UnsafeRawBufferPointer(rebasing: buffer[..<bytes.count]))))
        // Scribble over the read buffer, as the next read would: nothing may still point into it.
        UnsafeMutableRawBufferPointer(rebasing: buffer[..<max(bytes.count, 1)]).initializeMemory(as: UInt8.self, repeating: 0xA5)
    }

    func deliver(_ event: ResourceEvent) {
        channel?.handle(event, on: writer, context: context)
    }

    /// What the channel wrote to its pipe so far.
    func written() -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(reader.fd.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { return bytes }
            bytes += chunk[..<n]
        }
    }

    var isRegistered: Bool { context.resource(id) != nil }
}

@Suite struct MessageChannelUnitTests {
    @Test func wholeMessagesPerReadAreDecodedInPlace() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.feed([UInt8]("one\ntwo\r\n"))
        rig.feed([UInt8]("three\n"))
        #expect(rig.messages.map(text) == ["one", "two", "three"])
        #expect(rig.channel!.inbound.capacity == 0, "nothing was copied into the channel's buffer")
        #expect(rig.channel!.bufferedByteCount == 0)
    }

    @Test func onlyTheLeftoverPartialFrameIsBuffered() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.feed([UInt8]("one\ntw"))
        #expect(rig.messages.map(text) == ["one"])
        #expect(rig.channel!.bufferedByteCount == 2)
        rig.feed([UInt8]("o\nthr"))
        #expect(rig.messages.map(text) == ["one", "two"])
        #expect(rig.channel!.bufferedByteCount == 3)
        rig.feed([UInt8]("ee\n"))
        #expect(rig.messages.map(text) == ["one", "two", "three"])
        #expect(rig.channel!.bufferedByteCount == 0)
        #expect(rig.closes.isEmpty)
    }

    @Test func sendEncodesOntoTheStream() throws {
        let rig = try ChannelRig(codec: LengthPrefixedCodec())
        #expect(rig.channel!.send([1, 2, 3]), "a pipe with room takes it at once")
        #expect(rig.channel!.send([]))
        #expect(rig.written() == [0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0])
    }

    @Test func repliesFromOnMessageGoOutInOrder() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.onMessage = { line, channel in channel.send(line.reversed()) }
        rig.feed([UInt8]("abc\nxy\n"))
        #expect(rig.written() == [UInt8]("cba\nyx\n"))
    }

    @Test func aCodecErrorDestroysTheStreamAndReportsWhy() throws {
        let rig = try ChannelRig(codec: LengthPrefixedCodec(maximumFrameSize: 1_048_576))
        rig.feed([0, 0, 0, 1, 0x41, 0x00, 0x1E, 0x84, 0x80, 1, 2, 3])
        #expect(rig.messages == [[0x41]], "the frame before the bad one is delivered")
        #expect(!rig.isRegistered, "the stream was destroyed")
        #expect(rig.closes.count == 1)
        guard case .failed(let error)? = rig.closes.first else { Issue.record("closed with \(rig.closes)"); return }
        #expect(error.operation == "decode")
        #expect(error.subject == .resource(rig.id))
        #expect(error.detail == "frame of 2000000 bytes exceeds the maximum of 1048576")
        #expect(error.description == "decode(resource \(rig.id)): frame of 2000000 bytes exceeds the maximum of 1048576")
        #expect(rig.writer.handler == nil, "the cycle is broken")
        #expect(!rig.channel!.send([1]), "a closed channel sends nothing")
        #expect(!rig.channel!.isOpen)
        rig.feed([0, 0, 0, 1, 0x42])
        #expect(rig.messages.count == 1, "nothing is delivered after the end")
        rig.channel = nil
        #expect(rig.weakChannel == nil, "the channel was freed")
    }

    @Test func malformedInputEndsTheChannel() throws {
        let rig = try ChannelRig(codec: KeyValueCodec())
        rig.feed([UInt8]("a=1\nbroken\nc=3\n"))
        #expect(rig.messages.count == 1)
        guard case .failed(let error)? = rig.closes.first else { Issue.record("closed with \(rig.closes)"); return }
        #expect(error.detail == "malformed frame: no '=' in line 'broken'")
    }

    @Test func readClosedDeliversTheRestThenClosesOnceFlushed() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.onMessage = { line, channel in channel.send(line) }
        rig.feed([UInt8]("a\nb"))
        rig.deliver(.readClosed)
        #expect(rig.messages.map(text) == ["a", "b"], "the unterminated last line counts at the end")
        #expect(rig.closes.count == 1)
        if case .closed? = rig.closes.first {} else { Issue.record("closed with \(rig.closes)") }
        #expect(!rig.channel!.send([UInt8]("late")), "after onClose the channel is closing")
        #expect(!rig.isRegistered, "nothing was queued, so the stream closed at once")
        #expect(rig.written() == [UInt8]("a\nb\n"))
        #expect(rig.writer.handler == nil)
        rig.channel = nil
        #expect(rig.weakChannel == nil)
    }

    @Test func onCloseMaySendALastMessageAtReadClosed() throws {
        let runtime = Runtime<InertPoller, InertService>(poller: InertPoller(), service: InertService())
        let (reader, writer) = try PipeEnd.pipe()
        let channel = MessageChannel(stream: writer, codec: LineCodec(), onMessage: { _, _, _ in }, onClose: { _, channel, _ in
            channel.send([UInt8]("bye"))
        })
        try runtime.context.register(writer)
        channel.handle(.readClosed, on: writer, context: runtime.context)
        var bytes = [UInt8](repeating: 0, count: 16)
        let n = bytes.withUnsafeMutableBytes { Glibc.read(reader.fd.rawValue, $0.baseAddress, $0.count) }
        #expect(n == 4 && Array(bytes[..<4]) == [UInt8]("bye\n"))
    }

    @Test func aTruncatedFrameAtTheEndIsAFailureButTheCloseIsGraceful() throws {
        let rig = try ChannelRig(codec: LengthPrefixedCodec())
        rig.onMessage = { payload, channel in channel.send(payload) }
        rig.feed([0, 0, 0, 2, 7, 7, 0, 0, 0, 9, 1, 2])
        rig.deliver(.readClosed)
        #expect(rig.messages == [[7, 7]])
        guard case .failed(let error)? = rig.closes.first else { Issue.record("closed with \(rig.closes)"); return }
        #expect(error.description == "decode(resource \(rig.id)): the stream ended inside a frame, 6 bytes into it")
        #expect(rig.written() == [0, 0, 0, 2, 7, 7], "the reply to the complete frame was still written")
        #expect(rig.closes.count == 1)
    }

    @Test func aDisconnectIsReportedOnceAndFreesTheChannel() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.feed([UInt8]("partial"))
        let error = ReactorError("read", .fd(rig.writer.fd.rawValue), errno: .connectionReset)
        rig.channel!.resourceDisconnected(rig.writer, reason: .failed(error), context: rig.context)
        #expect(rig.closes.count == 1)
        if case .failed(let reported)? = rig.closes.first { #expect(reported == error) } else { Issue.record("\(rig.closes)") }
        #expect(rig.messages.isEmpty, "a partial line is not a line when the stream fails")
        #expect(rig.writer.handler == nil)
        rig.channel!.close()
        #expect(rig.closes.count == 1, "onClose runs once")
        rig.channel = nil
        #expect(rig.weakChannel == nil)
    }

    @Test func anEndOfFileWithoutReadClosedStillDeliversTheLastLine() throws {
        // A pipe ends with a plain disconnect: what the peer finished still counts.
        let rig = try ChannelRig(codec: LineCodec())
        rig.feed([UInt8]("x\ny"))
        _ = rig.context.deregister(rig.writer)
        rig.channel!.resourceDisconnected(rig.writer, reason: .closed, context: rig.context)
        #expect(rig.messages.map(text) == ["x", "y"])
        if case .closed? = rig.closes.first {} else { Issue.record("\(rig.closes)") }
    }

    @Test func closeReportsOnceAndStopsDelivery() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.onMessage = { line, channel in if line == [UInt8]("stop") { channel.close() } }
        rig.feed([UInt8]("a\nstop\nb\nc\n"))
        #expect(rig.messages.map(text) == ["a", "stop"], "no message after close")
        #expect(rig.closes.count == 1)
        #expect(!rig.isRegistered)
        rig.channel!.close()
        rig.channel!.close(flush: false)
        #expect(rig.closes.count == 1)
        #expect(rig.writer.handler == nil)
        rig.channel = nil
        #expect(rig.weakChannel == nil)
    }

    @Test func closeWithoutFlushDropsQueuedOutput() throws {
        let rig = try ChannelRig(codec: LengthPrefixedCodec())
        _ = fcntl(rig.writer.fd.rawValue, setPipeSize, 4096)
        rig.channel!.send([UInt8](repeating: 1, count: 100_000))
        #expect(rig.writer.queuedByteCount > 0)
        rig.channel!.close(flush: false)
        #expect(!rig.isRegistered)
        #expect(rig.closes.count == 1)
        rig.channel = nil
        #expect(rig.weakChannel == nil)
    }

    @Test func aGracefulCloseKeepsTheHandlerUntilTheQueueDrains() throws {
        let rig = try ChannelRig(codec: LengthPrefixedCodec())
        _ = fcntl(rig.writer.fd.rawValue, setPipeSize, 4096)
        let payload = (0..<50_000).map { UInt8(truncatingIfNeeded: $0) }
        rig.channel!.send(payload)
        rig.channel!.close()
        #expect(rig.closes.count == 1)
        #expect(rig.isRegistered, "still flushing")
        #expect(rig.writer.handler === rig.channel, "a write failure while flushing still reaches the channel")
        #expect(!rig.channel!.send([1]), "no sends while closing")
        // Drain the pipe and let the stream flush, as writable readiness would.
        var received: [UInt8] = []
        while rig.isRegistered {
            received += rig.written()
            _ = rig.writer.handle(.writable, in: rig.context) { _ in }
        }
        received += rig.written()
        #expect(received.count == payload.count + 4)
        #expect(Array(received.dropFirst(4)) == payload)
        #expect(rig.writer.handler == nil)
        rig.channel = nil
        #expect(rig.weakChannel == nil)
    }

    @Test func aBufferGrownByAHugeFrameIsReleasedOnceEmpty() throws {
        let rig = try ChannelRig(codec: LengthPrefixedCodec())
        let payload = [UInt8](repeating: 9, count: 3 << 20)
        var framed: [UInt8] = []
        var codec = LengthPrefixedCodec()
        codec.encode(payload, into: &framed)
        framed.append(contentsOf: [0, 0, 0])  // and the start of the next header
        // In reads of the runtime's buffer size, as they would arrive.
        let size = rig.context.readBuffer.count
        for start in stride(from: 0, to: framed.count, by: size) {
            rig.feed(Array(framed[start..<min(start + size, framed.count)]))
            if start == 0 { #expect(rig.channel!.bufferedByteCount == size) }
        }
        #expect(rig.messages.count == 1 && rig.messages.first == payload)
        #expect(rig.channel!.bufferedByteCount == 3)
        rig.feed([1, 0x2A])
        #expect(rig.messages.last == [0x2A])
        #expect(rig.channel!.inbound.capacity == 0, "a 4 MiB buffer stayed pinned to an idle channel")
    }

    @Test func destroyingTheStreamInOnMessageStopsDelivery() throws {
        let rig = try ChannelRig(codec: LineCodec())
        rig.onMessage = { _, channel in channel.stream.close() }
        rig.feed([UInt8]("a\nb\nc\n"))
        #expect(rig.messages.map(text) == ["a"])
    }

    @Test func closingAChannelWhoseConnectIsUnderWayLetsGoAtOnce() throws {
        let runtime = Runtime<InertPoller, InertService>(poller: InertPoller(), service: InertService())
        let listener = try SocketListener(bindingTo: .loopback(port: 0))
        let stream = try SocketStream.connect(to: listener.localAddress)
        weak var weakChannel: MessageChannel<LineCodec>?
        var closes = 0
        do {
            let channel = MessageChannel(stream: stream, codec: LineCodec(), onMessage: { _, _, _ in }, onClose: { _, _, _ in closes += 1 })
            weakChannel = channel
            try runtime.context.register(stream)
            #expect(stream.isConnecting)
            channel.close()
        }
        #expect(closes == 1)
        #expect(!stream.isRegistered)
        #expect(stream.handler == nil)
        #expect(weakChannel == nil)
    }

    @Test func aListenerFactoryGivesEachConnectionItsOwnChannel() throws {
        var configured = 0
        let factory = MessageChannel.connectionHandler(codec: LineCodec(maximumLineLength: 10),
                                                       onMessage: { _, _, _ in }, configure: { _ in configured += 1 })
        let (a, b) = try Self.socketPair()
        let first = factory(a) as? MessageChannel<LineCodec>
        let second = factory(b) as? MessageChannel<LineCodec>
        #expect(first != nil && second != nil && first !== second)
        #expect(a.handler === first && b.handler === second)
        #expect(first?.codec.maximumLineLength == 10)
        #expect(configured == 2)
        first?.close(); second?.close()
        #expect(a.handler == nil && b.handler == nil, "an unregistered channel lets go at close")

        // The spelling in MessageChannel's documentation: the trailing closure is onMessage.
        let upper = MessageChannel.connectionHandler(codec: LineCodec()) { line, channel, _ in
            channel.send(line.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 })
        }
        let (c, d) = try Self.socketPair()
        #expect(upper(c) is MessageChannel<LineCodec>)
        (c.handler as? MessageChannel<LineCodec>)?.close()
        _ = d
    }

    static func socketPair() throws -> (SocketStream, SocketStream) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw ReactorError.lastErrno("socketpair") }
        return (SocketStream(accepted: FileDescriptor(rawValue: fds[0]), family: AF_UNIX, options: StreamOptions()),
                SocketStream(accepted: FileDescriptor(rawValue: fds[1]), family: AF_UNIX, options: StreamOptions()))
    }
}
