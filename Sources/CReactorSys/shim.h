// What Swift's Glibc module leaves out: epoll, eventfd, and a few GNU-only
// declarations. Header-only: everything here is in libc already.
#ifndef CREACTORSYS_SHIM_H
#define CREACTORSYS_SHIM_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <poll.h>
#include <string.h>

// POLLRDHUP is _GNU_SOURCE-only in <poll.h>; its value is fixed by the kernel ABI.
#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
// posix_spawn_file_actions_addclosefrom_np (glibc 2.34) is _GNU_SOURCE-only in <spawn.h>.
#include <spawn.h>
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
// pipe2 (glibc 2.9), likewise, in <unistd.h>: both ends close-on-exec in one call.
extern int pipe2(int pipefd[2], int flags);

#endif
static const short reactor_POLLRDHUP = POLLRDHUP;

// accept4 and strerrorname_np exist in glibc (2.10 and 2.32) but are declared
// only under _GNU_SOURCE, which Swift's Glibc module does not define.
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
extern const char *strerrorname_np(int errnum);
#include <pthread.h>
extern int pthread_setname_np(pthread_t thread, const char *name);

// sched_setaffinity and the CPU_SET macros are _GNU_SOURCE-only in <sched.h>;
// cpu_set_t and the __CPU_*_S helpers behind those macros are not.
#include <sched.h>
#include <errno.h>
extern int sched_setaffinity(__pid_t pid, size_t cpusetsize, const cpu_set_t *mask);

// malloc_trim (glibc 2.0; every arena since 2.8) is in <malloc.h>, which Swift's Glibc module leaves out.
#include <malloc.h>

/// Pins thread `tid` (0: the calling thread) to CPU `cpu`. Returns 0, or -1 with errno set.
static inline int reactor_pin_thread(__pid_t tid, int cpu) {
    if (cpu < 0 || cpu >= __CPU_SETSIZE) { errno = EINVAL; return -1; }
    cpu_set_t set;
    __CPU_ZERO_S(sizeof set, &set);
    __CPU_SET_S(cpu, sizeof set, &set);
    return sched_setaffinity(tid, sizeof set, &set);
}

extern int sched_getaffinity(__pid_t pid, size_t cpusetsize, cpu_set_t *mask);

/// The number of CPUs the calling thread may run on (honours taskset), or 0.
static inline int reactor_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return __CPU_COUNT_S(sizeof set, &set);
}

// posix_spawn_file_actions_addclosefrom_np (glibc 2.34) is _GNU_SOURCE-only in <spawn.h>.
#include <spawn.h>
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
// pipe2 (glibc 2.9), likewise, in <unistd.h>: both ends close-on-exec in one call.
extern int pipe2(int pipefd[2], int flags);

#endif
