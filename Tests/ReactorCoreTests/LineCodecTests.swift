@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

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
