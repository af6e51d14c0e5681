import ReactorCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `MessageChannel` framing, driven as the runtime drives it: each read's
/// bytes handed over in place in the runtime's read buffer (scribbled over
/// afterwards, as the next read would), then the peer finishing, a reset, or
/// a local close; the channel echoes each message back through a real pipe,
/// and may close itself from inside a message.
///
/// Checks: the messages delivered are the codec's messages for the whole
/// stream (up to a close from inside one); `onClose` runs exactly once,
/// with the reason the ending calls for; what was echoed arrives in the
/// pipe framed by the codec, byte for byte; the channel lets go of its
/// stream and is freed.
enum MessageChannelFuzz {
    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var choices = Choices(data)
        if choices.oneIn(2) {
            let maximum = choices.oneIn(2) ? 64 << 10 : choices.pick(0...40)
            try drive(LineCodec(maximumLineLength: maximum), data, &choices)
        } else {
            let maximum = choices.oneIn(2) ? 16 << 20 : choices.pick(0...64)
            try drive(LengthPrefixedCodec(maximumFrameSize: maximum), data, &choices)
        }
    }

    enum Ending: CaseIterable { case peerFinished, reset, localClose, localAbort }
    enum ExpectedEnding { case closed, decodeFailure, readFailure }

    static func drive<C: Codec>(_ codec: C, _ data: UnsafeRawBufferPointer, _ choices: inout Choices) throws(FuzzFailure)
    where C.Inbound == [UInt8], C.Outbound == [UInt8] {
        // The expectation: the codec alone over the whole stream, with and without its end.
        let streamed = decodeStream(codec, data, pieces: [data.count], atEnd: false)
        let finished = decodeStream(codec, data, pieces: [data.count])
        let ending = Ending.allCases[choices.pick(0...3)]
        let closeAt: Int? = choices.oneIn(4) ? choices.pick(0...max(0, finished.messages.count - 1)) : nil
        let closeFlushes = choices.oneIn(2)

        let runtime = Runtime<InertPoller, InertService>(poller: InertPoller(), service: InertService(),
                                                         options: RuntimeOptions(readBufferSize: 8 << 10))
        // A runtime closes what is registered with it when it goes: it must outlive every check below.
        defer { withExtendedLifetime(runtime) {} }
        let context = runtime.context
        let reader: PipeEnd, writer: PipeEnd
        do { (reader, writer) = try PipeEnd.pipe() } catch { throw FuzzFailure("pipe: \(error)") }
        var messages: [[UInt8]] = []
        var closes: [DisconnectReason] = []
        weak var weakChannel: MessageChannel<C>?
        var id = ResourceID(rawValue: 0)
        do {
            let channel = MessageChannel(stream: writer, codec: codec, onMessage: { message, channel, _ in
                messages.append(message)
                channel.send(message)
                if messages.count - 1 == closeAt { channel.close(flush: closeFlushes) }
            }, onClose: { reason, _, _ in
                closes.append(reason)
            })
            weakChannel = channel
            do { id = try context.register(writer) } catch { throw FuzzFailure("register: \(error)") }

            var offset = 0
            for size in choices.pieces(of: data.count) {
                guard size <= context.readBuffer.count else { break }
                // As a read delivers them: in the runtime's read buffer, valid during the callback only.
                let buffer = context.readBuffer
                UnsafeMutableRawBufferPointer(rebasing: buffer[..<size]).copyMemory(from: data.slice(offset..<(offset + size)))
                channel.handle(.received(ReceivedBytes(UnsafeRawBufferPointer(rebasing: buffer[..<size]))), on: writer, context: context)
                UnsafeMutableRawBufferPointer(rebasing: buffer[..<size]).initializeMemory(as: UInt8.self, repeating: 0xA5)
                offset += size
            }
            switch ending {
            case .peerFinished: channel.handle(.readClosed, on: writer, context: context)
            case .reset:
                let error = ReactorError("read", .fd(writer.fd.rawValue), errno: .connectionReset)
                channel.resourceDisconnected(writer, reason: .failed(error), context: context)
            case .localClose: channel.close(flush: true)
            case .localAbort: channel.close(flush: false)
            }
            try require(!channel.send([1]) || channel.isOpen, "a channel that ended still sends")
        }

        // What was delivered: the codec's messages (the peer finishing lets a
        // last frame end with the stream), up to a close from inside one.
        let model = ending == .peerFinished ? finished : streamed
        let closedByMessage = closeAt.map { $0 < model.messages.count } ?? false
        let wanted = closedByMessage ? Array(model.messages.prefix(closeAt! + 1)) : model.messages
        let story = "\(ending), closing at \(closeAt.map(String.init) ?? "none"), the codec says \(model)"
        try require(messages == wanted, "delivered \(messages.map { shown($0) }), expected \(wanted.map { shown($0) }) (\(story))")

        // One report, with the reason the ending calls for.
        try require(closes.count == 1, "onClose ran \(closes.count) times (\(story))")
        let reason: ExpectedEnding = closedByMessage ? .closed
            : model.failure != nil ? .decodeFailure
            : ending == .peerFinished && model.left > 0 ? .decodeFailure
            : ending == .reset ? .readFailure
            : .closed
        switch (closes[0], reason) {
        case (.closed, .closed):
            break
        case (.failed(let error), .decodeFailure):
            try require(error.operation == "decode" && error.subject == .resource(id), "failed with \(error) (\(story))")
        case (.failed(let error), .readFailure):
            try require(error.operation == "read" && error.errno == .connectionReset, "failed with \(error) (\(story))")
        default:
            throw FuzzFailure("ended with \(closes[0]), expected \(reason) (\(story))")
        }

        // The echo: each delivered message, framed, in order (nothing is lost:
        // the pipe takes it all at once, so nothing was left queued to drop).
        var echo: [UInt8] = []
        var encoder = codec
        for message in messages { encoder.encode(message, into: &echo) }
        let written = readAll(reader)
        try require(written == echo, "the pipe holds \(shown(written)), the echo was \(shown(echo))")
        try require(writer.handler == nil, "the stream still holds its channel")
        try require(weakChannel == nil, "the channel outlived its stream")
    }

    static func readAll(_ reader: PipeEnd) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        // Non-blocking: the read end was made so by PipeEnd, and the write end's bytes are all in already.
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(reader.fd.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { return bytes }
            bytes += chunk[..<n]
        }
    }
}

/// A poller that takes every registration and never reports anything: the
/// target hands the channel its events itself, with the chunking it chose.
final class InertPoller: Poller {
    struct Waker: PollerWaker { func wake() {} }
    static var name: String { "inert" }
    let waker = Waker()
    init() {}
    func register(_ fd: FileDescriptor, token: Token, interest: Interest) {}
    func reregister(_ fd: FileDescriptor, token: Token, interest: Interest) {}
    func deregister(_ fd: FileDescriptor) {}
    func wait(timeout: Duration?, into events: inout [PollEvent]) { events.removeAll() }
}

final class InertService: Service {
    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}
}
