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
#endif
