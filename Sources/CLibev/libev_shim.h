// libev's initialisers are macros, which Swift cannot import; these inline
// wrappers expand them. Everything else in <ev.h> imports directly.
#ifndef REACTOR_LIBEV_SHIM_H
#define REACTOR_LIBEV_SHIM_H
#include <ev.h>

typedef void (*reactor_ev_io_cb)(struct ev_loop *, ev_io *, int);
typedef void (*reactor_ev_timer_cb)(struct ev_loop *, ev_timer *, int);
typedef void (*reactor_ev_async_cb)(struct ev_loop *, ev_async *, int);

static inline void reactor_ev_io_init(ev_io *w, reactor_ev_io_cb cb, int fd, int events) {
    ev_io_init(w, cb, fd, events);
}
static inline void reactor_ev_io_set(ev_io *w, int fd, int events) {
    ev_io_set(w, fd, events);
}
static inline void reactor_ev_timer_init(ev_timer *w, reactor_ev_timer_cb cb, double after) {
    ev_timer_init(w, cb, after, 0.);
}
static inline void reactor_ev_timer_set(ev_timer *w, double after) {
    ev_timer_set(w, after, 0.);
}
static inline void reactor_ev_async_init(ev_async *w, reactor_ev_async_cb cb) {
    ev_async_init(w, cb);
}
static inline int reactor_ev_is_active(void *w) {
    return ev_is_active((ev_watcher *)w);
}
#endif
