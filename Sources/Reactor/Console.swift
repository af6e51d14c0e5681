#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error (Swift 6 rejects Glibc's `stderr` global).
public func printError(_ message: String) {
    var line = message
    line += "\n"
    _ = line.withUTF8 { write(2, $0.baseAddress, $0.count) }
}

/// Flushes standard output, so a line printed before a long run reaches a pipe at once.
public func flushStandardOutput() {
    fflush(nil)
}
