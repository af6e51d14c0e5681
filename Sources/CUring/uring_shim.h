// liburing defines _XOPEN_SOURCE/_GNU_SOURCE before including glibc headers;
// had it included them first, fd_set and friends would clash with Swift's
// Glibc module. Including those headers here first, and the kernel's
// <linux/io_uring.h> (which swift-system's CSystem also includes) right
// before <liburing.h>, keeps one definition of each.
#ifndef REACTOR_URING_SHIM_H
#define REACTOR_URING_SHIM_H
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <signal.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sched.h>
#include <errno.h>
#include <linux/swab.h>
#include <linux/io_uring.h>
#include <liburing.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Enables a ring created with IORING_SETUP_R_DISABLED. liburing 2.3
/// declares io_uring_enable_rings but its shared library does not export
/// it (the link fails), so this is the system call it would make.
static inline int reactor_enable_rings(struct io_uring *ring) {
    long rc = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}

// The SQE fields these set sit in anonymous unions, which Swift imports
// awkwardly; one line of C each keeps the Swift side plain.

/// A multishot receive on `fd` into buffers of group `group`, ending after
/// `limit` bytes when `limit` is not 0. The limit is the kernel's `optlen`
/// (6.16 and later), which shares its union with `file_index` in the 6.1
/// header Debian ships; older kernels answer -EINVAL for a non-zero value.
static inline void reactor_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, unsigned short group, unsigned limit) {
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
    sqe->file_index = limit;
}

/// The buffer ring entry array for `entries` buffers (the kernel reads it).
static inline size_t reactor_buf_ring_size(unsigned entries) {
    return (size_t)entries * sizeof(struct io_uring_buf);
}

/// Registers a buffer ring at `ring_memory` as group `group`.
static inline int reactor_register_buf_ring(struct io_uring *ring, void *ring_memory, unsigned entries, unsigned short group) {
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)(uintptr_t)ring_memory;
    reg.ring_entries = entries;
    reg.bgid = group;
    return io_uring_register_buf_ring(ring, &reg, 0);
}

/// Puts buffer `bid` back into the ring and makes it visible to the kernel.
static inline void reactor_buf_ring_recycle(struct io_uring_buf_ring *br, void *addr, unsigned len, unsigned short bid, unsigned entries) {
    io_uring_buf_ring_add(br, addr, len, bid, io_uring_buf_ring_mask(entries), 0);
    io_uring_buf_ring_advance(br, 1);
}
#endif
