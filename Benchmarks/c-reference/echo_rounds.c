// echo_rounds: an exact number of echo round trips, for instruction counts.
//
//   echo_rounds --port N [--connections 1000] [--rounds 20] [--size 64]
//
// Connects every connection and makes one round trip on each, prints
// "ready" and waits for a line on stdin; then makes `rounds` round trips on
// each connection (strict ping-pong, all connections at once on one epoll
// set), prints "done TOTAL" and waits for another line before closing. A
// script zeroes callgrind's counters at "ready" and dumps them at "done"
// (Benchmarks/callgrind-echo.sh): the window holds exactly TOTAL round
// trips, without connection set-up or teardown. Any error goes to stderr
// with exit status 1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int nconns = 1000, rounds = 20, epfd;
static size_t size = 64;
static int *fds, *left;
static size_t *got;
static unsigned char *msg, *buf;

static void die(const char *what) {
    fprintf(stderr, "echo_rounds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void send_message(int i) {
    if (send(fds[i], msg, size, MSG_NOSIGNAL) != (ssize_t)size) die("send");
    got[i] = 0;
}

// `per` round trips on every connection.
static void run(int per) {
    int pending = nconns;
    for (int i = 0; i < nconns; i++) { left[i] = per; send_message(i); }
    struct epoll_event events[256];
    while (pending > 0) {
        int n = epoll_wait(epfd, events, 256, 10000);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { fprintf(stderr, "echo_rounds: no reply within 10 s (%d connections pending)\n", pending); exit(1); }
        for (int e = 0; e < n; e++) {
            int i = events[e].data.u32;
            ssize_t r = recv(fds[i], buf, size - got[i], 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) { fprintf(stderr, "echo_rounds: connection %d: %s\n", i, r == 0 ? "closed" : strerror(errno)); exit(1); }
            if (memcmp(buf, msg + got[i], (size_t)r) != 0) { fprintf(stderr, "echo_rounds: connection %d: wrong bytes\n", i); exit(1); }
            got[i] += (size_t)r;
            if (got[i] < size) continue;
            if (--left[i] > 0) send_message(i); else pending--;
        }
    }
}

static void await_line(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin)) exit(0);
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--connections")) nconns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = (size_t)atoi(argv[i + 1]);
        else { fprintf(stderr, "echo_rounds: unknown option %s\n", argv[i]); return 1; }
    }
    if (port <= 0 || nconns <= 0 || rounds <= 0 || size == 0) {
        fprintf(stderr, "usage: echo_rounds --port N [--connections 1000] [--rounds 20] [--size 64]\n");
        return 1;
    }
    fds = calloc(nconns, sizeof *fds); left = calloc(nconns, sizeof *left); got = calloc(nconns, sizeof *got);
    msg = malloc(size); buf = malloc(size);
    if (!fds || !left || !got || !msg || !buf) die("malloc");
    for (size_t i = 0; i < size; i++) msg[i] = (unsigned char)('a' + i % 26);
    if ((epfd = epoll_create1(0)) < 0) die("epoll_create1");
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconns; i++) {
        if ((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0) die("socket");
        if (connect(fds[i], (struct sockaddr *)&address, sizeof address) < 0) die("connect");
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event event = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &event) < 0) die("epoll_ctl");
    }
    run(1);
    printf("ready\n");
    fflush(stdout);
    await_line();
    run(rounds);
    printf("done %lld\n", (long long)nconns * rounds);
    fflush(stdout);
    await_line();
    return 0;
}
