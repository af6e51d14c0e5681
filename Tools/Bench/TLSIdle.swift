// Idle TLS connections: the idle scenario's connections, each with its
// handshake completed, so the server holds an established TLS session per
// connection (its engine, buffers and keys) and nothing else.
import Reactor

#if canImport(Glibc)
import Glibc
#endif

/// Opens `count` connections to the server's TLS port from the same source
/// addresses the idle scenario uses, completes a TLS handshake on each with
/// the library's own engine (verifying the server against `ca`, full
/// handshakes: no session cache), leaves them idle and returns the server's
/// resident memory per connection (KiB) from its VmRSS before and after.
///
/// Handshakes go in batches of 250: every ClientHello of a batch is sent
/// first, then each connection's handshake is finished in turn, so the
/// server works on the batch while the client verifies. The sockets are
/// blocking with a 20 s receive timeout; the session tickets a server sends
/// after the handshake are left unread in the client's socket, and the
/// client's engine is freed (the engine never touches the socket, so the
/// connection stays up, idle, as far as the server can tell).
func measureIdleTLS(_ server: ServerProcess, count: Int, ca: String) throws -> (perConnectionKiB: Double, rssKiB: Int, note: String) {
    let configuration: TLSConfiguration
    do {
        configuration = try TLSConfiguration(client: TLSClientOptions(trustRoots: .file(ca), sessionCacheCapacity: 0))
    } catch {
        throw BenchError("idle TLS client configuration: \(error)")
    }
    let before = server.memoryKiB().resident
    let descriptorsBefore = server.descriptorCount()
    var fds: [Int32] = []
    fds.reserveCapacity(count)
    defer { for fd in fds { close(fd) } }
    var batchStart = 0
    while batchStart < count {
        let batch = batchStart..<min(count, batchStart + 250)
        var pending: [(fd: Int32, engine: TLSEngine)] = []
        for index in batch {
            let host = UInt32(index / 64)
            let source: UInt32 = 0x7F00_0000 | ((1 + host / 254) << 8) | (1 + host % 254)
            let fd = try blockingConnect(port: server.port, source: source)
            fds.append(fd)
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let engine: TLSEngine
            do {
                engine = try TLSEngine(configuration: configuration, serverName: "127.0.0.1")
                _ = try engine.handshake()  // the ClientHello
            } catch {
                throw BenchError("\(server.name): idle TLS connection \(index + 1): \(error)")
            }
            try sendCiphertext(engine, fd)
            pending.append((fd, engine))
        }
        for (offset, connection) in pending.enumerated() {
            do {
                try finishHandshake(connection.engine, connection.fd)
            } catch {
                throw BenchError("\(server.name): idle TLS connection \(batch.lowerBound + offset + 1) of \(count): \(error)")
            }
        }
        batchStart = batch.upperBound
    }
    // Every connection accepted, then let the memory settle.
    let deadline = ContinuousClock.now + .seconds(30)
    while server.descriptorCount() < descriptorsBefore + count && ContinuousClock.now < deadline { usleep(20_000) }
    let accepted = server.descriptorCount() - descriptorsBefore
    guard accepted >= count else { throw BenchError("\(server.name): only \(accepted) of \(count) idle TLS connections accepted") }
    usleep(300_000)
    let after = server.memoryKiB().resident
    return (Double(after - before) / Double(count), after, "RSS \(before / 1024) → \(after / 1024) MiB, handshakes complete")
}

/// Reads the server's flights and answers them until the client side of
/// the handshake is complete (its Finished sent).
private func finishHandshake(_ engine: TLSEngine, _ fd: Int32) throws {
    var buffer = [UInt8](repeating: 0, count: 16 << 10)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw BenchError("read during the handshake: \(String(cString: strerror(errno)))\(errno == EAGAIN ? " (no answer within 20 s)" : "")") }
        if n == 0 { throw BenchError("the server closed the connection during the handshake") }
        buffer.withUnsafeBytes { engine.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        let progress: TLSHandshakeProgress
        do { progress = try engine.handshake() } catch { throw BenchError("\(error)") }
        try sendCiphertext(engine, fd)
        if case .complete = progress { return }
    }
}

/// Writes all of the engine's pending ciphertext (blocking).
private func sendCiphertext(_ engine: TLSEngine, _ fd: Int32) throws {
    let bytes = engine.drainCiphertext()
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
        if n < 0 {
            if errno == EINTR { continue }
            throw BenchError("write during the handshake: \(String(cString: strerror(errno)))")
        }
        sent += n
    }
}
