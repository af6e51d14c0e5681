// The chat service with real sockets: its commands and notices, a member that
// stops reading while another floods the room, and limits.
import ExampleServices
import Reactor
import ReactorTestSupport
import Testing

@Suite("Chat")
struct ChatTests {
    static func startChat(_ backend: Backend, _ configuration: ChatConfiguration = ChatConfiguration()) throws -> ServerThread {
        try ServerThread(backend, name: "chat-\(backend)", makeService: { ChatService(configuration: configuration) }) { _, context throws(ReactorError) in
            try listen(context, options: configuration.connectionOptions).localAddress.port
        }
    }

    @Test("nick, broadcast, who, quit, join and leave notices", arguments: Backend.underTest)
    func conversation(_ backend: Backend) throws {
        let server = try Self.startChat(backend)
        defer { try? server.stop() }
        let ann = try LineClient(port: server.port)
        #expect(try ann.readLine()?.hasPrefix("* welcome, guest-1;") == true)
        let bob = try LineClient(port: server.port)
        #expect(try bob.readLine()?.hasPrefix("* welcome, guest-2;") == true)
        #expect(try ann.readLine() == "* guest-2 joined")

        try ann.send("/nick ann")
        #expect(try ann.readLine() == "* you are now ann")
        #expect(try bob.readLine() == "* guest-1 is now ann")
        try bob.send("/nick ann")
        #expect(try bob.readLine() == "* the nick ann is taken")
        try bob.send("/nick b@d")
        #expect(try bob.readLine() == "* a nick is 1 to 32 letters, digits, '-' or '_'")
        try bob.send("/nick bob")
        #expect(try bob.readLine() == "* you are now bob")
        #expect(try ann.readLine() == "* guest-2 is now bob")

        try ann.send("hello, bob\r")  // CRLF from a telnet-style client
        #expect(try bob.readLine() == "<ann> hello, bob")
        try bob.send("/who")
        #expect(try bob.readLine() == "* 2 here: ann, bob")
        try bob.send("/dance")
        #expect(try bob.readLine() == "* unknown command /dance; try /nick NAME, /who or /quit")

        try bob.send("/quit")
        #expect(try bob.readLine() == "* bye, bob")
        #expect(try bob.readLine() == nil, "the server closes after /quit")
        #expect(try ann.readLine() == "* bob left")

        let cat = try LineClient(port: server.port)
        _ = try cat.readLine()
        #expect(try ann.readLine() == "* guest-3 joined")
        cat.shutdownWrite()  // leaving by closing, not /quit
        #expect(try ann.readLine() == "* guest-3 left")
        #expect(try server.inspect { $0.resourceCount } == 2, "the listener and ann remain")
    }

    @Test("a line over the limit disconnects its sender with the reason; the others are told", arguments: Backend.underTest)
    func oversizedLine(_ backend: Backend) throws {
        let server = try Self.startChat(backend, ChatConfiguration(maximumLineLength: 100))
        defer { try? server.stop() }
        let ann = try LineClient(port: server.port)
        _ = try ann.readLine()
        let bob = try LineClient(port: server.port)
        _ = try bob.readLine()
        _ = try ann.readLine()
        try bob.sendAll([UInt8](repeating: UInt8(ascii: "x"), count: 500))
        #expect(try bob.readLine() == nil, "the server drops the connection")
        let notice = try ann.readLine()
        #expect(notice == "* guest-2 left (line of more than 100 bytes without a newline)")
    }

    @Test("a member that stops reading is skipped, bounded by the watermark, and told what it missed; the others receive everything",
          arguments: Backend.underTest)
    func slowReader(_ backend: Backend) throws {
        let configuration = ChatConfiguration(highWatermark: 64 << 10, lowWatermark: 16 << 10)
        let server = try Self.startChat(backend, configuration)
        defer { try? server.stop() }
        let lines = 5000
        let padding = String(repeating: "x", count: 993)  // "NNNNN " + padding: 999 bytes, 1,000 with the newline
        let lineBytes = 6 + padding.utf8.count + 1
        let bound = configuration.highWatermark + lineBytes

        let fast = try LineClient(port: server.port)
        _ = try fast.readLine()
        let slow = try LineClient(port: server.port, receiveBuffer: 4096)
        _ = try slow.readLine()
        #expect(try fast.readLine() == "* guest-2 joined")

        // The talker floods from a thread of its own and stays until released,
        // so no leave notice mixes with the count below. It stays at most 50
        // lines ahead of the fast member (which the kernel's buffers absorb),
        // so the fast member is never the slow one, even in a debug build.
        let release = Shared(false)
        let fastCount = Shared(0)
        let talkerError = Shared<String?>(nil)
        let talker = try TestThread {
            do {
                let client = try LineClient(port: server.port)
                _ = try client.readLine()
                try client.send("/nick talker")
                _ = try client.readLine(until: { $0 == "* you are now talker" })
                for n in 0..<lines {
                    if n % 25 == 0 && !eventually(within: .seconds(30), { fastCount.value >= n - 50 }) {
                        throw TestFailure("the fast member stopped at line \(fastCount.value)")
                    }
                    try client.send("\(String(n + 100_000).dropFirst()) \(padding)")
                }
                _ = eventually(within: .seconds(60)) { release.value }
            } catch {
                talkerError.update { $0 = "\(error)" }
            }
        }
        defer { release.update { $0 = true }; talker.join() }

        // The fast member gets every line, in order, while the slow one reads nothing.
        _ = try fast.readLine(until: { $0 == "* guest-3 is now talker" })
        var largestQueue = 0
        for n in 0..<lines {
            let line = try fast.readLine(timeout: .seconds(30))
            guard line == "<talker> \(String(n + 100_000).dropFirst()) \(padding)" else {
                Issue.record("fast member: line \(n) is '\(line?.prefix(40) ?? "end of stream")'")
                return
            }
            fastCount.update { $0 = n + 1 }
            if n % 250 == 0 { largestQueue = max(largestQueue, try Self.largestQueue(server)) }
        }
        let finalQueue = try Self.largestQueue(server)
        largestQueue = max(largestQueue, finalQueue)
        #expect(talkerError.value == nil, "talker: \(talkerError.value ?? "")")
        #expect(finalQueue > 0, "the slow member's queue should hold bytes it has not read")
        #expect(largestQueue <= bound, "a queue reached \(largestQueue) bytes; the bound is \(bound) (high watermark + one line)")

        // The slow member catches up: the lines it got, plus those it is told it missed, are all of them.
        var received = 0
        var last = -1
        var missed: Int?
        while missed == nil {
            guard let line = try slow.readLine(timeout: .seconds(30)) else { Issue.record("slow member: end of stream"); return }
            if line.hasPrefix("<talker> ") {
                let n = Int(line.dropFirst(9).prefix(5))!
                #expect(n > last, "lines arrive in order")
                last = n
                received += 1
            } else if line.hasPrefix("* you missed ") {
                missed = Int(line.dropFirst(13).prefix { $0.isNumber })
            }
        }
        print("chat/\(backend): slow member received \(received) lines and missed \(missed!); largest queue \(largestQueue) bytes (bound \(bound))")
        #expect(missed! > 0)
        #expect(received + missed! == lines, "received \(received) + missed \(missed!) should be \(lines)")
    }

    /// The most bytes queued for any one connection, read on the server's thread.
    static func largestQueue(_ server: ServerThread) throws -> Int {
        try server.inspect { context in
            context.resources.compactMap { ($0 as? SocketStream)?.queuedByteCount }.max() ?? 0
        }
    }
}
