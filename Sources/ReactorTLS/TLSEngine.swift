#if canImport(CReactorTLS)
import CReactorTLS

/// One TLS connection's state machine, with no transport of its own.
///
/// The engine never makes a system call: OpenSSL reads ciphertext from one
/// memory BIO, which ``feed(_:)`` fills with what the transport received,
/// and writes ciphertext to another, which ``drainCiphertext(into:)``
/// empties for the transport to send. So any transport drives it: a
/// readiness backend, a completion-based one, or another engine in memory.
///
/// A stream drives it like this:
///
/// - **Start**: make the engine, call ``handshake()`` (a client's produces
///   its ClientHello), send the pending ciphertext.
/// - **Bytes arrive**: ``feed(_:)`` them; while the handshake is not done,
///   ``handshake()``, and on `.complete` report it; then ``read(into:)``
///   until `.needsInput` (or `.closed`); then send the pending ciphertext
///   (a read may produce some: a handshake flight, a key update reply).
/// - **Transport end of file**: ``receivedEndOfFile()``, then read on: the
///   remaining plaintext, then `.closed` if the peer sent `close_notify`,
///   or a ``TLSError/Kind/truncated`` error if it did not.
/// - **Writing**: ``write(_:)`` plaintext (once the handshake is complete;
///   0 before), then send the pending ciphertext. A write takes all it is
///   given; encrypt about what the transport is ready to send, since the
///   ciphertext stays in memory until drained.
/// - **Closing**: ``close()`` and send its `close_notify`; on
///   `.awaitingPeer`, read until `.closed` within a deadline.
/// - **Any error**: the engine is finished; every later call throws the
///   same error. Send the pending ciphertext if possible (it may hold the
///   alert telling the peer why), then close the transport.
///
/// Not `Sendable`: an engine belongs to the thread of its connection. Its
/// ``TLSConfiguration`` is shared, and the engine keeps it alive.
public final class TLSEngine {
    /// Where the engine stands.
    private enum Phase {
        case handshaking
        case established
        case failed(TLSError)
    }

    /// The configuration this connection was made from.
    public let configuration: TLSConfiguration
    /// The name a client connects to (sent as SNI unless it is an IP
    /// address, and verified); nil on a server.
    public let serverName: String?
    /// The key a client's session is cached under for resumption.
    let sessionKey: String?

    /// The connection. Owns the two BIOs.
    let ssl: OpaquePointer
    /// The memory BIO OpenSSL reads ciphertext from.
    private(set) var input: OpaquePointer
    /// The memory BIO OpenSSL writes ciphertext to.
    private(set) var output: OpaquePointer

    private var phase = Phase.handshaking
    private var inputEnded = false
    /// What the handshake settled, once it is complete.
    public private(set) var handshakeInfo: TLSHandshakeInfo?
    /// Whether our `close_notify` has been queued (by ``close()``).
    public private(set) var isCloseSent = false
    /// Whether the peer's `close_notify` has arrived.
    public private(set) var isPeerClosed = false

    /// A memory BIO grown past this while holding a burst is replaced by an
    /// empty one once drained, so an idle connection does not keep it.
    static let retainedBufferLimit = 32 * 1024

    /// An engine for one connection of `configuration`'s role.
    ///
    /// - Parameters:
    ///   - serverName: a client's server: a DNS name (sent as SNI, checked
    ///     against the certificate) or an IP address (checked against the
    ///     certificate's IP addresses, no SNI). Required for `.full`
    ///     verification; must be nil on a server.
    ///   - sessionKey: where a client files and finds its session for
    ///     resumption; defaults to `serverName`. Give `host:port` when one
    ///     name has several servers.
    public init(configuration: TLSConfiguration, serverName: String? = nil, sessionKey: String? = nil) throws(TLSError) {
        let operation = "tls engine"
        if configuration.role == .server && serverName != nil {
            throw TLSError(.misuse, operation: operation, reason: "a server engine takes no server name (it learns the client's from SNI)")
        }
        // OpenSSL takes the name as a C string: "good.test\0other" would be sent and verified as good.test.
        if let serverName, serverName.utf8.contains(0) {
            throw TLSError(.misuse, operation: operation, reason: "the server name \(serverName.debugDescription) contains a NUL byte")
        }
        if configuration.role == .client && serverName == nil && configuration.verification == .full {
            throw TLSError(.misuse, operation: operation,
                           reason: "full verification needs the server's name (or verification .noHostnameVerification)")
        }
        ErrorQueue.clear()
        guard let ssl = SSL_new(configuration.context.pointer) else {
            throw TLSError(.configuration, operation: operation, reason: ErrorQueue.takePhrase(otherwise: "SSL_new failed"))
        }
        guard let input = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError(.configuration, operation: operation, reason: ErrorQueue.takePhrase(otherwise: "BIO_new failed"))
        }
        guard let output = BIO_new(BIO_s_mem()) else {
            BIO_free(input)
            SSL_free(ssl)
            throw TLSError(.configuration, operation: operation, reason: ErrorQueue.takePhrase(otherwise: "BIO_new failed"))
        }
        // The SSL owns both BIOs from here and frees them with itself.
        SSL_set_bio(ssl, input, output)
        self.configuration = configuration
        self.serverName = serverName
        self.sessionKey = configuration.role == .client ? (sessionKey ?? serverName) : nil
        self.ssl = ssl
        self.input = input
        self.output = output
        // Sound: the new-session callback reads the engine back from here; it
        // runs only inside an OpenSSL call made by this engine's own methods,
        // so the engine is alive, and deinit clears it before SSL_free.
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        switch configuration.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            try prepareClient()
            SSL_set_connect_state(ssl)
        }
    }

    deinit {
        SSL_set_ex_data(ssl, 0, nil)
        // OpenSSL makes the session of a connection freed without a sent
        // close_notify unresumable (it might have been cut short). A failed
        // engine's session goes that way; a healthy one dropped without
        // close() (its transport simply ended) keeps its session resumable.
        if case .established = phase { SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN) }
        SSL_free(ssl)
    }

    /// SNI, the name to verify, and a cached session to resume.
    private func prepareClient() throws(TLSError) {
        ErrorQueue.clear()
        if let name = serverName {
            let isAddress = IPAddress.isLiteral(name)
            // RFC 6066 §3: SNI carries DNS names only, never an address literal.
            if !isAddress && reactor_tls_set_host_name(ssl, name) != 1 {
                throw fail("tls engine", kind: .configuration, detail: "cannot send the server name '\(name)'")
            }
            if configuration.verification == .full {
                let set: Int32
                if isAddress {
                    set = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                } else {
                    SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                    set = SSL_set1_host(ssl, name)
                }
                if set != 1 { throw fail("tls engine", kind: .configuration, detail: "cannot verify the name '\(name)'") }
            }
        }
        if let key = sessionKey, let cache = configuration.sessions, let session = cache.take(for: key) {
            // SSL_set_session takes its own reference; ours goes either way.
            _ = SSL_set_session(ssl, session)
            SSL_SESSION_free(session)
            ErrorQueue.clear()  // a session the context rejects only means a full handshake
        }
    }

    /// Whether the handshake has completed.
    public var isHandshakeComplete: Bool { handshakeInfo != nil }

    // MARK: Ciphertext in and out

    /// Hands the engine ciphertext received from the transport (copied; the
    /// buffer may be reused at once). Nothing is decrypted until a
    /// ``handshake()`` or ``read(into:)``.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        precondition(!inputEnded, "TLSEngine.feed after receivedEndOfFile()")
        var rest = ciphertext
        while let base = rest.baseAddress, !rest.isEmpty {
            let chunk = min(rest.count, Int(Int32.max))
            // Sound: BIO_write copies `chunk` bytes from `base`, all within `rest`.
            // A memory BIO takes everything unless allocation fails.
            let written = BIO_write(input, base, Int32(chunk))
            precondition(written == Int32(chunk), "TLSEngine.feed: out of memory for \(chunk) bytes of ciphertext")
            rest = UnsafeRawBufferPointer(rebasing: rest[chunk...])
        }
    }

    /// Hands the engine ciphertext received from the transport.
    public func feed(_ ciphertext: [UInt8]) {
        ciphertext.withUnsafeBytes { feed($0) }
    }

    /// Tells the engine the transport's input ended (end of file). Reads
    /// then return what is left, then `.closed` after the peer's
    /// `close_notify`, or throw a truncation error without one.
    public func receivedEndOfFile() {
        inputEnded = true
        // An empty memory BIO now reads as end of file, not "retry later".
        _ = reactor_tls_bio_set_mem_eof_return(input, 0)
    }

    /// How many fed ciphertext bytes OpenSSL has not read yet: a stream
    /// that stops reading plaintext (back-pressure) can stop feeding once
    /// this is large, so unread input stays bounded.
    public var unreadCiphertextCount: Int { Int(BIO_ctrl_pending(input)) }

    /// How many ciphertext bytes wait to be sent.
    public var pendingCiphertextCount: Int { Int(BIO_ctrl_pending(output)) }

    /// Moves up to `buffer.count` pending ciphertext bytes into `buffer` for
    /// the transport to send, and returns how many. What is moved is no
    /// longer the engine's: a transport that sends only part keeps the rest.
    public func drainCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        // Sound: BIO_read writes at most the count given into `base`, which has that room.
        let moved = BIO_read(output, base, Int32(clamping: buffer.count))
        guard moved > 0 else { return 0 }
        if !isHandshaking { releaseIfGrown(output, isInput: false) }
        return Int(moved)
    }

    /// Moves every pending ciphertext byte out, into a new array.
    public func drainCiphertext() -> [UInt8] {
        let pending = pendingCiphertextCount
        guard pending > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: pending) { buffer, count in
            count = drainCiphertext(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Marks the engine failed with `error`, for every later call to throw, and returns it.
    func end(_ error: TLSError) -> TLSError {
        phase = .failed(error)
        return error
    }

    private var isHandshaking: Bool { if case .handshaking = phase { return true } else { return false } }

    /// Replaces an emptied memory BIO that grew past ``retainedBufferLimit``.
    /// Only after the handshake: until then OpenSSL may stack its own
    /// buffering BIO on the output.
    private func releaseIfGrown(_ bio: OpaquePointer, isInput: Bool) {
        guard BIO_ctrl_pending(bio) == 0, let memory = reactor_tls_bio_get_mem_ptr(bio),
              memory.pointee.max > Self.retainedBufferLimit, let fresh = BIO_new(BIO_s_mem()) else { return }
        // SSL_set0_rbio / SSL_set0_wbio free the old BIO and take ownership of the new one.
        if isInput {
            if inputEnded { _ = reactor_tls_bio_set_mem_eof_return(fresh, 0) }
            SSL_set0_rbio(ssl, fresh)
            input = fresh
        } else {
            SSL_set0_wbio(ssl, fresh)
            output = fresh
        }
    }

    // MARK: Handshake, plaintext, close

    /// Advances the handshake with the ciphertext fed so far. Send the
    /// pending ciphertext after every call. Once complete, returns the same
    /// `.complete` again.
    public func handshake() throws(TLSError) -> TLSHandshakeProgress {
        if let handshakeInfo { return .complete(handshakeInfo) }
        if case .failed(let error) = phase { throw error }
        ErrorQueue.clear()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            let info = makeHandshakeInfo()
            handshakeInfo = info
            phase = .established
            return .complete(info)
        }
        let code = SSL_get_error(ssl, result)
        if code == SSL_ERROR_WANT_READ { return .needsInput }
        throw fail("tls handshake", code: code)
    }

    /// Decrypts plaintext into `buffer` (which must not be empty). Before
    /// the handshake is complete, advances it first (see ``handshake()``).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> TLSReadResult {
        precondition(!buffer.isEmpty, "TLSEngine.read into an empty buffer")
        if isPeerClosed { return .closed }
        if handshakeInfo == nil {
            guard case .complete = try handshake() else { return .needsInput }
        }
        if case .failed(let error) = phase { throw error }
        ErrorQueue.clear()
        var count = 0
        // Sound: SSL_read_ex writes at most buffer.count bytes at its base.
        if SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count) == 1 { return .bytes(count) }
        let code = SSL_get_error(ssl, 0)
        switch code {
        case SSL_ERROR_WANT_READ:
            releaseIfGrown(input, isInput: true)
            return .needsInput
        case SSL_ERROR_ZERO_RETURN:
            isPeerClosed = true
            return .closed
        default:
            throw fail("tls read", code: code)
        }
    }

    /// Encrypts all of `plaintext` into pending ciphertext and returns its
    /// count; returns 0, taking nothing, while the handshake is not
    /// complete (keep the bytes and write them once it is). Never partial:
    /// the output is memory, so it cannot be full. Throws after ``close()``.
    public func write(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) -> Int {
        if case .failed(let error) = phase { throw error }
        if isCloseSent { throw TLSError(.misuse, operation: "tls write", reason: "the connection was closed (close_notify sent)") }
        guard handshakeInfo != nil, let base = plaintext.baseAddress, !plaintext.isEmpty else { return 0 }
        ErrorQueue.clear()
        var written = 0
        // Sound: SSL_write_ex reads plaintext.count bytes from its base.
        if SSL_write_ex(ssl, base, plaintext.count, &written) == 1 { return written }
        throw fail("tls write", code: SSL_get_error(ssl, 0))
    }

    /// Encrypts all of `plaintext` (as the buffer-pointer `write` does).
    public func write(_ plaintext: [UInt8]) throws(TLSError) -> Int {
        // withUnsafeBytes rethrows untyped; carry the typed error out in a Result.
        let result = plaintext.withUnsafeBytes { bytes in Result { () throws(TLSError) in try write(bytes) } }
        return try result.get()
    }

    /// Starts a graceful close: queues our `close_notify` (send it), unless
    /// there is no session to close (the handshake did not complete or
    /// failed). Calling again only reports progress.
    public func close() throws(TLSError) -> TLSCloseProgress {
        guard case .established = phase else {
            isCloseSent = true
            return .complete
        }
        if isCloseSent { return isPeerClosed ? .complete : .awaitingPeer }
        ErrorQueue.clear()
        let result = SSL_shutdown(ssl)
        isCloseSent = true
        if result == 1 { return .complete }
        if result == 0 { return isPeerClosed ? .complete : .awaitingPeer }
        throw fail("tls close", code: SSL_get_error(ssl, result))
    }
}

@available(*, unavailable, message: "a TLSEngine belongs to its connection's thread")
extension TLSEngine: Sendable {}
#endif
