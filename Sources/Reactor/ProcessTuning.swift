import CReactorSys
import ReactorCore

#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings servers and benchmarks need: CPU pinning and the
/// descriptor limit.
public enum ProcessTuning {
    /// Pins every thread of the process to `cpu` (threads started later
    /// inherit it), so a load generator and the server it measures never
    /// share a CPU.
    public static func pin(toCPU cpu: Int32) throws(ReactorError) {
        let threads: [String]
        switch Syscall.directoryEntries("/proc/self/task") {
        case .success(let names): threads = names
        case .failure(let errno): throw ReactorError("opendir", .named("/proc/self/task"), errno: errno)
        }
        var pinned = 0
        for name in threads {
            guard let tid = Int32(name) else { continue }
            if case .failure(let errno) = Syscall.run({ reactor_pin_thread(tid, cpu) }) {
                throw ReactorError("sched_setaffinity", .named("cpu \(cpu)"), errno: errno)
            }
            pinned += 1
        }
        if pinned == 0 { throw ReactorError("sched_setaffinity", .named("cpu \(cpu)"), detail: "found no threads in /proc/self/task") }
    }

    /// Raises the soft descriptor limit so that `needed` descriptors fit;
    /// the error says both numbers when the hard limit is lower.
    public static func ensureDescriptorLimit(_ needed: Int) throws(ReactorError) {
        var limit = rlimit()
        try Syscall.check("getrlimit") { getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) }
        guard limit.rlim_cur < rlim_t(needed) else { return }
        guard limit.rlim_max >= rlim_t(needed) else {
            throw ReactorError("setrlimit", .named("RLIMIT_NOFILE"),
                               detail: "needs \(needed) open descriptors; the hard limit (ulimit -Hn) is \(limit.rlim_max)")
        }
        limit.rlim_cur = rlim_t(needed)
        try Syscall.check("setrlimit") { setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) }
    }
}
