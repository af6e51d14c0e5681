// uring_echo: the C io_uring reference peer for the echo benchmark.
//
// The io_uring counterpart of epoll_echo.c, kept to the same standard: what
// a careful C programmer writes in an afternoon with liburing, using the
// completion model the way its authors recommend for networking:
//
//   - one multishot accept on the listener,
//   - one multishot recv per connection, into a ring of provided buffers
//     shared by all connections (the kernel picks a buffer per completion),
//   - the echo is sent straight from the buffer the data arrived in; the
//     buffer goes back to the ring when that send completes,
//   - at most one send in flight per connection (two sends to one socket
//     could complete out of order if the first has to wait for space), so
//     buffers received meanwhile queue up per connection, in order,
//   - the ring set up with SINGLE_ISSUER | DEFER_TASKRUN: completions are
//     only produced inside our io_uring_enter, on our thread,
//   - one io_uring_submit_and_wait per loop turn: it submits the turn's
//     sends and re-arms, and waits for the next completions.
//
// One thread, no allocation on the hot path.
//
//   uring_echo --port 0 --host 127.0.0.1   -> prints "listening on 127.0.0.1:PORT"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

// The provided buffers. 16 KiB each, so the 16 KiB echo rows arrive in one
// buffer (and leave in one send), like epoll_echo's one read. 1,024 of them:
// a ping-pong connection holds one only from its recv's completion to its
// send's (and the kernel takes a buffer only when data arrives), so even
// 10,000 connections rarely hold more than a few hundred at once; when the
// ring does run dry a connection gets -ENOBUFS and is re-armed once buffers
// come back. The kernel hands buffers out in ring order, so over time every
// one is touched: up to 16 MiB resident (64 B messages touch one page of each).
#define BUF_SIZE   (16 * 1024)
#define BUF_COUNT  1024          // a power of two (the ring's index mask)
#define BUF_GROUP  0
// A connection whose peer sends faster than it reads would otherwise take
// every buffer: past this many queued buffers its recv is cancelled (the
// backpressure epoll_echo gets by not reading while it owes bytes), and it
// is re-armed once the queue is down to half.
#define CONN_MAX_QUEUED 8

#define RING_ENTRIES 4096
// A turn can bring a recv and a send completion for every busy connection;
// more than fit wait in the kernel's overflow list (slower, nothing lost).
#define CQ_ENTRIES   16384

// What a completion is for, in the top half of its user_data; the fd is in
// the bottom half.
enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CANCEL, OP_SIGNAL };

static uint64_t tag(enum op op, int fd) { return (uint64_t)op << 32 | (uint32_t)fd; }

struct conn {
    // Received buffers not yet echoed, oldest first, linked through
    // buf_next[]: a buffer is in at most one queue, so no allocation.
    int head, tail;
    unsigned queued;
    unsigned off;              // bytes of the head buffer already sent
    int next_starved;          // link in the list of connections waiting for buffers
    unsigned char recv_armed;  // a multishot recv is outstanding
    unsigned char cancelling;  // ... and a cancel for it has been submitted
    unsigned char sending;     // the head buffer's send is outstanding
    unsigned char starved;     // the recv ended with -ENOBUFS; on the starved list
    unsigned char eof;         // the peer shut its side: echo what is queued, then close
    unsigned char dead;        // an error: drop what is queued, close once nothing is outstanding
};

static struct io_uring ring;
static struct conn *conns;   // indexed by fd, as in epoll_echo
static int maxfd;

static struct io_uring_buf_ring *br;
static char *buf_base;
static int buf_next[BUF_COUNT];
static unsigned buf_len[BUF_COUNT];
static int returned;         // buffers added to the ring this turn, published at its end
static int starved_head = -1;
// The rare paths, counted and printed on exit (stderr) when taken: a run
// that starved for buffers or throttled a connection should say so.
static unsigned long n_enobufs, n_cancels, n_rearms, n_short_sends;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void die_res(const char *what, int res) {
    fprintf(stderr, "uring_echo: %s: %s\n", what, strerror(-res));
    exit(1);
}

static char *buf_addr(int bid) { return buf_base + (size_t)bid * BUF_SIZE; }

// Hands a buffer back to the kernel. Batched: the ring's tail moves once a
// turn (at the end of the loop turn, in main), not once per buffer.
static void give_back(int bid) {
    io_uring_buf_ring_add(br, buf_addr(bid), BUF_SIZE, (unsigned short)bid, io_uring_buf_ring_mask(BUF_COUNT), returned);
    returned++;
}

// An SQE, submitting what is queued first if the submission queue is full
// (a turn with thousands of completions can queue more than it holds).
static struct io_uring_sqe *get_sqe(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (!sqe) {
        int r = io_uring_submit(&ring);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) die_res("io_uring_submit", r);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void arm_accept(int lfd) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tag(OP_ACCEPT, lfd));
}

static void arm_recv(int fd) {
    struct io_uring_sqe *sqe = get_sqe();
    // len 0: as much as the picked buffer holds.
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, tag(OP_RECV, fd));
    conns[fd].recv_armed = 1;
}

static void cancel_recv(int fd) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_cancel64(sqe, tag(OP_RECV, fd), 0);
    n_cancels++;
    io_uring_sqe_set_data64(sqe, tag(OP_CANCEL, fd));
    conns[fd].cancelling = 1;
}

// Sends what is left of the head buffer.
static void send_head(int fd) {
    struct conn *c = &conns[fd];
    struct io_uring_sqe *sqe = get_sqe();
    // MSG_NOSIGNAL: a peer that resets must cost us one connection, not the process.
    io_uring_prep_send(sqe, fd, buf_addr(c->head) + c->off, buf_len[c->head] - c->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(OP_SEND, fd));
    c->sending = 1;
}

// The connection failed: stop echoing, and shut the socket down so that an
// outstanding recv ends (with 0) instead of waiting for the peer.
static void kill_conn(int fd) {
    struct conn *c = &conns[fd];
    if (c->dead) return;
    c->dead = 1;
    shutdown(fd, SHUT_RDWR);
}

// After anything happened to a connection: close it, or start what it now
// needs (the next send, a recv, a cancel). The fd is only closed once no
// request refers to it, so a completion never meets a reused fd number.
static void update(int fd) {
    struct conn *c = &conns[fd];
    if (!c->dead && !c->sending && c->queued) send_head(fd);
    int done = c->dead || (c->eof && !c->queued);
    if (done) {
        if (c->recv_armed || c->sending || c->starved) return;  // wait for them to complete
        for (int bid = c->head; c->queued; c->queued--, bid = buf_next[bid]) give_back(bid);
        close(fd);
        memset(c, 0, sizeof *c);
        return;
    }
    if (c->eof) return;
    if (c->recv_armed) {
        if (c->queued >= CONN_MAX_QUEUED && !c->cancelling) cancel_recv(fd);
    } else if (!c->starved && c->queued <= CONN_MAX_QUEUED / 2) {
        arm_recv(fd);
    }
}

static void on_accept(struct io_uring_cqe *cqe, int lfd) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(lfd);  // the multishot ended: re-arm
    int fd = cqe->res;
    if (fd < 0) {
        // EMFILE/ENFILE and the like: report and go on, as epoll_echo does.
        if (fd != -EINTR && fd != -ECONNABORTED) fprintf(stderr, "uring_echo: accept: %s\n", strerror(-fd));
        return;
    }
    if (fd >= maxfd) { close(fd); return; }  // cannot happen below RLIMIT_NOFILE
    // Ping-pong of small messages: Nagle would hold each echo back
    // waiting for an ACK and turn latency into a 40 ms delayed-ACK tick.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = &conns[fd];
    memset(c, 0, sizeof *c);
    c->head = c->tail = -1;
    arm_recv(fd);
}

static void on_recv(struct io_uring_cqe *cqe, int fd) {
    struct conn *c = &conns[fd];
    int res = cqe->res;
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = c->cancelling = 0;
        if (res > 0) n_rearms++;  // ended with data: the kernel stopped it (CQ full ...)
    }
    if (res > 0) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->dead) { give_back(bid); return; }  // nobody to echo to
        buf_len[bid] = (unsigned)res;
        buf_next[bid] = -1;
        if (c->queued++) buf_next[c->tail] = bid;
        else c->head = bid, c->off = 0;
        c->tail = bid;
    } else if (res == -ENOBUFS) {
        // The ring ran dry: every buffer is in some connection's queue or
        // send. Wait for sends to return some (run_starved), don't close.
        n_enobufs++;
        if (!c->recv_armed && !c->starved) {
            c->starved = 1;
            c->next_starved = starved_head;
            starved_head = fd;
        }
    } else if (res == -ECANCELED) {
        // Our cancel (backpressure): re-armed by update once the queue drains.
    } else if (res == 0) {
        c->eof = 1;  // the peer is done sending
    } else {
        kill_conn(fd);  // ECONNRESET ...
    }
    update(fd);
}

static void on_send(struct io_uring_cqe *cqe, int fd) {
    struct conn *c = &conns[fd];
    c->sending = 0;
    int res = cqe->res;
    if (res <= 0) {
        kill_conn(fd);  // EPIPE, ECONNRESET ...: the queue goes back in update
    } else if ((c->off += (unsigned)res) == buf_len[c->head]) {
        int bid = c->head;
        c->head = buf_next[bid];
        c->off = 0;
        if (--c->queued == 0) c->tail = -1;
        give_back(bid);
    } else {
        n_short_sends++;  // update sends the rest
    }
    update(fd);
}

// Buffers came back: give the connections that found the ring empty another
// recv. One that finds it empty again goes back on the list.
static void run_starved(void) {
    int fd = starved_head;
    starved_head = -1;
    while (fd >= 0) {
        int next = conns[fd].next_starved;
        conns[fd].starved = 0;
        update(fd);
        fd = next;
    }
}

// The ring with the flags that suit a single-threaded server; kernels older
// than 6.1 reject DEFER_TASKRUN (and older than 6.0 SINGLE_ISSUER): without
// them the ring works the same, only completions may be produced
// asynchronously.
static void setup_ring(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int r = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (r == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        r = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    }
    if (r < 0) die_res("io_uring_queue_init_params", r);

    // The provided-buffer ring. liburing 2.3 has no io_uring_setup_buf_ring:
    // the ring's memory is ours, page-aligned (mmap), registered by address.
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED) die("mmap buffer ring");
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    if ((r = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) die_res("io_uring_register_buf_ring", r);
    buf_base = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf_base == MAP_FAILED) die("mmap buffers");
    io_uring_buf_ring_init(br);
    for (int bid = 0; bid < BUF_COUNT; bid++) give_back(bid);
    io_uring_buf_ring_advance(br, returned);
    returned = 0;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 7000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else { fprintf(stderr, "usage: %s [--port N] [--host 127.0.0.1]\n", argv[0]); return 2; }
    }

    // Signals arrive through a signalfd read on the ring, so shutdown needs
    // no handler and has no race between "check flag" and the wait.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) die("getrlimit");
    maxfd = rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
    conns = calloc((size_t)maxfd, sizeof *conns);
    if (!conns) die("calloc");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

    setup_ring();
    arm_accept(lfd);
    struct signalfd_siginfo si;
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_read(sqe, sfd, &si, sizeof si, 0);
    io_uring_sqe_set_data64(sqe, tag(OP_SIGNAL, sfd));

    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
    printf("listening on %s:%d\n", ip, ntohs(addr.sin_port));
    fflush(stdout);  // the benchmark script waits for this line through a pipe/file

    for (;;) {
        // Submits this turn's sends and re-arms and waits for a completion:
        // one system call per turn, however many connections it served. A
        // send to loopback completes inside this call, and its completion
        // alone ends the wait: with one connection a round trip takes two
        // turns (the send's completion, then the wait for the next recv),
        // with many the sends' completions ride along with new recvs.
        int r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) die_res("io_uring_submit_and_wait", r);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int stop = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            int fd = (int)(uint32_t)cqe->user_data;
            switch ((enum op)(cqe->user_data >> 32)) {
            case OP_ACCEPT: on_accept(cqe, fd); break;
            case OP_RECV: on_recv(cqe, fd); break;
            case OP_SEND: on_send(cqe, fd); break;
            case OP_CANCEL: break;  // the recv's own completion says what happened
            case OP_SIGNAL: stop = 1; break;
            }
        }
        io_uring_cq_advance(&ring, seen);
        if (stop) break;
        if (returned) {
            io_uring_buf_ring_advance(br, returned);
            returned = 0;
            if (starved_head >= 0) run_starved();
        }
    }
    if (n_enobufs || n_cancels || n_rearms || n_short_sends)
        fprintf(stderr, "uring_echo: %lu recvs out of buffers, %lu recvs cancelled for backpressure,"
                        " %lu multishot recvs ended with data, %lu short sends\n", n_enobufs, n_cancels, n_rearms, n_short_sends);
    io_uring_queue_exit(&ring);
    free(conns);
    return 0;
}
