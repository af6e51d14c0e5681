@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

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
