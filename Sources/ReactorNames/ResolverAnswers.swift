#if canImport(CAres)
import CAres
import ReactorCore

#if canImport(Glibc)
import Glibc
#endif

/// What the DNS servers answered when they answered with a failure, so a
/// lookup that fails can say which failure and from whom.
///
/// c-ares 1.18 takes a SERVFAIL, REFUSED or NOTIMP answer as a reason to ask
/// the next server, and once none is left it ends the lookup with
/// `ARES_ECONNREFUSED`, whatever they said: against a loopback server
/// answering each code, all three ended "Could not contact DNS servers",
/// and the resolver reported a SERVFAIL as "the DNS servers refused the
/// query" (later c-ares releases keep the code). `ARES_FLAG_NOCHECKRESP` would hand
/// the code through, but c-ares would then stop at the first server's
/// failure instead of asking the next, so a resolv.conf whose first server
/// is broken would fail every lookup.
///
/// So the resolver reads the answers as they arrive: c-ares's reads go
/// through ``Resolver/socketFunctions``, whose `recvfrom` notes each failure
/// answer's code with the name it was for and the server that sent it; a
/// lookup that ends `ARES_ECONNREFUSED` is explained from these notes.
/// Only UDP answers are noted: over TCP (after a truncated answer) c-ares
/// reads an answer in pieces, and a lookup failed there says only that no
/// server gave an answer.
struct ServerFailures {
    struct Note: Equatable {
        var server: String
        var code: UInt8
    }

    private var notes: [String: [Note]] = [:]

    static let serverFailure: UInt8 = 2, notImplemented: UInt8 = 4, refused: UInt8 = 5

    /// Notes `answer` (a whole DNS message) when it is a SERVFAIL, NOTIMP or REFUSED response.
    mutating func note(_ answer: UnsafeRawBufferPointer, from server: String) {
        // Header: id(2) flags(2) qdcount(2) ancount(2) nscount(2) arcount(2); QR is the flags' top bit.
        guard answer.count >= 12, answer[2] & 0x80 != 0 else { return }
        let code = answer[3] & 0x0F
        guard code == Self.serverFailure || code == Self.notImplemented || code == Self.refused,
              answer[4] != 0 || answer[5] != 0, let name = Self.questionName(answer) else { return }
        var list = notes[name, default: []]
        let note = Note(server: server, code: code)
        // Bounded: the A and AAAA queries of each try answer alike.
        guard !list.contains(note), list.count < 16 else { return }
        list.append(note)
        notes[name] = list
    }

    /// Takes the notes for `host` (the name as asked, or with a search domain appended).
    mutating func take(for host: String) -> [Note] {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        var found: [Note] = []
        for key in notes.keys where key == name || key.hasPrefix(name + ".") {
            found += notes.removeValue(forKey: key) ?? []
        }
        return found
    }

    mutating func removeAll() {
        if !notes.isEmpty { notes.removeAll() }
    }

    /// `server failure (SERVFAIL from 127.0.0.1:53), query refused (REFUSED from 10.0.0.2:53)`.
    static func describe(_ notes: [Note]) -> String {
        let codes: [(UInt8, String, String)] = [
            (serverFailure, "server failure", "SERVFAIL"), (refused, "query refused", "REFUSED"),
            (notImplemented, "query not implemented", "NOTIMP"),
        ]
        return codes.compactMap { code, words, name in
            let servers = notes.filter { $0.code == code }.map(\.server)
            return servers.isEmpty ? nil : "\(words) (\(name) from \(servers.joined(separator: ", ")))"
        }.joined(separator: ", ")
    }

    /// The first question's name, lowercased, without the root's dot; nil if the bytes do not hold one.
    static func questionName(_ message: UnsafeRawBufferPointer) -> String? {
        var offset = 12
        var labels: [String] = []
        while offset < message.count {
            let length = Int(message[offset])
            if length == 0 { return labels.joined(separator: ".") }
            // A compression pointer (or a reserved label type) never starts a question c-ares sent.
            guard length < 64, offset + 1 + length <= message.count else { return nil }
            labels.append(String(decoding: message[(offset + 1)...(offset + length)], as: UTF8.self).lowercased())
            offset += 1 + length
        }
        return nil
    }
}

extension Resolver {
    /// c-ares's socket calls, passed through to the kernel; `recvfrom` also
    /// hands each UDP answer to ``ServerFailures/note(_:from:)``.
    ///
    /// Sound: c-ares keeps the pointer (it does not copy the struct), so it is
    /// allocated once and never freed or changed after its initializer,
    /// which Swift runs exactly once (globals and statics are initialized
    /// under a once-lock).
    nonisolated(unsafe) static let socketFunctions: UnsafeMutablePointer<ares_socket_functions> = {
        let functions = UnsafeMutablePointer<ares_socket_functions>.allocate(capacity: 1)
        functions.initialize(to: ares_socket_functions(
            // c-ares configures none of the sockets it did not open itself:
            // non-blocking (a blocking read would hang the loop), close-on-exec
            // and, for TCP, no Nagle delay are set here, as c-ares sets them on its own.
            asocket: { family, type, proto, _ in
                let fd = socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
                if fd >= 0 && type == Int32(SOCK_STREAM.rawValue) {
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                }
                return fd
            },
            aclose: { fd, _ in close(fd) },
            aconnect: { fd, address, length, _ in connect(fd, address, length) },
            arecvfrom: { fd, buffer, length, flags, from, fromLength, data in
                let count = recvfrom(fd, buffer, length, flags, from, fromLength)
                // c-ares passes an address only for UDP, where one read is one whole answer.
                if count >= 12, let buffer, let from, let data {
                    // Sound: `data` is the resolver, unretained, whose channel (and so these calls) it outlives.
                    let resolver = Unmanaged<Resolver>.fromOpaque(data).takeUnretainedValue()
                    // Sound: recvfrom wrote `count` bytes at `buffer`.
                    resolver.answerArrived(UnsafeRawBufferPointer(start: buffer, count: count), from: from)
                }
                return count
            },
            asendv: { fd, vectors, count, _ in writev(fd, vectors, count) }))
        return functions
    }()

    /// One UDP answer, as c-ares reads it.
    func answerArrived(_ answer: UnsafeRawBufferPointer, from address: UnsafePointer<sockaddr>) {
        let code = answer[3] & 0x0F
        guard code == ServerFailures.serverFailure || code == ServerFailures.notImplemented || code == ServerFailures.refused else { return }
        serverFailures.note(answer, from: Self.describe(address))
    }

    /// `127.0.0.1:53` or `[::1]:53`.
    static func describe(_ address: UnsafePointer<sockaddr>) -> String {
        let family = Int32(address.pointee.sa_family)
        // Sound: c-ares's UDP sockets are IPv4 or IPv6, so recvfrom filled a sockaddr_in or sockaddr_in6.
        let port = family == AF_INET6
            ? UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port
            : UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port
        let length = socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        return SocketAddress(sockaddr: address, length: length, port: UInt16(bigEndian: port))?.description ?? "?"
    }
}
#endif
