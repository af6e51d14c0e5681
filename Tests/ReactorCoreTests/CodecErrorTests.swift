@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

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
