import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A socket address: IPv4 or IPv6 with a port, or a Unix domain socket
/// (a path in the file system, or a Linux abstract name), stored as the
/// kernel's `sockaddr`.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    var storage: sockaddr_storage
    var length: socklen_t

    /// `host` is a numeric address: `127.0.0.1`, `::1`, `0.0.0.0`, `::`.
    public init(host: String, port: UInt16) throws(ReactorError) {
        var storage = sockaddr_storage()
        // inet_pton reads a C string: without this, "127.0.0.1\0junk" would pass as 127.0.0.1.
        guard !host.utf8.contains(0) else {
            throw ReactorError("address", .named(host), detail: "not a numeric address: it contains a NUL byte")
        }
        if host.contains(":") {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1 else {
                throw ReactorError("address", .named(host), detail: "not a numeric IPv6 address")
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &sin.sin_addr) == 1 else {
                throw ReactorError("address", .named(host), detail: "not a numeric IPv4 address")
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
            self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }

    /// Copies an IPv4 or IPv6 address from a C `sockaddr` (a resolver's
    /// answer), with `port` in place of the one it carries; nil for other families.
    public init?(sockaddr address: UnsafePointer<sockaddr>, length: socklen_t, port: UInt16) {
        var storage = sockaddr_storage()
        let family = Int32(address.pointee.sa_family)
        let size = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : family == AF_INET ? MemoryLayout<sockaddr_in>.size : 0
        guard size > 0, Int(length) >= size else { return nil }
        // Sound: `size` bytes are valid at `address` (checked against `length`) and fit in sockaddr_storage.
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: size)) }
        withUnsafeMutableBytes(of: &storage) { raw in
            if family == AF_INET6 {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = port.bigEndian
            } else {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = port.bigEndian
            }
        }
        self.init(storage: storage, length: socklen_t(size))
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// `127.0.0.1:port`.
    public static func loopback(port: UInt16) -> SocketAddress {
        // A literal that always parses.
        try! SocketAddress(host: "127.0.0.1", port: port)
    }

    /// `[::1]:port`.
    public static func loopbackIPv6(port: UInt16) -> SocketAddress {
        try! SocketAddress(host: "::1", port: port)
    }

    /// A Unix domain socket at a file-system path (at most 107 bytes).
    public static func unix(path: String) throws(ReactorError) -> SocketAddress {
        try unixAddress(bytes: Array(path.utf8), abstract: false, shown: path)
    }

    /// A Linux abstract Unix socket name: no file, gone when the last socket closes.
    public static func abstract(name: String) throws(ReactorError) -> SocketAddress {
        try unixAddress(bytes: Array(name.utf8), abstract: true, shown: "@" + name)
    }

    private static func unixAddress(bytes: [UInt8], abstract: Bool, shown: String) throws(ReactorError) -> SocketAddress {
        var sun = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: sun.sun_path)
        // A path needs its terminating NUL; an abstract name starts with one.
        let needed = bytes.count + 1
        guard !bytes.isEmpty, needed <= capacity else {
            throw ReactorError("address", .named(shown), detail: "a Unix socket name must be 1 to \(capacity - 1) bytes long")
        }
        guard !bytes.contains(0) else { throw ReactorError("address", .named(shown), detail: "a Unix socket name cannot contain NUL") }
        sun.sun_family = sa_family_t(AF_UNIX)
        // Abstract: a leading NUL, then the name (not NUL-terminated).
        withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: abstract ? [0] + bytes : bytes) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sun, as: sockaddr_un.self) }
        // The length counts exactly the name: for an abstract name every byte
        // is significant, trailing NULs included.
        return SocketAddress(storage: storage, length: socklen_t(pathOffset + needed))
    }

    /// `AF_INET`, `AF_INET6` or `AF_UNIX`.
    public var family: Int32 { Int32(storage.ss_family) }

    /// True for Unix domain socket addresses.
    public var isUnix: Bool { family == AF_UNIX }

    /// The port (0 for a Unix socket).
    public var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            switch family {
            case AF_INET6: return UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
            case AF_INET: return UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            default: return 0
            }
        }
    }

    /// The numeric host (`127.0.0.1`), or for a Unix socket its path (or
    /// `@name` for an abstract one; empty for an unnamed socket).
    public var host: String {
        if isUnix { return unixName ?? "" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET6 {
                var addr = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
            } else {
                var addr = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
            }
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A Unix socket's file-system path (nil for other families and abstract names).
    public var path: String? {
        // Told apart by the leading NUL, not by the text: a file may be called `@x`.
        guard let name = unixNameBytes, name.first != 0 else { return nil }
        return String(decoding: name, as: UTF8.self)
    }

    private var unixName: String? {
        guard let name = unixNameBytes else { return nil }
        if name.first == 0 { return "@" + String(decoding: name.dropFirst(), as: UTF8.self) }
        return String(decoding: name, as: UTF8.self)
    }

    /// A Unix socket's name as the kernel holds it: a path without its
    /// terminating NUL, or an abstract name after its leading NUL (every byte
    /// of which counts); nil for other families and unnamed sockets.
    private var unixNameBytes: [UInt8]? {
        guard isUnix else { return nil }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        let count = Int(length) - pathOffset
        guard count > 0 else { return nil }
        return withUnsafeBytes(of: storage) { raw in
            let bytes = Array(raw[pathOffset..<(pathOffset + count)])
            return bytes.first == 0 ? bytes : Array(bytes.prefix { $0 != 0 })
        }
    }

    /// What tells addresses apart: the family, the port and address (with an
    /// IPv6 address's scope), or a Unix socket's name bytes. Not the
    /// description, which a file named `@x` shares with the abstract name `x`,
    /// and which leaves out an IPv6 scope.
    private var identity: [UInt8] {
        withUnsafeBytes(of: storage) { raw in
            var key: [UInt8] = withUnsafeBytes(of: storage.ss_family) { Array($0) }
            switch family {
            case AF_INET:
                let sin = raw.load(as: sockaddr_in.self)
                withUnsafeBytes(of: sin.sin_port) { key += $0 }
                withUnsafeBytes(of: sin.sin_addr) { key += $0 }
            case AF_INET6:
                let sin6 = raw.load(as: sockaddr_in6.self)
                withUnsafeBytes(of: sin6.sin6_port) { key += $0 }
                withUnsafeBytes(of: sin6.sin6_addr) { key += $0 }
                withUnsafeBytes(of: sin6.sin6_scope_id) { key += $0 }
            case AF_UNIX:
                key += unixNameBytes ?? []
            default:
                key += raw.prefix(Int(length))
            }
            return key
        }
    }

    public var description: String {
        switch family {
        case AF_INET6: return "[\(host)]:\(port)"
        case AF_UNIX: return "unix:\(host)"
        default: return "\(host):\(port)"
        }
    }

    public static func == (a: Self, b: Self) -> Bool { a.identity == b.identity }
    public func hash(into hasher: inout Hasher) { hasher.combine(identity) }

    /// Calls `body` with the address as a `sockaddr` and its length, for a
    /// system call the library does not wrap (`bind`, `connect` on a socket
    /// of your own). The pointer is valid only inside `body`.
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    /// Fills an address from a call that writes a `sockaddr` (recvfrom, accept).
    static func receive(_ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int) -> (Int, SocketAddress) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutableBytes(of: &storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        return (result, SocketAddress(storage: storage, length: length))
    }

    /// Reads an address with `getsockname` / `getpeername`.
    static func read(_ fd: FileDescriptor, peer: Bool) throws(ReactorError) -> SocketAddress {
        var failure: Errno?
        let (_, address) = receive { sa, length in
            switch Syscall.run({ peer ? getpeername(fd.rawValue, sa, length) : getsockname(fd.rawValue, sa, length) }) {
            case .success(let rc): return Int(rc)
            case .failure(let errno): failure = errno; return -1
            }
        }
        if let failure { throw ReactorError(peer ? "getpeername" : "getsockname", .fd(fd.rawValue), errno: failure) }
        return address
    }
}
