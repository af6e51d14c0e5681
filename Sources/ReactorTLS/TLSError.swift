/// A TLS failure: what was being done and why, in OpenSSL's words.
///
/// ```
/// tls config: cannot read certificate chain /etc/x.pem: No such file or directory
/// tls handshake: certificate verify failed (self-signed certificate)
/// tls read: packet length too long
/// tls read: unexpected eof while reading (the peer ended the connection without close_notify: truncated)
/// ```
///
/// The reason comes from the OpenSSL error queue of the failing operation
/// only: every engine and configuration call clears the queue first, so one
/// connection's error never appears on another's. A stream layer that names
/// its resource can carry the two parts over unchanged, e.g. as
/// `ReactorError(error.operation, .resource(id), detail: error.reason)`.
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure, for a caller that reacts differently to each.
    public enum Kind: Sendable, Equatable {
        /// This binary was built without OpenSSL (libssl-dev was missing).
        case notBuilt
        /// A configuration could not be made: a missing or bad file, a bad option.
        case configuration
        /// The peer's certificate failed verification (unknown CA, expired, wrong name…).
        case verification
        /// The handshake failed for another reason (protocol version, garbage input, alert…).
        case handshake
        /// The peer's transport ended without a `close_notify`: the data may be cut short.
        case truncated
        /// A record after the handshake was bad, or the peer sent a fatal alert.
        case protocolViolation
        /// The operation is not allowed in the engine's state (e.g. a write after `close()`).
        case misuse
    }

    /// What kind of failure.
    public var kind: Kind
    /// What was being done: `tls config`, `tls handshake`, `tls read`, `tls write`, `tls close`.
    public var operation: String
    /// Why, in OpenSSL's words where it gave any.
    public var reason: String

    /// Makes an error; the reason should be a phrase (no trailing period).
    public init(_ kind: Kind, operation: String, reason: String) {
        self.kind = kind
        self.operation = operation
        self.reason = reason
    }

    /// `operation: reason`.
    public var description: String { "\(operation): \(reason)" }

    /// The error every TLS entry point throws when OpenSSL was not built in.
    public static var notBuilt: TLSError {
        TLSError(.notBuilt, operation: "tls", reason: TLSLibrary.notBuiltReason)
    }
}
