import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One end of a pipe (or any stream descriptor such as stdin/stdout): the
/// read end reports ``ResourceEvent/received(_:)`` and ends when the writer
/// closes; the write end queues what the pipe buffer does not take.
public final class PipeEnd: StreamResource {
    /// Which way the bytes flow through this end.
    public enum Direction: Sendable {
        /// This end reads what the other end writes.
        case reading
        /// This end writes for the other end to read.
        case writing
    }
    /// Which way this end moves bytes.
    public let direction: Direction

    /// Adopts an existing descriptor (made non-blocking here).
    public init(adopting fd: FileDescriptor, direction: Direction) throws(ReactorError) {
        try Syscall.makeNonBlocking(fd, operation: "adopt")
        self.direction = direction
        super.init(fd: fd, reading: direction == .reading)
    }

    public override var kind: String { direction == .reading ? "pipe-read" : "pipe-write" }

    /// The process's standard input, for reading (Danga::Socket's AddOtherFds).
    /// The resource owns a duplicate of descriptor 0, so destroying it leaves
    /// the process's own standard input open. Note that the non-blocking mode
    /// is shared between duplicates: descriptor 0 becomes non-blocking too.
    public static func standardInput() throws(ReactorError) -> PipeEnd {
        try duplicate(STDIN_FILENO, direction: .reading)
    }

    /// The process's standard output, for writing through the write queue
    /// (a duplicate of descriptor 1; see ``standardInput()``).
    public static func standardOutput() throws(ReactorError) -> PipeEnd {
        try duplicate(STDOUT_FILENO, direction: .writing)
    }

    private static func duplicate(_ fd: Int32, direction: Direction) throws(ReactorError) -> PipeEnd {
        let copy = try Syscall.check("dup", .fd(fd)) { fcntl(fd, F_DUPFD_CLOEXEC, 3) }
        do {
            return try PipeEnd(adopting: FileDescriptor(rawValue: copy), direction: direction)
        } catch {
            _ = Glibc.close(copy)
            throw error
        }
    }

    /// A new non-blocking, close-on-exec pipe.
    public static func pipe() throws(ReactorError) -> (reader: PipeEnd, writer: PipeEnd) {
        var fds: [Int32] = [-1, -1]
        // pipe2 is _GNU_SOURCE-only in Swift's Glibc module; pipe + fcntl is equivalent
        // here because no other thread of ours forks between the two calls.
        try Syscall.check("pipe") { Glibc.pipe(&fds) }
        do {
            let reader = try PipeEnd(adopting: FileDescriptor(rawValue: fds[0]), direction: .reading)
            let writer = try PipeEnd(adopting: FileDescriptor(rawValue: fds[1]), direction: .writing)
            return (reader, writer)
        } catch {
            _ = Glibc.close(fds[0]); _ = Glibc.close(fds[1])
            throw error
        }
    }
}
