#if canImport(CReactorTLS)
import CReactorTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The calling thread's OpenSSL error queue, read into one phrase.
///
/// OpenSSL keeps one queue per thread; an operation that fails pushes one or
/// more entries (the root cause first, wrappers after). Every entry point of
/// this module calls ``clear()`` before its OpenSSL calls and ``take()``
/// after a failure, so what is reported belongs to that operation alone and
/// nothing is left behind for the next one (which would also fool
/// `SSL_get_error`, which looks at the queue first).
enum ErrorQueue {
    /// One entry: its library, reason code and words.
    struct Entry {
        var library: Int32
        var reason: Int32
        var text: String
    }

    /// Empties the queue.
    static func clear() {
        ERR_clear_error()
    }

    /// Removes and returns every entry, oldest (the root cause) first.
    static func take() -> [Entry] {
        var entries: [Entry] = []
        while true {
            var data: UnsafePointer<CChar>?
            var flags: Int32 = 0
            // Sound: ERR_get_error_all only writes through the pointers we pass
            // (nil for the ones we do not want); `data` points into the queue's
            // own storage and is copied before the next call.
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            let library = ERR_GET_LIB(code)
            let reason = ERR_GET_REASON(code)
            var text: String
            if library == ERR_LIB_SYS {
                // A system error's reason is the errno; strerror's text is static.
                text = String(cString: strerror(reason))
            } else if let words = ERR_reason_error_string(code) {
                text = String(cString: words)
            } else {
                text = "error \(library):\(reason)"
            }
            if flags & ERR_TXT_STRING != 0, let data {
                let extra = String(cString: data)
                // "calling fopen(PATH, r)" repeats what the caller names already.
                if !extra.isEmpty && !extra.hasPrefix("calling ") { text += " (\(extra))" }
            }
            entries.append(Entry(library: library, reason: reason, text: text))
        }
        return entries
    }

    /// The words of `entries` in one phrase: the root cause first, without
    /// OpenSSL's wrappers that only say which library passed it on
    /// (`system lib`, `PEM lib`) or that repeat an earlier entry.
    static func phrase(_ entries: [Entry], otherwise fallback: String) -> String {
        var parts: [String] = []
        for entry in entries {
            let words = entry.text
            if words.hasSuffix(" lib") { continue }
            let lowered = words.lowercased()
            if parts.contains(where: { $0.lowercased().hasPrefix(lowered) }) { continue }
            parts.append(words)
        }
        return parts.isEmpty ? fallback : parts.joined(separator: ": ")
    }

    /// Takes the queue and returns its phrase.
    static func takePhrase(otherwise fallback: String) -> String {
        phrase(take(), otherwise: fallback)
    }
}
#endif
