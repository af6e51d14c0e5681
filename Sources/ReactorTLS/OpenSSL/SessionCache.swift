#if canImport(CReactorTLS)
import CReactorTLS
import ReactorSync

/// A client's sessions for resumption, by key (usually the server's name):
/// the newest session each server gave, up to a capacity, shared by every
/// engine of one configuration on any thread.
///
/// A TLS 1.3 session is handed out once (RFC 8446 §C.4: a ticket reused
/// across connections lets them be linked); the resumed connection's new
/// tickets replace it. A TLS 1.2 session stays until a newer one replaces it.
final class SessionCache: Sendable {
    /// One `SSL_SESSION` reference.
    ///
    /// Sound to send between threads: sessions are reference counted with
    /// atomic counts, the cache only stores and hands out references under
    /// its lock, and OpenSSL does not change a session once it is resumable.
    struct Handle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    private struct Entries {
        var byKey: [String: (session: Handle, stamp: UInt64)] = [:]
        var clock: UInt64 = 0
    }

    /// The most sessions kept; the least recently stored goes first.
    let capacity: Int
    private let entries = ReactorMutex(Entries())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    deinit {
        entries.withLock { entries in
            for entry in entries.byKey.values { SSL_SESSION_free(entry.session.pointer) }
            entries.byKey.removeAll()
        }
    }

    /// How many servers have a session here.
    var count: Int { entries.withLock { $0.byKey.count } }

    /// Keeps `session` as the newest for `key`, taking over the caller's reference.
    func store(_ session: OpaquePointer, for key: String) {
        let handle = Handle(pointer: session)
        let released: [Handle] = entries.withLock { entries in
            entries.clock += 1
            var released: [Handle] = []
            if let previous = entries.byKey.updateValue((handle, entries.clock), forKey: key) {
                released.append(previous.session)
            }
            if entries.byKey.count > capacity,
               let oldest = entries.byKey.min(by: { $0.value.stamp < $1.value.stamp }) {
                entries.byKey.removeValue(forKey: oldest.key)
                released.append(oldest.value.session)
            }
            return released
        }
        // Outside the lock: these references are ours alone now.
        for old in released { SSL_SESSION_free(old.pointer) }
    }

    /// A session for `key` to resume, with one reference the caller frees
    /// (after `SSL_set_session`, which takes its own); nil when there is none.
    func take(for key: String) -> OpaquePointer? {
        let handle: Handle? = entries.withLock { entries in
            guard let entry = entries.byKey[key] else { return nil }
            if SSL_SESSION_is_resumable(entry.session.pointer) != 1 {
                // OpenSSL gave up on it (its connection failed): forget it.
                entries.byKey.removeValue(forKey: key)
                SSL_SESSION_free(entry.session.pointer)
                return nil
            }
            if SSL_SESSION_get_protocol_version(entry.session.pointer) == TLS1_3_VERSION {
                // Single use: the cache's reference passes to the caller.
                entries.byKey.removeValue(forKey: key)
            } else {
                // Reusable: the caller gets a reference of its own.
                SSL_SESSION_up_ref(entry.session.pointer)
            }
            return entry.session
        }
        return handle?.pointer
    }
}
#endif
