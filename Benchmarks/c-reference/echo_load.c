// echo_load: closed-loop load for echo servers.
//
//   echo_load --host 127.0.0.1 --port N --connections 100 --size 64 --duration 5 [--warmup 1]
//
// Every connection does strict ping-pong: send `size` bytes, wait for the same
// `size` bytes, compare, repeat. One thread and one epoll set, so on a pinned
// CPU the generator's own cost is as small and as stable as it can be.
//
// Prints one JSON line on success. Any error (refused, reset, EOF, a wrong
// byte, a stall past the global timeout) goes to stderr with exit status 1:
// a benchmark that silently measures a broken server is worse than none.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    int connected;
    uint64_t seq;        // round trips completed: selects the payload pattern
    size_t sent, recvd;  // progress through the current message
    uint64_t t_start;    // ns, when the current message's first byte was sent
    unsigned char *msg;  // the message in flight; replies are compared to it
};

static struct conn *conns;
static int nconns, epfd;
static size_t size = 64;

// ---- Latency histogram -------------------------------------------------
// Log-linear, like HdrHistogram: each power of two of nanoseconds is split
// into 128 linear buckets, so any value is within 1/128 (< 0.8%) of its
// bucket. 35 powers of two cover 1 ns .. 34 s with 4.5k counters.
#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define NBUCKETS ((35 - SUB_BITS + 1) * SUB)
static uint64_t hist[NBUCKETS];

static int bucket_of(uint64_t ns) {
    if (ns < SUB) return (int)ns;
    int e = 63 - __builtin_clzll(ns);  // e >= SUB_BITS
    int b = (e - SUB_BITS + 1) * SUB + (int)((ns >> (e - SUB_BITS)) & (SUB - 1));
    return b < NBUCKETS ? b : NBUCKETS - 1;
}

// Midpoint of a bucket, the inverse of bucket_of.
static double value_of(int b) {
    if (b < SUB) return b;
    int e = b / SUB - 1 + SUB_BITS, sub = b % SUB;
    double lo = (double)((uint64_t)(SUB + sub) << (e - SUB_BITS));
    return lo + (double)(1ULL << (e - SUB_BITS)) / 2;
}

static double percentile_us(uint64_t total, double q) {
    uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
    if (rank == 0) rank = 1;
    for (int b = 0; b < NBUCKETS; b++)
        if ((seen += hist[b]) >= rank) return value_of(b) / 1000.0;
    return 0;
}

// ---- Helpers -------------------------------------------------------------
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *fmt, int ci, const char *detail) {
    fprintf(stderr, "echo_load: ");
    fprintf(stderr, fmt, ci, detail);
    fputc('\n', stderr);
    exit(1);
}

// Payload of message `seq` on connection `ci`: a cheap PRNG seeded by both,
// so a lost, duplicated, reordered or cross-connection byte almost surely
// shows up as a mismatch (a plain counter could repeat across a shift).
static void fill(unsigned char *p, int ci, uint64_t seq) {
    uint64_t x = ((uint64_t)ci << 40) ^ (seq * 0x9E3779B97F4A7C15ull) ^ 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;  // xorshift64
        p[i] = (unsigned char)(x >> 32);
    }
}

static void set_interest(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) { perror("epoll_ctl"); exit(1); }
}

// Pushes what the kernel takes of the current message; EPOLLOUT only while
// some is left. EPOLLIN stays on throughout: for messages larger than the
// socket buffers the echo comes back before we finish sending, and not
// reading it would deadlock both sides.
static void pump_send(struct conn *c) {
    int ci = (int)(c - conns);
    while (c->sent < size) {
        ssize_t w = send(c->fd, c->msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (w > 0) { c->sent += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { set_interest(c, EPOLLIN | EPOLLOUT); return; }
        fail("connection %d: send: %s", ci, strerror(errno));
    }
}

static void start_message(struct conn *c, uint64_t t) {
    fill(c->msg, (int)(c - conns), c->seq);
    c->sent = c->recvd = 0;
    c->t_start = t;
    pump_send(c);
}

// Ends every connection with a FIN and waits (briefly) for the server's.
// Just closing would send RSTs for the echoes still in flight, and the server
// under test would log and pay for a reset per connection.
static void close_gracefully(void) {
    int open = 0;
    for (int i = 0; i < nconns; i++) {
        set_interest(&conns[i], EPOLLIN);  // EPOLLOUT would now spin
        if (shutdown(conns[i].fd, SHUT_WR) == 0) open++;
        else { close(conns[i].fd); conns[i].fd = -1; }
    }
    uint64_t until = now_ns() + 2000000000u;
    struct epoll_event events[512];
    static char sink[64 * 1024];
    while (open > 0 && now_ns() < until) {
        int n = epoll_wait(epfd, events, 512, 100);
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[events[k].data.u32];
            ssize_t r = read(c->fd, sink, sizeof sink);  // late echoes: discarded
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { close(c->fd); c->fd = -1; open--; }
        }
    }
    for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) close(conns[i].fd);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    double duration = 5, warmup = 1;
    nconns = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--connections")) nconns = atoi(v);
        else if (!strcmp(a, "--size")) size = (size_t)atol(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else goto usage;
        i++;
    }
    if (port <= 0 || port > 65535 || nconns <= 0 || size == 0 || duration <= 0 || warmup < 0) {
    usage:
        fprintf(stderr, "usage: echo_load --port N [--host 127.0.0.1] [--connections 100] [--size 64]"
                        " [--duration 5] [--warmup 1]\n");
        return 2;
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { fprintf(stderr, "echo_load: bad host %s\n", host); return 2; }

    uint64_t t0 = now_ns();
    // Nothing may hang: a server that stops answering fails the run.
    uint64_t give_up = t0 + (uint64_t)((duration + warmup + 10) * 1e9);

    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) { perror("epoll_create1"); return 1; }
    conns = calloc((size_t)nconns, sizeof *conns);
    unsigned char *msgs = malloc((size_t)nconns * size);
    static unsigned char rbuf[64 * 1024];
    if (!conns || !msgs) { perror("malloc"); return 1; }

    // All connects go out at once, non-blocking; a connection starts its
    // ping-pong as soon as it is established.
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->msg = msgs + (size_t)i * size;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) fail("connection %d: socket: %s", i, strerror(errno));
        int one = 1;  // each ping is one small write: don't let Nagle delay it
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
            fail("connection %d: connect: %s", i, strerror(errno));
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) { perror("epoll_ctl ADD"); return 1; }
    }

    // The clock for warmup and measurement starts when the last connection
    // is up, so slow connection setup is never measured as throughput.
    int connected = 0;
    uint64_t measure_from = UINT64_MAX, measure_to = UINT64_MAX;
    uint64_t round_trips = 0, all_round_trips = 0;
    struct epoll_event events[512];

    for (;;) {
        uint64_t t = now_ns();
        if (t >= measure_to) break;
        if (t >= give_up) {
            fprintf(stderr, "echo_load: timed out after %.1f s (%d of %d connected, %llu round trips): server stalled?\n",
                    (double)(t - t0) / 1e9, connected, nconns, (unsigned long long)all_round_trips);
            return 1;
        }
        uint64_t deadline = measure_to < give_up ? measure_to : give_up;
        int timeout_ms = (int)((deadline - t) / 1000000) + 1;
        int n = epoll_wait(epfd, events, 512, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            // A clock read per event (~30 ns via the vDSO) rather than per
            // batch: late events in a batch would otherwise look faster.
            t = now_ns();
            int ci = (int)events[k].data.u32;
            struct conn *c = &conns[ci];
            uint32_t e = events[k].events;

            if (!c->connected) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) fail("connection %d: connect: %s", ci, strerror(err));
                if (!(e & EPOLLOUT)) continue;
                c->connected = 1;
                set_interest(c, EPOLLIN);
                if (++connected == nconns) {
                    measure_from = t + (uint64_t)(warmup * 1e9);
                    measure_to = measure_from + (uint64_t)(duration * 1e9);
                }
                start_message(c, t);
                continue;
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                // Read at most what is still owed: a byte beyond it belongs
                // to no message yet sent (a duplicate, say) and is compared
                // against the next message, where it fails.
                size_t want = size - c->recvd;
                if (want > sizeof rbuf) want = sizeof rbuf;
                ssize_t r = read(c->fd, rbuf, want);
                if (r == 0) fail("connection %d: %s", ci, "server closed the connection");
                if (r < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                        fail("connection %d: read: %s", ci, strerror(errno));
                } else {
                    if (c->recvd + (size_t)r > c->sent)
                        fail("connection %d: %s", ci, "received bytes that were not sent yet");
                    if (memcmp(rbuf, c->msg + c->recvd, (size_t)r) != 0) {
                        size_t off = 0;
                        while (rbuf[off] == c->msg[c->recvd + off]) off++;
                        fprintf(stderr, "echo_load: connection %d: round trip %llu: byte %zu is 0x%02x, expected 0x%02x"
                                        " (lost, reordered or corrupted data)\n",
                                ci, (unsigned long long)c->seq, c->recvd + off, rbuf[off], c->msg[c->recvd + off]);
                        return 1;
                    }
                    c->recvd += (size_t)r;
                    if (c->recvd == size) {
                        all_round_trips++;
                        // Counted by completion time, so trips that began in
                        // the warmup but end in the window count once.
                        if (t >= measure_from && t < measure_to) {
                            round_trips++;
                            hist[bucket_of(t - c->t_start)]++;
                        }
                        c->seq++;
                        start_message(c, t);
                        continue;
                    }
                }
            }
            if (e & EPOLLOUT && c->sent < size) {
                pump_send(c);
                if (c->sent == size) set_interest(c, EPOLLIN);
            }
        }
    }

    // A connection whose message has waited through the whole window lost
    // bytes or was forgotten by the server; the others running fine must
    // not hide that.
    for (int i = 0; i < nconns; i++)
        if (conns[i].t_start < measure_from) {
            fprintf(stderr, "echo_load: connection %d: no reply for %.1f s (round trip %llu, %zu of %zu bytes back):"
                            " server lost data or stalled the connection\n",
                    i, (double)(now_ns() - conns[i].t_start) / 1e9, (unsigned long long)conns[i].seq,
                    conns[i].recvd, size);
            return 1;
        }
    if (round_trips == 0) { fprintf(stderr, "echo_load: no round trip completed in the window\n"); return 1; }

    printf("{\"connections\":%d,\"size\":%zu,\"seconds\":%.1f,\"round_trips\":%llu,\"rps\":%.0f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"errors\":0,\"all_round_trips\":%llu}\n",
           nconns, size, duration, (unsigned long long)round_trips, (double)round_trips / duration,
           percentile_us(round_trips, 0.50), percentile_us(round_trips, 0.99), percentile_us(round_trips, 0.999),
           (unsigned long long)all_round_trips);
    fflush(stdout);
    close_gracefully();
    return 0;
}
