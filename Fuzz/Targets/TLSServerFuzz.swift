import ReactorTLS

#if canImport(Glibc)
import Glibc
#endif

/// A TLS server engine fed arbitrary bytes through its memory BIOs, in reads
/// of varying sizes, stepping as a stream does (handshake until complete,
/// then read until it needs input, draining the ciphertext it answers with),
/// then the end of the transport. The server has SNI certificates and ALPN,
/// so the client's names and protocol lists reach the project's callbacks.
///
/// One input in four first completes a genuine handshake with a client
/// engine, then sends a real application record followed by the input, so
/// the record layer, reads, writes and close after a handshake are fuzzed too.
///
/// Checks: no crash or leak; a failed engine fails every later read and
/// write with the same error; what a genuine record carried is read intact.
enum TLSServerFuzz {
    struct Configurations: Sendable {
        var server: TLSConfiguration
        var client: TLSConfiguration
    }

    /// One key and certificate per process, made by the openssl command in
    /// a temporary folder that is removed as soon as they are loaded (no key
    /// is committed, none is left behind).
    static let configurations: Result<Configurations, FuzzFailure> = makeConfigurations()

    static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        let configurations = try configurations.get()
        var choices = Choices(data)
        if choices.oneIn(4) {
            try afterHandshake(data, configurations, &choices)
        } else {
            try fedRaw(data, configurations.server, &choices)
        }
    }

    // MARK: Arbitrary bytes from the first one

    static func fedRaw(_ data: UnsafeRawBufferPointer, _ configuration: TLSConfiguration, _ choices: inout Choices) throws(FuzzFailure) {
        let server: TLSEngine
        do { server = try TLSEngine(configuration: configuration) } catch { throw FuzzFailure("server engine: \(error)") }
        var offset = 0
        var plaintext: [UInt8] = []
        for size in choices.pieces(of: data.count) {
            server.feed(data.slice(offset..<(offset + size)))
            offset += size
            switch step(server, into: &plaintext) {
            case .failed(let error): try checkFailed(server, error); return
            case .closed: return
            case .open: break
            }
        }
        if choices.oneIn(2) {
            server.receivedEndOfFile()
            if case .failed(let error) = step(server, into: &plaintext) { try checkFailed(server, error) }
        }
    }

    enum State { case open, closed, failed(TLSError) }

    /// What a stream does when bytes arrive: the handshake until complete,
    /// then reads until more input is needed; the answer drained each time.
    static func step(_ engine: TLSEngine, into plaintext: inout [UInt8]) -> State {
        defer { _ = engine.drainCiphertext() }
        do throws(TLSError) {
            if !engine.isHandshakeComplete {
                guard case .complete = try engine.handshake() else { return .open }
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let result = try buffer.withMutableBytes { bytes throws(TLSError) in try engine.read(into: bytes) }
                switch result {
                case .bytes(let count): plaintext += buffer[..<count]
                case .needsInput: return .open
                case .closed: return .closed
                }
            }
        } catch {
            return .failed(error)
        }
    }

    /// An engine that failed keeps failing, with the same error.
    static func checkFailed(_ engine: TLSEngine, _ error: TLSError) throws(FuzzFailure) {
        if !engine.isPeerClosed {
            var buffer = [UInt8](repeating: 0, count: 16)
            let again = Result { () throws(TLSError) in try buffer.withMutableBytes { bytes throws(TLSError) in try engine.read(into: bytes) } }
            guard case .failure(let readError) = again, readError == error else { throw FuzzFailure("failed with \(error), then read \(again)") }
        }
        let written = Result { () throws(TLSError) in try engine.write([1, 2, 3]) }
        guard case .failure(let writeError) = written, writeError == error else { throw FuzzFailure("failed with \(error), then write \(written)") }
    }

    // MARK: After a genuine handshake

    static func afterHandshake(_ data: UnsafeRawBufferPointer, _ configurations: Configurations, _ choices: inout Choices) throws(FuzzFailure) {
        let server: TLSEngine, client: TLSEngine
        do {
            server = try TLSEngine(configuration: configurations.server)
            client = try TLSEngine(configuration: configurations.client, serverName: choices.oneIn(2) ? "fuzz.test" : "a.wild.test")
        } catch {
            throw FuzzFailure("engines: \(error)")
        }
        // The handshake, in memory: each side's ciphertext fed to the other until both are done.
        var rounds = 0
        while !(server.isHandshakeComplete && client.isHandshakeComplete) {
            rounds += 1
            guard rounds < 10 else { throw FuzzFailure("no handshake after 10 rounds") }
            do {
                _ = try client.handshake()
                server.feed(client.drainCiphertext())
                _ = try server.handshake()
                client.feed(server.drainCiphertext())
            } catch {
                throw FuzzFailure("a genuine handshake failed: \(error)")
            }
        }
        // A real record, then the input as if it came after it.
        let cut = choices.pick(0...min(64, data.count))
        let message = Array(data.prefix(cut))
        do { _ = try client.write(message) } catch { throw FuzzFailure("client write: \(error)") }
        if choices.oneIn(4) { _ = try? client.close() }
        var ciphertext = client.drainCiphertext()
        ciphertext += Array(data.slice(cut..<data.count))
        var plaintext: [UInt8] = []
        var state = State.open
        var offset = 0
        for size in choices.pieces(of: ciphertext.count) {
            ciphertext.withUnsafeBytes { server.feed($0.slice(offset..<(offset + size))) }
            offset += size
            state = step(server, into: &plaintext)
            guard case .open = state else { break }
        }
        // The genuine record comes first and is read whole, whatever follows it.
        try require(plaintext.starts(with: message), "the server read \(shown(plaintext)) of the record \(shown(message))")
        switch state {
        case .failed(let error):
            try checkFailed(server, error)
        case .closed, .open:
            // Still a working connection: it answers, and closes.
            do {
                _ = try server.write(Array("reply".utf8))
                _ = try server.close()
            } catch {
                if !server.isCloseSent && !server.isPeerClosed { throw FuzzFailure("an open connection could not reply: \(error)") }
            }
            _ = server.drainCiphertext()
            server.receivedEndOfFile()
            _ = step(server, into: &plaintext)
        }
    }

    // MARK: Configurations

    static func makeConfigurations() -> Result<Configurations, FuzzFailure> {
        let temporary = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(temporary)/reactor-fuzz-tls-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { return .failure(FuzzFailure("mkdtemp failed")) }
        let directory = String(cString: made)
        let key = directory + "/key.pem", certificate = directory + "/cert.pem"
        defer {
            unlink(key)
            unlink(certificate)
            rmdir(directory)
        }
        let status = spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", certificate, "-days", "30", "-subj", "/CN=fuzz.test",
                            "-addext", "subjectAltName=DNS:fuzz.test,DNS:*.wild.test"])
        guard status == 0 else { return .failure(FuzzFailure("openssl req exited \(status): is the openssl command installed?")) }
        let files = TLSCertificateFiles(chain: certificate, privateKey: key)
        do {
            let server = try TLSConfiguration(server: TLSServerOptions(
                certificate: files, certificatesByName: ["fuzz.test": files, "*.wild.test": files],
                applicationProtocols: ["h2", "http/1.1"]))
            let client = try TLSConfiguration(client: TLSClientOptions(verification: .none, applicationProtocols: ["http/1.1", "h2"],
                                                                       sessionCacheCapacity: 0))
            return .success(Configurations(server: server, client: client))
        } catch {
            return .failure(FuzzFailure("TLS configuration: \(error)"))
        }
    }

    /// Runs a program found on PATH with its output discarded; its exit status, or -1.
    static func spawn(_ arguments: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        guard posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return -1 }
        }
        // WIFEXITED and WEXITSTATUS, which Swift does not import.
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
    }
}
