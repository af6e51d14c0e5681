// Datagram sockets through the runtime on every backend: UDP over IPv4 and
// IPv6, connected mode and its ECONNREFUSED, datagrams larger than the read
// buffer, bursts that fill the kernel (the send queue), Unix datagrams.
import Reactor
import ReactorTestSupport
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Whether this machine can bind UDP on `::1` (false only where IPv6 is disabled).
private let ipv6LoopbackAvailable: Bool = (try? DatagramSocket(bindingTo: .loopbackIPv6(port: 0))) != nil

@Suite("Datagram sockets")
struct DatagramTests {
    @Test("UDP ping/pong between two sockets of one runtime; `from` is the sender's local address", arguments: Backend.underTest)
    func udpRoundTrip(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let left = try DatagramSocket(bindingTo: .loopback(port: 0))
            let right = try DatagramSocket(bindingTo: .loopback(port: 0))
            var log: [String] = []
            var failures: [String] = []
            let service = ScriptedService()
            service.onStart = { _ in
                attempt {
                    let sentAtOnce = try left.send(Array("ping".utf8), to: right.localAddress)
                    #expect(sentAtOnce, "an idle socket's send goes straight to the kernel")
                }
            }
            service.onEvent = { event, id, context in
                guard case .datagram(let bytes, let from) = event else { failures.append("\(event)"); return }
                let text = String(decoding: bytes, as: UTF8.self)
                log.append("\(id == left.id ? "left" : "right") got \(text) from \(from.map { "\($0)" } ?? "nil")")
                if id == right.id {
                    #expect(from == left.localAddress)
                    attempt { try right.send(Array("pong".utf8), to: try #require(from)) }
                } else {
                    #expect(from == right.localAddress)
                    context.stop()
                }
            }
            service.onDisconnect = { _, _, reason, _ in failures.append("disconnected: \(reason)") }
            try runHere(P.self, service) { context in
                try context.register(left)
                try context.register(right)
            }
            #expect(failures.isEmpty)
            #expect(log == ["right got ping from \(left.localAddress)", "left got pong from \(right.localAddress)"])
            #expect(left.kind == "udp")
            #expect(left.localAddress.host == "127.0.0.1" && left.localAddress.port != 0)
            #expect(left.bytesOut == 4 && left.bytesIn == 4 && right.bytesIn == 4 && right.bytesOut == 4)
        }
        try body(pollerType(of: backend))
    }

    @Test("connected mode: send without an address, and only the peer's datagrams arrive", arguments: Backend.underTest)
    func connectedRoundTrip(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let server = try DatagramSocket(bindingTo: .loopback(port: 0))
            let client = try DatagramSocket.connected(to: server.localAddress)
            let stranger = try DatagramSocket(bindingTo: .loopback(port: 0))
            var clientGot: [String] = []
            var serverGot: [String] = []
            var failures: [String] = []
            let service = ScriptedService()
            service.onStart = { _ in
                attempt {
                    // Sent first, so it would arrive first if the kernel let it through.
                    try stranger.send(Array("intruder".utf8), to: client.localAddress)
                    try client.send(Array("hello".utf8))
                }
            }
            service.onEvent = { event, id, context in
                guard case .datagram(let bytes, let from) = event else { failures.append("\(event)"); return }
                let text = String(decoding: bytes, as: UTF8.self)
                if id == server.id {
                    serverGot.append(text)
                    #expect(from == client.localAddress)
                    attempt { try server.send(Array("welcome".utf8), to: try #require(from)) }
                } else if id == client.id {
                    clientGot.append(text)
                    #expect(from == server.localAddress)
                    context.stop()
                } else {
                    failures.append("\(id) got \(text)")
                }
            }
            service.onDisconnect = { _, _, reason, _ in failures.append("disconnected: \(reason)") }
            try runHere(P.self, service) { context in
                for socket in [server, client, stranger] { try context.register(socket) }
            }
            #expect(failures.isEmpty)
            #expect(serverGot == ["hello"])
            #expect(clientGot == ["welcome"], "a connected socket hears its peer only")
            #expect(client.isConnected && client.remoteAddress == server.localAddress)
            #expect(!server.isConnected && server.remoteAddress == nil)
            // An unconnected socket has nowhere to send an address-less datagram.
            let unconnected = try DatagramSocket(bindingTo: .loopback(port: 0))
            let error = #expect(throws: ReactorError.self) { try unconnected.send(Array("x".utf8)) }
            #expect(error?.errno == Errno(rawValue: EDESTADDRREQ), "\(String(describing: error))")
            #expect(error?.description.contains("not connected") == true, "\(String(describing: error))")
        }
        try body(pollerType(of: backend))
    }

    @Test("connected mode to a port nobody listens on ends the socket with ECONNREFUSED", arguments: Backend.underTest)
    func connectedRefused(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            // A port that was just free: bind, read it back, close.
            let port = try DatagramSocket(bindingTo: .loopback(port: 0)).localAddress.port
            let client = try DatagramSocket.connected(to: .loopback(port: port))
            var reason: DisconnectReason?
            var events: [String] = []
            let service = ScriptedService()
            service.onStart = { _ in attempt { try client.send(Array("anyone there?".utf8)) } }
            service.onEvent = { event, _, _ in events.append("\(event)") }
            service.onDisconnect = { _, resource, why, context in
                #expect(resource === client)
                reason = why
                context.stop()
            }
            try runHere(P.self, service) { context in try context.register(client) }
            #expect(events.isEmpty)
            guard case .failed(let error)? = reason else { Issue.record("expected a failure, got \(String(describing: reason))"); return }
            #expect(error.errno == .connectionRefused)
            #expect(error.description.contains("(127.0.0.1:\(port)): ECONNREFUSED (Connection refused)"), "\(error)")
            // Ended: later sends are refused instead of vanishing.
            #expect(throws: ReactorError.self) { try client.send(Array("again".utf8)) }
        }
        try body(pollerType(of: backend))
    }

    @Test("a datagram larger than the read buffer is reported as too large, never cut short; the next arrives intact",
          arguments: Backend.underTest)
    func datagramTooLarge(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let sender = try DatagramSocket(bindingTo: .loopback(port: 0))
            let receiver = try DatagramSocket(bindingTo: .loopback(port: 0))
            // 4000 and 1025 bytes do not fit a 1024-byte buffer; 1024 fits exactly.
            let sizes = [4000, 1025, 1024, 100]
            var seen: [String] = []
            let service = ScriptedService()
            service.onStart = { _ in
                attempt {
                    for size in sizes { try sender.send(datagramPayload(sequence: size, size: size), to: receiver.localAddress) }
                }
            }
            service.onEvent = { event, _, context in
                switch event {
                case .datagramTooLarge(let length, let capacity, let from):
                    #expect(from == sender.localAddress)
                    seen.append("too large \(length) > \(capacity)")
                case .datagram(let bytes, let from):
                    #expect(from == sender.localAddress)
                    let intact = Array(bytes) == datagramPayload(sequence: bytes.count, size: bytes.count)
                    seen.append("\(bytes.count) bytes\(intact ? "" : " CORRUPT")")
                default:
                    seen.append("\(event)")
                }
                if seen.count == sizes.count { context.stop() }
            }
            try runHere(P.self, service, options: RuntimeOptions(readBufferSize: 1024)) { context in
                try context.register(sender)
                try context.register(receiver)
            }
            #expect(seen == ["too large 4000 > 1024", "too large 1025 > 1024", "1024 bytes", "100 bytes"])
        }
        try body(pollerType(of: backend))
    }

    @Test("a datagram too large to send throws EMSGSIZE naming its size; the socket carries on", arguments: Backend.underTest)
    func sendTooLarge(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let sender = try DatagramSocket(bindingTo: .loopback(port: 0))
            let receiver = try DatagramSocket(bindingTo: .loopback(port: 0))
            var received: [Int] = []
            var thrown: ReactorError?
            let service = ScriptedService()
            service.onStart = { _ in
                do throws(ReactorError) {
                    try sender.send([UInt8](repeating: 1, count: 70_000), to: receiver.localAddress)
                } catch {
                    thrown = error
                }
                attempt { try sender.send([UInt8](repeating: 2, count: 10), to: receiver.localAddress) }
            }
            service.onEvent = { event, _, context in
                if case .datagram(let bytes, _) = event { received.append(bytes.count) }
                context.stop()
            }
            service.onDisconnect = { _, _, reason, _ in Issue.record("disconnected: \(reason)") }
            try runHere(P.self, service) { context in
                try context.register(sender)
                try context.register(receiver)
            }
            let error = try #require(thrown)
            #expect(error.errno == Errno(rawValue: EMSGSIZE))
            #expect(error.description.contains("70000 bytes") && error.description.contains("EMSGSIZE"), "\(error)")
            #expect(received == [10])
            #expect(sender.discardedDatagramCount == 0)
        }
        try body(pollerType(of: backend))
    }

    @Test("2,000 UDP datagrams of 1,200 bytes in bursts: all arrive, in order, intact", arguments: Backend.underTest)
    func udpBurst(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let total = 2000
            let size = 1200
            let sender = try DatagramSocket(bindingTo: .loopback(port: 0))
            let receiver = try DatagramSocket(bindingTo: .loopback(port: 0))
            setSocketBuffer(sender.fd.rawValue, SO_SNDBUF, 4096)
            // UDP has no flow control: what the receive buffer cannot hold is
            // dropped. SO_RCVBUFFORCE passes net.core.rmem_max (as root).
            let receiveBuffer = setSocketBuffer(receiver.fd.rawValue, SO_RCVBUFFORCE, 4 << 20)
                ?? setSocketBuffer(receiver.fd.rawValue, SO_RCVBUF, 4 << 20) ?? 0
            // Bursts no larger than the receive buffer holds (a loopback skb of
            // 1,200 bytes costs under 4.5 KiB), so the kernel never has to drop.
            let window = max(8, min(256, receiveBuffer / 4608))
            var sent = 0
            var queued = 0
            var received: [Int] = []
            var corrupt = 0
            var others: [String] = []

            let service = ScriptedService(watchdog: .seconds(30))
            func topUp() {
                while sent < total && sent - received.count < window {
                    attempt {
                        if try !sender.send(datagramPayload(sequence: sent, size: size), to: receiver.localAddress) { queued += 1 }
                    }
                    sent += 1
                }
            }
            service.onStart = { _ in topUp() }
            service.onEvent = { event, _, context in
                guard case .datagram(let bytes, _) = event else { others.append("\(event)"); return }
                let sequence = Int(UInt32(bigEndian: bytes.buffer.loadUnaligned(as: UInt32.self)))
                if !payloadIsIntact(bytes, sequence: sequence, size: size) { corrupt += 1 }
                received.append(sequence)
                if received.count == total { context.stop() } else { topUp() }
            }
            service.onDisconnect = { _, _, reason, _ in others.append("disconnected: \(reason)") }
            try runHere(P.self, service) { context in
                try context.register(sender)
                try context.register(receiver)
            }
            #expect(others.isEmpty)
            #expect(received.count == total, "received \(received.count) of \(total) (window \(window), receive buffer \(receiveBuffer))")
            #expect(received == Array(0..<received.count), "out of order from index \(firstMismatch(received))")
            #expect(corrupt == 0)
            // Whether any were queued is the kernel's call: loopback UDP frees
            // the send buffer as it transmits. The Unix burst test forces the queue.
            #expect(!sender.hasPendingOutput && sender.queuedByteCount == 0)
            #expect(sender.bytesOut == UInt64(total * size) && receiver.bytesIn == UInt64(total * size))
            _ = queued
        }
        try body(pollerType(of: backend))
    }

    @Test("2,000 Unix datagrams in one burst fill the receiver: the rest queue and all arrive in order",
          arguments: Backend.underTest, [false, true])
    func unixBurstQueues(_ backend: Backend, connected: Bool) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let total = 2000
            let size = 1200
            let receiver = try DatagramSocket(bindingTo: .abstract(name: uniqueSocketName("burst")))
            // Connected, the kernel reports writability once the receiver has
            // room (write interest); unconnected it cannot (a retry timer).
            let sender = connected
                ? try DatagramSocket.connected(to: receiver.localAddress)
                : try DatagramSocket(bindingTo: .abstract(name: uniqueSocketName("burst-sender")))
            setSocketBuffer(sender.fd.rawValue, SO_SNDBUF, 16 * 1024)
            var sentAtOnce = 0
            var queuedAfterBurst = 0
            var interestAfterBurst: Interest = .none
            var received: [Int] = []
            var corrupt = 0
            var others: [String] = []

            let service = ScriptedService(watchdog: .seconds(30))
            service.onStart = { _ in
                attempt {
                    for sequence in 0..<total {
                        let payload = datagramPayload(sequence: sequence, size: size)
                        let now = connected ? try sender.send(payload) : try sender.send(payload, to: receiver.localAddress)
                        if now { sentAtOnce += 1 }
                    }
                }
                queuedAfterBurst = sender.queuedDatagramCount
                interestAfterBurst = sender.interest
            }
            service.onEvent = { event, id, context in
                guard id == receiver.id, case .datagram(let bytes, let from) = event else { others.append("\(event) from \(id)"); return }
                // A connected sender never bound a name: nothing to answer, so no address.
                if received.isEmpty { #expect(from == (connected ? nil : sender.localAddress)) }
                let sequence = Int(UInt32(bigEndian: bytes.buffer.loadUnaligned(as: UInt32.self)))
                if !payloadIsIntact(bytes, sequence: sequence, size: size) { corrupt += 1 }
                received.append(sequence)
                if received.count == total { context.stop() }
            }
            service.onDisconnect = { _, _, reason, _ in others.append("disconnected: \(reason)") }
            try runHere(P.self, service) { context in
                try context.register(receiver)
                try context.register(sender)
            }
            #expect(others.isEmpty)
            #expect(sender.kind == "unix-dgram")
            #expect(sentAtOnce > 0 && queuedAfterBurst > 0, "sent at once \(sentAtOnce), queued \(queuedAfterBurst): the queue was not exercised")
            #expect(sentAtOnce + queuedAfterBurst == total)
            #expect(interestAfterBurst == (connected ? .both : .read), "connected: write interest; unconnected: a timer")
            #expect(received.count == total, "received \(received.count) of \(total)")
            #expect(received == Array(0..<received.count), "out of order from index \(firstMismatch(received))")
            #expect(corrupt == 0)
            #expect(!sender.hasPendingOutput && sender.queuedByteCount == 0 && sender.discardedDatagramCount == 0)
            #expect(sender.interest == .read, "write interest is off once the queue drains")
        }
        try body(pollerType(of: backend))
    }

    @Test("a graceful stop waits for queued datagrams to leave", arguments: Backend.underTest)
    func shutdownFlushesQueue(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let total = 500
            let size = 1200
            // A plain blocking socket read by another thread, so it keeps
            // reading while the runtime drains and after it has stopped.
            let name = uniqueSocketName("drain")
            let address = try SocketAddress.abstract(name: name)
            let reader = try rawUnixDatagramSocket(boundTo: name)
            defer { _ = Glibc.close(reader) }
            let got = Shared<[Int]>([])
            // The reader starts once the burst is queued: reading from the
            // start could keep pace with the sender, leaving nothing queued.
            let go = Shared(false)
            let thread = try TestThread {
                guard eventually(within: .seconds(10), { go.value }) else { return }
                var buffer = [UInt8](repeating: 0, count: 2048)
                for _ in 0..<total {
                    let n = buffer.withUnsafeMutableBytes { recv(reader, $0.baseAddress, $0.count, 0) }
                    guard n >= 4 else { return }  // timed out: the test reports what arrived
                    let sequence = buffer.withUnsafeBytes { Int(UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self))) }
                    got.update { $0.append(sequence) }
                }
            }
            let sender = try DatagramSocket.connected(to: address)
            var queuedAtStop = 0
            let service = ScriptedService(watchdog: .seconds(30))
            service.onStart = { context in
                attempt {
                    for sequence in 0..<total { try sender.send(datagramPayload(sequence: sequence, size: size)) }
                }
                queuedAtStop = sender.queuedDatagramCount
                go.update { $0 = true }
                context.stop()
            }
            service.onDisconnect = { _, _, reason, _ in Issue.record("disconnected: \(reason)") }
            do {
                try runHere(P.self, service) { context in try context.register(sender) }
            } catch {
                go.update { $0 = true }  // so the reader does not wait in vain
                thread.join()
                throw error
            }
            go.update { $0 = true }
            thread.join()
            #expect(queuedAtStop > 0, "nothing was queued: the test did not exercise the drain")
            #expect(sender.queuedDatagramCount == 0, "the runtime stopped with datagrams still queued")
            #expect(got.value == Array(0..<total), "received \(got.value.count) of \(total)")
        }
        try body(pollerType(of: backend))
    }

    @Test("UDP over IPv6 on ::1", .enabled(if: ipv6LoopbackAvailable, "IPv6 is disabled on this machine: binding UDP [::1]:0 failed"),
          arguments: Backend.underTest)
    func udpIPv6(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let left = try DatagramSocket(bindingTo: .loopbackIPv6(port: 0))
            let right = try DatagramSocket(bindingTo: .loopbackIPv6(port: 0))
            var froms: [SocketAddress?] = []
            var texts: [String] = []
            let service = ScriptedService()
            service.onStart = { _ in attempt { try left.send(Array("ping6".utf8), to: right.localAddress) } }
            service.onEvent = { event, id, context in
                guard case .datagram(let bytes, let from) = event else { Issue.record("\(event)"); return }
                froms.append(from)
                texts.append(String(decoding: bytes, as: UTF8.self))
                if id == right.id {
                    attempt { try right.send(Array("pong6".utf8), to: try #require(from)) }
                } else {
                    context.stop()
                }
            }
            try runHere(P.self, service) { context in
                try context.register(left)
                try context.register(right)
            }
            #expect(texts == ["ping6", "pong6"])
            #expect(froms == [left.localAddress, right.localAddress])
            #expect(left.localAddress.family == AF_INET6)
            #expect(left.localAddress.description == "[::1]:\(left.localAddress.port)")
        }
        try body(pollerType(of: backend))
    }

    @Test("Unix datagram sockets on paths: a named sender is answerable, an unnamed one comes as nil; files go with the sockets",
          arguments: Backend.underTest)
    func unixDatagramPaths(_ backend: Backend) throws {
        func body<P: Poller>(_ type: P.Type) throws {
            let directory = try ScratchDirectory()
            defer { directory.remove() }
            let serverPath = directory.path + "/server.sock"
            let clientPath = directory.path + "/client.sock"
            var serverID: ResourceID?
            var namedID: ResourceID?
            var seen: [String] = []
            var filesWhileRunning = false
            let service = ScriptedService()
            service.onStart = { context in
                filesWhileRunning = isSocketFile(serverPath) && isSocketFile(clientPath)
                attempt {
                    let server = try SocketAddress.unix(path: serverPath)
                    try context.resource(namedID!, as: DatagramSocket.self)?.send(Array("named".utf8), to: server)
                    // Registered by nobody: sent at once, then dropped (the datagram is already in the kernel).
                    try DatagramSocket.connected(to: server).send(Array("unnamed".utf8))
                }
            }
            service.onEvent = { event, id, context in
                guard case .datagram(let bytes, let from) = event else { seen.append("\(event)"); return }
                let text = String(decoding: bytes, as: UTF8.self)
                seen.append("\(text) from \(from.map { "\($0)" } ?? "nil")")
                if id == serverID, let from {
                    attempt { try context.resource(id, as: DatagramSocket.self)?.send(Array("reply".utf8), to: from) }
                }
                if seen.count == 3 { context.stop() }
            }
            // Only ids are kept, so the sockets are freed with the runtime.
            try runHere(P.self, service) { context in
                serverID = try context.register(try DatagramSocket(bindingTo: .unix(path: serverPath)))
                namedID = try context.register(try DatagramSocket(bindingTo: .unix(path: clientPath)))
            }
            #expect(filesWhileRunning, "binding a path creates a socket file")
            #expect(Set(seen) == ["named from unix:\(clientPath)", "unnamed from nil", "reply from unix:\(serverPath)"])
            #expect(!pathExists(serverPath) && !pathExists(clientPath), "socket files left behind")
        }
        try body(pollerType(of: backend))
    }
}

// MARK: Helpers

/// A datagram: its sequence number (big-endian) and then a pattern that
/// depends on it, so misdelivered, merged or cut datagrams show.
private func datagramPayload(sequence: Int, size: Int) -> [UInt8] {
    var bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ sequence) }
    if size >= 4 {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: sequence).bigEndian) { bytes.replaceSubrange(0..<4, with: $0) }
    }
    return bytes
}

private func payloadIsIntact(_ bytes: ReceivedBytes, sequence: Int, size: Int) -> Bool {
    guard bytes.count == size else { return false }
    let buffer = bytes.buffer
    for index in 4..<size where buffer[index] != UInt8(truncatingIfNeeded: index &+ sequence) { return false }
    return true
}

private func firstMismatch(_ sequence: [Int]) -> Int {
    sequence.enumerated().first { $0.offset != $0.element }?.offset ?? sequence.count
}

/// Sets a socket buffer option; returns what the kernel then reports (it
/// doubles the request), or nil when it refused.
@discardableResult
private func setSocketBuffer(_ fd: Int32, _ option: Int32, _ size: Int32) -> Int? {
    var value = size
    guard setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else { return nil }
    var length = socklen_t(MemoryLayout<Int32>.size)
    let read = option == SO_RCVBUFFORCE ? SO_RCVBUF : option == SO_SNDBUFFORCE ? SO_SNDBUF : option
    guard getsockopt(fd, SOL_SOCKET, read, &value, &length) == 0 else { return nil }
    return Int(value)
}

/// An abstract Unix socket name no other test (or test process) uses.
func uniqueSocketName(_ label: String) -> String {
    "swift-reactor-test-\(getpid())-\(label)-\(UInt64.random(in: 0...UInt64.max))"
}

/// A blocking AF_UNIX datagram socket bound to an abstract name, its reads
/// timing out after 5 s so a broken sender fails the test instead of hanging it.
private func rawUnixDatagramSocket(boundTo name: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = [0] + Array(name.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0 else {
        _ = Glibc.close(fd)
        throw TestFailure("bind: errno \(errno)")
    }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    // Room for the whole burst is not needed (Unix datagrams wait for the reader), but it keeps senders moving.
    setSocketBuffer(fd, SO_RCVBUF, 1 << 20)
    return fd
}

/// A fresh directory under /tmp (short: a Unix socket path has at most 107 bytes).
struct ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/reactor-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp: errno \(errno)")
        }
        path = String(cString: made)
    }

    /// Removes the directory and whatever files a test left in it.
    func remove() {
        if case .success(let names) = Syscall.directoryEntries(path) {
            for name in names { unlink(path + "/" + name) }
        }
        rmdir(path)
    }
}

func pathExists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}

func isSocketFile(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
}
