/*
 * aio_notify and the wake-up protocol, context lifecycle and the small
 * context-level API: aio_context_new/ref/unref, aio_get_g_source, the
 * current-context TLS, parameter setters and qaio_context_fdmon_name.
 *
 * Scenarios: parity-scenarios.md S15 and section 3 B1-B5, K1; F1 in part.
 *
 * Most "does not block" checks use a guard timer instead of a clock: the
 * timer is armed first, so a blocking aio_poll that wrongly waits returns
 * true when the guard fires instead of hanging, and a poll that correctly
 * returns at once returns false with the guard still pending.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MS (1000 * 1000LL)

/* The guard: a one-shot REALTIME timer on a given context. */
static TimerTestData guard;

static void guard_arm(AioContext *c, int64_t ms)
{
    guard = (TimerTestData) { .clock_type = QEMU_CLOCK_REALTIME, .n = 0, .max = 1 };
    aio_timer_init(c, &guard.timer, QEMU_CLOCK_REALTIME, SCALE_NS, timer_test_cb, &guard);
    timer_mod(&guard.timer, now_ns() + ms * MS);
}

static void guard_disarm(void)
{
    timer_del(&guard.timer);
}

/* ------------------------------------------------------------------ */
/* B1, B3: notifications before a wait                                 */
/* ------------------------------------------------------------------ */

/* B1: aio_notify then a blocking aio_poll returns false without blocking,
 * and leaves nothing behind: the next blocking poll really waits. */
static void test_notify_before_poll(void)
{
    settle_aio(ctx);
    guard_arm(ctx, 500);
    g_assert_false(aio_poll(ctx, false)); /* accept the timer's notify */

    aio_notify(ctx);
    g_assert_false(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 0);
    g_assert_false(aio_poll(ctx, false));

    /* Nothing pending now: this waits for the guard. */
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));
}

/* B3: 1,000 notifications coalesce into one wake-up. */
static void test_notify_coalesce(void)
{
    settle_aio(ctx);
    guard_arm(ctx, 500);
    g_assert_false(aio_poll(ctx, false)); /* accept the timer's notify */

    for (int i = 0; i < 1000; i++) {
        aio_notify(ctx);
    }
    g_assert_false(aio_poll(ctx, true));
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(guard.n, ==, 0);

    /* The eventfd is not left readable: the next blocking poll waits. */
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));
}

/* aio_notify_accept clears a pending notification. */
static void test_notify_accept(void)
{
    settle_aio(ctx);
    guard_arm(ctx, 300);
    g_assert_false(aio_poll(ctx, false)); /* accept the timer's notify */

    aio_notify(ctx);
    aio_notify_accept(ctx);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));
}

/* ------------------------------------------------------------------ */
/* B2, B3, B4: notifications from another thread during a wait          */
/* ------------------------------------------------------------------ */

typedef struct {
    int64_t delay_ms;
    int count;
    int notified;
} NotifyThread;

static gpointer notify_thread_fn(gpointer opaque)
{
    NotifyThread *t = opaque;
    g_usleep(t->delay_ms * 1000);
    for (int i = 0; i < t->count; i++) {
        aio_notify(ctx);
        t->notified++;
    }
    return NULL;
}

/* B2: a notification from another thread wakes a blocked aio_poll, which
 * returns false because a wake-up is not progress. */
static void test_notify_cross_thread(void)
{
    NotifyThread t = { .delay_ms = 100, .count = 1 };
    GThread *th;
    int64_t start, elapsed;

    test_watchdog(10, "/aio/notify/cross-thread");
    settle_aio(ctx);

    start = now_ns();
    th = g_thread_new("notify", notify_thread_fn, &t);
    g_assert_false(aio_poll(ctx, true));
    elapsed = now_ns() - start;
    g_thread_join(th);

    g_assert_cmpint(t.notified, ==, 1);
    /* It could only return after the notification, 100 ms after start. */
    g_assert_cmpint(elapsed, >=, 100 * MS);
    g_assert_false(aio_poll(ctx, false));
    test_watchdog(0, NULL);
}

/*
 * B3 with the notifications made while the home thread waits: the burst
 * wakes it once; afterwards at most one spurious early return is allowed
 * (notifications that land while the wait is being left may leave the
 * eventfd readable, as in QEMU), never one per notification.
 */
static void test_notify_cross_thread_burst(void)
{
    NotifyThread t = { .delay_ms = 50, .count = 1000 };
    GThread *th;
    int early = 0;

    test_watchdog(10, "/aio/notify/cross-thread-burst");
    settle_aio(ctx);
    guard_arm(ctx, 500);
    g_assert_false(aio_poll(ctx, false)); /* accept the timer's notify */

    th = g_thread_new("notify", notify_thread_fn, &t);
    g_assert_false(aio_poll(ctx, true));
    g_thread_join(th);
    g_assert_cmpint(t.notified, ==, 1000);
    g_assert_cmpint(guard.n, ==, 0);

    g_assert_false(aio_poll(ctx, false));
    while (guard.n == 0) {
        if (!aio_poll(ctx, true)) {
            early++;
        }
    }
    g_assert_cmpint(early, <=, 1);
    g_assert_false(aio_poll(ctx, false));
    test_watchdog(0, NULL);
}

/* B4 (second case): a notification from another thread while glib is blocked
 * in the default context wakes it. The thread keeps notifying until the
 * iteration returns, because a notification that lands before glib's
 * prepare only sets the flag (B4 first case, deliberately not relied on). */
typedef struct {
    int stop;
    int notified;
} GlibNotifyThread;

static gpointer glib_notify_thread_fn(gpointer opaque)
{
    GlibNotifyThread *t = opaque;
    while (!g_atomic_int_get(&t->stop)) {
        g_usleep(20 * 1000);
        aio_notify(ctx);
        t->notified++;
    }
    return NULL;
}

static void test_source_notify_cross_thread(void)
{
    GlibNotifyThread t = { .stop = 0 };
    GThread *th;

    test_watchdog(10, "/aio-gsource/notify/cross-thread");
    drain_glib();
    g_assert_false(g_main_context_iteration(NULL, FALSE));

    th = g_thread_new("notify", glib_notify_thread_fn, &t);
    g_main_context_iteration(NULL, TRUE); /* returns: that is the test */
    g_atomic_int_set(&t.stop, 1);
    g_thread_join(th);
    g_assert_cmpint(t.notified, >=, 1);

    drain_glib();
    g_assert_false(g_main_context_iteration(NULL, FALSE));
    g_assert_false(aio_poll(ctx, false));
    test_watchdog(0, NULL);
}

/* S15 /aio-gsource/flush */
static void test_source_flush(void)
{
    g_assert_false(g_main_context_iteration(NULL, FALSE));
    aio_notify(ctx);
    drain_glib();
    g_assert_false(g_main_context_iteration(NULL, FALSE));
}

/* ------------------------------------------------------------------ */
/* B5: registration notifies                                            */
/* ------------------------------------------------------------------ */

static void unused_io_cb(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

static void unused_notifier_cb(EventNotifier *e)
{
    (void)e;
    g_assert_not_reached();
}

static void unused_notifier_cb2(EventNotifier *e)
{
    (void)e;
    g_assert_not_reached();
}

static void test_notify_on_registration(void)
{
    EventNotifier e;
    int stray = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    g_assert_cmpint(stray, >=, 0);
    g_assert_cmpint(event_notifier_init(&e, false), ==, 0);
    settle_aio(ctx);

    /* Deleting an fd that is not registered changes nothing: no notify,
     * so a blocking poll waits for the guard. */
    guard_arm(ctx, 300);
    g_assert_false(aio_poll(ctx, false));
    aio_set_fd_handler(ctx, stray, NULL, NULL, NULL, NULL, NULL);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 1);

    guard_arm(ctx, 1000);
    g_assert_false(aio_poll(ctx, false));

    /* Adding notifies: the blocking poll returns false at once. */
    aio_set_event_notifier(ctx, &e, unused_notifier_cb, NULL, NULL);
    g_assert_false(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 0);

    /* Replacing the callbacks notifies. */
    aio_set_event_notifier(ctx, &e, unused_notifier_cb2, NULL, NULL);
    g_assert_false(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 0);

    /* So does a plain fd handler, and its removal. */
    aio_set_fd_handler(ctx, stray, unused_io_cb, NULL, NULL, NULL, NULL);
    g_assert_false(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 0);
    aio_set_fd_handler(ctx, stray, NULL, NULL, NULL, NULL, NULL);
    g_assert_false(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 0);

    /* Removing notifies. */
    aio_set_event_notifier(ctx, &e, NULL, NULL, NULL);
    g_assert_false(aio_poll(ctx, true));
    g_assert_cmpint(guard.n, ==, 0);

    guard_disarm();
    g_assert_false(aio_poll(ctx, false));
    event_notifier_cleanup(&e);
    close(stray);
    settle_aio(ctx);
}

/* ------------------------------------------------------------------ */
/* K1 and context lifecycle                                             */
/* ------------------------------------------------------------------ */

static int disposed;

static void count_dispose(GSource *source)
{
    (void)source;
    disposed++;
}

static AioContext *new_private_context(void)
{
    Error *err = NULL;
    AioContext *c = aio_context_new(&err);

    g_assert_null(err);
    g_assert_nonnull(c);
    return c;
}

/* K1: a fresh context has no pending work, under either driver. */
static void test_fresh_context(void)
{
    AioContext *c = new_private_context();
    GMainContext *gctx = g_main_context_new();
    GSource *src;

    /* Registering the context's own notifier is not progress. */
    g_assert_false(aio_poll(c, false));
    g_assert_false(aio_poll(c, false));

    src = aio_get_g_source(c);
    g_source_attach(src, gctx);
    g_source_unref(src);
    while (g_main_context_iteration(gctx, FALSE)) {
        /* initial drain */
    }
    g_assert_false(g_main_context_iteration(gctx, FALSE));
    g_assert_false(aio_poll(c, false));

    /* The fixture's context too. */
    g_assert_false(g_main_context_iteration(NULL, FALSE));
    g_assert_false(aio_poll(ctx, false));

    /* Unreffing the GMainContext destroys the source; the last context
     * ref then finalizes. */
    disposed = 0;
    g_source_set_dispose_function((GSource *)c, count_dispose);
    g_main_context_unref(gctx);
    g_assert_cmpint(disposed, ==, 0);
    aio_context_unref(c);
    g_assert_cmpint(disposed, ==, 1);
}

static void bh_count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_context_ref(void)
{
    AioContext *c = new_private_context();
    int runs = 0;

    disposed = 0;
    g_source_set_dispose_function((GSource *)c, count_dispose);

    aio_context_ref(c);
    aio_context_ref(c);
    aio_context_unref(c);
    aio_context_unref(c);
    g_assert_cmpint(disposed, ==, 0);

    /* Still a working context. */
    aio_bh_schedule_oneshot(c, bh_count_cb, &runs);
    g_assert_true(aio_poll(c, true));
    g_assert_cmpint(runs, ==, 1);
    g_assert_false(aio_poll(c, false));

    aio_context_unref(c);
    g_assert_cmpint(disposed, ==, 1);
}

/* aio_get_g_source returns a new reference to the context's own GSource. */
static void test_get_g_source(void)
{
    AioContext *c = new_private_context();
    GSource *src, *src2;

    disposed = 0;
    g_source_set_dispose_function((GSource *)c, count_dispose);

    src = aio_get_g_source(c);
    g_assert_true(src == (GSource *)c);
    src2 = aio_get_g_source(c);
    g_assert_true(src2 == src);

    aio_context_unref(c);
    g_assert_cmpint(disposed, ==, 0);
    g_source_unref(src2);
    g_assert_cmpint(disposed, ==, 0);
    g_source_unref(src);
    g_assert_cmpint(disposed, ==, 1);

    /* The fixture's context. */
    src = aio_get_g_source(ctx);
    g_assert_true(src == (GSource *)ctx);
    g_source_unref(src);
}

/* qemu_get/set_current_aio_context */
typedef struct {
    AioContext *to_set;
    AioContext *before;
    AioContext *after;
} CurrentThread;

static gpointer current_thread_fn(gpointer opaque)
{
    CurrentThread *t = opaque;
    t->before = qemu_get_current_aio_context();
    if (t->to_set) {
        qemu_set_current_aio_context(t->to_set);
    }
    t->after = qemu_get_current_aio_context();
    return NULL;
}

static void test_current_context(void)
{
    AioContext *c = new_private_context();
    CurrentThread t1 = { .to_set = NULL };
    CurrentThread t2 = { .to_set = c };
    GThread *th;

    g_assert_true(qemu_get_current_aio_context() == ctx);

    th = g_thread_new("no-current", current_thread_fn, &t1);
    g_thread_join(th);
    g_assert_null(t1.before);
    g_assert_null(t1.after);

    th = g_thread_new("set-current", current_thread_fn, &t2);
    g_thread_join(th);
    g_assert_null(t2.before);
    g_assert_true(t2.after == c);

    /* Unchanged here. */
    g_assert_true(qemu_get_current_aio_context() == ctx);

    /* The last unref may come from a thread other than the home thread. */
    aio_context_unref(c);
}

/* The parameter setters accept values and notify the context. */
static void test_set_params(void)
{
    AioContext *c = new_private_context();
    Error *err = NULL;

    guard_arm(c, 1000);
    g_assert_false(aio_poll(c, false));

    aio_context_set_aio_params(c, 32);
    g_assert_false(aio_poll(c, true));
    g_assert_cmpint(guard.n, ==, 0);

    aio_context_set_poll_params(c, 1000 * 1000, 2, 2, &err);
    g_assert_null(err);
    g_assert_false(aio_poll(c, true));
    g_assert_cmpint(guard.n, ==, 0);

    aio_context_set_poll_params(c, 0, 0, 0, &err);
    g_assert_null(err);
    g_assert_false(aio_poll(c, true));
    g_assert_cmpint(guard.n, ==, 0);

    aio_context_set_aio_params(c, 0);
    g_assert_false(aio_poll(c, true));
    g_assert_cmpint(guard.n, ==, 0);

    guard_disarm();
    g_assert_false(aio_poll(c, false));
    aio_context_unref(c);
}

static void test_fdmon_name(void)
{
    const char *forced = getenv("QAIO_FDMON");
    const char *name = qaio_context_fdmon_name(ctx);
    AioContext *c = new_private_context();

    g_assert_nonnull(name);
    g_assert_true(strcmp(name, "poll") == 0 || strcmp(name, "epoll") == 0 ||
                  strcmp(name, "io_uring") == 0);
    g_assert_cmpstr(test_fdmon(), ==, name);
    if (forced && *forced) {
        g_assert_cmpstr(name, ==, forced);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, forced);
        g_assert_true(test_fdmon_forced(forced));
    } else {
        /* Without forcing, a new context starts on io_uring or poll(2). */
        name = qaio_context_fdmon_name(c);
        g_assert_true(strcmp(name, "poll") == 0 || strcmp(name, "io_uring") == 0);
    }
    aio_context_unref(c);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/aio/notify/before-poll", test_notify_before_poll);
    g_test_add_func("/aio/notify/coalesce", test_notify_coalesce);
    g_test_add_func("/aio/notify/accept", test_notify_accept);
    add_cross_thread_test("/aio/notify/cross-thread", test_notify_cross_thread);
    add_cross_thread_test("/aio/notify/cross-thread-burst", test_notify_cross_thread_burst);
    g_test_add_func("/aio/notify/registration", test_notify_on_registration);
    g_test_add_func("/aio/context/fresh", test_fresh_context);
    g_test_add_func("/aio/context/ref", test_context_ref);
    g_test_add_func("/aio/context/g-source", test_get_g_source);
    g_test_add_func("/aio/context/current", test_current_context);
    g_test_add_func("/aio/context/params", test_set_params);
    g_test_add_func("/aio/context/fdmon-name", test_fdmon_name);
    g_test_add_func("/aio-gsource/flush", test_source_flush);
    add_cross_thread_test("/aio-gsource/notify/cross-thread", test_source_notify_cross_thread);

    return g_test_run();
}
