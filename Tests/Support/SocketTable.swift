// The kernel's own table of TCP sockets (/proc/net/tcp and tcp6), for leak
// checks that other tests running in the same process cannot disturb: a
// server's connection whose descriptor was never closed stays ESTABLISHED
// or CLOSE_WAIT on the server's port after every client has gone.
import ReactorCore

#if canImport(Glibc)
import Glibc
#endif

/// The states (by name) of this process's TCP sockets whose local port is
/// `port` and that still hold a connection or listen: ESTABLISHED,
/// CLOSE_WAIT, LISTEN, SYN_RECV. A socket closed by its owner is in none of
/// these (FIN_WAIT, TIME_WAIT, LAST_ACK are the kernel's, not a descriptor's).
/// Only sockets a descriptor of this process refers to count: another
/// process on this machine may have left one on the same port number.
public func openTCPSockets(localPort port: UInt16) -> [String] {
    let ours = socketInodesOfThisProcess()
    let names = ["01": "ESTABLISHED", "03": "SYN_RECV", "08": "CLOSE_WAIT", "0A": "LISTEN"]
    let wanted = ":" + String(port, radix: 16, uppercase: true).leftPadded(to: 4)
    var found: [String] = []
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = readWholeFile(path) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            // "  sl  local_address rem_address   st ..."
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[1].hasSuffix(wanted), let state = names[String(fields[3])],
                  ours.contains(String(fields[9])) else { continue }
            found.append(state)
        }
    }
    return found
}

/// The inode numbers of the sockets this process's descriptors refer to
/// (`/proc/self/fd/N` links to `socket:[INODE]`).
private func socketInodesOfThisProcess() -> Set<String> {
    var inodes: Set<String> = []
    guard case .success(let descriptors) = Syscall.directoryEntries("/proc/self/fd") else { return inodes }
    var target = [CChar](repeating: 0, count: 256)
    for name in descriptors {
        let n = readlink("/proc/self/fd/" + name, &target, target.count - 1)
        guard n > 0 else { continue }
        let link = String(decoding: target[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if link.hasPrefix("socket:["), link.hasSuffix("]") { inodes.insert(String(link.dropFirst(8).dropLast())) }
    }
    return inodes
}

private func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
