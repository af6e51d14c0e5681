// A TLS client that is not a runtime: one TLSEngine over a blocking
// loopback socket, pumped by hand. The hostile-input tests use it to
// behave badly at a chosen moment (half a record, a lying record header)
// after a real handshake, and as the well-behaved client that checks a
// server still serves.
import Reactor
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One engine and the connected socket it talks through; closes the socket.
final class BlockingTLSClient {
    let engine: TLSEngine
    let fd: Int32
    /// Plaintext received so far.
    private(set) var received: [UInt8] = []
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)

    /// Connects to 127.0.0.1:`port` (from `source` if given); no handshake yet.
    init(port: UInt16, from source: String? = nil, tls: StreamTLSOptions) throws {
        engine = try TLSEngine(configuration: tls.configuration, serverName: tls.serverName)
        fd = try connectToLoopback(port: port, from: source)
    }

    deinit { Glibc.close(fd) }

    /// Sends `bytes` as they are (ciphertext, or anything else).
    func sendRaw(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("send: \(String(cString: strerror(errno)))")
            }
            sent += n
        }
    }

    /// Sends every pending ciphertext byte.
    func flush() throws { try sendRaw(engine.drainCiphertext()) }

    /// Waits for bytes until `deadline` and feeds them to the engine; false
    /// at end of file (or a reset, which is how a dropped peer often ends).
    @discardableResult
    func receiveOnce(until deadline: ContinuousClock.Instant) throws -> Bool {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "receive TLS bytes (\(received.count) plaintext bytes so far)")
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer.withUnsafeBytes { engine.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            return true
        }
        if n == 0 || errno == ECONNRESET {
            engine.receivedEndOfFile()
            return false
        }
        if errno == EINTR { return true }
        throw TestFailure("recv: \(String(cString: strerror(errno)))")
    }

    /// Completes the handshake within `timeout`.
    @discardableResult
    func handshake(timeout: Duration = .seconds(5)) throws -> TLSHandshakeInfo {
        let deadline = ContinuousClock.now + timeout
        while true {
            let progress = try engine.handshake()
            try flush()
            if case .complete(let info) = progress { return info }
            guard try receiveOnce(until: deadline) else { throw TestFailure("the server ended the connection during the handshake") }
        }
    }

    /// Encrypts and sends `bytes`.
    func send(_ bytes: [UInt8]) throws {
        _ = try engine.write(bytes)
        try flush()
    }

    /// Reads plaintext until `count` bytes have arrived in all (or throws:
    /// the engine's error, the end of the connection, the deadline).
    func read(count: Int, timeout: Duration = .seconds(5)) throws {
        let deadline = ContinuousClock.now + timeout
        while received.count < count {
            guard try readBuffered() else {
                throw TestFailure("the server closed after \(received.count) of \(count) plaintext bytes")
            }
            if received.count >= count { return }
            guard try receiveOnce(until: deadline) else { continue }  // the next read reports the end
        }
    }

    /// Reads until the connection ends; returns the engine's error if it
    /// threw one (an alert from the server, a truncation), nil at a clean end.
    func readToEnd(timeout: Duration = .seconds(5)) throws -> TLSError? {
        let deadline = ContinuousClock.now + timeout
        do {
            while try readBuffered() {
                guard try receiveOnce(until: deadline) else {
                    _ = try readBuffered()
                    return nil
                }
            }
            return nil
        } catch let error as TLSError {
            return error
        }
    }

    /// Ends gracefully: our close_notify, then the server's awaited; the
    /// engine's error if the ending was not clean.
    func close(timeout: Duration = .seconds(5)) throws -> TLSError? {
        _ = try engine.close()
        try flush()
        return try readToEnd(timeout: timeout)
    }

    /// Decrypts what is buffered (sending any reply the engine makes);
    /// false once the server's close_notify has arrived.
    private func readBuffered() throws -> Bool {
        while true {
            let result = try buffer.withUnsafeMutableBytes { try engine.read(into: $0) }
            try flush()
            switch result {
            case .bytes(let count): received += buffer[..<count]
            case .needsInput: return true
            case .closed: return false
            }
        }
    }
}

/// A well-behaved client's round trip: handshake, `message` out, the same
/// back; throws saying what went wrong.
func expectEcho(port: UInt16, tls: StreamTLSOptions, message: [UInt8] = Array("still serving".utf8)) throws {
    let client = try BlockingTLSClient(port: port, tls: tls)
    try client.handshake()
    try client.send(message)
    try client.read(count: message.count)
    guard client.received == message else {
        throw TestFailure("the echo differs: \(client.received.count) bytes back for \(message.count) sent")
    }
    if let error = try client.close() { throw TestFailure("the echo's connection did not end cleanly: \(error)") }
}

/// The ClientHello a real client engine sends first (for a client that
/// then misbehaves with it).
func clientHello() throws -> [UInt8] {
    let options = try TLSFixtures.client()
    let engine = try TLSEngine(configuration: options.configuration, serverName: options.serverName)
    _ = try engine.handshake()
    return engine.drainCiphertext()
}
