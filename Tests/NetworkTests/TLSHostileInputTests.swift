// Hostile input against a TLS echo on its own runtime thread, on every
// backend: bytes that are not TLS, a ClientHello dripped a byte a second, a
// record cut short, a record header that lies about its length, and a
// TLS 1.2 client that asks to renegotiate (openssl s_client's `R`). Each
// ends its connection with a reason that names the cause, and after each
// a well-behaved client still gets its echo.
import Foundation
import Reactor
import ReactorTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("TLS hostile input")
struct TLSHostileInputTests {
    @Test("bytes that are not a ClientHello (an HTTP request on the TLS port) end the connection at once",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func notAClientHello(_ backend: Backend) throws {
        let server = try TLSEchoServer(backend, name: "tls-http")
        defer { try? server.stop() }
        let fd = try connectToLoopback(port: server.port)
        defer { close(fd) }
        try sendAll(fd, Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
        // "At once" is the reason below: the request itself ended it, not a handshake timeout.
        let answer = try readUntilEnd(fd, timeout: .seconds(30))
        #expect(answer.isEmpty || answer.first == 0x15, "what came back is not an alert record: \(answer.prefix(8))")
        let log = server.waitForEndings(1)
        #expect(log.count(containing: "tls handshake") == 1 && log.count(containing: "http request") == 1, "\(log.latest)")
        try expectStillServing(server)
    }

    @Test("a ClientHello dripped one byte a second is dropped by the handshake timeout (1 s)",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func drippedClientHello(_ backend: Backend) throws {
        let server = try TLSEchoServer(backend, handshakeTimeout: .seconds(1), name: "tls-drip")
        defer { try? server.stop() }
        let hello = try clientHello()
        let fd = try connectToLoopback(port: server.port)
        defer { close(fd) }
        let start = ContinuousClock.now
        var sent = 0
        var ended = false
        while !ended && elapsed(since: start) < .seconds(30) {  // a watchdog
            if sent < hello.count {
                if hello[sent...sent].withUnsafeBytes({ send(fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }) != 1 { break }
                sent += 1
            }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&entry, 1, 1000) > 0 {
                var byte: UInt8 = 0
                ended = recv(fd, &byte, 1, 0) <= 0  // an alert would be data first, then the end
            }
        }
        let took = elapsed(since: start)
        #expect(ended || sent < hello.count, "the server still held the connection after \(took)")
        #expect(took >= .milliseconds(900), "dropped after only \(took), \(sent) of \(hello.count) bytes sent")
        let log = server.waitForEndings(1)
        #expect(log.count(containing: "no handshake within 1.0 seconds") == 1, "\(log.latest)")
        try expectStillServing(server)
    }

    @Test("a record cut short by the client's end of file, after a real handshake, ends the connection as truncated",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func truncatedRecord(_ backend: Backend) throws {
        let server = try TLSEchoServer(backend, name: "tls-truncated")
        defer { try? server.stop() }
        let client = try BlockingTLSClient(port: server.port, tls: TLSFixtures.client())
        try client.handshake()
        _ = try client.engine.write(randomBytes(1000))
        let record = client.engine.drainCiphertext()
        try client.sendRaw(Array(record.prefix(record.count / 2)))
        shutdown(client.fd, Int32(SHUT_WR))
        _ = try client.readToEnd()  // the server's end, within the deadline
        let log = server.waitForEndings(1)
        #expect(log.count(containing: "tls read") == 1 && log.count(containing: "truncated") == 1, "\(log.latest)")
        try expectStillServing(server)
    }

    @Test("a record header declaring 2^14 + 2048 + 1 bytes after the handshake ends the connection with an alert",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func oversizedRecord(_ backend: Backend) throws {
        let server = try TLSEchoServer(backend, name: "tls-oversized")
        defer { try? server.stop() }
        let client = try BlockingTLSClient(port: server.port, tls: TLSFixtures.client())
        try client.handshake()
        let length = (1 << 14) + 2048 + 1
        try client.sendRaw([0x17, 0x03, 0x03, UInt8(length >> 8), UInt8(length & 0xff)] + [UInt8](repeating: 0, count: 64))
        let error = try client.readToEnd()
        #expect(error?.description.contains("alert record overflow") == true, "the client saw \(error.map { "\($0)" } ?? "a clean end")")
        let log = server.waitForEndings(1)
        #expect(log.count(containing: "packet length too long") == 1, "\(log.latest)")
        try expectStillServing(server)
    }

    @Test("a TLS 1.2 client asking to renegotiate (openssl s_client -tls1_2, then R) is refused and its connection ends",
          .enabled(if: TLSLibrary.isBuilt), arguments: Backend.underTest)
    func renegotiationRefused(_ backend: Backend) throws {
        let server = try TLSEchoServer(backend, name: "tls-reneg")
        defer { try? server.stop() }
        let input = Pipe()
        let child = try ChildProcess(executable: try Executables.tool("openssl"), arguments: [
            "s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_2", "-servername", "localhost",
            "-CAfile", try TestCertificates.shared().caCertificate, "-verify_return_error",
        ], standardInput: input.fileHandleForReading)
        defer {
            try? input.fileHandleForWriting.close()
            child.stop()
        }
        // Established (and verified), then an echo, then the renegotiation.
        var lines: [String] = []
        while !(lines.last ?? "").contains("Verify return code: 0 (ok)") { lines.append(try readLine(child.standardOutput, timeout: .seconds(30))) }
        #expect(lines.contains { $0.contains("Protocol  : TLSv1.2") }, "\(lines.suffix(20))")
        input.fileHandleForWriting.write(Data("ping\n".utf8))
        while lines.last != "ping" { lines.append(try readLine(child.standardOutput, timeout: .seconds(30))) }
        input.fileHandleForWriting.write(Data("R\n".utf8))
        let status = child.waitForExit(timeout: .seconds(30))
        let errors = child.readStandardError()
        #expect(status != nil && status != 0, "s_client exited \(status.map { "\($0)" } ?? "not at all")")
        #expect(errors.contains("RENEGOTIATING") && errors.contains("no renegotiation"), "\(errors)")
        let log = server.waitForEndings(1)
        // The refusal (OpenSSL's no_renegotiation warning) is not an error on the server's side; the
        // client's fatal answer to it is what ends the connection there.
        #expect(log.count(containing: "tls read") == 1 && log.count(containing: "alert handshake failure") == 1, "\(log.latest)")
        #expect(log.count(containing: "renegotiation is disabled") == 1, "\(log.latest)")
        try expectStillServing(server)
    }

    /// A fresh well-behaved client gets its echo, and the server is back to its listener alone.
    private func expectStillServing(_ server: TLSEchoServer) throws {
        try expectEcho(port: server.port, tls: TLSFixtures.client())
        var open = 0
        #expect(eventually { open = (try? server.resourceCount()) ?? -1; return open == 1 }, "\(open) resources registered")
    }
}

// MARK: Raw sockets

func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
        sent += n
    }
}

/// Everything that arrives until the peer ends the connection (end of file or a reset).
func readUntilEnd(_ fd: Int32, timeout: Duration) throws -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "see the server end the connection (\(bytes.count) bytes so far)")
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { bytes += buffer[..<n] } else if n == 0 || errno == ECONNRESET { return bytes } else if errno != EINTR {
            throw TestFailure("recv: \(String(cString: strerror(errno)))")
        }
    }
}
