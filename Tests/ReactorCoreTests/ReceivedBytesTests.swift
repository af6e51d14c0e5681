// ReceivedBytes copies out in one move (`+=`, `append(contentsOf:)`,
// `Array(_:)`), and the copies are the bytes, whatever the target's room.
import ReactorCore
import Testing

@Suite("ReceivedBytes")
struct ReceivedBytesTests {
    static let source: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    @Test("+=, append(contentsOf:) and Array(_:) copy every byte, in order")
    func copies() {
        Self.source.withUnsafeBytes { raw in
            let bytes = ReceivedBytes(raw)
            var appended: [UInt8] = [1, 2]
            appended += bytes
            #expect(appended == [1, 2] + Self.source)
            var viaAppend: [UInt8] = []
            viaAppend.append(contentsOf: bytes)
            #expect(viaAppend == Self.source)
            #expect(Array(bytes) == Self.source)
            #expect(Array(ReceivedBytes(UnsafeRawBufferPointer(rebasing: raw[0..<0]))).isEmpty)
        }
    }

    @Test("a target with less room gets a prefix, and the iterator returned yields the rest")
    func partialCopy() {
        Self.source.withUnsafeBytes { raw in
            let bytes = ReceivedBytes(raw)
            let target = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 300)
            defer { target.deallocate() }
            var (rest, copied) = bytes._copyContents(initializing: target)
            #expect(copied == 300)
            #expect(Array(target) == Array(Self.source[..<300]))
            var remainder: [UInt8] = []
            while let byte = rest.next() { remainder.append(byte) }
            #expect(remainder == Array(Self.source[300...]))
        }
    }
}
