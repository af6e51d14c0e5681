import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A backend that moves stream bytes itself: the completion seam.
///
/// The ``Poller`` contract reports readiness, after which a resource makes
/// its own system calls. A backend that can instead perform stream I/O for
/// the runtime (io_uring: a multishot receive into provided buffers, a send
/// request per write batch) also conforms to this protocol and returns
/// itself from ``Poller/streamTransport``. Sockets streams registered with
/// such a poller hand their reads and writes to it and hear the results as
/// ``StreamCompletion``s, which the runtime collects after each wait; the
/// Service sees `.received`, `write`, `whenFlushed`, watermarks and
/// half-close exactly as it does over readiness.
///
/// Whether a poller *may* have a transport is known from its type
/// (``Poller/performsStreamIO``), so a `Runtime<EpollPoller, S>` is
/// compiled without any of this; whether it *does* (the kernel offered
/// every feature the transport needs) is known once its poller exists.
///
/// Everything here runs on the runtime's thread. Requests made during a turn
/// are queued and submitted together with the next wait.
public protocol StreamTransport: AnyObject {
    /// Takes `fd`, registered with this poller (with no interest), onto the
    /// completion path: from now on its bytes move through requests.
    func attach(_ fd: FileDescriptor)

    /// Starts receiving on `fd`: every arrival is a ``StreamCompletion`` of
    /// kind `.received` until the request ends (a completion without
    /// ``StreamCompletion/continues``), which happens at end of file, on an
    /// error, when buffers run out (`-ENOBUFS`), after ``stopReceiving(_:)``,
    /// or when the kernel decides to; the stream then starts again if it still reads.
    func startReceiving(_ fd: FileDescriptor)

    /// Cancels the receive on `fd`. Completions already under way still
    /// arrive (the stream keeps them for when it reads again).
    func stopReceiving(_ fd: FileDescriptor)

    /// Sends the bytes `gather` describes (it fills at most
    /// ``maximumSendVectors`` buffers and returns how many). At most one
    /// send is in flight per descriptor: the next waits for this one's
    /// completion, which keeps a stream's bytes in order. `owner` (the
    /// stream, which owns the bytes) is kept alive until the completion,
    /// even if the stream is closed meanwhile.
    func send(_ fd: FileDescriptor, owner: AnyObject, gather: (UnsafeMutableBufferPointer<iovec>) -> Int)

    /// Starts accepting on the listening socket `fd`: every connection is a
    /// ``StreamCompletion`` of kind `.accepted` (its descriptor, non-blocking
    /// and close-on-exec), until the request ends; `-EMFILE` and `-ENFILE`
    /// end it, and the listener starts again after its back-off.
    func startAccepting(_ fd: FileDescriptor)

    /// The most buffers one send takes.
    var maximumSendVectors: Int { get }

    /// The bytes of a `.received` completion, in place in the transport's
    /// buffer; valid until ``release(_:)``.
    func bytes(of completion: StreamCompletion) -> UnsafeRawBufferPointer

    /// Gives a `.received` completion's buffer back to the transport.
    func release(_ completion: StreamCompletion)

    /// Receive buffers the kernel may fill now (given to it and not yet used).
    var freeBufferCount: Int { get }

    /// Moves the completions reaped by the last wait into `batch` (emptied first).
    func takeCompletions(into batch: inout [StreamCompletion])
}

/// One finished stream request of a ``StreamTransport``.
public struct StreamCompletion: Sendable {
    /// What finished.
    public enum Kind: UInt8, Sendable {
        /// Bytes arrived (``result`` > 0, in ``buffer``), or the receive
        /// ended: 0 is end of file, a negative value `-errno`.
        case received
        /// A send finished: the bytes sent (≥ 0, possibly fewer than asked), or `-errno`.
        case sent
        /// A connection was accepted: its descriptor (≥ 0), or `-errno`.
        case accepted
    }

    /// The token the descriptor was registered with.
    public var token: Token
    /// What finished.
    public var kind: Kind
    /// Bytes transferred, 0 for end of file, or a negated errno.
    public var result: Int32
    /// The provided buffer holding the bytes, when ``hasBuffer``.
    public var buffer: UInt16
    /// True when the completion holds a receive buffer (to release).
    public var hasBuffer: Bool
    /// True when the request goes on producing completions (a multishot receive).
    public var continues: Bool

    /// A completion as a transport reports it.
    @inlinable
    public init(token: Token, kind: Kind, result: Int32, buffer: UInt16 = 0, hasBuffer: Bool = false, continues: Bool = false) {
        self.token = token
        self.kind = kind
        self.result = result
        self.buffer = buffer
        self.hasBuffer = hasBuffer
        self.continues = continues
    }
}

extension Poller {
    /// False: readiness only. A poller that can move stream bytes itself
    /// (a ``StreamTransport``) says true, and the runtime's loop, specialised
    /// for it, collects completions after each wait.
    @inlinable public static var performsStreamIO: Bool { false }

    /// Nil: this poller reports readiness only.
    @inlinable public var streamTransport: (any StreamTransport)? { nil }
}
