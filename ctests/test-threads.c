/*
 * Cross-thread use of an AioContext: BHs and notifications from other
 * threads waking a blocked aio_poll, fd registration from another thread,
 * and the iothread life cycle (a context per thread, attached to the
 * thread's own GMainContext, finalized from the main thread).
 *
 * Scenarios: parity-scenarios.md S13, S28 (/aio/multi/lifecycle), S30,
 * section 3 A2 (second half), A8, A9, C11, J2, J3.
 *
 * Every test runs under a watchdog (test_watchdog): a lost wake-up aborts
 * with a message instead of hanging.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_t main_thread;

static bool in_main_thread(void)
{
    return pthread_equal(pthread_self(), main_thread);
}

/* ------------------------------------------------------------------ */
/* A8: a one-shot BH from another thread wakes a blocked aio_poll       */
/* ------------------------------------------------------------------ */

typedef struct {
    int n;
    bool ran_in_main;
} OneshotRec;

static void oneshot_rec_cb(void *opaque)
{
    OneshotRec *r = opaque;
    r->n++;
    r->ran_in_main = in_main_thread();
}

typedef struct {
    unsigned delay_us;
    OneshotRec *rec;
    bool had_current;
} OneshotThread;

static gpointer oneshot_thread_fn(gpointer opaque)
{
    OneshotThread *t = opaque;
    t->had_current = qemu_get_current_aio_context() != NULL;
    if (t->delay_us) {
        g_usleep(t->delay_us);
    }
    aio_bh_schedule_oneshot(ctx, oneshot_rec_cb, t->rec);
    return NULL;
}

static void test_oneshot_wakes_poll(void)
{
    OneshotRec rec = { 0 };
    OneshotThread t = { .delay_us = 50 * 1000, .rec = &rec };
    GThread *th;

    test_watchdog(10, "/aio/threads/oneshot-wakes-poll");
    settle_aio(ctx);

    th = g_thread_new("oneshot", oneshot_thread_fn, &t);
    /* Whether the BH lands before or during the wait, this poll runs it. */
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(rec.n, ==, 1);
    g_assert_true(rec.ran_in_main);
    g_thread_join(th);

    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(rec.n, ==, 1);
    test_watchdog(0, NULL);
}

/* S13: a worker with no current context schedules a one-shot BH and exits;
 * the home thread runs it. */
static void test_worker_oneshot(void)
{
    OneshotRec rec = { 0 };
    OneshotThread t = { .delay_us = 0, .rec = &rec, .had_current = true };
    GThread *th;

    test_watchdog(10, "/aio/threads/worker-oneshot");
    th = g_thread_new("worker", oneshot_thread_fn, &t);
    g_thread_join(th);
    g_assert_false(t.had_current);

    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(rec.n, ==, 1);
    g_assert_true(rec.ran_in_main);
    g_assert_false(aio_poll(ctx, false));
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------ */
/* A9: lost-wake-up stress                                               */
/* ------------------------------------------------------------------ */

#define STRESS_THREADS 4

static int stress_total; /* only touched by the home thread */

static void stress_cb(void *opaque)
{
    (void)opaque;
    g_assert_true(in_main_thread());
    stress_total++;
}

static gpointer stress_thread_fn(gpointer opaque)
{
    int count = GPOINTER_TO_INT(opaque);
    for (int i = 0; i < count; i++) {
        aio_bh_schedule_oneshot(ctx, stress_cb, NULL);
    }
    return NULL;
}

static void test_oneshot_stress(void)
{
    /* 4 x 100,000 normally; 4 x 25,000 under valgrind or QAIO_TEST_QUICK. */
    int per_thread = test_quick() ? 25000 : 100000;
    int want = per_thread * STRESS_THREADS;
    GThread *th[STRESS_THREADS];

    test_watchdog(60, "/aio/threads/oneshot-stress");
    g_test_message("%d threads x %d one-shot BHs%s", STRESS_THREADS, per_thread,
                   test_quick() ? " (quick: valgrind or QAIO_TEST_QUICK)" : "");
    stress_total = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        th[i] = g_thread_new("stress", stress_thread_fn, GINT_TO_POINTER(per_thread));
    }
    while (stress_total < want) {
        aio_poll(ctx, true);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        g_thread_join(th[i]);
    }
    g_assert_cmpint(stress_total, ==, want);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(stress_total, ==, want);
    settle_aio(ctx);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------ */
/* N threads schedule their own BHs and notify, in rounds               */
/* ------------------------------------------------------------------ */

#define ROUND_THREADS 4

typedef struct {
    QEMUBH *bh;
    int n;          /* runs, home thread only */
    int index;
} RoundBH;

static struct {
    GMutex lock;
    GCond cond;
    int round;      /* protected by lock */
    int rounds;
    int ran;        /* home thread only */
    RoundBH bh[ROUND_THREADS];
} rounds;

static void round_bh_cb(void *opaque)
{
    RoundBH *r = opaque;
    g_assert_true(in_main_thread());
    r->n++;
    rounds.ran++;
}

static gpointer round_thread_fn(gpointer opaque)
{
    RoundBH *r = opaque;

    for (int i = 1; i <= rounds.rounds; i++) {
        g_mutex_lock(&rounds.lock);
        while (rounds.round < i) {
            g_cond_wait(&rounds.cond, &rounds.lock);
        }
        g_mutex_unlock(&rounds.lock);
        aio_notify(ctx);
        qemu_bh_schedule(r->bh);
        aio_notify(ctx);
    }
    return NULL;
}

static void test_schedule_rounds(void)
{
    GThread *th[ROUND_THREADS];

    test_watchdog(60, "/aio/threads/schedule-rounds");
    settle_aio(ctx);
    g_mutex_init(&rounds.lock);
    g_cond_init(&rounds.cond);
    rounds.round = 0;
    rounds.rounds = test_quick() ? 200 : 2000;
    g_test_message("%d threads x %d rounds", ROUND_THREADS, rounds.rounds);
    rounds.ran = 0;
    for (int i = 0; i < ROUND_THREADS; i++) {
        rounds.bh[i] = (RoundBH) { .index = i };
        rounds.bh[i].bh = aio_bh_new(ctx, round_bh_cb, &rounds.bh[i]);
    }
    for (int i = 0; i < ROUND_THREADS; i++) {
        th[i] = g_thread_new("round", round_thread_fn, &rounds.bh[i]);
    }

    for (int r = 1; r <= rounds.rounds; r++) {
        g_mutex_lock(&rounds.lock);
        rounds.round = r;
        g_cond_broadcast(&rounds.cond);
        g_mutex_unlock(&rounds.lock);

        while (rounds.ran < r * ROUND_THREADS) {
            aio_poll(ctx, true);
        }
        /* Every BH ran exactly once per schedule. */
        for (int i = 0; i < ROUND_THREADS; i++) {
            g_assert_cmpint(rounds.bh[i].n, ==, r);
        }
        g_assert_cmpint(rounds.ran, ==, r * ROUND_THREADS);
    }

    for (int i = 0; i < ROUND_THREADS; i++) {
        g_thread_join(th[i]);
    }
    g_assert_false(aio_poll(ctx, false));
    for (int i = 0; i < ROUND_THREADS; i++) {
        g_assert_cmpint(rounds.bh[i].n, ==, rounds.rounds);
        qemu_bh_delete(rounds.bh[i].bh);
    }
    g_assert_false(aio_poll(ctx, false));
    g_cond_clear(&rounds.cond);
    g_mutex_clear(&rounds.lock);
    settle_aio(ctx);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------ */
/* A2: rescheduled from another thread while it runs → once more, in    */
/* the next poll                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    QEMUBH *bh;
    int n;
    GMutex lock;
    GCond cond;
    bool running;     /* set by the callback on its first run */
    bool rescheduled; /* set by the helper thread */
} ReschedBH;

static void resched_cb(void *opaque)
{
    ReschedBH *r = opaque;

    if (++r->n > 1) {
        return;
    }
    g_mutex_lock(&r->lock);
    r->running = true;
    g_cond_broadcast(&r->cond);
    while (!r->rescheduled) {
        g_cond_wait(&r->cond, &r->lock);
    }
    g_mutex_unlock(&r->lock);
}

static gpointer resched_thread_fn(gpointer opaque)
{
    ReschedBH *r = opaque;

    g_mutex_lock(&r->lock);
    while (!r->running) {
        g_cond_wait(&r->cond, &r->lock);
    }
    qemu_bh_schedule(r->bh);
    r->rescheduled = true;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    return NULL;
}

static void test_reschedule_while_running(void)
{
    ReschedBH r = { .n = 0 };
    GThread *th;

    test_watchdog(10, "/aio/threads/reschedule-while-running");
    g_mutex_init(&r.lock);
    g_cond_init(&r.cond);
    r.bh = aio_bh_new(ctx, resched_cb, &r);
    th = g_thread_new("resched", resched_thread_fn, &r);

    qemu_bh_schedule(r.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 1);
    g_thread_join(th);

    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 2);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 2);

    qemu_bh_delete(r.bh);
    g_assert_false(aio_poll(ctx, false));
    g_cond_clear(&r.cond);
    g_mutex_clear(&r.lock);
    settle_aio(ctx);
    test_watchdog(0, NULL);
}

/* J2: a BH may be created, scheduled, cancelled and deleted from threads
 * other than the home thread. */
typedef struct {
    QEMUBH *bh;
    int n;
    int step;
} AnyThreadBH;

static void any_thread_cb(void *opaque)
{
    AnyThreadBH *a = opaque;
    g_assert_true(in_main_thread());
    a->n++;
}

static gpointer any_thread_fn(gpointer opaque)
{
    AnyThreadBH *a = opaque;

    switch (a->step) {
    case 0:
        a->bh = aio_bh_new(ctx, any_thread_cb, a);
        qemu_bh_schedule(a->bh);
        break;
    case 1:
        qemu_bh_schedule(a->bh);
        qemu_bh_cancel(a->bh);
        break;
    case 2:
        qemu_bh_delete(a->bh);
        a->bh = NULL;
        break;
    }
    return NULL;
}

static void run_any_thread_step(AnyThreadBH *a, int step)
{
    a->step = step;
    g_thread_join(g_thread_new("any", any_thread_fn, a));
}

static void test_bh_any_thread(void)
{
    AnyThreadBH a = { 0 };

    test_watchdog(10, "/aio/threads/bh-any-thread");
    run_any_thread_step(&a, 0);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(a.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));

    run_any_thread_step(&a, 1);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(a.n, ==, 1);

    run_any_thread_step(&a, 2);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(a.n, ==, 1);
    settle_aio(ctx);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------ */
/* S30 and C11: fd events and registrations from another thread          */
/* ------------------------------------------------------------------ */

typedef struct {
    EventNotifierTestData d; /* first: the handler gets &d.e */
    GMutex lock;
    GCond cond;
    bool gate;
    unsigned delay_us;
} GateNotifier;

static void plain_notifier_cb(EventNotifier *e)
{
    EventNotifierTestData *d = (EventNotifierTestData *)e;
    g_assert_true(in_main_thread());
    g_assert_cmpint(event_notifier_test_and_clear(e), ==, 1);
    d->n++;
}

static gpointer gate_thread_fn(gpointer opaque)
{
    GateNotifier *g = opaque;

    g_mutex_lock(&g->lock);
    while (!g->gate) {
        g_cond_wait(&g->cond, &g->lock);
    }
    g_mutex_unlock(&g->lock);
    if (g->delay_us) {
        g_usleep(g->delay_us);
    }
    event_notifier_set(&g->d.e);
    return NULL;
}

/* S30: the outcome is the same whether the signal lands before or during
 * the blocking wait: the poll returns true with one callback. */
static void do_test_fd_signal(unsigned delay_us)
{
    GateNotifier g = { .d = { .n = 0 }, .delay_us = delay_us };
    GThread *th;

    test_watchdog(10, "/aio/threads/fd-signal");
    g_mutex_init(&g.lock);
    g_cond_init(&g.cond);
    g_assert_cmpint(event_notifier_init(&g.d.e, false), ==, 0);
    settle_aio(ctx);
    aio_set_event_notifier(ctx, &g.d.e, plain_notifier_cb, NULL, NULL);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(g.d.n, ==, 0);

    th = g_thread_new("signal", gate_thread_fn, &g);
    g_mutex_lock(&g.lock);
    g.gate = true;
    g_cond_signal(&g.cond);
    g_mutex_unlock(&g.lock);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(g.d.n, ==, 1);
    g_thread_join(th);

    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(g.d.n, ==, 1);
    aio_set_event_notifier(ctx, &g.d.e, NULL, NULL, NULL);
    g_assert_false(aio_poll(ctx, false));
    event_notifier_cleanup(&g.d.e);
    g_cond_clear(&g.cond);
    g_mutex_clear(&g.lock);
    test_watchdog(0, NULL);
}

static void test_fd_signal_now(void)
{
    do_test_fd_signal(0);
}

static void test_fd_signal_during_wait(void)
{
    do_test_fd_signal(50 * 1000);
}

/* C11: registering an already-readable fd from another thread while the home
 * thread blocks. */
typedef struct {
    int fd;
    int n;
} ReadableFd;

static void readable_fd_cb(void *opaque)
{
    ReadableFd *r = opaque;
    uint64_t value;

    g_assert_true(in_main_thread());
    g_assert_cmpint(read(r->fd, &value, sizeof(value)), ==, sizeof(value));
    r->n++;
}

static gpointer register_thread_fn(gpointer opaque)
{
    ReadableFd *r = opaque;

    g_usleep(100 * 1000);
    aio_set_fd_handler(ctx, r->fd, readable_fd_cb, NULL, NULL, NULL, r);
    return NULL;
}

static void test_register_from_thread(void)
{
    ReadableFd r = { .fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK), .n = 0 };
    GThread *th;
    bool first;

    test_watchdog(10, "/aio/threads/register-from-thread");
    g_assert_cmpint(r.fd, >=, 0);
    settle_aio(ctx);

    th = g_thread_new("register", register_thread_fn, &r);
    first = aio_poll(ctx, true);
    g_thread_join(th);

    if (strcmp(test_fdmon(), "epoll") == 0) {
        /*
         * epoll adds the fd to the kernel's interest list while the wait
         * runs, so that same wait may already report it (backend-dependent,
         * parity-scenarios section 3 L). Invariant: one callback in at most
         * two polls.
         */
        if (!first) {
            g_assert_cmpint(r.n, ==, 0);
            g_assert_true(aio_poll(ctx, true));
        }
    } else {
        /* The notify wakes the wait, which did not watch the new fd yet. */
        g_assert_false(first);
        g_assert_cmpint(r.n, ==, 0);
        g_assert_true(aio_poll(ctx, true));
    }
    g_assert_cmpint(r.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));

    aio_set_fd_handler(ctx, r.fd, NULL, NULL, NULL, NULL, NULL);
    g_assert_false(aio_poll(ctx, false));
    close(r.fd);
    settle_aio(ctx);
    test_watchdog(0, NULL);
}

/* ------------------------------------------------------------------ */
/* S28 /aio/multi/lifecycle: 5 iothreads                                */
/* ------------------------------------------------------------------ */

#define NUM_IOTHREADS 5

static __thread int iothread_id = -1;

typedef struct {
    int index;
    GThread *thread;
    AioContext *ctx;
    GMainContext *gctx;
    int stopping;
    GMutex lock;
    GCond cond;
    bool ready;
    bool ran;
    pthread_t self;
    pthread_t bh_thread;
    int id_at_exit;
} IOThread;

static int iothread_disposed;

static void iothread_dispose(GSource *source)
{
    (void)source;
    g_atomic_int_inc(&iothread_disposed);
}

static gpointer iothread_fn(gpointer opaque)
{
    IOThread *t = opaque;
    Error *err = NULL;
    GSource *src;

    t->ctx = aio_context_new(&err);
    g_assert_null(err);
    g_assert_nonnull(t->ctx);
    qemu_set_current_aio_context(t->ctx);

    t->gctx = g_main_context_new();
    src = aio_get_g_source(t->ctx);
    g_source_attach(src, t->gctx);
    g_source_unref(src);
    g_main_context_push_thread_default(t->gctx);

    g_mutex_lock(&t->lock);
    t->self = pthread_self();
    t->ready = true;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);

    while (!g_atomic_int_get(&t->stopping)) {
        aio_poll(t->ctx, true);
    }

    t->id_at_exit = iothread_id;
    g_main_context_pop_thread_default(t->gctx);
    return NULL;
}

static void iothread_start(IOThread *t, int index)
{
    *t = (IOThread) { .index = index, .id_at_exit = -2 };
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    t->thread = g_thread_new("iothread", iothread_fn, t);
    g_mutex_lock(&t->lock);
    while (!t->ready) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
}

static void iothread_set_id_cb(void *opaque)
{
    IOThread *t = opaque;

    iothread_id = t->index;
    g_mutex_lock(&t->lock);
    t->bh_thread = pthread_self();
    t->ran = true;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);
}

/* Runs iothread_set_id_cb in t's thread and waits for it. */
static void iothread_run_sync(IOThread *t)
{
    aio_bh_schedule_oneshot(t->ctx, iothread_set_id_cb, t);
    g_mutex_lock(&t->lock);
    while (!t->ran) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
}

static void iothread_stop_cb(void *opaque)
{
    IOThread *t = opaque;
    g_atomic_int_set(&t->stopping, 1);
}

static void iothread_join(IOThread *t)
{
    aio_bh_schedule_oneshot(t->ctx, iothread_stop_cb, t);
    g_thread_join(t->thread);
    /* Destroys the attached source; the context outlives it. */
    g_main_context_unref(t->gctx);
    aio_context_unref(t->ctx);
    g_cond_clear(&t->cond);
    g_mutex_clear(&t->lock);
}

static void test_multi_lifecycle(void)
{
    IOThread t[NUM_IOTHREADS];

    test_watchdog(5, "/aio/multi/lifecycle");
    iothread_disposed = 0;
    for (int i = 0; i < NUM_IOTHREADS; i++) {
        iothread_start(&t[i], i);
        g_source_set_dispose_function((GSource *)t[i].ctx, iothread_dispose);
    }
    for (int i = 0; i < NUM_IOTHREADS; i++) {
        g_assert_true(t[i].ctx != ctx);
        for (int j = 0; j < i; j++) {
            g_assert_true(t[i].ctx != t[j].ctx);
        }
    }

    for (int i = 0; i < NUM_IOTHREADS; i++) {
        iothread_run_sync(&t[i]);
        g_assert_true(pthread_equal(t[i].bh_thread, t[i].self));
    }

    for (int i = 0; i < NUM_IOTHREADS; i++) {
        aio_context_ref(t[i].ctx);
    }
    for (int i = 0; i < NUM_IOTHREADS; i++) {
        iothread_join(&t[i]);
        g_assert_cmpint(t[i].id_at_exit, ==, i);
    }
    g_assert_cmpint(g_atomic_int_get(&iothread_disposed), ==, 0);

    /* The extra refs are the last: finalized here, in the main thread. */
    for (int i = 0; i < NUM_IOTHREADS; i++) {
        aio_context_unref(t[i].ctx);
        g_assert_cmpint(g_atomic_int_get(&iothread_disposed), ==, i + 1);
    }
    /* The main thread's own TLS was never touched. */
    g_assert_cmpint(iothread_id, ==, -1);
    test_watchdog(0, NULL);
}

int main(int argc, char **argv)
{
    main_thread = pthread_self();
    test_init(&argc, &argv);

    add_cross_thread_test("/aio/threads/oneshot-wakes-poll", test_oneshot_wakes_poll);
    add_cross_thread_test("/aio/threads/worker-oneshot", test_worker_oneshot);
    add_cross_thread_test("/aio/threads/oneshot-stress", test_oneshot_stress);
    add_cross_thread_test("/aio/threads/schedule-rounds", test_schedule_rounds);
    add_cross_thread_test("/aio/threads/reschedule-while-running", test_reschedule_while_running);
    add_cross_thread_test("/aio/threads/bh-any-thread", test_bh_any_thread);
    add_cross_thread_test("/aio/threads/fd-signal/now", test_fd_signal_now);
    add_cross_thread_test("/aio/threads/fd-signal/during-wait", test_fd_signal_during_wait);
    add_cross_thread_test("/aio/threads/register-from-thread", test_register_from_thread);
    add_cross_thread_test("/aio/multi/lifecycle", test_multi_lifecycle);

    return g_test_run();
}
