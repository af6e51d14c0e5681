#if canImport(CReactorTLS)
import CReactorTLS
#endif

/// Whether this binary has TLS, and which OpenSSL it runs on.
///
/// TLS is compiled out when Debian's `libssl-dev` is missing at build time
/// (the way the libev and io_uring backends are); every entry point then
/// throws ``TLSError/notBuilt`` with ``notBuiltReason``.
public enum TLSLibrary {
    /// Whether TLS is built into this binary.
    public static var isBuilt: Bool {
        #if canImport(CReactorTLS)
        return true
        #else
        return false
        #endif
    }

    /// What a caller without TLS is told.
    public static let notBuiltReason =
        "not built: install libssl-dev and rebuild (apt-get install -y libssl-dev, then rm -rf .build)"

    /// OpenSSL's version at run time (`OpenSSL 3.0.19 27 Jan 2026`), or the
    /// not-built reason.
    public static var version: String {
        #if canImport(CReactorTLS)
        // OpenSSL_version returns a pointer to a static string.
        return String(cString: OpenSSL_version(OPENSSL_VERSION))
        #else
        return notBuiltReason
        #endif
    }

    /// Frees what OpenSSL keeps for the calling thread (its random number
    /// generators and what they fetched), which it would otherwise free only
    /// as the thread exits.
    ///
    /// A runtime calls this on its thread as it stops, if it used TLS: its
    /// thread reports "stopped" before it exits, so a `main` that joins its
    /// runtimes and returns may end the process before that thread's
    /// destructors run, and LeakSanitizer then reported OpenSSL's per-thread
    /// state (9,240 bytes in 55 blocks for `http` after TLS handshakes). The
    /// thread may use OpenSSL again afterwards; it would allocate anew.
    public static func releaseThreadState() {
        #if canImport(CReactorTLS)
        OPENSSL_thread_stop()
        #endif
    }
}
