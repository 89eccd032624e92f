/*
 * aio_add_sqe: user io_uring requests on the context's own ring, under the
 * aio_poll driver and under glib (parity-scenarios.md section 3 G;
 * aio-behaviour.md sections 1.6, 9.4-9.6, 10).
 *
 * Requests are prepared with liburing's io_uring_prep_* helpers: including
 * <liburing.h> together with "qemu/aio.h" is part of the contract. This file
 * includes liburing first; add-sqe-headers.c includes it last.
 *
 * The io_uring tests need the io_uring monitor and are skipped in the poll
 * and epoll suites; the misuse tests run everywhere (they make their own
 * contexts).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <liburing.h>
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* From add-sqe-headers.c (the other include order). */
void prep_nop_other_order(struct io_uring_sqe *sqe, void *opaque);

/* ------------------------------------------------------------------------ */
/* Drivers and helpers                                                       */

/* Skips the test unless the shared context runs on io_uring. */
static bool need_io_uring(void)
{
    if (strcmp(test_fdmon(), "io_uring") != 0) {
        g_test_skip("needs the io_uring fd monitor");
        return false;
    }
    g_assert_true(aio_has_io_uring());
    return true;
}

/* A request: the CqeHandler plus what its callback saw. */
typedef struct {
    CqeHandler h;
    int calls;
    int32_t res;
    uint64_t user_data;
    int64_t done_ns;
    char tag;          /* logged by the callback when non-zero */
} Req;

static void req_cb(CqeHandler *h)
{
    Req *r = container_of(h, Req, h);
    r->calls++;
    r->res = h->cqe.res;
    r->user_data = h->cqe.user_data;
    r->done_ns = now_ns();
    if (r->tag) {
        log_add(r->tag);
    }
}

static void req_init(Req *r, char tag)
{
    memset(r, 0, sizeof(*r));
    r->h.cb = req_cb;
    r->tag = tag;
}

static int prep_calls;

static void prep_nop(struct io_uring_sqe *sqe, void *opaque)
{
    (void)opaque;
    prep_calls++;
    /* The library hands over a zeroed SQE. */
    g_assert_cmpuint(sqe->opcode, ==, 0);
    g_assert_cmpuint(sqe->user_data, ==, 0);
    io_uring_prep_nop(sqe);
}

/* Iterates until r has completed (bounded by the program watchdog). */
static void wait_req(Driver d, Req *r)
{
    while (r->calls == 0) {
        drive_iteration(d, true);
    }
}

static void add_nop(Req *r)
{
    aio_add_sqe(prep_nop, NULL, &r->h);
}

/* ------------------------------------------------------------------------ */
/* NOP                                                                       */

static void test_nop(gconstpointer data)
{
    Driver d = driver_of(data);
    Req r;

    if (!need_io_uring()) {
        return;
    }
    req_init(&r, 0);
    prep_calls = 0;
    add_nop(&r);
    /* prep_sqe runs synchronously; the callback only from the loop. */
    g_assert_cmpint(prep_calls, ==, 1);
    g_assert_cmpint(r.calls, ==, 0);

    if (d == DRIVE_AIO) {
        /* The NOP completes during the wait: one blocking poll runs it, and
         * a CQE handler run is progress. */
        g_assert_true(aio_poll(ctx, true));
    } else {
        wait_req(d, &r);
    }
    g_assert_cmpint(r.calls, ==, 1);
    g_assert_cmpint(r.res, ==, 0);
    /* user_data is the library's: the handler's address. */
    g_assert_cmpuint(r.user_data, ==, (uintptr_t)&r.h);

    /* Nothing is left: no second call, no progress. */
    if (d == DRIVE_AIO) {
        g_assert_false(aio_poll(ctx, false));
    } else {
        drain_glib();
    }
    g_assert_cmpint(r.calls, ==, 1);
}

/* The prep function of the other include order works the same. */
static void test_nop_other_order(void)
{
    Req r;

    if (!need_io_uring()) {
        return;
    }
    req_init(&r, 0);
    aio_add_sqe(prep_nop_other_order, NULL, &r.h);
    wait_req(DRIVE_AIO, &r);
    g_assert_cmpint(r.calls, ==, 1);
    g_assert_cmpint(r.res, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Read and write of a temporary file                                        */

typedef struct {
    int fd;
    void *buf;
    unsigned len;
    uint64_t off;
} RwArgs;

static void prep_write(struct io_uring_sqe *sqe, void *opaque)
{
    RwArgs *a = opaque;
    io_uring_prep_write(sqe, a->fd, a->buf, a->len, a->off);
}

static void prep_read(struct io_uring_sqe *sqe, void *opaque)
{
    RwArgs *a = opaque;
    io_uring_prep_read(sqe, a->fd, a->buf, a->len, a->off);
}

static int temp_file(void)
{
    char path[] = "/tmp/qaio-add-sqe-XXXXXX";
    int fd = mkstemp(path);

    g_assert_cmpint(fd, >=, 0);
    unlink(path);
    return fd;
}

static void test_file_rw(gconstpointer data)
{
    Driver d = driver_of(data);
    enum { LEN = 8192 };
    uint8_t *out = g_malloc(LEN), *in = g_malloc0(LEN), *check = g_malloc0(LEN);
    Req w, r;
    RwArgs wa, ra;
    int fd;

    if (!need_io_uring()) {
        g_free(out);
        g_free(in);
        g_free(check);
        return;
    }
    fd = temp_file();
    for (unsigned i = 0; i < LEN; i++) {
        out[i] = (uint8_t)(i * 7 + 3);
    }

    /* Write at an offset, then read it back through the ring. */
    wa = (RwArgs){ .fd = fd, .buf = out, .len = LEN, .off = 4096 };
    req_init(&w, 0);
    aio_add_sqe(prep_write, &wa, &w.h);
    wait_req(d, &w);
    g_assert_cmpint(w.calls, ==, 1);
    g_assert_cmpint(w.res, ==, LEN);
    g_assert_cmpint(pread(fd, check, LEN, 4096), ==, LEN);
    g_assert_cmpmem(check, LEN, out, LEN);

    ra = (RwArgs){ .fd = fd, .buf = in, .len = LEN, .off = 4096 };
    req_init(&r, 0);
    aio_add_sqe(prep_read, &ra, &r.h);
    wait_req(d, &r);
    g_assert_cmpint(r.calls, ==, 1);
    g_assert_cmpint(r.res, ==, LEN);
    g_assert_cmpmem(in, LEN, out, LEN);

    /* Reading past the end returns 0 bytes. */
    ra.off = 1 << 20;
    req_init(&r, 0);
    aio_add_sqe(prep_read, &ra, &r.h);
    wait_req(d, &r);
    g_assert_cmpint(r.res, ==, 0);

    close(fd);
    g_free(out);
    g_free(in);
    g_free(check);
}

/* ------------------------------------------------------------------------ */
/* A pipe read that completes only after another handler writes              */

typedef struct {
    EventNotifier e;
    int pipe_wfd;
    int calls;
} Writer;

static void writer_cb(EventNotifier *e)
{
    Writer *w = container_of(e, Writer, e);
    g_assert_true(event_notifier_test_and_clear(e));
    w->calls++;
    g_assert_cmpint(write(w->pipe_wfd, "hello", 5), ==, 5);
}

static void test_pipe_read(gconstpointer data)
{
    Driver d = driver_of(data);
    char buf[16] = "";
    int fds[2];
    Writer w = { .calls = 0 };
    RwArgs ra;
    Req r;

    if (!need_io_uring()) {
        return;
    }
    /* A blocking pipe: on an O_NONBLOCK one the read would fail at once
     * with -EAGAIN instead of waiting for data. */
    g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
    w.pipe_wfd = fds[1];
    g_assert_cmpint(event_notifier_init(&w.e, false), ==, 0);
    aio_set_event_notifier(ctx, &w.e, writer_cb, NULL, NULL);

    ra = (RwArgs){ .fd = fds[0], .buf = buf, .len = sizeof(buf) - 1, .off = (uint64_t)-1 };
    req_init(&r, 0);
    aio_add_sqe(prep_read, &ra, &r.h);

    /* Submitted, but nothing to read: it stays in flight. */
    for (int i = 0; i < 5; i++) {
        drive_iteration(d, false);
    }
    g_assert_cmpint(r.calls, ==, 0);

    /* The event notifier's handler writes to the pipe. */
    event_notifier_set(&w.e);
    wait_req(d, &r);
    g_assert_cmpint(w.calls, ==, 1);
    g_assert_cmpint(r.calls, ==, 1);
    g_assert_cmpint(r.res, ==, 5);
    g_assert_cmpstr(buf, ==, "hello");

    aio_set_event_notifier(ctx, &w.e, NULL, NULL, NULL);
    event_notifier_cleanup(&w.e);
    close(fds[0]);
    close(fds[1]);
    if (d == DRIVE_AIO) {
        drain_aio(ctx);
    } else {
        drain_glib();
    }
}

/* ------------------------------------------------------------------------ */
/* TIMEOUT                                                                   */

typedef struct {
    struct __kernel_timespec ts;
} TimeoutArgs;

static void prep_timeout(struct io_uring_sqe *sqe, void *opaque)
{
    TimeoutArgs *a = opaque;
    io_uring_prep_timeout(sqe, &a->ts, 0, 0);
}

static void test_timeout(gconstpointer data)
{
    Driver d = driver_of(data);
    /* The timespec must stay valid until the SQE is submitted. */
    TimeoutArgs a = { .ts = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 } };
    int64_t start;
    Req r;

    if (!need_io_uring()) {
        return;
    }
    req_init(&r, 0);
    start = now_ns();
    aio_add_sqe(prep_timeout, &a, &r.h);
    wait_req(d, &r);
    g_assert_cmpint(r.calls, ==, 1);
    g_assert_cmpint(r.res, ==, -ETIME);
    g_assert_cmpint(r.done_ns - start, >=, 50 * 1000 * 1000);
}

/* ------------------------------------------------------------------------ */
/* 100,000 NOPs in batches far larger than the SQ (128) and the CQ (256)     */

typedef struct {
    CqeHandler h;
    int calls;
} Counted;

static void counted_cb(CqeHandler *h)
{
    Counted *c = container_of(h, Counted, h);
    c->calls++;
    g_assert_cmpint(h->cqe.res, ==, 0);
}

static void test_many(gconstpointer data)
{
    Driver d = driver_of(data);
    const int total = test_quick() ? 10000 : 100000;
    const int batch = 2000;
    Counted *reqs;
    int done = 0;

    if (!need_io_uring()) {
        return;
    }
    reqs = g_new0(Counted, batch);
    for (int b = 0; b < total / batch; b++) {
        int calls_before = done;
        int iterations = 0;

        for (int i = 0; i < batch; i++) {
            reqs[i].h.cb = counted_cb;
            reqs[i].calls = 0;
            aio_add_sqe(prep_nop, NULL, &reqs[i].h);
        }
        /*
         * Non-blocking iterations must get them all: the ones still in the
         * SQ are submitted, and completions beyond the CQ's capacity that
         * the kernel holds in its overflow list are brought in too.
         */
        for (;;) {
            int sum = 0;
            for (int i = 0; i < batch; i++) {
                sum += reqs[i].calls;
            }
            if (sum == batch) {
                break;
            }
            drive_iteration(d, false);
            iterations++;
            g_assert_cmpint(iterations, <=, 10);
        }
        for (int i = 0; i < batch; i++) {
            g_assert_cmpint(reqs[i].calls, ==, 1);
        }
        done = calls_before + batch;
    }
    g_assert_cmpint(done, ==, total);
    /* Nothing is left over. */
    if (d == DRIVE_AIO) {
        g_assert_false(aio_poll(ctx, false));
    } else {
        drain_glib();
    }
    for (int i = 0; i < batch; i++) {
        g_assert_cmpint(reqs[i].calls, ==, 1);
    }
    g_free(reqs);
}

/* ------------------------------------------------------------------------ */
/* Requests issued from CQE callbacks: a 1,000-deep chain                    */

enum { CHAIN_DEPTH = 1000 };

typedef struct {
    CqeHandler h;
    int depth;
    int max_depth_seen;
} Chain;

static void chain_cb(CqeHandler *h)
{
    Chain *c = container_of(h, Chain, h);
    g_assert_cmpint(h->cqe.res, ==, 0);
    c->depth++;
    if (c->depth < CHAIN_DEPTH) {
        /* The handler is reused for the next request: it left every queue
         * before this callback ran. */
        aio_add_sqe(prep_nop, NULL, &c->h);
    }
}

static void test_chain(gconstpointer data)
{
    Driver d = driver_of(data);
    Chain c = { .h.cb = chain_cb, .depth = 0 };
    int iterations = 0;

    if (!need_io_uring()) {
        return;
    }
    aio_add_sqe(prep_nop, NULL, &c.h);
    while (c.depth < CHAIN_DEPTH) {
        g_assert_true(drive_iteration(d, true));
        iterations++;
    }
    g_assert_cmpint(c.depth, ==, CHAIN_DEPTH);
    /* One link per iteration: a request added by a callback is submitted at
     * the next wait. */
    g_assert_cmpint(iterations, ==, CHAIN_DEPTH);
    if (d == DRIVE_AIO) {
        g_assert_false(aio_poll(ctx, false));
    } else {
        drain_glib();
    }
    g_assert_cmpint(c.depth, ==, CHAIN_DEPTH);
}

/* ------------------------------------------------------------------------ */
/* Nested aio_poll inside a CQE callback                                     */

static Req nested_reqs[3];

static void nested_cb(CqeHandler *h)
{
    req_cb(h);
    if (h == &nested_reqs[0].h) {
        /* The others are queued behind us; the nested loop runs them, and
         * the outer one must not run them again. */
        aio_poll(ctx, false);
        g_assert_cmpint(nested_reqs[1].calls, ==, 1);
        g_assert_cmpint(nested_reqs[2].calls, ==, 1);
    }
}

static void test_nested_poll_in_callback(void)
{
    if (!need_io_uring()) {
        return;
    }
    log_reset();
    for (int i = 0; i < 3; i++) {
        req_init(&nested_reqs[i], 'a' + i);
        nested_reqs[i].h.cb = nested_cb;
        add_nop(&nested_reqs[i]);
    }
    while (nested_reqs[0].calls == 0) {
        aio_poll(ctx, true);
    }
    drain_aio(ctx);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(nested_reqs[i].calls, ==, 1);
    }
    /* FIFO: completion order, whichever loop ran them. */
    g_assert_cmpstr(evlog, ==, "abc");
}

/* ------------------------------------------------------------------------ */
/* aio_add_sqe inside prep_sqe                                               */

#define NESTED_ADDS 3
static Req prep_nested_reqs[1 + NESTED_ADDS];

/* The outer prep adds more requests while its own SQE is half made (the
 * library prepares SQEs in place in the ring): each gets its own zeroed
 * SQE, and the half-made one is never handed to the kernel early. */
static void prep_nop_adding(struct io_uring_sqe *sqe, void *opaque)
{
    (void)opaque;
    g_assert_cmpuint(sqe->opcode, ==, 0);
    sqe->opcode = 0xff; /* not an opcode: must not reach the kernel */
    for (int i = 1; i <= NESTED_ADDS; i++) {
        add_nop(&prep_nested_reqs[i]);
    }
    io_uring_prep_nop(sqe);
}

static void test_add_in_prep(gconstpointer data)
{
    Driver d = driver_of(data);

    if (!need_io_uring()) {
        return;
    }
    log_reset();
    for (int i = 0; i <= NESTED_ADDS; i++) {
        req_init(&prep_nested_reqs[i], 'a' + i);
    }
    aio_add_sqe(prep_nop_adding, NULL, &prep_nested_reqs[0].h);
    for (int i = 0; i <= NESTED_ADDS; i++) {
        wait_req(d, &prep_nested_reqs[i]);
    }
    if (d == DRIVE_AIO) {
        drain_aio(ctx);
    } else {
        drain_glib();
    }
    for (int i = 0; i <= NESTED_ADDS; i++) {
        g_assert_cmpint(prep_nested_reqs[i].calls, ==, 1);
        g_assert_cmpint(prep_nested_reqs[i].res, ==, 0);
    }
    /* NOPs complete in ring order: the nested ones took the slots after
     * the outer one. */
    g_assert_cmpstr(evlog, ==, "abcd");
}

/* ------------------------------------------------------------------------ */
/* Order inside one iteration: CQE handlers, BHs, fd handlers, timers        */

typedef struct {
    EventNotifier e;
} OrderFd;

static void order_fd_cb(EventNotifier *e)
{
    g_assert_true(event_notifier_test_and_clear(e));
    log_add('F');
}

static void order_bh_cb(void *opaque)
{
    (void)opaque;
    log_add('B');
}

static void order_timer_cb(void *opaque)
{
    (void)opaque;
    log_add('T');
}

static void test_order(gconstpointer data)
{
    Driver d = driver_of(data);
    OrderFd f;
    QEMUBH *bh;
    QEMUTimer t;
    Req r;

    if (!need_io_uring()) {
        return;
    }
    g_assert_cmpint(event_notifier_init(&f.e, false), ==, 0);
    aio_set_event_notifier(ctx, &f.e, order_fd_cb, NULL, NULL);
    bh = aio_bh_new(ctx, order_bh_cb, NULL);
    aio_timer_init(ctx, &t, QEMU_CLOCK_REALTIME, SCALE_NS, order_timer_cb, NULL);
    /* Let the fd handler's poll request reach the kernel. */
    if (d == DRIVE_AIO) {
        drain_aio(ctx);
    } else {
        drain_glib();
    }

    log_reset();
    req_init(&r, 'C');
    add_nop(&r);
    qemu_bh_schedule(bh);
    event_notifier_set(&f.e);
    timer_mod(&t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - 1);

    /* One iteration runs all four. */
    g_assert_true(drive_iteration(d, false));
    if (d == DRIVE_AIO) {
        /* aio_poll: CQE handlers, then BHs, fd handlers, timers. */
        g_assert_cmpstr(evlog, ==, "CBFT");
    } else {
        /* glib (aio_dispatch): BHs first, then CQE handlers. */
        g_assert_cmpstr(evlog, ==, "BCFT");
    }

    qemu_bh_delete(bh);
    aio_set_event_notifier(ctx, &f.e, NULL, NULL, NULL);
    event_notifier_cleanup(&f.e);
    if (d == DRIVE_AIO) {
        drain_aio(ctx);
    } else {
        drain_glib();
    }
    g_assert_cmpstr(evlog, ==, d == DRIVE_AIO ? "CBFT" : "BCFT");
}

/* ------------------------------------------------------------------------ */
/* A request the kernel rejects delivers its negative res                    */

static void prep_bad_fd_read(struct io_uring_sqe *sqe, void *opaque)
{
    static char buf[8];
    (void)opaque;
    io_uring_prep_read(sqe, -1, buf, sizeof(buf), 0);
}

static void prep_bad_opcode(struct io_uring_sqe *sqe, void *opaque)
{
    (void)opaque;
    io_uring_prep_nop(sqe);
    sqe->opcode = 250;
}

static void test_rejected(gconstpointer data)
{
    Driver d = driver_of(data);
    Req bad_fd, bad_op, good;

    if (!need_io_uring()) {
        return;
    }
    req_init(&bad_fd, 0);
    req_init(&bad_op, 0);
    req_init(&good, 0);
    aio_add_sqe(prep_bad_fd_read, NULL, &bad_fd.h);
    aio_add_sqe(prep_bad_opcode, NULL, &bad_op.h);
    /* A request after the rejected ones is not held back. */
    add_nop(&good);
    while (bad_fd.calls == 0 || bad_op.calls == 0 || good.calls == 0) {
        drive_iteration(d, true);
    }
    g_assert_cmpint(bad_fd.calls, ==, 1);
    g_assert_cmpint(bad_fd.res, ==, -EBADF);
    g_assert_cmpint(bad_op.calls, ==, 1);
    g_assert_cmpint(bad_op.res, ==, -EINVAL);
    g_assert_cmpint(good.calls, ==, 1);
    g_assert_cmpint(good.res, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Destroying a context with requests in flight                              */

/* Must never run. */
static void unreached_cqe_cb(CqeHandler *h)
{
    (void)h;
    g_assert_not_reached();
}

typedef struct {
    CqeHandler read;      /* on an empty pipe: never completes */
    CqeHandler timeout;   /* 10 s */
    CqeHandler queued[300]; /* added after the last iteration: never submitted
                             * (more than the SQ holds, so some were) */
    char buf[16];
    TimeoutArgs ts;
    RwArgs ra;
} InFlight;

/* Adds requests that cannot complete before the context goes away to the
 * calling thread's current context, which must run on io_uring. */
static void add_in_flight(AioContext *c, InFlight *f, int pipe_rfd)
{
    f->read.cb = unreached_cqe_cb;
    f->timeout.cb = unreached_cqe_cb;
    f->ra = (RwArgs){ .fd = pipe_rfd, .buf = f->buf, .len = sizeof(f->buf), .off = (uint64_t)-1 };
    f->ts.ts.tv_sec = 10;
    aio_add_sqe(prep_read, &f->ra, &f->read);
    aio_add_sqe(prep_timeout, &f->ts, &f->timeout);
    /* Submit them (nothing completes). */
    for (int i = 0; i < 3; i++) {
        g_assert_false(aio_poll(c, false));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(f->queued); i++) {
        f->queued[i].cb = unreached_cqe_cb;
        aio_add_sqe(prep_nop, NULL, &f->queued[i]);
    }
}

/* The read that was in flight on the pipe was cancelled with the ring: data
 * written now stays in the pipe. */
static void expect_read_cancelled(int fds[2])
{
    char c = 0;

    g_assert_cmpint(write(fds[1], "x", 1), ==, 1);
    g_assert_cmpint(fcntl(fds[0], F_SETFL, O_NONBLOCK), ==, 0);
    g_assert_cmpint(read(fds[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'x');
}

static void test_destroy_in_flight(void)
{
    AioContext *c;
    InFlight *f;
    int fds[2];

    if (!need_io_uring()) {
        return;
    }
    g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
    c = private_ctx_new();
    g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "io_uring");
    /* Heap memory freed right after the context: a callback or a write by
     * the library after finalize would show up under valgrind or ASan. */
    f = g_new0(InFlight, 1);
    add_in_flight(c, f, fds[0]);
    private_ctx_free(c);
    g_free(f);
    expect_read_cancelled(fds);
    close(fds[0]);
    close(fds[1]);
}

/* The same with the context run by a helper thread and finalized by the
 * main thread. */
typedef struct {
    AioContext *c;
    InFlight *f;
    int pipe_rfd;
} DestroyThread;

static gpointer destroy_thread_fn(gpointer opaque)
{
    DestroyThread *t = opaque;

    qemu_set_current_aio_context(t->c);
    add_in_flight(t->c, t->f, t->pipe_rfd);
    return NULL;
}

static void test_destroy_in_flight_other_thread(void)
{
    DestroyThread t;
    int fds[2];

    if (!need_io_uring()) {
        return;
    }
    g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
    t.c = aio_context_new(&error_abort);
    t.f = g_new0(InFlight, 1);
    t.pipe_rfd = fds[0];
    g_thread_join(g_thread_new("ctx-thread", destroy_thread_fn, &t));
    aio_context_unref(t.c);
    g_free(t.f);
    expect_read_cancelled(fds);
    close(fds[0]);
    close(fds[1]);
}

/* ------------------------------------------------------------------------ */
/* Misuse aborts with "qaio: aio_add_sqe: <rule>"                            */

#define SUBPROCESS_TIMEOUT_US (30 * G_USEC_PER_SEC)

static void no_core_dumps(void)
{
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
}

/* A private context on the monitor `name`, current in this thread. */
static AioContext *private_ctx_on(const char *name)
{
    const char *saved = getenv("QAIO_FDMON");
    char *copy = saved ? g_strdup(saved) : NULL;
    AioContext *c;

    g_assert_cmpint(setenv("QAIO_FDMON", name, 1), ==, 0);
    c = private_ctx_new();
    if (copy) {
        setenv("QAIO_FDMON", copy, 1);
    } else {
        unsetenv("QAIO_FDMON");
    }
    g_free(copy);
    return c;
}

/* io_uring may be unavailable in this suite's environment. */
static bool io_uring_available(void)
{
    const char *saved = getenv("QAIO_FDMON");
    char *copy = saved ? g_strdup(saved) : NULL;
    Error *err = NULL;
    AioContext *c;

    setenv("QAIO_FDMON", "io_uring", 1);
    c = aio_context_new(&err);
    if (copy) {
        setenv("QAIO_FDMON", copy, 1);
    } else {
        unsetenv("QAIO_FDMON");
    }
    g_free(copy);
    if (!c) {
        g_assert_nonnull(strstr(error_get_pretty(err), "io_uring"));
        error_free(err);
        return false;
    }
    aio_context_unref(c);
    return true;
}

static void test_misuse_null_prep(void)
{
    if (g_test_subprocess()) {
        Req r;

        no_core_dumps();
        private_ctx_on("io_uring");
        req_init(&r, 0);
        aio_add_sqe(NULL, NULL, &r.h);
        return;
    }
    if (!io_uring_available()) {
        g_test_skip("io_uring is not available");
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_add_sqe: prep_sqe must not be NULL*");
}

static void test_misuse_null_handler(void)
{
    if (g_test_subprocess()) {
        no_core_dumps();
        private_ctx_on("io_uring");
        aio_add_sqe(prep_nop, NULL, NULL);
        return;
    }
    if (!io_uring_available()) {
        g_test_skip("io_uring is not available");
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_add_sqe: cqe_handler must not be NULL*");
}

/* On poll(2) or epoll: aio_has_io_uring() is false and aio_add_sqe aborts
 * (QEMU would call a NULL function pointer). */
static void test_misuse_no_io_uring(gconstpointer data)
{
    const char *monitor = data;

    if (g_test_subprocess()) {
        AioContext *c;
        Req r;

        no_core_dumps();
        c = private_ctx_on(monitor);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, monitor);
        g_assert_false(aio_has_io_uring());
        req_init(&r, 0);
        aio_add_sqe(prep_nop, NULL, &r.h);
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_add_sqe: requires aio_has_io_uring()*");
}

/* A thread without a current context. */
static gpointer add_without_ctx_fn(gpointer opaque)
{
    Req *r = opaque;
    aio_add_sqe(prep_nop, NULL, &r->h);
    return NULL;
}

static void test_misuse_no_current_context(void)
{
    if (g_test_subprocess()) {
        Req r;

        no_core_dumps();
        req_init(&r, 0);
        g_thread_join(g_thread_new("no-ctx", add_without_ctx_fn, &r));
        return;
    }
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_add_sqe: *no current AioContext*");
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    test_init(&argc, &argv);
    test_watchdog(120, "test-add-sqe");

    add_test_both_drivers("/add-sqe/nop", test_nop);
    g_test_add_func("/add-sqe/nop/other-include-order", test_nop_other_order);
    add_test_both_drivers("/add-sqe/file-rw", test_file_rw);
    add_test_both_drivers("/add-sqe/pipe-read-after-handler-write", test_pipe_read);
    add_test_both_drivers("/add-sqe/timeout", test_timeout);
    add_test_both_drivers("/add-sqe/many", test_many);
    add_test_both_drivers("/add-sqe/chain", test_chain);
    g_test_add_func("/add-sqe/nested-poll-in-callback", test_nested_poll_in_callback);
    add_test_both_drivers("/add-sqe/add-in-prep", test_add_in_prep);
    add_test_both_drivers("/add-sqe/order", test_order);
    add_test_both_drivers("/add-sqe/rejected", test_rejected);
    g_test_add_func("/add-sqe/destroy-in-flight", test_destroy_in_flight);
    g_test_add_func("/add-sqe/destroy-in-flight-other-thread",
                    test_destroy_in_flight_other_thread);
    g_test_add_func("/add-sqe/misuse/null-prep", test_misuse_null_prep);
    g_test_add_func("/add-sqe/misuse/null-handler", test_misuse_null_handler);
    g_test_add_data_func("/add-sqe/misuse/no-io-uring/poll", "poll", test_misuse_no_io_uring);
    g_test_add_data_func("/add-sqe/misuse/no-io-uring/epoll", "epoll", test_misuse_no_io_uring);
    g_test_add_func("/add-sqe/misuse/no-current-context", test_misuse_no_current_context);
    return g_test_run();
}
