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
}
