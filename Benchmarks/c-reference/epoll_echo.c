// epoll_echo: the C reference peer for the echo benchmark.
//
// It is the yardstick the Swift backends are compared against, so it is kept
// as close to "what a careful C programmer writes in an afternoon" as
// possible: one thread, level-triggered epoll, one static read buffer, no
// allocation on the hot path.
//
//   epoll_echo --port 0 --host 127.0.0.1   -> prints "listening on 127.0.0.1:PORT"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

// Bytes a write could not take yet. Only allocated for connections that
// ever hit a partial write, so the common ping-pong case never allocates.
struct conn {
    char *pending;
    size_t len, off, cap;
};

static struct conn *conns;   // indexed by fd: fds are small and dense
static int epfd;
static char buf[64 * 1024];  // one read buffer for all connections: the
                             // data is written straight back before the
                             // next read, so sharing it is safe

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void close_conn(int fd) {
    free(conns[fd].pending);
    memset(&conns[fd], 0, sizeof conns[fd]);
    close(fd);  // also removes it from the epoll set
}

static void set_interest(int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0) die("epoll_ctl MOD");
}

// Writes data[0..n); whatever the kernel does not take is kept and EPOLLOUT
// armed. Returns -1 if the connection was closed.
static int send_or_keep(int fd, const char *data, size_t n) {
    size_t done = 0;
    while (done < n) {
        // MSG_NOSIGNAL: a peer that resets must cost us one connection, not the process.
        ssize_t w = send(fd, data + done, n - done, MSG_NOSIGNAL);
        if (w > 0) { done += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        close_conn(fd);
        return -1;
    }
    if (done == n) return 0;
    struct conn *c = &conns[fd];
    size_t rest = n - done;
    if (c->cap < rest) {
        char *p = realloc(c->pending, rest);
        if (!p) die("realloc");
        c->pending = p;
        c->cap = rest;
    }
    memcpy(c->pending, data + done, rest);
    c->off = 0;
    c->len = rest;
    // Stop reading while we owe the peer bytes: this is the backpressure that
    // keeps a fast sender with a slow reader from growing our buffer forever.
    set_interest(fd, EPOLLOUT);
    return 0;
}

static void on_writable(int fd) {
    struct conn *c = &conns[fd];
    while (c->off < c->len) {
        ssize_t w = send(fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w > 0) { c->off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT stays armed
        close_conn(fd);
        return;
    }
    c->off = c->len = 0;
    set_interest(fd, EPOLLIN);  // drained: back to reading
}

static void on_readable(int fd) {
    // One read per wake-up: level-triggered epoll reports the fd again if
    // more is queued, which keeps one busy connection from starving others.
    ssize_t r = read(fd, buf, sizeof buf);
    if (r > 0) { send_or_keep(fd, buf, (size_t)r); return; }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close_conn(fd);  // EOF or error (ECONNRESET ...)
}

static void on_acceptable(int lfd, int maxfd) {
    // Drain the accept queue: with level-triggering one accept per wake-up
    // would also work, but bursts of connects are the common case here.
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            // EMFILE/ENFILE: report and retry on the next wake-up. This spins
            // while the limit is hit; acceptable for a benchmark peer.
            perror("accept4");
            return;
        }
        if (fd >= maxfd) { close(fd); continue; }  // cannot happen below RLIMIT_NOFILE
        // Ping-pong of small messages: Nagle would hold each echo back
        // waiting for an ACK and turn latency into a 40 ms delayed-ACK tick.
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD");
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 7000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else { fprintf(stderr, "usage: %s [--port N] [--host 127.0.0.1]\n", argv[0]); return 2; }
    }

    // Signals arrive through a signalfd in the same epoll set, so shutdown
    // needs no handler and has no race between "check flag" and epoll_wait.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) die("getrlimit");
    int maxfd = rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
    conns = calloc((size_t)maxfd, sizeof *conns);
    if (!conns) die("calloc");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    // Lets back-to-back benchmark runs rebind a fixed port left in TIME_WAIT.
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    // A deep backlog so 1,000 simultaneous connects are not dropped and
    // retried after the 1 s SYN timeout (the kernel caps it at somaxconn).
    if (listen(lfd, 4096) < 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
    printf("listening on %s:%d\n", ip, ntohs(addr.sin_port));
    fflush(stdout);  // the benchmark script waits for this line through a pipe/file

    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl listen");
    ev.data.fd = sfd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0) die("epoll_ctl signalfd");

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == sfd) goto out;
            if (fd == lfd) { on_acceptable(lfd, maxfd); continue; }
            // While bytes are owed, only EPOLLOUT is armed and any event
            // (OUT, ERR, HUP) means "try to drain": reading now would echo
            // new bytes ahead of the owed ones.
            if (conns[fd].len) on_writable(fd);
            else on_readable(fd);
        }
    }
out:
    for (int fd = 0; fd < maxfd; fd++) free(conns[fd].pending);
    free(conns);
    return 0;
}
