import ReactorCore

#if canImport(Glibc)
import Glibc
#endif

/// The `options timeout:N attempts:N` of a resolv.conf and of `RES_OPTIONS`,
/// read as glibc's `res_init` reads them.
///
/// c-ares reads resolv.conf itself, but the 1.18 that Debian 12 ships
/// understands only its own `retrans:` (milliseconds) and `retry:` there:
/// with `options timeout:1 attempts:2` it kept its 5 s and 4 tries
/// (`ares_save_options` says so), which with its doubling of the wait each
/// round is 75 s for a silent server where glibc gives up after 2 s. The
/// resolver reads the two options here and hands c-ares the result.
struct ResolvConfOptions: Equatable {
    /// `timeout:`, in whole seconds (glibc caps it at 30, RES_MAXRETRANS).
    var timeout: Duration?
    /// `attempts:` (glibc caps it at 5, RES_MAXRETRY).
    var attempts: Int?

    /// What `path` says (nothing when it cannot be read, as for glibc),
    /// then what `environment` (`RES_OPTIONS`'s value) overrides.
    static func read(path: String, environment: String?) -> ResolvConfOptions {
        var options = ResolvConfOptions()
        if let text = contents(of: path) {
            for line in text.split(whereSeparator: \.isNewline) {
                let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard words.first == "options" else { continue }  // comments start with # or ; and never match
                options.apply(words.dropFirst())
            }
        }
        if let environment { options.apply(environment.split(whereSeparator: { $0 == " " || $0 == "\t" })) }
        return options
    }

    /// Applies `timeout:N` and `attempts:N` among `words` (other options are c-ares's business).
    mutating func apply<Words: Sequence>(_ words: Words) where Words.Element == Substring {
        for word in words {
            if word.hasPrefix("timeout:"), let seconds = Int(word.dropFirst(8)), seconds >= 0 {
                // glibc waits at least a second however small the setting.
                timeout = .seconds(min(max(seconds, 1), 30))
            } else if word.hasPrefix("attempts:"), let count = Int(word.dropFirst(9)), count >= 0 {
                attempts = min(max(count, 1), 5)
            }
        }
    }

    /// The file's text, or nil when it cannot be read.
    private static func contents(of path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes += chunk[..<count]
            if bytes.count > 1 << 20 { break }  // a resolv.conf is a few lines; stop at anything absurd
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
