#if canImport(CUring)
import CUring
import ReactorCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Why io_uring cannot start here, in words a user can act on.
enum UringAvailability {
    /// `kernel.io_uring_disabled`: 0 enabled, 1 only for a group, 2 disabled.
    static func sysctlReason() -> String? {
        guard let file = fopen("/proc/sys/kernel/io_uring_disabled", "r") else { return nil }
        defer { fclose(file) }
        var value: Int32 = 0
        guard fscanf_int(file, &value) else { return nil }
        switch value {
        case 2: return "io_uring is disabled by the kernel.io_uring_disabled sysctl (2)"
        case 1 where geteuid() != 0:
            return "kernel.io_uring_disabled is 1: only members of the io_uring group (kernel.io_uring_group) may create rings"
        default: return nil
        }
    }

    /// Explains an `io_uring_queue_init` failure.
    static func explain(_ errno: Errno) -> String {
        switch errno {
        case .noFunction:
            return "this kernel has no io_uring (ENOSYS): it is too old, or built without CONFIG_IO_URING"
        case .notPermitted, .permissionDenied:
            return sysctlReason() ?? "the process may not create rings (EPERM): kernel.io_uring_disabled, a seccomp filter or a container policy forbids io_uring"
        case .noMemory:
            var limit = rlimit()
            getrlimit(__rlimit_resource_t(8), &limit)  // RLIMIT_MEMLOCK (8) is GNU-only in the Glibc module
            let kib = limit.rlim_cur == RLIM_INFINITY_VALUE ? "unlimited" : "\(limit.rlim_cur / 1024) KiB"
            return "the ring does not fit under the locked-memory limit (ulimit -l is \(kib)); raise RLIMIT_MEMLOCK or run as root"
        default:
            return "io_uring could not start"
        }
    }

    /// `RLIM_INFINITY` does not import (its literal overflows); it is all ones.
    static let RLIM_INFINITY_VALUE = rlim_t.max

    private static func fscanf_int(_ file: UnsafeMutablePointer<FILE>, _ value: inout Int32) -> Bool {
        var line = [CChar](repeating: 0, count: 32)
        guard fgets(&line, Int32(line.count), file) != nil else { return false }
        let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let parsed = Int32(text) else { return false }
        value = parsed
        return true
    }
}
#endif
