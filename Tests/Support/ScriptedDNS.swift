// A DNS server of the test's own on a loopback UDP port: it answers every
// query with one chosen response code (SERVFAIL, REFUSED, NOTIMP...), or
// never answers, and counts the queries it received by type. The bytes the
// resolver sends and reads are real; only the server's policy is chosen.
// dnsmasq cannot be made to answer SERVFAIL on demand, and a silent server
// that counts tells how many times the resolver asked.

#if canImport(Glibc)
import Glibc
#endif

public final class ScriptedDNS: Sendable {
    /// What the server answers.
    public enum Policy: Sendable {
        /// The question echoed back with this response code and no records
        /// (2 SERVFAIL, 3 NXDOMAIN, 4 NOTIMP, 5 REFUSED).
        case answer(code: UInt8)
        /// Nothing: every query is read, counted and dropped.
        case silence
    }

    public let port: UInt16
    /// `127.0.0.1:PORT`, for ``ResolverConfiguration/servers``.
    public var server: String { "127.0.0.1:\(port)" }
    private let fd: Int32
    private let counts = Shared<[UInt16: Int]>([:])
    private let stopping = Shared(false)
    private let thread: TestThread

    /// Query types, for ``queries(ofType:)``.
    public static let typeA: UInt16 = 1, typeAAAA: UInt16 = 28

    public init(_ policy: Policy) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            close(fd)
            throw TestFailure("bind a UDP port on 127.0.0.1: errno \(errno)")
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
        let counts = counts, stopping = stopping
        thread = try TestThread { ScriptedDNS.serve(fd, policy, counts: counts, stopping: stopping) }
    }

    deinit {
        stopping.update { $0 = true }
        thread.join()
        close(fd)
    }

    /// The queries of `type` received so far.
    public func queries(ofType type: UInt16) -> Int { counts.value[type] ?? 0 }

    /// Every query received so far.
    public var totalQueries: Int { counts.value.values.reduce(0, +) }

    private static func serve(_ fd: Int32, _ policy: Policy, counts: Shared<[UInt16: Int]>, stopping: Shared<Bool>) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.value {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 50) > 0 else { continue }
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, bytes.baseAddress, bytes.count, 0, $0, &fromLength) }
                }
            }
            guard count >= 12, let question = questionEnd(buffer, count) else { continue }
            let type = UInt16(buffer[question - 4]) << 8 | UInt16(buffer[question - 3])
            counts.update { $0[type, default: 0] += 1 }
            guard case .answer(let code) = policy else { continue }
            // The header: the query's id, QR set, its opcode and RD kept, RA set,
            // the chosen code; one question, no records. Then the question as asked.
            var reply = Array(buffer[0..<2])
            reply.append(0x80 | (buffer[2] & 0x79))
            reply.append(0x80 | (code & 0x0F))
            reply += [0, 1, 0, 0, 0, 0, 0, 0]
            reply += buffer[12..<question]
            _ = reply.withUnsafeBytes { bytes in
                withUnsafePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, fromLength) }
                }
            }
        }
    }

    /// Where the first question (its name, type and class) ends, or nil if the query holds none.
    private static func questionEnd(_ bytes: [UInt8], _ count: Int) -> Int? {
        guard bytes[4] != 0 || bytes[5] != 0 else { return nil }
        var offset = 12
        while offset < count, bytes[offset] != 0 {
            guard bytes[offset] < 64 else { return nil }
            offset += 1 + Int(bytes[offset])
        }
        return offset + 5 <= count ? offset + 5 : nil
    }
}
