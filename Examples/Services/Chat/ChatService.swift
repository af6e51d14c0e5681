import Reactor

/// How a chat server treats its members.
public struct ChatConfiguration: Sendable {
    /// The longest line a member may send; a longer one disconnects them with that reason.
    public var maximumLineLength = 4096
    /// Bytes queued for a member above which broadcasts skip them (see ``ChatService``).
    public var highWatermark = 64 << 10
    /// Bytes queued at or below which a skipped member receives again.
    public var lowWatermark = 16 << 10

    /// A configuration with the given limits; every one has a default.
    public init(maximumLineLength: Int = 4096, highWatermark: Int = 64 << 10, lowWatermark: Int = 16 << 10) {
        self.maximumLineLength = maximumLineLength
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
    }

    /// The stream options for a chat listener's connections.
    public var connectionOptions: StreamOptions {
        StreamOptions(highWatermark: highWatermark, lowWatermark: lowWatermark)
    }
}

/// A line-based chat room (the DReactor tutorial's chat server): every line
/// a member sends goes to every other member as `<nick> line`; joins, leaves
/// and renames are announced as `* ...` lines.
///
/// Commands: `/nick NAME` renames (1–32 letters, digits, `-`, `_`; unique),
/// `/who` lists the members, `/quit` leaves.
///
/// **A slow reader never stalls the others.** Broadcasting writes to each
/// member's queue; a member whose queue is above the high watermark is
/// skipped, and the lines it missed are counted. When its queue drains to
/// the low watermark it is told how many it missed (so nothing is dropped
/// silently) and receives again. Its queue so stays below the high
/// watermark plus one line, whatever the others send.
///
/// Register a ``SocketListener`` created with
/// ``ChatConfiguration/connectionOptions``; the Service turns each
/// connection it accepts into a member.
public final class ChatService: Service {
    /// One member: its line channel, its nick, and the lines it missed.
    final class Member {
        let channel: MessageChannel<LineCodec>
        var nick: String
        var missed = 0

        init(channel: MessageChannel<LineCodec>, nick: String) {
            self.channel = channel
            self.nick = nick
        }

        var isSlow: Bool { channel.stream.isAboveHighWatermark }
    }

    /// The limits every member is held to.
    public let configuration: ChatConfiguration
    private var members: [ResourceID: Member] = [:]
    private var guestNumber = 0

    /// A chat room with no members yet.
    public init(configuration: ChatConfiguration = ChatConfiguration()) {
        self.configuration = configuration
    }

    /// How many members are in the room.
    public var memberCount: Int { members.count }

    /// Lines skipped for slow members so far, over all members (for tests and stats).
    public private(set) var skippedLines = 0

    public func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {
        switch event {
        case .accepted(let stream):
            join(stream, context: context)
        case .acceptPaused(let error):
            context.logger.warning("\(error)")
        case .acceptResumed:
            context.logger.notice("accepting members again")
        default:
            break
        }
    }

    public func runtimeStopped(context: Context) {
        // Channels and their streams hold each other; closing ends the cycle.
        for member in members.values {
            member.channel.send(Array("* the server is shutting down".utf8))
            member.channel.close()
        }
        members.removeAll()
    }

    // MARK: Membership

    private func join(_ stream: SocketStream, context: Context) {
        guard let id = stream.id else { return }
        guestNumber += 1
        let channel = MessageChannel(
            stream: stream, codec: LineCodec(maximumLineLength: configuration.maximumLineLength),
            onMessage: { [unowned self] line, _, context in self.said(line, by: id, context: context) },
            onClose: { [unowned self] reason, _, context in self.left(id, reason: reason, context: context) })
        channel.onWritableAgain = { [unowned self] _, _ in self.caughtUp(id) }
        let member = Member(channel: channel, nick: "guest-\(guestNumber)")
        members[id] = member
        send("* welcome, \(member.nick); /nick NAME renames you, /who lists who is here, /quit leaves", to: member)
        broadcast("* \(member.nick) joined", except: id)
    }

    private func left(_ id: ResourceID, reason: DisconnectReason, context: Context) {
        guard let member = members.removeValue(forKey: id) else { return }
        if case .failed(let error) = reason {
            context.logger.info("\(member.nick) (\(id)) disconnected: \(error)")
            broadcast("* \(member.nick) left (\(error.detail ?? error.description))", except: id)
        } else {
            broadcast("* \(member.nick) left", except: id)
        }
    }

    private func caughtUp(_ id: ResourceID) {
        guard let member = members[id], member.missed > 0 else { return }
        let missed = member.missed
        member.missed = 0
        send("* you missed \(missed) line\(missed == 1 ? "" : "s") while reading slowly", to: member)
    }

    // MARK: Lines

    private func said(_ bytes: [UInt8], by id: ResourceID, context: Context) {
        guard let member = members[id] else { return }
        let line = String(decoding: bytes, as: UTF8.self)
        guard line.hasPrefix("/") else {
            broadcast("<\(member.nick)> \(line)", except: id)
            return
        }
        let words = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        switch words.first {
        case "/nick":
            rename(member, to: words.count > 1 ? String(words[1]) : "", id: id)
        case "/who":
            let nicks = members.values.map(\.nick).sorted()
            send("* \(nicks.count) here: \(nicks.joined(separator: ", "))", to: member)
        case "/quit":
            send("* bye, \(member.nick)", to: member)
            members[id] = nil
            broadcast("* \(member.nick) left", except: id)
            member.channel.close()
        default:
            send("* unknown command \(words.first ?? ""); try /nick NAME, /who or /quit", to: member)
        }
    }

    private func rename(_ member: Member, to nick: String, id: ResourceID) {
        guard ChatService.isValidNick(nick) else {
            send("* a nick is 1 to 32 letters, digits, '-' or '_'", to: member)
            return
        }
        guard !members.values.contains(where: { $0.nick == nick }) else {
            send("* the nick \(nick) is taken", to: member)
            return
        }
        let old = member.nick
        member.nick = nick
        send("* you are now \(nick)", to: member)
        broadcast("* \(old) is now \(nick)", except: id)
    }

    static func isValidNick(_ nick: String) -> Bool {
        (1...32).contains(nick.utf8.count) && nick.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"): true
            default: false
            }
        }
    }

    // MARK: Delivery

    /// Sends `line` to everyone but `sender`, skipping (and counting for)
    /// members above their high watermark.
    private func broadcast(_ line: String, except sender: ResourceID?) {
        let bytes = Array(line.utf8)
        for (id, member) in members where id != sender {
            if member.isSlow {
                member.missed += 1
                skippedLines += 1
            } else {
                member.channel.send(bytes)
            }
        }
    }

    private func send(_ line: String, to member: Member) {
        member.channel.send(Array(line.utf8))
    }
}
