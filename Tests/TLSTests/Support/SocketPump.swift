// An engine over a real loopback socket, pumped with blocking system calls
// and poll deadlines: enough to talk to openssl s_server and s_client in
// engine-level tests (the stream layer is what drives engines for real).
#if canImport(CReactorTLS)
import ReactorTLS
import ReactorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One engine and the connected socket it talks through; closes the socket.
final class SocketTLS {
    let engine: TLSEngine
    let fd: Int32
    /// Plaintext read so far.
    private(set) var received: [UInt8] = []
    /// Whether the peer's close_notify arrived.
    private(set) var peerClosed = false
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)

    init(engine: TLSEngine, fd: Int32) {
        self.engine = engine
        self.fd = fd
    }

    deinit { Glibc.close(fd) }

    /// Sends every pending ciphertext byte.
    func flush() throws {
        let bytes = engine.drainCiphertext()
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

    /// Waits for bytes (or end of file) until `deadline` and feeds them;
    /// false at end of file.
    @discardableResult
    func receiveOnce(until deadline: ContinuousClock.Instant) throws -> Bool {
        try waitReady(fd, Int16(POLLIN), until: deadline, what: "receive TLS bytes (\(received.count) plaintext bytes so far)")
        let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
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

    /// Completes the handshake (sending each flight) within `timeout`.
    func handshake(timeout: Duration = .seconds(5)) throws -> TLSHandshakeInfo {
        let deadline = ContinuousClock.now + timeout
        while true {
            let progress = try engine.handshake()
            try flush()
            if case .complete(let info) = progress { return info }
            try receiveOnce(until: deadline)
        }
    }

    /// Encrypts and sends `text`.
    func send(_ text: String) throws {
        let written = try engine.write(Array(text.utf8))
        guard written == text.utf8.count else { throw TestFailure("write took \(written) of \(text.utf8.count) bytes") }
        try flush()
    }

    /// Reads what is buffered; true when the peer has closed.
    private func readBuffered() throws -> Bool {
        while true {
            let result = try buffer.withUnsafeMutableBytes { try engine.read(into: $0) }
            try flush()
            switch result {
            case .bytes(let count): received += buffer[..<count]
            case .needsInput: return false
            case .closed:
                peerClosed = true
                return true
            }
        }
    }

    /// Reads until `received` satisfies `done`, the peer closes, or the
    /// deadline passes (a failure); engine errors are thrown as they are.
    func read(timeout: Duration = .seconds(5), until done: ([UInt8]) -> Bool) throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try readBuffered() || done(received) { return }
            try receiveOnce(until: deadline)
        }
    }

    /// Reads until the peer closes (close_notify, or a truncation error thrown).
    func readToClose(timeout: Duration = .seconds(5)) throws {
        try read(timeout: timeout) { _ in false }
    }

    /// The plaintext received, as text.
    var text: String { String(decoding: received, as: UTF8.self) }
}

/// A TCP listener on 127.0.0.1 and a free port; closes itself.
final class LoopbackListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestFailure("listen on 127.0.0.1: \(reason)")
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { Glibc.close(fd) }

    /// The next connection, within `timeout`.
    func accept(timeout: Duration = .seconds(5)) throws -> Int32 {
        try waitReady(fd, Int16(POLLIN), until: ContinuousClock.now + timeout, what: "accept a connection on port \(port)")
        let connection = Glibc.accept(fd, nil, nil)
        guard connection >= 0 else { throw TestFailure("accept: \(String(cString: strerror(errno)))") }
        // Not inherited by the tools other tests start (accept4 is not in Glibc's module).
        _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
        return connection
    }
}
#endif
