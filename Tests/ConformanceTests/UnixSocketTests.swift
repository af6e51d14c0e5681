// Unix domain stream sockets through the runtime on every backend: a path
// and an abstract name, stale socket files, files that are not sockets, and
// the socket file's removal.
import Reactor
import ReactorTestSupport
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Unix domain sockets")
struct UnixSocketTests {
    @Test("echo over a socket path; the file is gone once the listener is destroyed and the runtime has ended",
          arguments: Backend.underTest)
    func echoOverPath(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let directory = try ScratchDirectory()
            defer { directory.remove() }
            let path = directory.path + "/echo.sock"
            var listenerAddress = ""
            var fileWhileListening = false
            // The listener is made in `setup` and only its id kept: the test
            // holds no reference that would keep it (and its file) alive.
            let outcome = try unixEcho(P.self, onStart: { fileWhileListening = isSocketFile(path) }) { context in
                let listener = try SocketListener(bindingTo: .unix(path: path))
                listenerAddress = "\(listener.localAddress)"
                return try context.register(listener)
            }
            #expect(fileWhileListening, "listening on a path creates a socket file")
            #expect(listenerAddress == "unix:\(path)")
            #expect(outcome.failures.isEmpty)
            #expect(outcome.echoed == unixEchoMessage)
            #expect(outcome.kinds == ["unix-listener", "unix-stream", "unix-stream"])
            #expect(!pathExists(path), "the listener's socket file outlived it")
        }
        try body(pollerType(of: backend))
    }

    @Test("echo over an abstract name: no file, and the name is free again once the runtime has ended", arguments: Backend.underTest)
    func echoOverAbstractName(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let name = uniqueSocketName("echo")
            var address: SocketAddress?
            let outcome = try unixEcho(P.self) { context in
                let listener = try SocketListener(bindingTo: .abstract(name: name))
                address = listener.localAddress
                return try context.register(listener)
            }
            #expect(outcome.failures.isEmpty)
            #expect(outcome.echoed == unixEchoMessage)
            #expect(outcome.kinds == ["unix-listener", "unix-stream", "unix-stream"])
            #expect(address?.description == "unix:@\(name)")
            #expect(address?.isUnix == true && address?.path == nil, "an abstract name has no path")
            #expect(!pathExists("@\(name)") && !pathExists(name))
            // Abstract names vanish with their last socket: binding again works.
            #expect(throws: Never.self) { _ = try SocketListener(bindingTo: .abstract(name: name)) }
        }
        try body(pollerType(of: backend))
    }

    @Test("a stale socket file: EADDRINUSE naming removeStaleSocketFile; with it, replaced — but never a live listener's",
          arguments: Backend.underTest)
    func staleSocketFile(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let directory = try ScratchDirectory()
            defer { directory.remove() }
            let path = directory.path + "/stale.sock"
            try makeStaleSocketFile(at: path)
            #expect(isSocketFile(path))

            let refused = #expect(throws: ReactorError.self) { _ = try SocketListener(bindingTo: .unix(path: path)) }
            #expect(refused?.errno == .addressInUse, "\(String(describing: refused))")
            #expect(refused?.description.contains("removeStaleSocketFile") == true, "\(String(describing: refused))")
            #expect(isSocketFile(path), "a refused bind leaves the file alone")

            let replace = ListenerOptions(removeStaleSocketFile: true)
            var liveRefusal: ReactorError?
            var received: [UInt8] = []
            var failures: [String] = []
            let service = ScriptedService()
            service.onStart = { context in
                // The listener now lives: replacing its file must be refused,
                // even with removeStaleSocketFile.
                do throws(ReactorError) {
                    _ = try SocketListener(bindingTo: .unix(path: path), options: replace)
                    failures.append("a second listener replaced a live one's socket file")
                } catch {
                    liveRefusal = error
                }
                attempt {
                    let client = try SocketStream.connect(to: .unix(path: path))
                    client.write(Array("still here".utf8))
                    try context.register(client)
                }
            }
            service.onEvent = { event, _, context in
                switch event {
                case .received(let bytes):
                    received += bytes
                    if received.count >= 10 { context.stop() }
                case .accepted, .connected, .readClosed:
                    break  // .readClosed: the probe that found the listener alive
                default:
                    failures.append("\(event)")
                }
            }
            service.onDisconnect = { _, _, reason, _ in
                if case .failed = reason { failures.append("disconnected: \(reason)") }
            }
            try runHere(P.self, service) { context in
                try context.register(try SocketListener(bindingTo: .unix(path: path), options: replace))
            }
            #expect(failures.isEmpty)
            #expect(String(decoding: received, as: UTF8.self) == "still here", "the replacing listener accepts")
            let error = try #require(liveRefusal)
            #expect(error.errno == .addressInUse)
            #expect(error.description.contains("another process is listening"), "\(error)")
            #expect(!pathExists(path), "the socket file outlived its listener")
        }
        try body(pollerType(of: backend))
    }

    @Test("a regular file at the path is never removed, even with removeStaleSocketFile")
    func regularFileIsKept() throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = directory.path + "/precious.txt"
        let content = Array("not a socket".utf8)
        try writeFile(path, content)

        let plain = #expect(throws: ReactorError.self) { _ = try SocketListener(bindingTo: .unix(path: path)) }
        #expect(plain?.errno == .addressInUse, "\(String(describing: plain))")

        let forced = #expect(throws: ReactorError.self) {
            _ = try SocketListener(bindingTo: .unix(path: path), options: ListenerOptions(removeStaleSocketFile: true))
        }
        #expect(forced?.errno == .fileExists, "\(String(describing: forced))")
        #expect(forced?.description.contains("not a socket; not removing it") == true, "\(String(describing: forced))")
        #expect(forced?.description.contains(path) == true, "the error names the path: \(String(describing: forced))")
        #expect(try readFile(path) == content, "the file was touched")

        // A datagram socket does not replace files either.
        let datagram = #expect(throws: ReactorError.self) { _ = try DatagramSocket(bindingTo: .unix(path: path)) }
        #expect(datagram?.errno == .addressInUse, "\(String(describing: datagram))")
        #expect(try readFile(path) == content, "the file was touched")
    }
}

// MARK: Helpers

let unixEchoMessage = Array("hello over a Unix domain socket".utf8)

/// What ``unixEcho(_:onStart:listen:)`` saw.
struct UnixEchoOutcome {
    var echoed: [UInt8] = []
    /// Kinds of the listener, then the client and the accepted connection (sorted).
    var kinds: [String] = []
    var failures: [String] = []
}

/// Runs an echo server on the listener `listen` registers, connects a client
/// to its address, and once the echo is back destroys the listener and stops.
private func unixEcho<P: Poller>(
    _ type: P.Type, onStart: @escaping () -> Void = {},
    listen: (Context) throws -> ResourceID,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> UnixEchoOutcome {
    var outcome = UnixEchoOutcome()
    var listenerID: ResourceID?
    var clientID: ResourceID?
    var streamKinds: [String] = []
    let service = ScriptedService()
    service.onStart = { context in
        onStart()
        attempt(sourceLocation: sourceLocation) {
            let listener = try #require(context.resource(listenerID!, as: SocketListener.self))
            outcome.kinds.append(listener.kind)
            let client = try SocketStream.connect(to: listener.localAddress)
            client.write(unixEchoMessage)
            clientID = try context.register(client)
        }
    }
    service.onEvent = { event, id, context in
        switch event {
        case .accepted(let stream):
            streamKinds.append(stream.kind)
        case .connected:
            streamKinds.append(context.resource(id)?.kind ?? "gone")
        case .received(let bytes) where id == clientID:
            outcome.echoed += bytes
            if outcome.echoed.count >= unixEchoMessage.count {
                context.resource(listenerID!)?.close()
                context.stop()
            }
        case .received(let bytes):
            context.resource(id, as: SocketStream.self)?.write(bytes.buffer)
        default:
            outcome.failures.append("\(event) from \(id)")
        }
    }
    service.onDisconnect = { id, _, reason, _ in outcome.failures.append("\(id) disconnected: \(reason)") }
    try runHere(P.self, service, sourceLocation: sourceLocation) { context in
        listenerID = try listen(context)
    }
    outcome.kinds += streamKinds.sorted()
    return outcome
}

/// Leaves a socket file nobody listens on, as a crashed server would.
private func makeStaleSocketFile(at path: String) throws {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    defer { _ = Glibc.close(fd) }
    let address = try SocketAddress.unix(path: path)
    var sun = sockaddr_un()
    sun.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.utf8.count + 1)
    let bound = withUnsafePointer(to: &sun) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0, listen(fd, 1) == 0 else { throw TestFailure("bind/listen \(address): errno \(errno)") }
}

private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
    defer { _ = Glibc.close(fd) }
    guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else { throw TestFailure("write: errno \(errno)") }
}

private func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
    defer { _ = Glibc.close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n >= 0 else { throw TestFailure("read: errno \(errno)") }
    return Array(buffer[..<n])
}
