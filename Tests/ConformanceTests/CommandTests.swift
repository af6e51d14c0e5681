// Commands from other threads through the Controller: exactly once, in order
// per sender, and refused (with a clear error) once shutdown has begun.
import Reactor
import ReactorTestSupport
import ReactorSync
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A command that says who sent it and its place in that sender's sequence.
struct Numbered: Sendable, Equatable {
    var sender: Int
    var sequence: Int
}

/// What the command Service saw, readable from the test's thread.
final class CommandLog: Sendable {
    struct State {
        var received: [[Int]] = []
        var outOfThread = 0
        var stopped = false
    }
    let state = ReactorMutex(State())
    let senders: Int
    init(senders: Int) {
        self.senders = senders
        state.withLock { $0.received = Array(repeating: [], count: senders) }
    }
    var received: [[Int]] { state.withLock { $0.received } }
    var stopped: Bool { state.withLock { $0.stopped } }
}

final class CommandService: Service {
    typealias Command = Numbered
    let log: CommandLog
    init(log: CommandLog) { self.log = log }

    func handle(_ event: ResourceEvent, on resource: Resource, context: Context) {}

    func handle(command: Numbered, context: Context) {
        log.state.withLock { $0.received[command.sender].append(command.sequence) }
    }

    func runtimeStopped(context: Context) {
        log.state.withLock { $0.stopped = true }
    }
}

@Suite("Commands")
struct CommandTests {
    @Test("8 threads × 1,000 commands: each arrives exactly once, in order per sender", arguments: Backend.underTest)
    func manySenders(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let senders = 8, perSender = 1_000
            let log = CommandLog(senders: senders)
            let controller = try Runtime<P, CommandService>.spawn(name: "commands") { CommandService(log: log) }
            let failures = Shared<[String]>([])
            let threads = try (0..<senders).map { sender in
                try TestThread {
                    for sequence in 0..<perSender {
                        do {
                            try controller.send(Numbered(sender: sender, sequence: sequence))
                        } catch {
                            failures.update { $0.append("\(error)") }
                            return
                        }
                    }
                }
            }
            for thread in threads { thread.join() }
            #expect(failures.value.isEmpty)
            // Everything sent before shutdown is delivered before the runtime stops.
            controller.shutdown()
            #expect(controller.join(timeout: .seconds(5)), "join did not return")
            let received = log.received
            for sender in 0..<senders {
                #expect(received[sender] == Array(0..<perSender), "sender \(sender): \(received[sender].count) received, in order: \(received[sender] == received[sender].sorted())")
            }
            #expect(log.stopped)
        }
        try body(pollerType(of: backend))
    }

    @Test("commands sent before shutdown are delivered; after it, send throws and join returns", arguments: Backend.underTest)
    func sendAfterShutdown(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let log = CommandLog(senders: 1)
            let controller = try Runtime<P, CommandService>.spawn(name: "after") { CommandService(log: log) }
            for sequence in 0..<10 { try controller.send(Numbered(sender: 0, sequence: sequence)) }
            controller.shutdown()
            // Refused at once, while the runtime may still be stopping...
            var error = try #require(throws: ReactorError.self) { try controller.send(Numbered(sender: 0, sequence: 10)) }
            #expect(error.description == "send(command): the runtime has shut down; the command was not delivered")
            #expect(controller.join(timeout: .seconds(5)), "join did not return")
            #expect(!controller.isRunning)
            // ...and after it has stopped.
            error = try #require(throws: ReactorError.self) { try controller.send(Numbered(sender: 0, sequence: 11)) }
            #expect(error.description.contains("the runtime has shut down"))
            #expect(controller.join(timeout: .seconds(1)), "a second join returns too")
            controller.shutdown()  // harmless when repeated
            #expect(log.received == [Array(0..<10)])
        }
        try body(pollerType(of: backend))
    }

    @Test("sends racing a shutdown: every send that returned normally is delivered", arguments: Backend.underTest)
    func sendsRacingShutdown(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let senders = 4
            let log = CommandLog(senders: senders)
            let controller = try Runtime<P, CommandService>.spawn(name: "race") { CommandService(log: log) }
            let accepted = Shared(Array(repeating: 0, count: senders))
            let threads = try (0..<senders).map { sender in
                try TestThread {
                    var sequence = 0
                    while (try? controller.send(Numbered(sender: sender, sequence: sequence))) != nil {
                        sequence += 1
                        accepted.update { $0[sender] = sequence }
                    }
                }
            }
            _ = eventually { log.received.allSatisfy { $0.count >= 100 } }
            controller.shutdown()
            for thread in threads { thread.join() }
            #expect(controller.join(timeout: .seconds(5)), "join did not return")
            let received = log.received
            for sender in 0..<senders {
                #expect(received[sender] == Array(0..<accepted.value[sender]), "sender \(sender)")
            }
        }
        try body(pollerType(of: backend))
    }
}
