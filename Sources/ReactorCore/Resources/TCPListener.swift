import CReactorSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket. On readiness it accepts until `EAGAIN` (with
/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`) and reports each connection as
/// ``ResourceEvent/accepted(_:)``.
public final class TCPListener: Resource {
    /// The address actually bound (with the kernel's port when 0 was asked for).
    public let localAddress: SocketAddress

    /// Binds and listens. `SO_REUSEADDR` is set so a restarted server can
    /// rebind while old connections sit in TIME_WAIT.
    public init(bindingTo address: SocketAddress, backlog: Int32 = 1024) throws(ReactorError) {
        let raw = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw ReactorError.lastErrno("socket", .named("\(address)")) }
        let fd = FileDescriptor(rawValue: raw)
        var on: Int32 = 1
        setsockopt(raw, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { bind(raw, $0, $1) }
        guard bound == 0 else {
            let error = ReactorError.lastErrno("bind", .named("\(address)"))
            Syscall.close(fd)
            throw error
        }
        guard listen(raw, backlog) == 0 else {
            let error = ReactorError.lastErrno("listen", .named("\(address)"))
            Syscall.close(fd)
            throw error
        }
        do {
            localAddress = try SocketAddress.read(fd, peer: false)
        } catch {
            Syscall.close(fd)
            throw error
        }
        super.init(fd: fd, interest: .read)
    }

    public override var kind: String { "tcp-listener" }

    public override func handle(_ readiness: Readiness, in context: Context, emit: (ResourceEvent) -> Void) -> ResourceStatus {
        guard readiness.contains(.readable) else { return super.handle(readiness, in: context, emit: emit) }
        while isRegistered {
            let raw = accept4(fd.rawValue, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if raw >= 0 {
                emit(.accepted(TCPStream(connected: FileDescriptor(rawValue: raw))))
                continue
            }
            switch Glibc.errno {
            case EAGAIN, EWOULDBLOCK:
                return .active
            case EINTR, ECONNABORTED, EPROTO:
                continue  // the pending connection vanished; try the next
            default:
                // EMFILE and friends leave the listener usable; full recovery
                // (pausing accepts until descriptors free up) is the network layer's.
                let error = ReactorError.lastErrno("accept", .fd(fd.rawValue))
                context.logger.warning("\(error)")
                return .active
            }
        }
        return .active
    }
}
