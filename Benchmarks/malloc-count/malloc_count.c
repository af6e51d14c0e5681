// malloc_count.so: counts heap allocations of any process it is preloaded in.
//
//   LD_PRELOAD=Benchmarks/.build-c/malloc_count.so ./server &
//   kill -USR2 $!   # stderr: "malloc_count allocations=N frees=M"
//
// The benchmark reads the counters twice around a measured load and divides
// the difference by the round trips, giving "allocations per round trip".
// Counting every entry point (not sampling) is what makes a small number like
// 0.02 per round trip trustworthy.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

// Relaxed atomics: the counts only need to be exact, not ordered with
// anything; the reader is a signal handler sampling them.
static unsigned long allocations, frees;
#define COUNT(c) __atomic_fetch_add(&(c), 1, __ATOMIC_RELAXED)

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

// dlsym itself may call calloc/malloc (glibc does, for its error state)
// before we know where the real ones are. Those few requests are served from
// this bump buffer and never freed; a size header lets realloc copy them.
static _Alignas(64) char bump[64 * 1024];
static size_t bump_used;
static int resolving;

static void *bump_alloc(size_t n) {
    size_t need = 16 + ((n + 15) & ~(size_t)15);
    size_t at = __atomic_fetch_add(&bump_used, need, __ATOMIC_RELAXED);
    if (at + need > sizeof bump) return NULL;  // only dlsym uses it: 64 KiB is ample
    *(size_t *)(bump + at) = n;
    return bump + at + 16;
}

static int in_bump(const void *p) {
    return (const char *)p >= bump && (const char *)p < bump + sizeof bump;
}

static void resolve(void) {
    if (real_malloc || resolving) return;
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    // Last: a non-null real_malloc is the "resolution finished" flag.
    __atomic_store_n(&real_malloc, dlsym(RTLD_NEXT, "malloc"), __ATOMIC_RELEASE);
    resolving = 0;
}

void *malloc(size_t n) {
    resolve();
    if (!real_malloc) return bump_alloc(n);
    COUNT(allocations);
    return real_malloc(n);
}

void *calloc(size_t n, size_t m) {
    resolve();
    if (!real_malloc) {
        if (m && n > SIZE_MAX / m) return NULL;
        return bump_alloc(n * m);  // static storage is already zero
    }
    COUNT(allocations);
    return real_calloc(n, m);
}

void *realloc(void *p, size_t n) {
    resolve();
    if (in_bump(p) || !real_malloc) {
        void *q = real_malloc ? real_malloc(n) : bump_alloc(n);
        if (q && p) {
            size_t old = *(size_t *)((char *)p - 16);
            memcpy(q, p, old < n ? old : n);
        }
        return q;
    }
    COUNT(allocations);  // realloc is counted as one allocation, grow or shrink
    return real_realloc(p, n);
}

void free(void *p) {
    if (!p || in_bump(p)) return;  // free(NULL) does nothing, so it is not counted
    resolve();
    COUNT(frees);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
    resolve();
    COUNT(allocations);
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    resolve();
    COUNT(allocations);
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n) {
    resolve();
    COUNT(allocations);
    return real_memalign(align, n);
}

// ---- Reporting ------------------------------------------------------------
// Only async-signal-safe calls in the handler: no stdio, no allocation.
static char *put_ulong(char *p, unsigned long v) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while ((v /= 10));
    while (n) *p++ = tmp[--n];
    return p;
}

static void report(int sig) {
    (void)sig;
    int saved = errno;  // write may clobber errno of the interrupted code
    char line[96], *p = line;
    unsigned long a = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    unsigned long f = __atomic_load_n(&frees, __ATOMIC_RELAXED);
    memcpy(p, "malloc_count allocations=", 25);
    p += 25;
    p = put_ulong(p, a);
    memcpy(p, " frees=", 7);
    p += 7;
    p = put_ulong(p, f);
    *p++ = '\n';
    ssize_t unused = write(2, line, (size_t)(p - line));
    (void)unused;
    errno = saved;
}

__attribute__((constructor)) static void install(void) {
    resolve();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = report;
    // SA_RESTART: the process under test must not see EINTR because we looked.
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}
