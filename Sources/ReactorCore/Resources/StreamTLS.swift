import ReactorTLS

/// TLS between a stream's API and its transport: plaintext above
/// (`.received`, `write`, `whenFlushed`, watermarks, endings), ciphertext
/// below, moved by the stream's own I/O — the engine never touches the
/// descriptor (OpenSSL over memory BIOs), so the same layer works over any
/// transport that moves the stream's bytes.
///
/// Ciphertext leaves through ``StreamResource``'s raw write path and so
/// shares its queue: watermarks and `whenFlushed` count what is really
/// queued for the kernel. Plaintext written before the handshake completes
/// waits here and is encrypted the moment it does.
final class StreamTLS {
    let engine: TLSEngine
    /// Plaintext written before the handshake completed.
    var pendingPlaintext: [UInt8] = []
    /// The handshake-timeout timer, until the handshake completes.
    var handshakeTimer: TimerID?
    /// How long the handshake may take (from registration).
    let handshakeTimeout: Duration
    /// How long a graceful close waits for the peer's `close_notify`.
    let closeTimeout: Duration
    /// The timer of that wait, while it runs.
    var closeTimer: TimerID?
    /// Set once our `close_notify` went into the queue, for a close: the
    /// stream closes when the peer's arrives (or the close timer fires).
    var awaitingPeerClose = false
    /// A half-close asked for: `close_notify` then `SHUT_WR`, once the handshake is done.
    var shutdownRequested = false

    init(engine: TLSEngine, handshakeTimeout: Duration, closeTimeout: Duration) {
        self.engine = engine
        self.handshakeTimeout = handshakeTimeout
        self.closeTimeout = closeTimeout
    }

    var isEstablished: Bool { engine.isHandshakeComplete }
}

/// TLS settings of one stream, set by a listener for what it accepts or by
/// ``SocketStream/connect(to:timeout:options:tls:)`` for a client.
public struct StreamTLSOptions: Sendable {
    /// The shared configuration (certificates, trust, ALPN, versions).
    public var configuration: TLSConfiguration
    /// For a client: the name sent as SNI and checked against the server's
    /// certificate (a host name or an IP address). Ignored by servers.
    public var serverName: String?
    /// For a client: the key under which its session is cached for
    /// resumption (defaults to the server name and port).
    public var sessionKey: String?
    /// The longest a handshake may take from registration; a peer that
    /// dawdles (a ClientHello dripped a byte a second, say) is dropped with
    /// that reason.
    public var handshakeTimeout: Duration
    /// How long a graceful close (``StreamResource/closeWhenFlushed(within:)``)
    /// waits for the peer's `close_notify` after sending ours.
    public var closeTimeout: Duration

    /// TLS with `configuration`; a client names the server it expects.
    public init(configuration: TLSConfiguration, serverName: String? = nil, sessionKey: String? = nil,
                handshakeTimeout: Duration = .seconds(10), closeTimeout: Duration = .seconds(2)) {
        self.configuration = configuration
        self.serverName = serverName
        self.sessionKey = sessionKey
        self.handshakeTimeout = handshakeTimeout
        self.closeTimeout = closeTimeout
    }
}

extension StreamResource {
    // MARK: TLS set-up

    /// Puts TLS between this stream's API and its descriptor (before it is registered).
    func startTLS(_ options: StreamTLSOptions) throws(ReactorError) {
        do {
            let engine = try TLSEngine(configuration: options.configuration, serverName: options.serverName,
                                       sessionKey: options.sessionKey)
            tls = StreamTLS(engine: engine, handshakeTimeout: options.handshakeTimeout, closeTimeout: options.closeTimeout)
        } catch {
            throw ReactorError(error.operation, .fd(fd.rawValue), detail: error.reason)
        }
    }

    /// The client speaks first: its ClientHello goes out as soon as the
    /// connection is up.
    func beginTLSHandshake(emit: (ResourceEvent) -> Void) -> ResourceStatus? {
        guard let tls, tls.engine.configuration.role == .client else { return nil }
        return stepHandshake(tls, emit: emit)
    }

    // MARK: Reading

    /// Ciphertext just read into the runtime's read buffer: fed to the
    /// engine (which copies it), then every plaintext record is decrypted
    /// into the same buffer and delivered.
    func receivedCiphertext(_ tls: StreamTLS, _ ciphertext: UnsafeRawBufferPointer, in context: Context,
                            emit: (ResourceEvent) -> Void) -> ResourceStatus {
        tls.engine.feed(ciphertext)
        return decryptAvailable(tls, in: context, emit: emit)
    }

    /// The transport's end of file: clean if the peer's `close_notify` came
    /// first, a truncation otherwise.
    func receivedEndOfTransport(_ tls: StreamTLS, readiness: Readiness, in context: Context,
                                emit: (ResourceEvent) -> Void) -> ResourceStatus {
        tls.engine.receivedEndOfFile()
        if !tls.engine.isPeerClosed {
            let status = decryptAvailable(tls, in: context, emit: emit)
            guard case .active = status else { return status }
        }
        if tls.engine.isPeerClosed { return readEndOfFile(readiness, emit: emit) }
        return .failed(tlsError("tls", TLSError(.truncated, operation: "tls",
                                                 reason: "the peer ended the connection without close_notify (truncated)")))
    }

    private func decryptAvailable(_ tls: StreamTLS, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        if !tls.isEstablished {
            if let status = stepHandshake(tls, emit: emit) { return status }
            guard tls.isEstablished, isRegistered else { return .active }
        }
        while isRegistered && isReading {
            let result: TLSReadResult
            do {
                result = try tls.engine.read(into: context.readBuffer)
            } catch {
                return failTLS(error)
            }
            switch result {
            case .bytes(let n):
                // Closing: we said close_notify and only wait for the peer's; what it still sends is dropped.
                if tls.awaitingPeerClose { continue }
                emit(.received(ReceivedBytes(UnsafeRawBufferPointer(rebasing: context.readBuffer[..<n]))))
            case .needsInput:
                flushCiphertext(tls)
                return .active
            case .closed:
                flushCiphertext(tls)
                if tls.awaitingPeerClose { close(); return .active }
                // The peer's close_notify: a clean end of its sending, as end of file is for plain streams.
                return readEndOfFile(.readable, emit: emit)
            }
        }
        flushCiphertext(tls)
        return .active
    }

    /// Advances the handshake; reports its completion. Nil while it goes on.
    private func stepHandshake(_ tls: StreamTLS, emit: (ResourceEvent) -> Void) -> ResourceStatus? {
        let progress: TLSHandshakeProgress
        do {
            progress = try tls.engine.handshake()
        } catch {
            return failTLS(error)
        }
        flushCiphertext(tls)
        guard case .complete(let info) = progress else { return nil }
        if let timer = tls.handshakeTimer, let owner { owner.cancel(timer) }
        tls.handshakeTimer = nil
        // What waited for the handshake goes first, before the handler hears
        // of it: its writes (or a half-close) in `.tlsEstablished` come after,
        // in the order they were asked for.
        if !tls.pendingPlaintext.isEmpty {
            let waiting = tls.pendingPlaintext
            tls.pendingPlaintext = []
            _ = waiting.withUnsafeBytes { writeTLS(tls, $0) }
        }
        emit(.tlsEstablished(info))
        guard isRegistered else { return .active }
        if tls.shutdownRequested {
            // The half-close asked for during the handshake: close_notify, then the socket's write side.
            if let socket = self as? SocketStream { socket.shutdownWrite() } else { shutdownTLS(tls) }
        }
        if closeAfterFlush { beginTLSClose(tls) }
        return nil
    }

    // MARK: Writing

    /// Encrypts `plaintext` and hands the ciphertext to the raw write path;
    /// before the handshake completes, keeps the plaintext to encrypt then.
    func writeTLS(_ tls: StreamTLS, _ plaintext: UnsafeRawBufferPointer) -> Bool {
        guard tls.isEstablished else {
            tls.pendingPlaintext.append(contentsOf: plaintext)
            if queuedByteCount > highWatermark { isAboveHighWatermark = true }
            return false
        }
        do {
            _ = try tls.engine.write(plaintext)
        } catch {
            if case .failed(let failure) = failTLS(error) { fail(failure) }
            return false
        }
        return flushCiphertext(tls)
    }

    /// Moves the engine's pending ciphertext into the raw write path (at
    /// once to the kernel when nothing is queued). True when all of it left.
    @discardableResult
    func flushCiphertext(_ tls: StreamTLS) -> Bool {
        guard let scratch = owner?.tlsBuffer else { return false }
        var allWritten = true
        // One BIO_read per flush in the common case: a read that does not fill
        // the scratch buffer emptied the engine, so there is no need to ask
        // BIO_ctrl_pending before and after (2.6% of kv-over-TLS instructions).
        while true {
            let n = tls.engine.drainCiphertext(into: scratch)
            guard n > 0 else { break }
            // rawWrite copies what the kernel does not take, so the scratch buffer is free again after it.
            if !rawWrite(UnsafeRawBufferPointer(rebasing: scratch[..<n])) { allWritten = false }
            if n < scratch.count { break }
        }
        return allWritten
    }

    // MARK: Endings

    /// `close_notify`, then the write side shut once it has left.
    func shutdownTLS(_ tls: StreamTLS) {
        guard tls.isEstablished else {
            tls.shutdownRequested = true
            return
        }
        tls.shutdownRequested = false
        _ = try? tls.engine.close()
        flushCiphertext(tls)
    }

    /// A graceful close over TLS: our `close_notify` queued; once the queue
    /// drains the stream waits (up to the close timeout) for the peer's.
    func beginTLSClose(_ tls: StreamTLS) {
        guard tls.isEstablished, !tls.engine.isCloseSent else { return }
        _ = try? tls.engine.close()
        flushCiphertext(tls)
    }

    /// The queue drained on a stream closing over TLS: wait for the peer's
    /// `close_notify` rather than cut it off (nil: close now).
    func awaitPeerCloseNotify(_ tls: StreamTLS) -> Bool {
        guard tls.isEstablished, tls.engine.isCloseSent, !tls.engine.isPeerClosed, !tls.awaitingPeerClose,
              let owner else { return false }
        tls.awaitingPeerClose = true
        tls.closeTimer = owner.schedule(after: tls.closeTimeout, for: self)
        setReading(true)  // to hear the peer's close_notify; data it still sends is dropped

        return true
    }

    /// The engine failed: what OpenSSL said, for the disconnect. Its alert
    /// (in the pending ciphertext) is sent on a best-effort basis first.
    func failTLS(_ error: TLSError) -> ResourceStatus {
        if let tls, let scratch = owner?.tlsBuffer {
            let n = tls.engine.drainCiphertext(into: scratch)
            if n > 0 { _ = Syscall.write(fd, from: UnsafeRawBufferPointer(rebasing: scratch[..<n])) }
        }
        return .failed(tlsError(error.operation, error))
    }

    private func tlsError(_ operation: String, _ error: TLSError) -> ReactorError {
        ReactorError(operation, id.map { .resource($0) } ?? .fd(fd.rawValue), detail: error.reason)
    }

    /// A TLS timer of this stream fired; nil when it is not one.
    func tlsTimerFired(_ timer: TimerID) -> ResourceStatus? {
        guard let tls else { return nil }
        if timer == tls.handshakeTimer {
            tls.handshakeTimer = nil
            return .failed(ReactorError("tls handshake", id.map { .resource($0) } ?? .fd(fd.rawValue),
                                        errno: .timedOut, detail: "no handshake within \(tls.handshakeTimeout)"))
        }
        if timer == tls.closeTimer {
            tls.closeTimer = nil
            close()  // the peer never answered our close_notify: close anyway, nothing is lost
            return .active
        }
        return nil
    }
}
