/*
 * fd monitor scenarios run in all three suites (poll, epoll, io_uring):
 * scale, bursts larger than the io_uring CQ, signals during blocking waits,
 * handler replacement between a readiness and its dispatch, regular files,
 * monitor selection, and readiness under glib
 * (parity-scenarios.md section 3 C5, C9, G2, G9, H1, I, L; aio-behaviour.md
 * sections 9 and 14).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Bumped before every loop iteration a test makes, so handlers can tell
 * whether they ran twice in one iteration. */
static int iteration;

static bool iterate(Driver d, bool blocking)
{
    iteration++;
    return drive_iteration(d, blocking);
}

static bool is_monitor(const char *name)
{
    return strcmp(test_fdmon(), name) == 0;
}

/* A counting eventfd handler. */
typedef struct {
    int fd;
    int calls;
    int last_iteration;
    bool twice;   /* ran twice in one iteration */
    bool drain;   /* io_read empties the eventfd */
} Counter;

static void counter_read(void *opaque)
{
    Counter *c = opaque;

    if (c->calls > 0 && c->last_iteration == iteration) {
        c->twice = true;
    }
    c->last_iteration = iteration;
    c->calls++;
    if (c->drain) {
        eventfd_t v;
        g_assert_cmpint(eventfd_read(c->fd, &v), ==, 0);
    }
}

static Counter *counters_new(int n, bool drain)
{
    Counter *c = g_new0(Counter, n);

    for (int i = 0; i < n; i++) {
        c[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert_cmpint(c[i].fd, >=, 0);
        c[i].drain = drain;
        c[i].last_iteration = -1;
    }
    return c;
}

static void counters_register(AioContext *c, Counter *cs, int n)
{
    for (int i = 0; i < n; i++) {
        aio_set_fd_handler(c, cs[i].fd, counter_read, NULL, NULL, NULL, &cs[i]);
    }
}

static void counters_free(AioContext *c, Counter *cs, int n)
{
    for (int i = 0; i < n; i++) {
        aio_set_fd_handler(c, cs[i].fd, NULL, NULL, NULL, NULL, NULL);
    }
    /* Let the monitor let go of them before the fds are closed. */
    drain_aio(c);
    for (int i = 0; i < n; i++) {
        close(cs[i].fd);
    }
    g_free(cs);
}

static int counters_total(Counter *cs, int n)
{
    int sum = 0;
    for (int i = 0; i < n; i++) {
        sum += cs[i].calls;
    }
    return sum;
}

static void drain_driver(Driver d)
{
    if (d == DRIVE_AIO) {
        drain_aio(ctx);
    } else {
        drain_glib();
    }
}

/* Runs `fn` with QAIO_FDMON set to `value` (NULL: unset), then restores it. */
static AioContext *new_ctx_with_env(const char *value, Error **errp)
{
    const char *saved = getenv("QAIO_FDMON");
    char *copy = saved ? g_strdup(saved) : NULL;
    AioContext *c;

    if (value) {
        setenv("QAIO_FDMON", value, 1);
    } else {
        unsetenv("QAIO_FDMON");
    }
    c = aio_context_new(errp);
    if (copy) {
        setenv("QAIO_FDMON", copy, 1);
    } else {
        unsetenv("QAIO_FDMON");
    }
    g_free(copy);
    return c;
}

/* Makes c the calling thread's current context (instead of ctx). */
static void make_current(AioContext *c)
{
    qemu_set_current_aio_context(NULL);
    qemu_set_current_aio_context(c);
}

/* ------------------------------------------------------------------------ */
/* 10,000 registered fds, one ready                                          */

enum { MANY_FDS = 10000 };

static bool raise_nofile(rlim_t want)
{
    struct rlimit rl;

    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    if (rl.rlim_cur >= want) {
        return true;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        return false;
    }
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static void test_many_fds(gconstpointer data)
{
    Driver d = driver_of(data);
    const int rounds = test_quick() ? 3 : 20;
    Counter *cs;

    if (!raise_nofile(MANY_FDS + 512)) {
        g_test_skip("RLIMIT_NOFILE cannot be raised above 10,000");
        return;
    }
    cs = counters_new(MANY_FDS, true);
    counters_register(ctx, cs, MANY_FDS);
    drain_driver(d);
    g_assert_cmpint(counters_total(cs, MANY_FDS), ==, 0);

    for (int r = 0; r < rounds; r++) {
        int i = (int)(((unsigned)r * 7919u + 13u) % MANY_FDS);
        int before = cs[i].calls;
        int iterations = 0;

        g_assert_cmpint(eventfd_write(cs[i].fd, 1), ==, 0);
        while (cs[i].calls == before) {
            iterate(d, true);
            g_assert_cmpint(++iterations, <=, 3);
        }
        g_assert_cmpint(cs[i].calls, ==, before + 1);
        /* Nobody else ran. */
        g_assert_cmpint(counters_total(cs, MANY_FDS), ==, r + 1);
    }
    for (int i = 0; i < MANY_FDS; i++) {
        g_assert_false(cs[i].twice);
    }
    counters_free(ctx, cs, MANY_FDS);
    drain_driver(d);
}

/* ------------------------------------------------------------------------ */
/* More ready fds at once than the io_uring CQ holds (256)                   */

enum { BURST = 1000, EPOLL_BATCH = 128 };

/* Calls one iteration, checking that no handler ran twice in it; returns
 * the number of handler calls. */
static int burst_iteration(Driver d, Counter *cs)
{
    int before = counters_total(cs, BURST);

    iterate(d, false);
    for (int i = 0; i < BURST; i++) {
        g_assert_false(cs[i].twice);
    }
    return counters_total(cs, BURST) - before;
}

static void test_burst(gconstpointer data)
{
    Driver d = driver_of(data);
    bool epoll = is_monitor("epoll");
    Counter *cs = counters_new(BURST, true);
    int iterations = 0;

    counters_register(ctx, cs, BURST);
    drain_driver(d);

    /* Draining handlers, all signalled at once: each runs exactly once. */
    for (int i = 0; i < BURST; i++) {
        g_assert_cmpint(eventfd_write(cs[i].fd, 1), ==, 0);
    }
    while (counters_total(cs, BURST) < BURST) {
        int n = burst_iteration(d, cs);
        iterations++;
        if (epoll) {
            g_assert_cmpint(n, <=, EPOLL_BATCH);
        } else {
            /* poll(2) sees all of them in one wait; io_uring delivers the
             * completions that overflowed the CQ in the same iteration. */
            g_assert_cmpint(n, ==, BURST);
        }
        g_assert_cmpint(iterations, <=, BURST / EPOLL_BATCH + 1);
    }
    drain_driver(d);
    for (int i = 0; i < BURST; i++) {
        g_assert_cmpint(cs[i].calls, ==, 1);
    }

    /* Level-triggered: handlers that do not drain run once per iteration,
     * every iteration (io_uring re-arms each one-shot poll). */
    for (int i = 0; i < BURST; i++) {
        cs[i].drain = false;
        cs[i].calls = 0;
        g_assert_cmpint(eventfd_write(cs[i].fd, 1), ==, 0);
    }
    for (int k = 0; k < 5; k++) {
        int n = burst_iteration(d, cs);
        if (epoll) {
            g_assert_cmpint(n, <=, EPOLL_BATCH);
            g_assert_cmpint(n, >, 0);
        } else {
            g_assert_cmpint(n, ==, BURST);
        }
    }
    if (epoll) {
        /* epoll hands out level-triggered fds round-robin. */
        for (int k = 0; k < BURST / EPOLL_BATCH + 1; k++) {
            burst_iteration(d, cs);
        }
    }
    for (int i = 0; i < BURST; i++) {
        g_assert_cmpint(cs[i].calls, >=, epoll ? 1 : 5);
        eventfd_t v;
        g_assert_cmpint(eventfd_read(cs[i].fd, &v), ==, 0);
    }
    counters_free(ctx, cs, BURST);
    drain_driver(d);
}

/* ------------------------------------------------------------------------ */
/* A signal every few microseconds during a long run of blocking aio_poll    */

static void sigusr1_handler(int sig)
{
    (void)sig;
}

typedef struct {
    pthread_t target;
    int stop;
    int sent;
    GMutex lock;
    GCond cond;
    int acked;        /* events the main thread has seen (under lock) */
    int events;       /* events to send */
    int fd;
} SignalTest;

static void signal_test_ack(SignalTest *s, int n)
{
    g_mutex_lock(&s->lock);
    s->acked = n;
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
}

static void *signaller_fn(void *opaque)
{
    SignalTest *s = opaque;
    struct timespec ts = { 0, 5000 };

    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    while (!g_atomic_int_get(&s->stop)) {
        pthread_kill(s->target, SIGUSR1);
        g_atomic_int_inc(&s->sent);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *pinger_fn(void *opaque)
{
    SignalTest *s = opaque;
    struct timespec ts = { 0, 0 };

    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    for (int i = 0; i < s->events; i++) {
        g_mutex_lock(&s->lock);
        while (s->acked < i) {
            g_cond_wait(&s->cond, &s->lock);
        }
        g_mutex_unlock(&s->lock);
        /* 0 to 200 us after the main thread went back to waiting. */
        ts.tv_nsec = (long)((unsigned)i * 40503u % 200u) * 1000;
        nanosleep(&ts, NULL);
        g_assert_cmpint(eventfd_write(s->fd, 1), ==, 0);
    }
    return NULL;
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_signals(gconstpointer data)
{
    Driver d = driver_of(data);
    SignalTest s = { .events = test_quick() ? 200 : 3000 };
    struct sigaction sa, old_sa;
    pthread_t signaller, pinger;
    Counter *c;
    QEMUTimer t;
    int timer_calls = 0;
    int64_t deadline;

    if (d == DRIVE_AIO && skip_if_valgrind_blocks_io_uring()) {
        return;
    }
    c = counters_new(1, true);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sigusr1_handler;  /* no SA_RESTART: waits see EINTR */
    sigemptyset(&sa.sa_mask);
    g_assert_cmpint(sigaction(SIGUSR1, &sa, &old_sa), ==, 0);

    g_mutex_init(&s.lock);
    g_cond_init(&s.cond);
    s.target = pthread_self();
    s.fd = c->fd;
    counters_register(ctx, c, 1);
    drain_driver(d);
    g_assert_cmpint(pthread_create(&signaller, NULL, signaller_fn, &s), ==, 0);
    g_assert_cmpint(pthread_create(&pinger, NULL, pinger_fn, &s), ==, 0);

    for (int i = 0; i < s.events; i++) {
        while (c->calls == i) {
            bool progress = iterate(d, true);
            if (d == DRIVE_AIO) {
                /* A wait cut short by a signal is not progress. */
                g_assert_cmpint(c->calls, ==, progress ? i + 1 : i);
            }
        }
        /* Nothing lost, nothing run twice. */
        g_assert_cmpint(c->calls, ==, i + 1);
        signal_test_ack(&s, i + 1);
    }
    pthread_join(pinger, NULL);

    /* A timed wait under signals: progress only once the timer fired, and
     * never before its deadline. */
    aio_timer_init(ctx, &t, QEMU_CLOCK_REALTIME, SCALE_NS, count_cb, &timer_calls);
    for (int k = 0; k < (test_quick() ? 5 : 50); k++) {
        deadline = now_ns() + 2 * 1000 * 1000;
        timer_mod(&t, deadline);
        while (timer_calls == k) {
            bool progress = iterate(d, true);
            if (d == DRIVE_AIO) {
                g_assert_cmpint(timer_calls, ==, progress ? k + 1 : k);
            }
        }
        g_assert_cmpint(now_ns(), >=, deadline);
    }

    g_atomic_int_set(&s.stop, 1);
    pthread_join(signaller, NULL);
    g_assert_cmpint(sigaction(SIGUSR1, &old_sa, NULL), ==, 0);
    g_mutex_clear(&s.lock);
    g_cond_clear(&s.cond);
    g_test_message("%d signals during %d events", g_atomic_int_get(&s.sent), s.events);
    g_assert_cmpint(g_atomic_int_get(&s.sent), >, s.events);
    g_assert_cmpint(c->calls, ==, s.events);
    counters_free(ctx, c, 1);
    drain_driver(d);
}

/* ------------------------------------------------------------------------ */
/* Removing and re-adding a handler between a readiness and its dispatch     */

static Counter swap_old[2], swap_new[2];
static int swap_first = -1;

static void swap_new_read(void *opaque)
{
    counter_read(opaque);
}

/* The first of the two to run replaces the other one's handler. */
static void swap_old_read(void *opaque)
{
    Counter *c = opaque;
    int me = (int)(c - swap_old);

    counter_read(opaque);
    if (swap_first < 0) {
        int other = 1 - me;
        swap_first = me;
        aio_set_fd_handler(ctx, swap_old[other].fd, NULL, NULL, NULL, NULL, NULL);
        aio_set_fd_handler(ctx, swap_old[other].fd, swap_new_read, NULL, NULL, NULL,
                           &swap_new[other]);
    }
}

/* Both ready in the same iteration; the first callback removes the other
 * handler and registers a new one on the same fd: neither runs in this
 * iteration, the new one runs in the next (C5). */
static void test_replace_in_dispatch(gconstpointer data)
{
    Driver d = driver_of(data);
    int other;

    memset(swap_old, 0, sizeof(swap_old));
    memset(swap_new, 0, sizeof(swap_new));
    swap_first = -1;
    for (int i = 0; i < 2; i++) {
        swap_old[i].fd = swap_new[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert_cmpint(swap_old[i].fd, >=, 0);
        swap_old[i].drain = swap_new[i].drain = true;
        aio_set_fd_handler(ctx, swap_old[i].fd, swap_old_read, NULL, NULL, NULL, &swap_old[i]);
    }
    drain_driver(d);
    for (int i = 0; i < 2; i++) {
        g_assert_cmpint(eventfd_write(swap_old[i].fd, 1), ==, 0);
    }
    while (swap_first < 0) {
        iterate(d, true);
    }
    other = 1 - swap_first;
    g_assert_cmpint(swap_old[swap_first].calls, ==, 1);
    g_assert_cmpint(swap_old[other].calls, ==, 0);
    g_assert_cmpint(swap_new[other].calls, ==, 0);

    while (swap_new[other].calls == 0) {
        iterate(d, true);
    }
    drain_driver(d);
    g_assert_cmpint(swap_old[other].calls, ==, 0);
    g_assert_cmpint(swap_new[other].calls, ==, 1);
    g_assert_cmpint(swap_old[swap_first].calls, ==, 1);

    for (int i = 0; i < 2; i++) {
        aio_set_fd_handler(ctx, swap_old[i].fd, NULL, NULL, NULL, NULL, NULL);
    }
    drain_driver(d);
    for (int i = 0; i < 2; i++) {
        close(swap_old[i].fd);
    }
}

static void unreached_read(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

/* The fd became ready (on io_uring its completion is already in the CQ),
 * then the handler is replaced before any iteration: the old callback never
 * runs, the new one does, once. */
static void test_replace_after_readiness(gconstpointer data)
{
    Driver d = driver_of(data);
    Counter *c = counters_new(1, true);

    aio_set_fd_handler(ctx, c->fd, unreached_read, NULL, NULL, NULL, NULL);
    drain_driver(d);
    g_assert_cmpint(eventfd_write(c->fd, 1), ==, 0);
    aio_set_fd_handler(ctx, c->fd, NULL, NULL, NULL, NULL, NULL);
    aio_set_fd_handler(ctx, c->fd, counter_read, NULL, NULL, NULL, c);
    while (c->calls == 0) {
        iterate(d, true);
    }
    drain_driver(d);
    g_assert_cmpint(c->calls, ==, 1);
    counters_free(ctx, c, 1);
}

/* Many add/remove cycles while another thread keeps the fd signalled: a
 * removed handler is never called (G9). */
typedef struct {
    int fd;
    int stop;
} Hammer;

static void *hammer_fn(void *opaque)
{
    Hammer *h = opaque;
    struct timespec ts = { 0, 2000 };

    while (!g_atomic_int_get(&h->stop)) {
        eventfd_write(h->fd, 1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

typedef struct {
    int fd;
    bool live;
    int calls;
} Cycled;

static void cycled_read(void *opaque)
{
    Cycled *c = opaque;
    eventfd_t v;

    g_assert_true(c->live);
    c->calls++;
    eventfd_read(c->fd, &v);
}

static void test_remove_race(gconstpointer data)
{
    Driver d = driver_of(data);
    const int cycles = test_quick() ? 1000 : 10000;
    Hammer h = { .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    pthread_t thread;
    int total = 0;

    g_assert_cmpint(h.fd, >=, 0);
    g_assert_cmpint(pthread_create(&thread, NULL, hammer_fn, &h), ==, 0);
    for (int i = 0; i < cycles; i++) {
        /* Fresh memory per cycle: a call after removal would touch freed
         * memory under valgrind or ASan, and trip `live` otherwise. */
        Cycled *c = g_new0(Cycled, 1);
        c->fd = h.fd;
        c->live = true;
        aio_set_fd_handler(ctx, h.fd, cycled_read, NULL, NULL, NULL, c);
        iterate(d, false);
        if (i % 3 == 0) {
            iterate(d, false);
        }
        aio_set_fd_handler(ctx, h.fd, NULL, NULL, NULL, NULL, NULL);
        c->live = false;
        if (i % 2 == 0) {
            iterate(d, false);
        }
        total += c->calls;
        g_free(c);
    }
    g_atomic_int_set(&h.stop, 1);
    pthread_join(thread, NULL);
    drain_driver(d);
    g_test_message("%d calls in %d cycles", total, cycles);
    close(h.fd);
}

/* Registration changes from another thread while the home thread blocks
 * (they only queue work for the ring on io_uring). */
typedef struct {
    int fd;
    int stop;
    int cycles;
} Registrar;

static void registrar_read(void *opaque)
{
    (void)opaque;
}

static void *registrar_fn(void *opaque)
{
    Registrar *r = opaque;
    struct timespec ts = { 0, 20000 };

    for (int i = 0; i < r->cycles; i++) {
        aio_set_fd_handler(ctx, r->fd, registrar_read, NULL, NULL, NULL, NULL);
        nanosleep(&ts, NULL);
        aio_set_fd_handler(ctx, r->fd, NULL, NULL, NULL, NULL, NULL);
    }
    g_atomic_int_set(&r->stop, 1);
    aio_notify(ctx);
    return NULL;
}

static void test_cross_thread_registration(void)
{
    Registrar r = { .fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC),
                    .cycles = test_quick() ? 200 : 2000 };
    pthread_t thread;

    if (skip_if_valgrind_blocks_io_uring()) {
        close(r.fd);
        return;
    }
    /* The eventfd stays readable: while registered, the handler runs every
     * iteration. */
    g_assert_cmpint(r.fd, >=, 0);
    g_assert_cmpint(pthread_create(&thread, NULL, registrar_fn, &r), ==, 0);
    while (!g_atomic_int_get(&r.stop)) {
        aio_poll(ctx, true);
    }
    pthread_join(thread, NULL);
    drain_aio(ctx);
    g_assert_false(aio_poll(ctx, false));
    close(r.fd);
}

/* ------------------------------------------------------------------------ */
/* A regular file                                                            */

static void test_regular_file(void)
{
    char path[] = "/tmp/qaio-fdmon-XXXXXX";
    const char *before, *expected;
    AioContext *c;
    Counter rec = { .drain = false };
    int fd = mkstemp(path);

    g_assert_cmpint(fd, >=, 0);
    unlink(path);
    c = aio_context_new(&error_abort);
    make_current(c);
    before = qaio_context_fdmon_name(c);

    rec.fd = fd;
    aio_set_fd_handler(c, fd, counter_read, NULL, NULL, NULL, &rec);
    /* epoll refuses regular files: the context falls back to poll(2) for
     * good. poll(2) and io_uring report them always ready. */
    expected = strcmp(before, "epoll") == 0 ? "poll" : before;
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, expected);
    if (test_fdmon_forced("epoll")) {
        g_assert_cmpstr(before, ==, "epoll");
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "poll");
    }
    for (int i = 0; i < 3; i++) {
        iteration++;
        g_assert_true(aio_poll(c, false));
        g_assert_cmpint(rec.calls, ==, i + 1);
    }
    g_assert_false(rec.twice);
    aio_set_fd_handler(c, fd, NULL, NULL, NULL, NULL, NULL);
    g_assert_false(aio_poll(c, false));
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, expected);

    make_current(ctx);
    aio_context_unref(c);
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* Monitor selection                                                         */

/* 100 fds on a context created under this suite's QAIO_FDMON: a forced
 * monitor is the one used from the first fd on, and forced poll(2) stays on
 * poll(2) (no lazy epoll upgrade). */
static void test_hundred_fds_forced(void)
{
    const char *forced = getenv("QAIO_FDMON");
    AioContext *c;
    Counter *cs;

    if (!forced || !*forced) {
        g_test_skip("no monitor forced through QAIO_FDMON");
        return;
    }
    c = aio_context_new(&error_abort);
    make_current(c);
    cs = counters_new(100, true);
    counters_register(c, cs, 100);
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, forced);
    for (int r = 0; r < 10; r++) {
        g_assert_cmpint(eventfd_write(cs[r * 9].fd, 1), ==, 0);
        iteration++;
        g_assert_true(aio_poll(c, true));
        g_assert_cmpint(cs[r * 9].calls, ==, 1);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, forced);
    }
    g_assert_cmpint(counters_total(cs, 100), ==, 10);
    counters_free(c, cs, 100);
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, forced);
    make_current(ctx);
    aio_context_unref(c);
}

/* Without QAIO_FDMON: io_uring when the kernel offers it, else poll(2) with
 * the lazy switch to epoll. */
static void test_default_selection(void)
{
    Error *err = NULL;
    AioContext *probe = new_ctx_with_env("io_uring", &err);
    bool have_uring = probe != NULL;
    AioContext *c;
    Counter *cs;

    if (probe) {
        aio_context_unref(probe);
    } else {
        g_assert_nonnull(strstr(error_get_pretty(err), "io_uring"));
        error_free(err);
    }
    c = new_ctx_with_env(NULL, &error_abort);
    make_current(c);
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, have_uring ? "io_uring" : "poll");
    g_assert_cmpint(aio_has_io_uring(), ==, have_uring);

    cs = counters_new(100, true);
    counters_register(c, cs, 100);
    g_assert_cmpint(eventfd_write(cs[42].fd, 1), ==, 0);
    iteration++;
    g_assert_true(aio_poll(c, true));
    g_assert_cmpint(cs[42].calls, ==, 1);
    /* 100 fds: poll(2) has switched to epoll by now. */
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, have_uring ? "io_uring" : "epoll");
    counters_free(c, cs, 100);
    make_current(ctx);
    aio_context_unref(c);
}

/*
 * Leaves exactly one free fd number (the lowest free one): the context's
 * eventfd gets it and the ring's fd does not.
 */
static void leave_one_fd(void)
{
    struct rlimit rl;
    int lowest = dup(0);

    g_assert_cmpint(lowest, >=, 0);
    close(lowest);
    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    rl.rlim_cur = (rlim_t)lowest + 1;
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
}

static void restore_nofile(void)
{
    struct rlimit rl;

    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    rl.rlim_cur = rl.rlim_max;
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
}

#define SUBPROCESS_TIMEOUT_US (60 * G_USEC_PER_SEC)

/* A forced io_uring that cannot start: aio_context_new fails through errp
 * with a message naming io_uring, never silently using another monitor. */
static void test_forced_uring_failure(void)
{
    if (g_test_subprocess()) {
        Error *err = NULL;
        AioContext *c;

        leave_one_fd();
        c = new_ctx_with_env("io_uring", &err);
        restore_nofile();
        g_assert_null(c);
        g_assert_nonnull(err);
        g_printerr("error: %s\n", error_get_pretty(err));
        error_free(err);
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*error: Failed to initialize io_uring: Too many open files\n*");
}

/* No file descriptor left at all: every monitor fails to create the
 * context's event notifier; aio_context_new returns NULL with an error and
 * leaves no fd behind. */
static void test_no_fds_left(void)
{
    if (g_test_subprocess()) {
        const char *monitors[] = { "poll", "epoll", "io_uring", NULL };

        for (int i = 0; monitors[i]; i++) {
            Error *err = NULL;
            struct rlimit rl;
            int lowest = dup(0);
            int before;
            AioContext *c;

            g_assert_cmpint(lowest, >=, 0);
            close(lowest);
            before = test_count_open_fds();
            g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
            rl.rlim_cur = (rlim_t)lowest;
            g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
            c = new_ctx_with_env(monitors[i], &err);
            restore_nofile();
            g_assert_null(c);
            g_assert_nonnull(err);
            g_printerr("%s: %s\n", monitors[i], error_get_pretty(err));
            error_free(err);
            g_assert_cmpint(test_count_open_fds(), ==, before);
        }
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*poll: Failed to initialize event notifier: Too many open files\n"
                              "epoll: Failed to initialize event notifier*"
                              "io_uring: Failed to initialize event notifier*");
}

/*
 * All or nothing (G7): once a context got io_uring, a default context whose
 * ring cannot be set up is an error; if the first default attempt failed,
 * every default context uses poll(2)/epoll, with one warning.
 */
static void test_uring_all_or_nothing(void)
{
    if (g_test_subprocess()) {
        bool first_has_uring = is_monitor("io_uring");
        Error *err = NULL;
        AioContext *c, *c2;

        leave_one_fd();
        c = new_ctx_with_env(NULL, &err);
        restore_nofile();
        if (first_has_uring) {
            g_assert_null(c);
            g_printerr("error: %s\n", error_get_pretty(err));
            error_free(err);
            return;
        }
        g_assert_nonnull(c);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "poll");
        /* Later default contexts do not try again, even with fds to spare. */
        c2 = new_ctx_with_env(NULL, &error_abort);
        g_assert_cmpstr(qaio_context_fdmon_name(c2), ==, "poll");
        aio_context_unref(c2);
        aio_context_unref(c);
        g_printerr("done\n");
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    if (is_monitor("io_uring")) {
        g_test_trap_assert_stderr("*error: Failed to initialize io_uring: Too many open files\n*");
    } else {
        /* One warning, naming io_uring, for two contexts. */
        g_test_trap_assert_stderr("*qaio: Failed to initialize io_uring: Too many open files;*done*");
        g_test_trap_assert_stderr_unmatched("*io_uring*io_uring*");
    }
}

/* Makes io_uring_setup(2) fail with ENOSYS in this process, as on a kernel
 * built without io_uring. */
static void block_io_uring_setup(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = G_N_ELEMENTS(filter), .filter = filter };

    g_assert_cmpint(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), ==, 0);
    g_assert_cmpint(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), ==, 0);
}

/* No io_uring in the kernel (seccomp here): forced, an error naming it;
 * by default, poll(2) and epoll with one warning, unless an earlier
 * context already got io_uring (then an error: all or nothing). */
static void test_no_io_uring(void)
{
    if (g_test_subprocess()) {
        bool first_has_uring = is_monitor("io_uring");
        Error *err = NULL;
        AioContext *c;
        Counter *cs;

        block_io_uring_setup();
        g_assert_null(new_ctx_with_env("io_uring", &err));
        g_printerr("forced: %s\n", error_get_pretty(err));
        error_free(err);
        err = NULL;

        c = new_ctx_with_env(NULL, &err);
        if (first_has_uring) {
            g_assert_null(c);
            g_printerr("default: %s\n", error_get_pretty(err));
            error_free(err);
            return;
        }
        g_assert_nonnull(c);
        make_current(c);
        g_assert_false(aio_has_io_uring());
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "poll");
        cs = counters_new(100, true);
        counters_register(c, cs, 100);
        g_assert_cmpint(eventfd_write(cs[7].fd, 1), ==, 0);
        g_assert_true(aio_poll(c, true));
        g_assert_cmpint(cs[7].calls, ==, 1);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "epoll");
        counters_free(c, cs, 100);
        make_current(ctx);
        aio_context_unref(c);
        g_printerr("default: poll\n");
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*forced: Failed to initialize io_uring: Function not implemented*");
    if (is_monitor("io_uring")) {
        g_test_trap_assert_stderr(
            "*default: Failed to initialize io_uring: Function not implemented*");
    } else {
        g_test_trap_assert_stderr("*qaio: Failed to initialize io_uring: Function not implemented;"
                                  "*default: poll*");
    }
}

/* ------------------------------------------------------------------------ */
/* Readiness under glib                                                      */

/* Runs one glib iteration by hand, without sleeping, and reports whether
 * glib polls `fd` itself. */
static bool glib_polls_fd(int fd)
{
    GMainContext *mc = g_main_context_default();
    GPollFD fds[64];
    gint prio, timeout, n;
    bool found = false;

    g_assert_true(g_main_context_acquire(mc));
    g_main_context_prepare(mc, &prio);
    n = g_main_context_query(mc, prio, &timeout, fds, G_N_ELEMENTS(fds));
    g_assert_cmpint(n, <=, (gint)G_N_ELEMENTS(fds));
    for (int i = 0; i < n; i++) {
        found |= fds[i].fd == fd;
        fds[i].revents = 0;
    }
    if (g_main_context_check(mc, prio, fds, n)) {
        g_main_context_dispatch(mc);
    }
    g_main_context_release(mc);
    return found;
}

typedef struct {
    int fd;
    unsigned delay_ms;
} DelayedWrite;

static void *delayed_write_fn(void *opaque)
{
    DelayedWrite *w = opaque;
    g_usleep(w->delay_ms * 1000);
    g_assert_cmpint(eventfd_write(w->fd, 1), ==, 0);
    return NULL;
}

/* An fd signalled by another thread while glib sleeps: on io_uring glib
 * polls only the ring fd, so the readiness arrives as a ring completion. */
static void test_glib_readiness(void)
{
    Counter *c = counters_new(1, true);
    DelayedWrite w;
    pthread_t thread;
    const char *name = test_fdmon();
    bool polled;

    counters_register(ctx, c, 1);
    drain_glib();
    polled = glib_polls_fd(c->fd);
    /* poll(2): one GPollFD per handler; epoll and io_uring: only their own
     * fd (the epoll fd, the ring fd). */
    g_assert_cmpint(polled, ==, strcmp(name, "poll") == 0);

    for (int k = 0; k < 3; k++) {
        w = (DelayedWrite){ .fd = c->fd, .delay_ms = 30 };
        g_assert_cmpint(pthread_create(&thread, NULL, delayed_write_fn, &w), ==, 0);
        while (c->calls == k) {
            g_main_context_iteration(NULL, TRUE);
        }
        pthread_join(thread, NULL);
        g_assert_cmpint(c->calls, ==, k + 1);
        g_assert_cmpstr(test_fdmon(), ==, name);
    }
    drain_glib();
    g_assert_cmpint(c->calls, ==, 3);
    counters_free(ctx, c, 1);
    drain_glib();
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    test_init(&argc, &argv);
    test_watchdog(240, "test-fdmon");

    add_test_both_drivers("/fdmon/many-fds-one-ready", test_many_fds);
    add_test_both_drivers("/fdmon/burst-larger-than-cq", test_burst);
    add_test_both_drivers("/fdmon/signals", test_signals);
    add_test_both_drivers("/fdmon/replace/in-dispatch", test_replace_in_dispatch);
    add_test_both_drivers("/fdmon/replace/after-readiness", test_replace_after_readiness);
    add_test_both_drivers("/fdmon/replace/remove-race", test_remove_race);
    g_test_add_func("/fdmon/replace/cross-thread", test_cross_thread_registration);
    g_test_add_func("/fdmon/regular-file", test_regular_file);
    g_test_add_func("/fdmon/select/forced-100-fds", test_hundred_fds_forced);
    g_test_add_func("/fdmon/select/default", test_default_selection);
    g_test_add_func("/fdmon/select/forced-io-uring-failure", test_forced_uring_failure);
    g_test_add_func("/fdmon/select/no-fds-left", test_no_fds_left);
    g_test_add_func("/fdmon/select/io-uring-all-or-nothing", test_uring_all_or_nothing);
    g_test_add_func("/fdmon/select/no-io-uring-in-kernel", test_no_io_uring);
    g_test_add_func("/fdmon/glib-readiness", test_glib_readiness);
    return g_test_run();
}
