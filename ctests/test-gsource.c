/*
 * The AioContext GSource beyond the /aio-gsource/ parity cases: the
 * iothread pattern on a GMainLoop, mixed aio_poll/glib driving of one
 * context, handler changes while attached, timers and wake-ups under glib,
 * priorities, teardown orders, glib misuse, and what each fd monitor hands
 * to glib (parity-scenarios.md 1.2, 1.4, section 3 B4, F1-F10, J, K;
 * aio-behaviour.md sections 2.3, 4, 9.2-9.4, 10, 14).
 *
 * Tests that need a GSource glib polls for nothing else use a private
 * context attached to a private GMainContext ("pair"); the others use the
 * fixture's context on glib's default context, like QEMU's main loop.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

#define MS (1000 * 1000)

static gboolean iterate(gboolean blocking)
{
    return g_main_context_iteration(NULL, blocking);
}

/* drain_glib() for any GMainContext; a drain that does not end fails
 * instead of spinning until the watchdog. */
static int drain_gctx(GMainContext *g)
{
    int n = 0;
    while (g_main_context_iteration(g, FALSE)) {
        g_assert_cmpint(++n, <, 1000);
    }
    return n;
}

/* Idle g settles: a non-blocking iteration returns FALSE within a few
 * calls (a source that always claims work would make drain loops spin). */
static void assert_gctx_settles(GMainContext *g)
{
    int calls = 0;

    while (g_main_context_iteration(g, FALSE)) {
        g_assert_cmpint(++calls, <, 10);
    }
}

/* What /proc says fd is ("anon_inode:[eventfd]", "pipe:[...]", ...). */
static void fd_kind(int fd, char *buf, size_t size)
{
    char path[64];
    ssize_t len;

    g_snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    len = readlink(path, buf, size - 1);
    g_assert_cmpint(len, >, 0);
    buf[len] = '\0';
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void no_core_dumps(void)
{
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
}

/* Dispose hook on a context's GSource: glib calls it right before the last
 * reference goes, i.e. right before the context is finalized. */
static int disposed;
static uintptr_t last_disposed;

static void count_dispose(GSource *source)
{
    last_disposed = (uintptr_t)source;
    g_atomic_int_inc(&disposed);
}

/* A private context, current in this thread, attached to its own
 * GMainContext (only this source is attached there). */
typedef struct {
    AioContext *c;
    GMainContext *g;
} Pair;

static void pair_new(Pair *p)
{
    GSource *src;

    p->c = private_ctx_new();
    p->g = g_main_context_new();
    src = aio_get_g_source(p->c);
    g_source_set_dispose_function(src, count_dispose);
    g_assert_cmpuint(g_source_attach(src, p->g), >, 0);
    g_source_unref(src);
    drain_gctx(p->g);
    g_assert_false(g_main_context_iteration(p->g, FALSE));
}

/* Tears a pair down in the iothread order: the GMainContext first (it
 * destroys the source but the context survives), then the context. */
static void pair_free(Pair *p)
{
    int d0 = g_atomic_int_get(&disposed);

    g_main_context_unref(p->g);
    g_assert_true(g_source_is_destroyed((GSource *)p->c));
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);
    private_ctx_free(p->c);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
    g_assert_true(last_disposed == (uintptr_t)p->c);
}

/* An EventNotifier handler record: counts and drains. */
typedef struct {
    EventNotifier e; /* first: the handler gets &e */
    int n;
} Ev;

static void ev_cb(EventNotifier *e)
{
    Ev *r = (Ev *)e;
    g_assert_true(event_notifier_test_and_clear(e));
    r->n++;
}

static void ev_init(Ev *r, AioContext *c)
{
    r->n = 0;
    g_assert_cmpint(event_notifier_init(&r->e, false), ==, 0);
    aio_set_event_notifier(c, &r->e, ev_cb, NULL, NULL);
}

static void ev_fini(Ev *r, AioContext *c)
{
    aio_set_event_notifier(c, &r->e, NULL, NULL, NULL);
    event_notifier_cleanup(&r->e);
}

/* A pipe whose read handler takes exactly one byte per call. */
typedef struct {
    int fds[2];
    int n;
} PipeRec;

static void pipe_one_cb(void *opaque)
{
    PipeRec *p = opaque;
    char ch;
    g_assert_cmpint(read(p->fds[0], &ch, 1), ==, 1);
    p->n++;
}

static void pipe_init(PipeRec *p, AioContext *c)
{
    p->n = 0;
    test_pipe(p->fds);
    aio_set_fd_handler(c, p->fds[0], pipe_one_cb, NULL, NULL, NULL, p);
}

static void pipe_fini(PipeRec *p, AioContext *c)
{
    aio_set_fd_handler(c, p->fds[0], NULL, NULL, NULL, NULL, NULL);
    close(p->fds[0]);
    close(p->fds[1]);
}

static void pipe_put(PipeRec *p, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        test_write_byte(p->fds[1]);
    }
}

/* A counting timer that records when it fired. */
typedef struct {
    QEMUTimer t;
    int n;
    int64_t fired_ns;
} TRec;

static void trec_cb(void *opaque)
{
    TRec *r = opaque;
    r->fired_ns = now_ns();
    r->n++;
}

static void trec_init(TRec *r, AioContext *c)
{
    r->n = 0;
    r->fired_ns = 0;
    aio_timer_init(c, &r->t, QEMU_CLOCK_REALTIME, SCALE_NS, trec_cb, r);
}

/*
 * A poll function for a GMainContext that tells another thread when glib
 * is about to sleep (a poll with a non-zero timeout) and with which
 * timeout. The other thread acts only then, so it is sure that the
 * AioContext's prepare has run (notify_me bit 0 is set): that is the case
 * B4 says must wake glib.
 */
static gint hook_in_poll;
static gint hook_timeout;
static gint hook_blocking_polls;
static gint64 hook_enter_ns; /* REALTIME clock when the last blocking poll began */

static gint hook_poll(GPollFD *fds, guint nfds, gint timeout)
{
    gint r;

    if (timeout != 0) {
        hook_enter_ns = now_ns();
        g_atomic_int_set(&hook_timeout, timeout);
        g_atomic_int_inc(&hook_blocking_polls);
        g_atomic_int_set(&hook_in_poll, 1);
    }
    r = g_poll(fds, nfds, timeout);
    g_atomic_int_set(&hook_in_poll, 0);
    return r;
}

static void hook_install(GMainContext *g)
{
    g_atomic_int_set(&hook_in_poll, 0);
    g_atomic_int_set(&hook_timeout, 0);
    g_atomic_int_set(&hook_blocking_polls, 0);
    g_main_context_set_poll_func(g, hook_poll);
}

static void hook_remove(GMainContext *g)
{
    g_main_context_set_poll_func(g, NULL);
}

/* The timeout of the blocking poll a waker thread interrupted (the waker
 * records it before it acts). */
static gint first_blocking_timeout;

static void remember_first_timeout(void)
{
    first_blocking_timeout = g_atomic_int_get(&hook_timeout);
}

/* Waits until the iterating thread is inside a blocking glib poll, then a
 * little longer so that it really sleeps in poll(2). */
static void hook_wait_sleeping(void)
{
    while (!g_atomic_int_get(&hook_in_poll)) {
        g_usleep(1000);
    }
    g_usleep(10 * 1000);
}

/*
 * The fds glib would poll for the sources of g right now (one
 * prepare/query/check cycle without polling). g must be idle: nothing
 * ready, so every poll record is included and the timeout is -1.
 */
static int query_fds(GMainContext *g, GPollFD *fds, int max)
{
    gint prio, timeout = 0;
    int n;

    g_assert_true(g_main_context_acquire(g));
    g_assert_false(g_main_context_prepare(g, &prio));
    n = g_main_context_query(g, prio, &timeout, fds, max);
    g_assert_cmpint(n, <=, max);
    g_assert_cmpint(timeout, ==, -1);
    for (int i = 0; i < n; i++) {
        fds[i].revents = 0;
    }
    g_assert_false(g_main_context_check(g, prio, fds, n));
    g_main_context_release(g);
    return n;
}

/*
 * Asserts exactly which fds glib polls for p's GSource (aio-behaviour.md
 * 9.2-9.4, parity-scenarios.md 3 L). poll(2): one GPollFD per handler,
 * the context's own notifier included, plus glib's wakeup eventfd. epoll
 * and io_uring: only the epoll fd or the ring fd, plus glib's wakeup fd.
 */
static void assert_glib_fds(Pair *p, const int *user_fds, int n_user)
{
    GPollFD fds[256];
    const char *mon = qaio_context_fdmon_name(p->c);
    char kind[128];
    int n = query_fds(p->g, fds, G_N_ELEMENTS(fds));
    int eventfds = 0, monitor_fds = 0;

    for (int i = 0; i < n_user; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++) {
            seen += fds[j].fd == user_fds[i];
        }
        g_assert_cmpint(seen, ==, strcmp(mon, "poll") == 0 ? 1 : 0);
    }
    for (int j = 0; j < n; j++) {
        bool user = false;
        for (int i = 0; i < n_user; i++) {
            user |= fds[j].fd == user_fds[i];
        }
        if (user) {
            continue;
        }
        fd_kind(fds[j].fd, kind, sizeof(kind));
        if (strcmp(kind, "anon_inode:[eventfd]") == 0) {
            eventfds++;
        } else if (strcmp(kind, "anon_inode:[eventpoll]") == 0 ||
                   strcmp(kind, "anon_inode:[io_uring]") == 0) {
            monitor_fds++;
            g_assert_cmpstr(kind, ==, strcmp(mon, "epoll") == 0 ?
                            "anon_inode:[eventpoll]" : "anon_inode:[io_uring]");
        } else {
            g_error("glib polls an unexpected fd %d (%s)", fds[j].fd, kind);
        }
    }
    if (strcmp(mon, "poll") == 0) {
        /* + the context's notifier + glib's wakeup fd */
        g_assert_cmpint(n, ==, n_user + 2);
        g_assert_cmpint(eventfds, ==, 2);
        g_assert_cmpint(monitor_fds, ==, 0);
    } else {
        /* the epoll fd or ring fd + glib's wakeup fd */
        g_assert_cmpint(n, ==, 2);
        g_assert_cmpint(eventfds, ==, 1);
        g_assert_cmpint(monitor_fds, ==, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* The iothread pattern on a GMainLoop (issue 4 item 4; parity 1.2, 1.4)    */

typedef struct {
    EventNotifier e; /* first: the notifier handler finds the record */
    AioContext *c;
    GMainContext *g;
    GMainLoop *loop;
    GThread *thread;
    pthread_t self;
    GMutex lock;
    GCond cond;
    bool ready;
    int bh, oneshot, pipe_reads, ev_reads, timer_runs, markers, quits;
    int wrong_thread;
    int64_t timer_fired_ns;
    int pipe[2];
    QEMUTimer timer;
} GlibIoThread;

static void iot_note(GlibIoThread *t, int *field)
{
    g_mutex_lock(&t->lock);
    if (!pthread_equal(pthread_self(), t->self)) {
        t->wrong_thread++;
    }
    (*field)++;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
}

/* Waits until *field reaches value (from the iothread) and checks it is
 * exactly value. */
static void iot_wait(GlibIoThread *t, int *field, int value)
{
    gint64 deadline = g_get_monotonic_time() +
                      (test_quick() ? 100 : 10) * G_USEC_PER_SEC;
    int v;

    g_mutex_lock(&t->lock);
    while (*field < value && g_cond_wait_until(&t->cond, &t->lock, deadline)) {
        /* wait */
    }
    v = *field;
    g_mutex_unlock(&t->lock);
    g_assert_cmpint(v, ==, value);
}

static void iot_bh_cb(void *opaque)
{
    GlibIoThread *t = opaque;
    iot_note(t, &t->bh);
}

static void iot_oneshot_cb(void *opaque)
{
    GlibIoThread *t = opaque;
    iot_note(t, &t->oneshot);
}

static void iot_marker_cb(void *opaque)
{
    GlibIoThread *t = opaque;
    iot_note(t, &t->markers);
}

static void iot_pipe_cb(void *opaque)
{
    GlibIoThread *t = opaque;
    char ch;
    g_assert_cmpint(read(t->pipe[0], &ch, 1), ==, 1);
    iot_note(t, &t->pipe_reads);
}

static void iot_ev_cb(EventNotifier *e)
{
    GlibIoThread *t = (GlibIoThread *)e;
    g_assert_true(event_notifier_test_and_clear(e));
    iot_note(t, &t->ev_reads);
}

static void iot_timer_cb(void *opaque)
{
    GlibIoThread *t = opaque;
    int64_t now = now_ns();

    g_mutex_lock(&t->lock);
    t->timer_fired_ns = now;
    g_mutex_unlock(&t->lock);
    iot_note(t, &t->timer_runs);
}

/* The one-shot BH that stops the iothread. */
static void iot_quit_cb(void *opaque)
{
    GlibIoThread *t = opaque;
    iot_note(t, &t->quits);
    g_main_loop_quit(t->loop);
}

static gpointer glib_iothread_fn(gpointer opaque)
{
    GlibIoThread *t = opaque;
    GSource *src;

    qemu_set_current_aio_context(t->c);
    t->g = g_main_context_new();
    src = aio_get_g_source(t->c);
    g_assert_cmpuint(g_source_attach(src, t->g), >, 0);
    g_source_unref(src);
    g_main_context_push_thread_default(t->g);
    t->loop = g_main_loop_new(t->g, FALSE);

    g_mutex_lock(&t->lock);
    t->self = pthread_self();
    t->ready = true;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);

    /* glib, not aio_poll, drives the context here. */
    g_main_loop_run(t->loop);

    g_main_loop_unref(t->loop);
    t->loop = NULL;
    g_main_context_pop_thread_default(t->g);
    return NULL;
}

static void test_iothread_glib_loop(void)
{
    GlibIoThread t;
    const int rounds = test_quick() ? 10 : 50;
    int fds_before, d0;
    QEMUBH *bh;

    test_watchdog(30, "/aio-gsource/iothread/glib-loop");
    memset(&t, 0, sizeof(t));
    fds_before = test_count_open_fds();

    /* Created here, made current and attached in the iothread. */
    t.c = aio_context_new(&error_abort);
    g_source_set_dispose_function((GSource *)t.c, count_dispose);
    d0 = g_atomic_int_get(&disposed);
    g_mutex_init(&t.lock);
    g_cond_init(&t.cond);
    t.thread = g_thread_new("glib-iothread", glib_iothread_fn, &t);
    g_mutex_lock(&t.lock);
    while (!t.ready) {
        g_cond_wait(&t.cond, &t.lock);
    }
    g_mutex_unlock(&t.lock);
    g_assert_false(pthread_equal(t.self, pthread_self()));

    /* BHs scheduled from here run there, once per schedule. */
    bh = aio_bh_new(t.c, iot_bh_cb, &t);
    for (int i = 1; i <= rounds; i++) {
        qemu_bh_schedule(bh);
        iot_wait(&t, &t.bh, i);
    }
    qemu_bh_delete(bh);

    /* A burst of one-shots: each runs exactly once. */
    for (int i = 0; i < rounds; i++) {
        aio_bh_schedule_oneshot(t.c, iot_oneshot_cb, &t);
    }
    iot_wait(&t, &t.oneshot, rounds);

    /* An fd handler registered from here while glib sleeps there. */
    test_pipe(t.pipe);
    aio_set_fd_handler(t.c, t.pipe[0], iot_pipe_cb, NULL, NULL, NULL, &t);
    for (int i = 1; i <= rounds; i++) {
        test_write_byte(t.pipe[1]);
        iot_wait(&t, &t.pipe_reads, i);
    }

    /* An event notifier. */
    g_assert_cmpint(event_notifier_init(&t.e, false), ==, 0);
    aio_set_event_notifier(t.c, &t.e, iot_ev_cb, NULL, NULL);
    for (int i = 1; i <= rounds; i++) {
        event_notifier_set(&t.e);
        iot_wait(&t, &t.ev_reads, i);
    }

    /* A timer armed from here: glib there wakes for the new deadline and
     * never fires it early. */
    aio_timer_init(t.c, &t.timer, QEMU_CLOCK_REALTIME, SCALE_NS, iot_timer_cb, &t);
    for (int i = 1; i <= 3; i++) {
        int64_t expiry = now_ns() + 20 * MS;
        int64_t fired;

        timer_mod(&t.timer, expiry);
        iot_wait(&t, &t.timer_runs, i);
        g_mutex_lock(&t.lock);
        fired = t.timer_fired_ns;
        g_mutex_unlock(&t.lock);
        g_assert_cmpint(fired, >=, expiry);
    }
    g_assert_false(timer_pending(&t.timer));

    /* Unregistered from here: their fds are no longer served. Two markers
     * make sure the iothread went through whole iterations afterwards. */
    aio_set_fd_handler(t.c, t.pipe[0], NULL, NULL, NULL, NULL, NULL);
    aio_set_event_notifier(t.c, &t.e, NULL, NULL, NULL);
    test_write_byte(t.pipe[1]);
    event_notifier_set(&t.e);
    aio_bh_schedule_oneshot(t.c, iot_marker_cb, &t);
    iot_wait(&t, &t.markers, 1);
    aio_bh_schedule_oneshot(t.c, iot_marker_cb, &t);
    iot_wait(&t, &t.markers, 2);

    /* Stop: a one-shot BH quits the GMainLoop. */
    aio_bh_schedule_oneshot(t.c, iot_quit_cb, &t);
    g_thread_join(t.thread);

    g_assert_cmpint(t.wrong_thread, ==, 0);
    g_assert_cmpint(t.bh, ==, rounds);
    g_assert_cmpint(t.oneshot, ==, rounds);
    g_assert_cmpint(t.pipe_reads, ==, rounds);
    g_assert_cmpint(t.ev_reads, ==, rounds);
    g_assert_cmpint(t.timer_runs, ==, 3);
    g_assert_cmpint(t.markers, ==, 2);
    g_assert_cmpint(t.quits, ==, 1);
    g_assert_cmpint(test_drain_fd(t.pipe[0]), ==, 1);
    g_assert_true(event_notifier_test_and_clear(&t.e));
    close(t.pipe[0]);
    close(t.pipe[1]);
    event_notifier_cleanup(&t.e);

    /* Finalize through g_main_context_unref, then aio_context_unref. */
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);
    g_main_context_unref(t.g);
    g_assert_true(g_source_is_destroyed((GSource *)t.c));
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);
    aio_context_unref(t.c);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
    g_assert_true(last_disposed == (uintptr_t)t.c);
    /* Everything the context and the GMainContext opened is closed. */
    g_assert_cmpint(test_count_open_fds(), ==, fds_before);

    g_mutex_clear(&t.lock);
    g_cond_clear(&t.cond);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* F5: one context driven alternately by aio_poll and glib                  */

static int mx_bh_n, mx_bh2_n;
static QEMUBH *mx_bh, *mx_bh2;
static Ev mx_ev;
static PipeRec mx_pipe;
static TRec mx_timer;

static void mx_bh2_cb(void *opaque)
{
    (void)opaque;
    mx_bh2_n++;
}

/* Schedules bh2 from inside a callback: it runs in the next dispatch,
 * whichever driver runs it. */
static void mx_chain_cb(void *opaque)
{
    (void)opaque;
    mx_bh_n++;
    qemu_bh_schedule(mx_bh2);
}

static void mx_setup(QEMUBHFunc *bh_cb)
{
    drain_glib();
    drain_aio(ctx);
    mx_bh_n = mx_bh2_n = 0;
    mx_bh = aio_bh_new(ctx, bh_cb, &mx_bh_n);
    mx_bh2 = aio_bh_new(ctx, mx_bh2_cb, NULL);
    ev_init(&mx_ev, ctx);
    pipe_init(&mx_pipe, ctx);
    trec_init(&mx_timer, ctx);
    /* The registrations' notifications are not progress on either side. */
    g_assert_false(aio_poll(ctx, false));
    drain_glib();
    g_assert_false(iterate(FALSE));
}

static void mx_teardown(void)
{
    timer_del(&mx_timer.t);
    pipe_fini(&mx_pipe, ctx);
    ev_fini(&mx_ev, ctx);
    qemu_bh_delete(mx_bh);
    qemu_bh_delete(mx_bh2);
    g_assert_false(aio_poll(ctx, false));
    drain_glib();
    g_assert_false(iterate(FALSE));
}

static void mx_expect(int bh, int ev, int pipe, int timer)
{
    g_assert_cmpint(mx_bh_n, ==, bh);
    g_assert_cmpint(mx_ev.n, ==, ev);
    g_assert_cmpint(mx_pipe.n, ==, pipe);
    g_assert_cmpint(mx_timer.n, ==, timer);
}

/* Both drivers have nothing left. */
static void mx_quiet(void)
{
    g_assert_false(aio_poll(ctx, false));
    g_assert_false(iterate(FALSE));
    g_assert_false(aio_poll(ctx, false));
}

static void expire_now(TRec *r)
{
    timer_mod_ns(&r->t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
}

static void test_mixed_steps(void)
{
    test_watchdog(10, "/aio-gsource/mixed/steps");
    mx_setup(count_cb);

    /* A BH: whichever driver comes first runs it, the other finds nothing. */
    qemu_bh_schedule(mx_bh);
    g_assert_true(aio_poll(ctx, false));
    mx_expect(1, 0, 0, 0);
    g_assert_false(iterate(FALSE));
    qemu_bh_schedule(mx_bh);
    g_assert_true(iterate(FALSE));
    mx_expect(2, 0, 0, 0);
    mx_quiet();

    /* An eventfd. */
    event_notifier_set(&mx_ev.e);
    g_assert_true(iterate(FALSE));
    mx_expect(2, 1, 0, 0);
    g_assert_false(aio_poll(ctx, false));
    event_notifier_set(&mx_ev.e);
    g_assert_true(aio_poll(ctx, false));
    mx_expect(2, 2, 0, 0);
    mx_quiet();

    /* A pipe holding three bytes, one byte per call: the level-triggered
     * readiness carries over from one driver to the other. */
    pipe_put(&mx_pipe, 3);
    g_assert_true(iterate(FALSE));
    mx_expect(2, 2, 1, 0);
    g_assert_true(aio_poll(ctx, false));
    mx_expect(2, 2, 2, 0);
    g_assert_true(iterate(FALSE));
    mx_expect(2, 2, 3, 0);
    mx_quiet();

    /* An expired timer. */
    expire_now(&mx_timer);
    g_assert_true(aio_poll(ctx, false));
    mx_expect(2, 2, 3, 1);
    g_assert_false(iterate(FALSE));
    expire_now(&mx_timer);
    g_assert_true(iterate(FALSE));
    mx_expect(2, 2, 3, 2);
    mx_quiet();

    /* Everything at once: one dispatch of either driver serves it all. */
    qemu_bh_schedule(mx_bh);
    event_notifier_set(&mx_ev.e);
    pipe_put(&mx_pipe, 1);
    expire_now(&mx_timer);
    g_assert_true(iterate(FALSE));
    mx_expect(3, 3, 4, 3);
    mx_quiet();
    qemu_bh_schedule(mx_bh);
    event_notifier_set(&mx_ev.e);
    pipe_put(&mx_pipe, 1);
    expire_now(&mx_timer);
    g_assert_true(aio_poll(ctx, false));
    mx_expect(4, 4, 5, 4);
    mx_quiet();

    mx_teardown();
    test_watchdog(0, NULL);
}

/* A BH scheduled from a callback that one driver ran is run by the other. */
static void test_mixed_chain(void)
{
    test_watchdog(10, "/aio-gsource/mixed/chain");
    mx_setup(mx_chain_cb);

    qemu_bh_schedule(mx_bh);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(mx_bh_n, ==, 1);
    g_assert_cmpint(mx_bh2_n, ==, 0);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(mx_bh2_n, ==, 1);
    mx_quiet();

    qemu_bh_schedule(mx_bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(mx_bh_n, ==, 2);
    g_assert_cmpint(mx_bh2_n, ==, 1);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(mx_bh2_n, ==, 2);
    mx_quiet();
    g_assert_cmpint(mx_bh_n, ==, 2);
    g_assert_cmpint(mx_bh2_n, ==, 2);

    mx_teardown();
    test_watchdog(0, NULL);
}

/*
 * Many rounds: each round makes a different mix of work ready and serves
 * it with aio_poll only, glib only, or one glib iteration followed by
 * aio_poll. Counts are exact after every round: nothing is lost, nothing
 * runs twice.
 */
static void test_mixed_rounds(void)
{
    const int rounds = test_quick() ? 96 : 480;
    int bh = 0, ev = 0, pipe = 0, timer = 0;

    test_watchdog(30, "/aio-gsource/mixed/rounds");
    mx_setup(count_cb);
    for (int r = 0; r < rounds; r++) {
        unsigned m = (unsigned)(r * 7 + r / 16) % 16;

        if (m & 1) {
            qemu_bh_schedule(mx_bh);
            bh++;
        }
        if (m & 2) {
            event_notifier_set(&mx_ev.e);
            ev++;
        }
        if (m & 4) {
            pipe_put(&mx_pipe, 2);
            pipe += 2;
        }
        if (m & 8) {
            expire_now(&mx_timer);
            timer++;
        }
        switch (r % 3) {
        case 0:
            g_assert_cmpint(drain_aio(ctx), ==, m == 0 ? 0 : ((m & 4) ? 2 : 1));
            break;
        case 1:
            drain_glib();
            break;
        case 2:
            g_assert_cmpint(iterate(FALSE), ==, m != 0);
            drain_aio(ctx);
            break;
        }
        mx_expect(bh, ev, pipe, timer);
        mx_quiet();
    }
    mx_teardown();
    test_watchdog(0, NULL);
}

/* Blocking waits for timers alternate between the drivers. */
static void test_mixed_blocking_timers(void)
{
    TRec t;

    test_watchdog(10, "/aio-gsource/mixed/blocking-timers");
    drain_glib();
    drain_aio(ctx);
    trec_init(&t, ctx);
    for (int i = 1; i <= 6; i++) {
        int64_t expiry = now_ns() + 10 * MS;
        int calls = 0;

        timer_mod_ns(&t.t, expiry);
        while (t.n < i) {
            if (i % 2) {
                aio_poll(ctx, true);
            } else {
                iterate(TRUE);
            }
            calls++;
            g_assert_cmpint(calls, <=, 100);
        }
        g_assert_cmpint(t.n, ==, i);
        g_assert_cmpint(t.fired_ns, >=, expiry);
        g_assert_false(timer_pending(&t.t));
    }
    mx_quiet();
    g_assert_cmpint(t.n, ==, 6);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* F4, C3-C5 under glib: handlers changed while the source is attached,     */
/* including from callbacks that glib dispatched                            */

/* Reads one byte and removes its own handler. */
static void self_remove_cb(void *opaque)
{
    PipeRec *p = opaque;
    char ch;
    g_assert_cmpint(read(p->fds[0], &ch, 1), ==, 1);
    p->n++;
    aio_set_fd_handler(ctx, p->fds[0], NULL, NULL, NULL, NULL, NULL);
}

static void test_handlers_self_remove(void)
{
    PipeRec p = { .n = 0 };

    drain_glib();
    test_pipe(p.fds);
    pipe_put(&p, 3);
    aio_set_fd_handler(ctx, p.fds[0], self_remove_cb, NULL, NULL, NULL, &p);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(p.n, ==, 1);
    /* Still readable, but gone. */
    drain_glib();
    g_assert_false(iterate(FALSE));
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(p.n, ==, 1);
    g_assert_cmpint(test_drain_fd(p.fds[0]), ==, 2);

    /* Registered again (new callbacks are the caller's to choose). */
    pipe_put(&p, 2);
    aio_set_fd_handler(ctx, p.fds[0], pipe_one_cb, NULL, NULL, NULL, &p);
    g_assert_true(iterate(FALSE));
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(p.n, ==, 3);
    g_assert_false(iterate(FALSE));
    aio_set_fd_handler(ctx, p.fds[0], NULL, NULL, NULL, NULL, NULL);
    close(p.fds[0]);
    close(p.fds[1]);
    drain_glib();
}

/* Read and write ready: removing itself in io_read suppresses io_write. */
typedef struct {
    int sv[2];
    int reads, writes;
} RwRec;

static void rw_read_remove_cb(void *opaque)
{
    RwRec *r = opaque;
    r->reads++;
    test_drain_fd(r->sv[0]);
    aio_set_fd_handler(ctx, r->sv[0], NULL, NULL, NULL, NULL, NULL);
}

static void rw_write_cb(void *opaque)
{
    RwRec *r = opaque;
    r->writes++;
}

static void test_handlers_self_remove_rw(void)
{
    RwRec r = { .reads = 0 };

    drain_glib();
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, r.sv),
                    ==, 0);
    test_write_byte(r.sv[1]);
    aio_set_fd_handler(ctx, r.sv[0], rw_read_remove_cb, rw_write_cb, NULL, NULL, &r);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(r.reads, ==, 1);
    g_assert_cmpint(r.writes, ==, 0);
    drain_glib();
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(r.reads, ==, 1);
    g_assert_cmpint(r.writes, ==, 0);
    close(r.sv[0]);
    close(r.sv[1]);
}

/* Two ready handlers, each removing the other and freeing its record: only
 * the one dispatched first runs. */
typedef struct RemoveOther RemoveOther;
struct RemoveOther {
    int fd;
    int id;
    RemoveOther *other;
};

static int ro_calls[2];

static void remove_other_cb(void *opaque)
{
    RemoveOther *r = opaque;
    uint64_t v;

    g_assert_cmpint(read(r->fd, &v, sizeof(v)), ==, sizeof(v));
    ro_calls[r->id]++;
    if (r->other) {
        aio_set_fd_handler(ctx, r->other->fd, NULL, NULL, NULL, NULL, NULL);
        /* Legal: a removed handler is never called again. */
        g_free(r->other);
        r->other = NULL;
    }
}

static void test_handlers_remove_other(void)
{
    RemoveOther *a = g_new0(RemoveOther, 1), *b = g_new0(RemoveOther, 1);
    RemoveOther *survivor;
    int fds[2];
    uint64_t v;

    drain_glib();
    for (int i = 0; i < 2; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g_assert_cmpint(fds[i], >=, 0);
    }
    ro_calls[0] = ro_calls[1] = 0;
    *a = (RemoveOther) { .fd = fds[0], .id = 0, .other = b };
    *b = (RemoveOther) { .fd = fds[1], .id = 1, .other = a };
    aio_set_fd_handler(ctx, fds[0], remove_other_cb, NULL, NULL, NULL, a);
    aio_set_fd_handler(ctx, fds[1], remove_other_cb, NULL, NULL, NULL, b);
    drain_glib();

    v = 1;
    g_assert_cmpint(write(fds[0], &v, sizeof(v)), ==, sizeof(v));
    g_assert_cmpint(write(fds[1], &v, sizeof(v)), ==, sizeof(v));
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(ro_calls[0] + ro_calls[1], ==, 1);
    if (strcmp(test_fdmon(), "poll") == 0) {
        /* poll(2) dispatches in registration order. */
        g_assert_cmpint(ro_calls[0], ==, 1);
    }
    drain_glib();
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(ro_calls[0] + ro_calls[1], ==, 1);

    /* The removed handler's fd was never read. */
    survivor = ro_calls[0] ? a : b;
    g_assert_cmpint(read(fds[ro_calls[0] ? 1 : 0], &v, sizeof(v)), ==, sizeof(v));
    g_assert_cmpint(v, ==, 1);
    aio_set_fd_handler(ctx, survivor->fd, NULL, NULL, NULL, NULL, NULL);
    g_free(survivor);
    close(fds[0]);
    close(fds[1]);
    drain_glib();
}

/* A handler registered from a glib-dispatched callback, on an fd that is
 * already readable, runs in the next iteration, exactly once. */
static Ev add_late;
static int add_first_n;

static void add_in_cb(EventNotifier *e)
{
    g_assert_true(event_notifier_test_and_clear(e));
    add_first_n++;
    aio_set_event_notifier(ctx, &add_late.e, ev_cb, NULL, NULL);
}

static void test_handlers_add_in_callback(void)
{
    EventNotifier first;

    drain_glib();
    add_first_n = 0;
    add_late.n = 0;
    g_assert_cmpint(event_notifier_init(&first, false), ==, 0);
    g_assert_cmpint(event_notifier_init(&add_late.e, true), ==, 0);
    aio_set_event_notifier(ctx, &first, add_in_cb, NULL, NULL);
    drain_glib();

    event_notifier_set(&first);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(add_first_n, ==, 1);
    g_assert_cmpint(add_late.n, ==, 0);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(add_late.n, ==, 1);
    drain_glib();
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(add_first_n, ==, 1);
    g_assert_cmpint(add_late.n, ==, 1);

    aio_set_event_notifier(ctx, &first, NULL, NULL, NULL);
    ev_fini(&add_late, ctx);
    event_notifier_cleanup(&first);
    drain_glib();
}

/* A handler re-registers its own fd with new callbacks from inside a
 * glib-dispatched callback; later the test replaces them from outside. */
static int rr_n[3];

static void rr_cb(int which, PipeRec *p)
{
    char ch;
    g_assert_cmpint(read(p->fds[0], &ch, 1), ==, 1);
    rr_n[which]++;
}

static void rr2_cb(void *opaque)
{
    rr_cb(1, opaque);
}

static void rr3_cb(void *opaque)
{
    rr_cb(2, opaque);
}

static void rr1_cb(void *opaque)
{
    PipeRec *p = opaque;
    rr_cb(0, p);
    aio_set_fd_handler(ctx, p->fds[0], rr2_cb, NULL, NULL, NULL, p);
}

static void test_handlers_reregister_self(void)
{
    PipeRec p = { .n = 0 };

    drain_glib();
    memset(rr_n, 0, sizeof(rr_n));
    test_pipe(p.fds);
    aio_set_fd_handler(ctx, p.fds[0], rr1_cb, NULL, NULL, NULL, &p);
    drain_glib();
    pipe_put(&p, 2);

    g_assert_true(iterate(FALSE));
    g_assert_cmpint(rr_n[0], ==, 1);
    g_assert_cmpint(rr_n[1], ==, 0);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(rr_n[0], ==, 1);
    g_assert_cmpint(rr_n[1], ==, 1);
    drain_glib();
    g_assert_false(aio_poll(ctx, false));

    /* Replaced from outside while attached: only the newest callbacks run. */
    aio_set_fd_handler(ctx, p.fds[0], rr3_cb, NULL, NULL, NULL, &p);
    pipe_put(&p, 1);
    g_assert_true(iterate(FALSE));
    drain_glib();
    g_assert_cmpint(rr_n[0], ==, 1);
    g_assert_cmpint(rr_n[1], ==, 1);
    g_assert_cmpint(rr_n[2], ==, 1);

    aio_set_fd_handler(ctx, p.fds[0], NULL, NULL, NULL, NULL, NULL);
    close(p.fds[0]);
    close(p.fds[1]);
    drain_glib();
}

/* C5 under glib: A re-registers B (also ready) with new callbacks. The old
 * callbacks never run after that, the new ones not in the same dispatch. */
static EventNotifier c5_a, c5_b;
static int c5_a_n, c5_b1_n, c5_b2_n;

static void c5_b1_cb(EventNotifier *e)
{
    g_assert_true(event_notifier_test_and_clear(e));
    c5_b1_n++;
}

static void c5_b2_cb(EventNotifier *e)
{
    g_assert_true(event_notifier_test_and_clear(e));
    c5_b2_n++;
}

static void c5_a_cb(EventNotifier *e)
{
    g_assert_true(event_notifier_test_and_clear(e));
    c5_a_n++;
    aio_set_event_notifier(ctx, &c5_b, c5_b2_cb, NULL, NULL);
}

static void test_handlers_reregister_other(void)
{
    drain_glib();
    c5_a_n = c5_b1_n = c5_b2_n = 0;
    g_assert_cmpint(event_notifier_init(&c5_a, false), ==, 0);
    g_assert_cmpint(event_notifier_init(&c5_b, false), ==, 0);
    aio_set_event_notifier(ctx, &c5_a, c5_a_cb, NULL, NULL);
    aio_set_event_notifier(ctx, &c5_b, c5_b1_cb, NULL, NULL);
    drain_glib();

    event_notifier_set(&c5_a);
    event_notifier_set(&c5_b);
    g_assert_true(iterate(FALSE));
    g_assert_cmpint(c5_a_n, ==, 1);
    g_assert_cmpint(c5_b2_n, ==, 0);
    if (strcmp(test_fdmon(), "poll") == 0) {
        /* Registration order: A ran first, so B's old callback was
         * dropped with B still readable. */
        g_assert_cmpint(c5_b1_n, ==, 0);
    }
    drain_glib();
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(c5_a_n, ==, 1);
    g_assert_cmpint(c5_b1_n + c5_b2_n, ==, 1);
    if (strcmp(test_fdmon(), "poll") == 0) {
        g_assert_cmpint(c5_b2_n, ==, 1);
    }

    aio_set_event_notifier(ctx, &c5_a, NULL, NULL, NULL);
    aio_set_event_notifier(ctx, &c5_b, NULL, NULL, NULL);
    event_notifier_cleanup(&c5_a);
    event_notifier_cleanup(&c5_b);
    drain_glib();
}

/* Many handlers come and go while the source stays attached; each is
 * served exactly once while registered, and the monitor does not change. */
static void test_handlers_churn(void)
{
    const int rounds = test_quick() ? 40 : 200;
    const char *mon = test_fdmon();
    int fds_before;
    PipeRec keep;

    test_watchdog(30, "/aio-gsource/handlers/churn");
    drain_glib();
    fds_before = test_count_open_fds();
    pipe_init(&keep, ctx);
    for (int i = 0; i < rounds; i++) {
        Ev e;

        ev_init(&e, ctx);
        event_notifier_set(&e.e);
        if (i % 10 == 0) {
            pipe_put(&keep, 1);
        }
        g_assert_true(iterate(FALSE));
        g_assert_cmpint(e.n, ==, 1);
        g_assert_cmpint(keep.n, ==, i / 10 + 1);
        /* Removed while attached and closed at once, as QEMU code does. */
        ev_fini(&e, ctx);
        drain_glib();
        g_assert_false(iterate(FALSE));
        g_assert_cmpint(e.n, ==, 1);
        g_assert_cmpstr(test_fdmon(), ==, mon);
    }
    pipe_fini(&keep, ctx);
    drain_glib();
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(test_count_open_fds(), ==, fds_before);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* E6 / F2: timers under glib                                                */

/*
 * glib's timeout is in ms: the prepare rounds the ns deadline up, so a
 * blocking iteration never wakes before the deadline. The interval has a
 * fractional ms on purpose: rounding down would wake 0.5 ms early, check
 * would find nothing due, and the iteration would return FALSE without
 * having fired the timer.
 */
static void test_timer_deadline(void)
{
    TRec t;

    test_watchdog(10, "/aio-gsource/timer/deadline");
    trec_init(&t, ctx);
    for (int i = 1; i <= 5; i++) {
        int64_t armed, expiry;

        drain_glib();
        g_assert_false(iterate(FALSE));
        hook_install(NULL);
        armed = now_ns();
        expiry = armed + 30 * MS + MS / 2;
        timer_mod_ns(&t.t, expiry);
        g_assert_true(iterate(TRUE));
        hook_remove(NULL);
        g_assert_cmpint(t.n, ==, i);
        g_assert_cmpint(t.fired_ns, >=, expiry);
        g_assert_cmpint(now_ns() - armed, >=, 30 * MS);
        g_assert_false(timer_pending(&t.t));
        /* One sleep, whose ms timeout covered all that was left of the
         * deadline when glib began to sleep (prepare ran just before). */
        g_assert_cmpint(g_atomic_int_get(&hook_blocking_polls), ==, 1);
        g_assert_cmpint((int64_t)g_atomic_int_get(&hook_timeout) * MS, >=, expiry - hook_enter_ns);
    }
    drain_glib();
    g_assert_false(iterate(FALSE));
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(t.n, ==, 5);
    test_watchdog(0, NULL);
}

/* A periodic timer that re-arms itself from its callback, each period
 * measured from the previous expiry. */
#define PERIODS 5
static QEMUTimer per_timer;
static int per_n;
static int64_t per_expiry[PERIODS], per_fired[PERIODS];

static void periodic_cb(void *opaque)
{
    (void)opaque;
    per_fired[per_n] = now_ns();
    per_n++;
    if (per_n < PERIODS) {
        per_expiry[per_n] = per_expiry[per_n - 1] + 10 * MS + MS / 3;
        timer_mod_ns(&per_timer, per_expiry[per_n]);
    }
}

static void test_timer_rearm(void)
{
    int calls = 0;

    test_watchdog(10, "/aio-gsource/timer/rearm");
    drain_glib();
    per_n = 0;
    aio_timer_init(ctx, &per_timer, QEMU_CLOCK_REALTIME, SCALE_NS, periodic_cb, NULL);
    per_expiry[0] = now_ns() + 10 * MS;
    timer_mod_ns(&per_timer, per_expiry[0]);
    while (per_n < PERIODS) {
        iterate(TRUE);
        calls++;
        /* Not a busy loop (a few spurious wake-ups are allowed). */
        g_assert_cmpint(calls, <=, 100);
    }
    g_assert_cmpint(per_n, ==, PERIODS);
    for (int i = 0; i < PERIODS; i++) {
        g_assert_cmpint(per_fired[i], >=, per_expiry[i]);
    }
    g_assert_false(timer_pending(&per_timer));
    drain_glib();
    g_assert_false(iterate(FALSE));
    g_assert_cmpint(per_n, ==, PERIODS);
    test_watchdog(0, NULL);
}

/* E5 under glib: timer_mod from another thread while glib sleeps with no
 * deadline at all wakes it, and the timer then fires on time. */
typedef struct {
    TRec *t;
    int64_t expiry;
} ModThread;

static gpointer timer_mod_thread(gpointer opaque)
{
    ModThread *m = opaque;

    hook_wait_sleeping();
    remember_first_timeout();
    m->expiry = now_ns() + 20 * MS;
    timer_mod_ns(&m->t->t, m->expiry);
    return NULL;
}

static void test_timer_cross_thread(void)
{
    TRec t;
    ModThread m = { .t = &t };
    GThread *th;
    int calls = 0;

    test_watchdog(10, "/aio-gsource/timer/cross-thread-mod");
    trec_init(&t, ctx);
    drain_glib();
    g_assert_false(iterate(FALSE));
    first_blocking_timeout = 0;
    hook_install(NULL);
    th = g_thread_new("timer-mod", timer_mod_thread, &m);
    while (t.n == 0) {
        iterate(TRUE);
        calls++;
        g_assert_cmpint(calls, <=, 100);
    }
    g_thread_join(th);
    hook_remove(NULL);
    /* The first sleep had no deadline: only the timer_mod could end it. */
    g_assert_cmpint(first_blocking_timeout, ==, -1);
    g_assert_cmpint(t.n, ==, 1);
    g_assert_cmpint(t.fired_ns, >=, m.expiry);
    g_assert_false(timer_pending(&t.t));
    drain_glib();
    g_assert_false(iterate(FALSE));
    g_assert_false(aio_poll(ctx, false));
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* B4, F9: waking a blocked g_main_context_iteration                        */

typedef enum {
    WAKE_AIO_NOTIFY,
    WAKE_AIO_NOTIFY_BURST,
    WAKE_GLIB,
} WakeKind;

typedef struct {
    WakeKind kind;
} Waker;

static gpointer waker_thread(gpointer opaque)
{
    Waker *w = opaque;

    hook_wait_sleeping();
    remember_first_timeout();
    switch (w->kind) {
    case WAKE_AIO_NOTIFY:
        aio_notify(ctx);
        break;
    case WAKE_AIO_NOTIFY_BURST:
        for (int i = 0; i < 100; i++) {
            aio_notify(ctx);
        }
        break;
    case WAKE_GLIB:
        g_main_context_wakeup(NULL);
        break;
    }
    return NULL;
}

/* Returns what the woken iteration returned. */
static gboolean wake_blocked_iteration(WakeKind kind)
{
    Waker w = { .kind = kind };
    GThread *th;
    gboolean r;

    drain_glib();
    g_assert_false(iterate(FALSE));
    first_blocking_timeout = 0;
    hook_install(NULL);
    th = g_thread_new("waker", waker_thread, &w);
    r = iterate(TRUE); /* returns: that is the test */
    g_thread_join(th);
    hook_remove(NULL);
    /* glib slept with no timeout: only the waker could end it. */
    g_assert_cmpint(first_blocking_timeout, ==, -1);
    return r;
}

static void test_notify_wakes_glib(void)
{
    const int reps = test_quick() ? 5 : 20;

    test_watchdog(30, "/aio-gsource/notify/cross-thread-repeat");
    for (int i = 0; i < reps; i++) {
        /* The wake-up arrives through the context's notifier fd, which is
         * a handler of the source: the iteration dispatches it. */
        g_assert_true(wake_blocked_iteration(i % 2 ? WAKE_AIO_NOTIFY_BURST : WAKE_AIO_NOTIFY));
        /* Consumed: nothing is left for either driver. */
        drain_glib();
        g_assert_false(iterate(FALSE));
        g_assert_false(aio_poll(ctx, false));
    }
    test_watchdog(0, NULL);
}

static void test_glib_wakeup(void)
{
    test_watchdog(10, "/aio-gsource/wakeup");
    drain_glib();

    /* glib's own wake-up (F9, mirrors glib's test_wakeup): pending before
     * the iteration, it ends the wait at once; no source was dispatched. */
    g_main_context_wakeup(NULL);
    g_assert_false(iterate(TRUE));
    g_assert_false(iterate(FALSE));

    /* And from another thread while glib sleeps. */
    for (int i = 0; i < 3; i++) {
        g_assert_false(wake_blocked_iteration(WAKE_GLIB));
        g_assert_false(iterate(FALSE));
    }

    /* The source still behaves: a BH makes the next blocking iteration
     * return at once. */
    {
        int n = 0;
        QEMUBH *bh = aio_bh_new(ctx, count_cb, &n);
        qemu_bh_schedule(bh);
        g_assert_true(iterate(TRUE));
        g_assert_cmpint(n, ==, 1);
        qemu_bh_delete(bh);
    }
    drain_glib();
    g_assert_false(iterate(FALSE));
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* F7: priorities                                                            */

static gboolean idle_count_cb(gpointer opaque)
{
    (*(int *)opaque)++;
    return G_SOURCE_CONTINUE;
}

static GSource *add_idle(GMainContext *g, int priority, int *counter)
{
    GSource *s = g_idle_source_new();
    g_source_set_priority(s, priority);
    g_source_set_callback(s, idle_count_cb, counter, NULL);
    g_assert_cmpuint(g_source_attach(s, g), >, 0);
    return s;
}

static void remove_idle(GSource *s)
{
    g_source_destroy(s);
    g_source_unref(s);
}

/* Work of every kind becomes ready on p.c. */
typedef struct {
    int bh_n;
    QEMUBH *bh;
    Ev ev;
    TRec t;
} Work;

static void work_init(Work *w, AioContext *c)
{
    w->bh_n = 0;
    w->bh = aio_bh_new(c, count_cb, &w->bh_n);
    ev_init(&w->ev, c);
    trec_init(&w->t, c);
}

static void work_ready(Work *w)
{
    qemu_bh_schedule(w->bh);
    event_notifier_set(&w->ev.e);
    expire_now(&w->t);
}

static void work_expect(Work *w, int n)
{
    g_assert_cmpint(w->bh_n, ==, n);
    g_assert_cmpint(w->ev.n, ==, n);
    g_assert_cmpint(w->t.n, ==, n);
}

static void work_fini(Work *w, AioContext *c)
{
    timer_del(&w->t.t);
    ev_fini(&w->ev, c);
    qemu_bh_delete(w->bh);
}

static void test_priority_higher_starves(void)
{
    Pair p;
    Work w;
    int idle_n = 0;
    GSource *idle;

    pair_new(&p);
    work_init(&w, p.c);
    drain_gctx(p.g);
    idle = add_idle(p.g, G_PRIORITY_HIGH, &idle_n);
    work_ready(&w);
    for (int i = 1; i <= 5; i++) {
        g_assert_true(g_main_context_iteration(p.g, FALSE));
        g_assert_cmpint(idle_n, ==, i);
        work_expect(&w, 0);
    }
    remove_idle(idle);
    /* Starved, not lost: one iteration serves all of it. */
    g_assert_true(g_main_context_iteration(p.g, FALSE));
    work_expect(&w, 1);
    drain_gctx(p.g);
    g_assert_false(g_main_context_iteration(p.g, FALSE));
    work_expect(&w, 1);
    work_fini(&w, p.c);
    drain_gctx(p.g);
    pair_free(&p);
}

static void test_priority_equal(void)
{
    Pair p;
    Work w;
    int idle_n = 0;
    GSource *idle;

    pair_new(&p);
    work_init(&w, p.c);
    drain_gctx(p.g);
    idle = add_idle(p.g, G_PRIORITY_DEFAULT, &idle_n);
    for (int i = 1; i <= 3; i++) {
        work_ready(&w);
        g_assert_true(g_main_context_iteration(p.g, FALSE));
        g_assert_cmpint(idle_n, ==, i);
        work_expect(&w, i);
    }
    remove_idle(idle);
    drain_gctx(p.g);
    work_expect(&w, 3);
    work_fini(&w, p.c);
    drain_gctx(p.g);
    pair_free(&p);
}

/* The reverse: the AioContext source starves a lower-priority one for the
 * iterations in which it has work. */
static void test_priority_lower(void)
{
    Pair p;
    Work w;
    int idle_n = 0;
    GSource *idle;

    pair_new(&p);
    work_init(&w, p.c);
    drain_gctx(p.g);
    idle = add_idle(p.g, G_PRIORITY_LOW, &idle_n);
    work_ready(&w);
    g_assert_true(g_main_context_iteration(p.g, FALSE));
    work_expect(&w, 1);
    g_assert_cmpint(idle_n, ==, 0);
    /* Nothing left for the context: the idle source runs. */
    while (idle_n == 0) {
        g_assert_true(g_main_context_iteration(p.g, FALSE));
    }
    g_assert_cmpint(idle_n, ==, 1);
    remove_idle(idle);
    work_expect(&w, 1);
    work_fini(&w, p.c);
    drain_gctx(p.g);
    pair_free(&p);
}

/* ------------------------------------------------------------------------ */
/* F8: teardown orders                                                       */

/*
 * The GMainContext goes first: it destroys the attached source while the
 * context keeps living (we hold a reference). Afterwards handlers are
 * unregistered and registered, timers dropped and BHs deleted with no glib
 * call on the destroyed source (a glib critical would abort: the tests run
 * with G_DEBUG=fatal-criticals), aio_poll still serves the context, and
 * the last unref finalizes it.
 */
static void test_teardown_gmain_first(void)
{
    Pair p;
    Work w;
    PipeRec pr;
    Ev late;

    test_watchdog(10, "/aio-gsource/teardown/gmain-context-first");
    pair_new(&p);
    work_init(&w, p.c);
    pipe_init(&pr, p.c);
    timer_mod_ns(&w.t.t, now_ns() + 60000 * (int64_t)MS);
    /* glib has seen everything once. */
    event_notifier_set(&w.ev.e);
    g_assert_true(g_main_context_iteration(p.g, FALSE));
    g_assert_cmpint(w.ev.n, ==, 1);
    /* Work pending when the GMainContext goes away. */
    qemu_bh_schedule(w.bh);
    pipe_put(&pr, 1);

    g_main_context_unref(p.g);
    g_assert_true(g_source_is_destroyed((GSource *)p.c));

    /* The context works on through aio_poll. */
    g_assert_true(aio_poll(p.c, false));
    g_assert_cmpint(w.bh_n, ==, 1);
    g_assert_cmpint(pr.n, ==, 1);
    g_assert_false(aio_poll(p.c, false));
    event_notifier_set(&w.ev.e);
    g_assert_true(aio_poll(p.c, false));
    g_assert_cmpint(w.ev.n, ==, 2);

    /* A handler registered after the source was destroyed. */
    ev_init(&late, p.c);
    event_notifier_set(&late.e);
    g_assert_true(aio_poll(p.c, false));
    g_assert_cmpint(late.n, ==, 1);
    ev_fini(&late, p.c);

    pipe_fini(&pr, p.c);
    work_fini(&w, p.c);
    g_assert_false(aio_poll(p.c, false));
    {
        int d0 = g_atomic_int_get(&disposed);
        private_ctx_free(p.c);
        g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
    }
    test_watchdog(0, NULL);
}

/* Same order, but the context is finalized with handlers still registered
 * (K3: they are dropped without being called). */
static void unreached_notifier_cb(EventNotifier *e)
{
    (void)e;
    g_assert_not_reached();
}

static void test_teardown_gmain_first_registered(void)
{
    Pair p;
    EventNotifier e[3];
    int d0;

    pair_new(&p);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(event_notifier_init(&e[i], false), ==, 0);
        aio_set_event_notifier(p.c, &e[i], unreached_notifier_cb, NULL, NULL);
    }
    drain_gctx(p.g);
    event_notifier_set(&e[1]);
    d0 = g_atomic_int_get(&disposed);
    g_main_context_unref(p.g);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);
    private_ctx_free(p.c);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
    for (int i = 0; i < 3; i++) {
        event_notifier_cleanup(&e[i]);
    }
}

/*
 * The reverse order: the source is destroyed while glib has it pending for
 * dispatch (prepared and checked ready, not dispatched; mirrors glib's
 * test_unref_while_pending). glib skips it, nothing runs, the work stays
 * for aio_poll, and the GMainContext and the context go away cleanly.
 */
static void test_teardown_destroy_while_pending(void)
{
    Pair p;
    Work w;
    GPollFD fds[16];
    gint prio, timeout;
    int n, d0;

    test_watchdog(10, "/aio-gsource/teardown/destroy-while-pending");
    pair_new(&p);
    work_init(&w, p.c);
    drain_gctx(p.g);
    work_ready(&w);

    g_assert_true(g_main_context_acquire(p.g));
    g_assert_true(g_main_context_prepare(p.g, &prio));
    n = g_main_context_query(p.g, prio, &timeout, fds, G_N_ELEMENTS(fds));
    g_assert_cmpint(n, <=, (int)G_N_ELEMENTS(fds));
    g_assert_cmpint(timeout, ==, 0);
    g_assert_cmpint(g_poll(fds, n, 0), >=, 0);
    g_assert_true(g_main_context_check(p.g, prio, fds, n));
    g_source_destroy((GSource *)p.c);
    g_main_context_dispatch(p.g);
    g_main_context_release(p.g);
    work_expect(&w, 0);
    g_assert_false(g_main_context_iteration(p.g, FALSE));

    /* The context itself is intact. */
    g_assert_true(aio_poll(p.c, false));
    work_expect(&w, 1);
    g_assert_false(aio_poll(p.c, false));
    work_fini(&w, p.c);

    d0 = g_atomic_int_get(&disposed);
    g_main_context_unref(p.g);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);
    private_ctx_free(p.c);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Bad input and faults (issue 4)                                            */

/* glib refuses a second attach with a critical; under the test harness a
 * critical is fatal. Everything before it worked. */
static void test_attach_twice(void)
{
    if (g_test_subprocess()) {
        AioContext *c = aio_context_new(&error_abort);
        GMainContext *g1 = g_main_context_new();
        GMainContext *g2 = g_main_context_new();
        GSource *src = aio_get_g_source(c);
        int n = 0;
        QEMUBH *bh = aio_bh_new(c, count_cb, &n);

        g_assert_cmpuint(g_source_attach(src, g1), >, 0);
        qemu_bh_schedule(bh);
        g_assert_true(g_main_context_iteration(g1, FALSE));
        g_assert_cmpint(n, ==, 1);
        printf("first attach served a BH\n");
        fflush(stdout);
        no_core_dumps();
        g_source_attach(src, g2);
        printf("second attach returned\n");
        fflush(stdout);
        return;
    }
    g_test_trap_subprocess(NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stdout("*first attach served a BH*");
    g_test_trap_assert_stdout_unmatched("*second attach returned*");
    g_test_trap_assert_stderr("*CRITICAL*g_source_attach*assertion*source->context == NULL*failed*");
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* The same when the critical is not fatal: the second attach returns 0,
 * the source stays where it was and keeps working, and teardown is clean
 * (no leak under valgrind). A destroyed source cannot be re-attached. */
static void test_attach_twice_nonfatal(void)
{
    AioContext *c = private_ctx_new();
    GMainContext *g1 = g_main_context_new();
    GMainContext *g2 = g_main_context_new();
    GSource *src = aio_get_g_source(c);
    int n = 0, d0;
    QEMUBH *bh = aio_bh_new(c, count_cb, &n);

    g_source_set_dispose_function(src, count_dispose);
    g_assert_cmpuint(g_source_attach(src, g1), >, 0);
    g_test_expect_message("GLib", G_LOG_LEVEL_CRITICAL,
                          "*g_source_attach*assertion*source->context == NULL*failed*");
    g_assert_cmpuint(g_source_attach(src, g2), ==, 0);
    g_test_assert_expected_messages();
    g_assert_true(g_source_get_context(src) == g1);

    qemu_bh_schedule(bh);
    g_assert_false(g_main_context_iteration(g2, FALSE));
    g_assert_cmpint(n, ==, 0);
    g_assert_true(g_main_context_iteration(g1, FALSE));
    g_assert_cmpint(n, ==, 1);
    qemu_bh_delete(bh);

    g_main_context_unref(g1);
    g_assert_true(g_source_is_destroyed(src));
    g_test_expect_message("GLib", G_LOG_LEVEL_CRITICAL, "*g_source_attach*assertion*failed*");
    g_assert_cmpuint(g_source_attach(src, g2), ==, 0);
    g_test_assert_expected_messages();
    g_assert_false(g_main_context_iteration(g2, FALSE));

    g_source_unref(src);
    g_main_context_unref(g2);
    d0 = g_atomic_int_get(&disposed);
    private_ctx_free(c);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
}

/*
 * "Destroying" the context while attached: the GMainContext holds a
 * reference, so dropping every reference of the caller does not finalize
 * it; the context keeps working under glib until the source is destroyed,
 * either by g_main_context_unref (A) or by g_source_destroy (B).
 */
static void unref_while_attached(bool by_destroy)
{
    AioContext *c = aio_context_new(&error_abort);
    GMainContext *g = g_main_context_new();
    GSource *src;
    int n = 0, d0;
    QEMUBH *bh = aio_bh_new(c, count_cb, &n);
    Ev e;

    g_source_set_dispose_function((GSource *)c, count_dispose);
    d0 = g_atomic_int_get(&disposed);
    aio_context_ref(c);
    src = aio_get_g_source(c);
    g_assert_cmpuint(g_source_attach(src, g), >, 0);
    ev_init(&e, c);
    drain_gctx(g);

    /* Every reference of the caller: new, ref, get_g_source. */
    g_source_unref(src);
    aio_context_unref(c);
    aio_context_unref(c);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);

    /* Alive and served by glib. */
    qemu_bh_schedule(bh);
    event_notifier_set(&e.e);
    g_assert_true(g_main_context_iteration(g, FALSE));
    g_assert_cmpint(n, ==, 1);
    g_assert_cmpint(e.n, ==, 1);
    qemu_bh_delete(bh);
    ev_fini(&e, c);
    drain_gctx(g);
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0);

    if (by_destroy) {
        g_source_destroy((GSource *)c);
        g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
        g_assert_false(g_main_context_iteration(g, FALSE));
        g_main_context_unref(g);
    } else {
        g_main_context_unref(g);
    }
    g_assert_cmpint(g_atomic_int_get(&disposed), ==, d0 + 1);
}

static void test_unref_while_attached(void)
{
    unref_while_attached(false);
}

static void test_unref_while_attached_destroy(void)
{
    unref_while_attached(true);
}

/*
 * A GMainContext iterated by a thread that is not the context's home
 * thread: upstream has no home-thread check on the GSource path, so BHs,
 * fd handlers and timers run in the iterating thread. Afterwards (never at
 * the same time) aio_poll in the home thread works as before.
 */
typedef struct {
    Pair *p;
    pthread_t self;
    int wrong_thread;
    int bh_n;
    Ev ev;
    PipeRec pipe;
    TRec t;
    int phase2_ev_target;
} Foreign;

static Foreign *foreign;

static void foreign_check_thread(void)
{
    if (!pthread_equal(pthread_self(), foreign->self)) {
        foreign->wrong_thread++;
    }
}

static void foreign_bh_cb(void *opaque)
{
    (void)opaque;
    foreign_check_thread();
    foreign->bh_n++;
}

static void foreign_ev_cb(EventNotifier *e)
{
    foreign_check_thread();
    ev_cb(e);
}

static void foreign_pipe_cb(void *opaque)
{
    foreign_check_thread();
    pipe_one_cb(opaque);
}

static void foreign_timer_cb(void *opaque)
{
    foreign_check_thread();
    trec_cb(opaque);
}

static gpointer foreign_thread_fn(gpointer opaque)
{
    Foreign *f = opaque;
    GMainContext *g = f->p->g;
    int calls = 0;

    f->self = pthread_self();
    /* Phase 1: everything was ready before this thread started. */
    while (f->bh_n < 1 || f->ev.n < 1 || f->pipe.n < 1 || f->t.n < 1) {
        g_main_context_iteration(g, TRUE);
        g_assert_cmpint(++calls, <=, 100);
    }
    drain_gctx(g);
    g_assert_false(g_main_context_iteration(g, FALSE));
    /* Phase 2: the main thread signals while this thread sleeps in glib. */
    hook_install(g);
    while (f->ev.n < f->phase2_ev_target) {
        g_main_context_iteration(g, TRUE);
        g_assert_cmpint(++calls, <=, 200);
    }
    hook_remove(g);
    drain_gctx(g);
    return NULL;
}

static void test_foreign_thread_iteration(void)
{
    Pair p;
    Foreign f = { .p = &p, .phase2_ev_target = 4 };
    QEMUBH *bh;
    GThread *th;

    test_watchdog(20, "/aio-gsource/threads/foreign-iteration");
    pair_new(&p); /* p.c is current here: this is its home thread */
    foreign = &f;
    bh = aio_bh_new(p.c, foreign_bh_cb, NULL);
    g_assert_cmpint(event_notifier_init(&f.ev.e, false), ==, 0);
    aio_set_event_notifier(p.c, &f.ev.e, foreign_ev_cb, NULL, NULL);
    test_pipe(f.pipe.fds);
    aio_set_fd_handler(p.c, f.pipe.fds[0], foreign_pipe_cb, NULL, NULL, NULL, &f.pipe);
    aio_timer_init(p.c, &f.t.t, QEMU_CLOCK_REALTIME, SCALE_NS, foreign_timer_cb, &f.t);
    g_assert_false(aio_poll(p.c, false));

    qemu_bh_schedule(bh);
    event_notifier_set(&f.ev.e);
    pipe_put(&f.pipe, 1);
    expire_now(&f.t);
    th = g_thread_new("foreign", foreign_thread_fn, &f);
    for (int i = 2, seen = 0; i <= f.phase2_ev_target; i++) {
        /* Each signal lands in a new blocking poll of the foreign thread. */
        while (!g_atomic_int_get(&hook_in_poll) ||
               g_atomic_int_get(&hook_blocking_polls) <= seen) {
            g_usleep(1000);
        }
        seen = g_atomic_int_get(&hook_blocking_polls);
        g_usleep(10 * 1000);
        event_notifier_set(&f.ev.e);
    }
    g_thread_join(th);

    g_assert_cmpint(f.wrong_thread, ==, 0);
    g_assert_cmpint(f.bh_n, ==, 1);
    g_assert_cmpint(f.ev.n, ==, f.phase2_ev_target);
    g_assert_cmpint(f.pipe.n, ==, 1);
    g_assert_cmpint(f.t.n, ==, 1);

    /* Back in the home thread (the foreign thread has exited): aio_poll
     * serves the same context. */
    f.self = pthread_self();
    g_assert_false(aio_poll(p.c, false));
    qemu_bh_schedule(bh);
    g_assert_true(aio_poll(p.c, false));
    g_assert_cmpint(f.bh_n, ==, 2);
    event_notifier_set(&f.ev.e);
    pipe_put(&f.pipe, 1);
    /*
     * On io_uring the fds are still watched by POLL_ADDs the exited thread
     * submitted; the kernel completes those only after the event, from a
     * fallback worker, so allow a few blocking polls (as upstream needs).
     */
    for (int calls = 1; f.ev.n < f.phase2_ev_target + 1 || f.pipe.n < 2; calls++) {
        aio_poll(p.c, true);
        g_assert_cmpint(calls, <=, 10);
    }
    g_assert_cmpint(f.ev.n, ==, f.phase2_ev_target + 1);
    g_assert_cmpint(f.pipe.n, ==, 2);
    g_assert_false(aio_poll(p.c, false));
    /* Idle again, the loop really sleeps: a timer 30 ms ahead takes one
     * blocking poll (two if the arming notification is still pending), not
     * a busy loop of polls that find nothing. */
    {
        int64_t expiry = now_ns() + 30 * MS;

        timer_mod_ns(&f.t.t, expiry);
        for (int calls = 1; f.t.n < 2; calls++) {
            aio_poll(p.c, true);
            g_assert_cmpint(calls, <=, 2);
        }
        g_assert_cmpint(f.t.fired_ns, >=, expiry);
    }
    g_assert_false(aio_poll(p.c, false));
    /* ... and so does glib in this thread, which settles when idle. */
    qemu_bh_schedule(bh);
    g_assert_true(g_main_context_iteration(p.g, FALSE));
    g_assert_cmpint(f.bh_n, ==, 3);
    assert_gctx_settles(p.g);
    g_assert_cmpint(f.wrong_thread, ==, 0);

    timer_del(&f.t.t);
    qemu_bh_delete(bh);
    aio_set_event_notifier(p.c, &f.ev.e, NULL, NULL, NULL);
    event_notifier_cleanup(&f.ev.e);
    pipe_fini(&f.pipe, p.c);
    drain_gctx(p.g);
    foreign = NULL;
    pair_free(&p);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* What glib polls for each monitor (F3/F4, 3 L, 9.2-9.4)                    */

static void test_query_fds(void)
{
    Pair p;
    Ev e[5];
    int fds[5];

    pair_new(&p);
    assert_glib_fds(&p, NULL, 0);
    for (int i = 0; i < 5; i++) {
        ev_init(&e[i], p.c);
        fds[i] = event_notifier_get_fd(&e[i].e);
    }
    drain_gctx(p.g);
    assert_glib_fds(&p, fds, 5);
    /* Two removed while attached. */
    ev_fini(&e[1], p.c);
    ev_fini(&e[3], p.c);
    drain_gctx(p.g);
    assert_glib_fds(&p, (int[]) { fds[0], fds[2], fds[4] }, 3);
    ev_fini(&e[0], p.c);
    ev_fini(&e[2], p.c);
    ev_fini(&e[4], p.c);
    drain_gctx(p.g);
    assert_glib_fds(&p, NULL, 0);
    pair_free(&p);
}

/* 100 eventfds under glib: exactly the signalled ones are dispatched, once,
 * in one iteration; with epoll and io_uring glib polls one fd for them all. */
#define MANY 100

static void test_many_fds(void)
{
    Pair p;
    Ev *e = g_new0(Ev, MANY);
    int *fds = g_new0(int, MANY);
    int expected[MANY] = { 0 };
    const char *mon;

    test_watchdog(30, "/aio-gsource/many-fds");
    pair_new(&p);
    mon = qaio_context_fdmon_name(p.c);
    for (int i = 0; i < MANY; i++) {
        ev_init(&e[i], p.c);
        fds[i] = event_notifier_get_fd(&e[i].e);
    }
    drain_gctx(p.g);
    assert_glib_fds(&p, fds, MANY);

    for (int r = 0; r <= 12; r++) {
        int signalled = 0;

        for (int i = 0; i < MANY; i++) {
            /* Round 12 signals them all (fits one epoll_wait batch). */
            if (r == 12 || (i * 7 + r * 3) % 11 == 0) {
                event_notifier_set(&e[i].e);
                expected[i]++;
                signalled++;
            }
        }
        g_assert_cmpint(signalled, >, 0);
        g_assert_true(g_main_context_iteration(p.g, FALSE));
        for (int i = 0; i < MANY; i++) {
            g_assert_cmpint(e[i].n, ==, expected[i]);
        }
        g_assert_false(g_main_context_iteration(p.g, FALSE));
        g_assert_cmpstr(qaio_context_fdmon_name(p.c), ==, mon);
    }
    assert_glib_fds(&p, fds, MANY);

    for (int i = 0; i < MANY; i++) {
        ev_fini(&e[i], p.c);
    }
    drain_gctx(p.g);
    pair_free(&p);
    g_free(e);
    g_free(fds);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Issue 4: io_uring stays active under glib                                 */

static void test_io_uring_stays_active(void)
{
    const int rounds = test_quick() ? 50 : 300;
    Pair p;
    PipeRec keep;
    int pipe_expected = 0;

    if (strcmp(test_fdmon(), "io_uring") != 0) {
        g_test_skip("io_uring monitor only");
        return;
    }
    test_watchdog(30, "/aio-gsource/io_uring/stays-active");
    pair_new(&p);
    g_assert_cmpstr(qaio_context_fdmon_name(p.c), ==, "io_uring");
    /* glib polls only the ring fd for the context: whatever glib
     * dispatches below arrived as a ring completion. */
    assert_glib_fds(&p, NULL, 0);
    pipe_init(&keep, p.c);

    for (int i = 0; i < rounds; i++) {
        Ev e;

        ev_init(&e, p.c);
        event_notifier_set(&e.e);
        if (i % 7 == 0) {
            pipe_put(&keep, 1);
            pipe_expected++;
        }
        g_assert_true(g_main_context_iteration(p.g, FALSE));
        g_assert_cmpint(e.n, ==, 1);
        g_assert_cmpint(keep.n, ==, pipe_expected);
        ev_fini(&e, p.c);
        drain_gctx(p.g);
        g_assert_false(g_main_context_iteration(p.g, FALSE));
        g_assert_cmpint(e.n, ==, 1);
        g_assert_cmpstr(qaio_context_fdmon_name(p.c), ==, "io_uring");
    }
    {
        int fd = keep.fds[0];
        assert_glib_fds(&p, &fd, 1);
    }
    pipe_fini(&keep, p.c);
    drain_gctx(p.g);
    g_assert_cmpstr(qaio_context_fdmon_name(p.c), ==, "io_uring");
    pair_free(&p);
    test_watchdog(0, NULL);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/aio-gsource/iothread/glib-loop", test_iothread_glib_loop);

    g_test_add_func("/aio-gsource/mixed/steps", test_mixed_steps);
    g_test_add_func("/aio-gsource/mixed/chain", test_mixed_chain);
    g_test_add_func("/aio-gsource/mixed/rounds", test_mixed_rounds);
    g_test_add_func("/aio-gsource/mixed/blocking-timers", test_mixed_blocking_timers);

    g_test_add_func("/aio-gsource/handlers/self-remove", test_handlers_self_remove);
    g_test_add_func("/aio-gsource/handlers/self-remove-rw", test_handlers_self_remove_rw);
    g_test_add_func("/aio-gsource/handlers/remove-other", test_handlers_remove_other);
    g_test_add_func("/aio-gsource/handlers/add-in-callback", test_handlers_add_in_callback);
    g_test_add_func("/aio-gsource/handlers/reregister-self", test_handlers_reregister_self);
    g_test_add_func("/aio-gsource/handlers/reregister-other", test_handlers_reregister_other);
    g_test_add_func("/aio-gsource/handlers/churn", test_handlers_churn);

    g_test_add_func("/aio-gsource/timer/deadline", test_timer_deadline);
    g_test_add_func("/aio-gsource/timer/rearm", test_timer_rearm);
    g_test_add_func("/aio-gsource/timer/cross-thread-mod", test_timer_cross_thread);

    g_test_add_func("/aio-gsource/notify/cross-thread-repeat", test_notify_wakes_glib);
    g_test_add_func("/aio-gsource/wakeup", test_glib_wakeup);

    g_test_add_func("/aio-gsource/priority/higher-starves", test_priority_higher_starves);
    g_test_add_func("/aio-gsource/priority/equal", test_priority_equal);
    g_test_add_func("/aio-gsource/priority/lower", test_priority_lower);

    g_test_add_func("/aio-gsource/teardown/gmain-context-first", test_teardown_gmain_first);
    g_test_add_func("/aio-gsource/teardown/gmain-context-first-registered",
                    test_teardown_gmain_first_registered);
    g_test_add_func("/aio-gsource/teardown/destroy-while-pending",
                    test_teardown_destroy_while_pending);

    g_test_add_func("/aio-gsource/misuse/attach-twice", test_attach_twice);
    g_test_add_func("/aio-gsource/misuse/attach-twice-nonfatal", test_attach_twice_nonfatal);
    g_test_add_func("/aio-gsource/lifecycle/unref-while-attached", test_unref_while_attached);
    g_test_add_func("/aio-gsource/lifecycle/unref-while-attached-destroy",
                    test_unref_while_attached_destroy);

    g_test_add_func("/aio-gsource/query/n-fds", test_query_fds);
    g_test_add_func("/aio-gsource/many-fds", test_many_fds);
    g_test_add_func("/aio-gsource/io_uring/stays-active", test_io_uring_stays_active);
    g_test_add_func("/aio-gsource/threads/foreign-iteration", test_foreign_thread_iteration);

    return g_test_run();
}
