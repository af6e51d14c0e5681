@testable import ReactorCore
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

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
        try Syscall.check("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) }
        return (SocketStream(accepted: FileDescriptor(rawValue: fds[0]), family: AF_UNIX, options: StreamOptions()),
                SocketStream(accepted: FileDescriptor(rawValue: fds[1]), family: AF_UNIX, options: StreamOptions()))
    }
}
