/*
 * Misuse that QEMU asserts on must abort with a message naming the function
 * and the broken rule ("qaio: <function>: <rule>"); loose ends QEMU accepts
 * must not abort. Each case runs in a subprocess (g_test_trap_subprocess)
 * on private contexts, so the fixture's context is not involved.
 *
 * Scenarios: parity-scenarios.md section 3 A11, E9, J1, K4 (BH and timer
 * parts); aio-behaviour.md section 4 (finalize).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <sys/resource.h>
#include <unistd.h>

/* A subprocess that is expected to abort should not leave a core file. */
static void no_core_dumps(void)
{
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
}

static AioContext *new_private_context(void)
{
    Error *err = NULL;
    AioContext *c = aio_context_new(&err);

    g_assert_null(err);
    g_assert_nonnull(c);
    return c;
}

#define SUBPROCESS_TIMEOUT_US (30 * G_USEC_PER_SEC)

static void run_in_subprocess(void)
{
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
}

static void unreached_cb(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

/* ------------------------------------------------------------------ */
/* J1: aio_poll outside the home thread                                 */
/* ------------------------------------------------------------------ */

static gpointer poll_thread_fn(gpointer opaque)
{
    aio_poll(opaque, false);
    return NULL;
}

/* The main thread polled the context first, so it is the home thread; a
 * poll from another thread aborts. */
static void test_poll_first_poller_is_home(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        g_assert_false(aio_poll(c, false));
        g_thread_join(g_thread_new("intruder", poll_thread_fn, c));
        /* not reached */
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_poll: *home thread*");
}

/* Another thread made the context current: polling it from the main thread
 * aborts. */
typedef struct {
    AioContext *c;
    GMutex lock;
    GCond cond;
    bool bound;
} BindThread;

static gpointer bind_thread_fn(gpointer opaque)
{
    BindThread *b = opaque;

    qemu_set_current_aio_context(b->c);
    g_mutex_lock(&b->lock);
    b->bound = true;
    g_cond_signal(&b->cond);
    /* Stay alive (and never come back) while the main thread misbehaves. */
    for (;;) {
        g_cond_wait(&b->cond, &b->lock);
    }
    return NULL;
}

static void test_poll_current_thread_is_home(void)
{
    if (g_test_subprocess()) {
        BindThread b = { .bound = false };

        no_core_dumps();
        b.c = new_private_context();
        g_mutex_init(&b.lock);
        g_cond_init(&b.cond);
        g_thread_unref(g_thread_new("home", bind_thread_fn, &b));
        g_mutex_lock(&b.lock);
        while (!b.bound) {
            g_cond_wait(&b.cond, &b.lock);
        }
        g_mutex_unlock(&b.lock);
        aio_poll(b.c, false);
        /* not reached */
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_poll: *home thread*");
}

/* Control: the home thread itself may poll, also after another thread
 * created the context (iothread pattern). */
static gpointer create_thread_fn(gpointer opaque)
{
    (void)opaque;
    return new_private_context();
}

static void test_poll_home_thread_ok(void)
{
    if (g_test_subprocess()) {
        AioContext *c = g_thread_join(g_thread_new("creator", create_thread_fn, NULL));

        g_assert_false(aio_poll(c, false));
        g_assert_false(aio_poll(c, false));
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* ------------------------------------------------------------------ */
/* A11 / K4: BHs left at finalize                                        */
/* ------------------------------------------------------------------ */

/* A scheduled BH at finalize: abort naming the BH. */
static void test_leak_scheduled_bh(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUBH *bh = aio_bh_new_full(c, unreached_cb, NULL, "leaky-scheduled-bh", NULL);

        no_core_dumps();
        qemu_bh_schedule(bh);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_ctx_finalize: *leaky-scheduled-bh*leaked*");
}

/* The name of a BH made with aio_bh_new is its callback's name. */
static void leaky_named_cb(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

static void test_leak_bh_default_name(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUBH *bh = aio_bh_new(c, leaky_named_cb, NULL);

        no_core_dumps();
        qemu_bh_schedule(bh);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*BH 'leaky_named_cb' leaked*");
}

/* A cancelled BH stays queued until the next aio_bh_poll: without a poll
 * in between it still counts as leaked. */
static void test_leak_cancelled_bh(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUBH *bh = aio_bh_new_full(c, unreached_cb, NULL, "leaky-cancelled-bh", NULL);

        no_core_dumps();
        qemu_bh_schedule(bh);
        qemu_bh_cancel(bh);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_ctx_finalize: *leaky-cancelled-bh*leaked*");
}

/* A pending one-shot BH at finalize. */
static void test_leak_oneshot_bh(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        aio_bh_schedule_oneshot_full(c, unreached_cb, NULL, "leaky-oneshot-bh");
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_ctx_finalize: *leaky-oneshot-bh*leaked*");
}

/* The context is finalized by the last reference, here the GMainContext's:
 * the abort happens there. */
static void test_leak_bh_attached(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        GMainContext *gctx = g_main_context_new();
        GSource *src = aio_get_g_source(c);
        QEMUBH *bh = aio_bh_new_full(c, unreached_cb, NULL, "leaky-attached-bh", NULL);

        no_core_dumps();
        g_source_attach(src, gctx);
        g_source_unref(src);
        qemu_bh_schedule(bh);
        aio_context_unref(c);  /* the GMainContext still holds the source */
        g_printerr("still alive\n");
        g_main_context_unref(gctx);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*still alive*leaky-attached-bh*leaked*");
}

/* ------------------------------------------------------------------ */
/* E9 / K4: an armed timer at finalize                                  */
/* ------------------------------------------------------------------ */

static void test_armed_timer(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUTimer *t = g_new0(QEMUTimer, 1);

        no_core_dumps();
        aio_timer_init(c, t, QEMU_CLOCK_REALTIME, SCALE_MS, unreached_cb, NULL);
        timer_mod(t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 60000);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_ctx_finalize: *timer*");
}

/* ------------------------------------------------------------------ */
/* Loose ends that are fine                                              */
/* ------------------------------------------------------------------ */

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void unreached_notifier_cb(EventNotifier *e)
{
    (void)e;
    g_assert_not_reached();
}

/* LeakSanitizer (the sanitizer build): a BH this test leaks on purpose is
 * not a finding. NULL when the program runs without the sanitizer. */
void __lsan_ignore_object(const void *p) __attribute__((weak));

/* A deleted BH (never polled), a BH created but never scheduled, a deleted
 * timer, and a handler still registered (and ready, never polled): finalize
 * does not abort and calls nothing. */
static void test_clean_finalize(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUBH *deleted = aio_bh_new_full(c, unreached_cb, NULL, "deleted-bh", NULL);
        QEMUBH *deleted_sched = aio_bh_new_full(c, unreached_cb, NULL, "deleted-sched-bh", NULL);
        QEMUBH *cancelled_polled = aio_bh_new_full(c, unreached_cb, NULL, "cancelled-bh", NULL);
        QEMUBH *never = aio_bh_new_full(c, unreached_cb, NULL, "never-scheduled-bh", NULL);
        QEMUTimer t;
        EventNotifier e;
        int runs = 0;

        /* Never deleted: leaked, as in QEMU. */
        if (__lsan_ignore_object) {
            __lsan_ignore_object(never);
        }

        /* Cancelled and then dropped from the list by a poll: fine too,
         * once deleted. */
        qemu_bh_schedule(cancelled_polled);
        qemu_bh_cancel(cancelled_polled);
        g_assert_false(aio_poll(c, false));
        qemu_bh_delete(cancelled_polled);

        /* A one-shot that ran is gone. */
        aio_bh_schedule_oneshot(c, count_cb, &runs);
        g_assert_true(aio_poll(c, false));
        g_assert_cmpint(runs, ==, 1);

        /* Deleted with no poll afterwards: still on the list at finalize,
         * freed quietly. */
        qemu_bh_delete(deleted);
        qemu_bh_schedule(deleted_sched);
        qemu_bh_delete(deleted_sched);

        aio_timer_init(c, &t, QEMU_CLOCK_REALTIME, SCALE_MS, unreached_cb, NULL);
        timer_mod(&t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 60000);
        timer_del(&t);

        /* K3: a handler still registered is not called, and no abort. */
        g_assert_cmpint(event_notifier_init(&e, true), ==, 0);
        aio_set_event_notifier(c, &e, unreached_notifier_cb, NULL, NULL);

        aio_context_unref(c);
        event_notifier_cleanup(&e);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr_unmatched("*leaked*");
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* A BH deleted from inside its own callback, and the context unreffed right
 * after that poll. */
static void self_delete_cb(void *opaque)
{
    QEMUBH **bh = opaque;
    qemu_bh_delete(*bh);
    *bh = NULL;
}

static void test_clean_finalize_self_deleted(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUBH *bh = NULL;

        bh = aio_bh_new(c, self_delete_cb, &bh);
        qemu_bh_schedule(bh);
        g_assert_true(aio_poll(c, false));
        g_assert_null(bh);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* ------------------------------------------------------------------ */
/* Misuse QEMU leaves undefined, where qaio is harmless (README,         */
/* "Reliability")                                                        */
/* ------------------------------------------------------------------ */

/* qemu_bh_delete twice before the loop freed the BH (scheduled or not, and
 * from inside its own callback): the second call changes nothing; the BH
 * never runs again and finalize is quiet. (A delete after an aio_poll freed
 * the BH is a use after free, as in QEMU.) */
static void self_delete_twice_cb(void *opaque)
{
    QEMUBH **bh = opaque;
    qemu_bh_delete(*bh);
    qemu_bh_delete(*bh);
    *bh = NULL;
}

static void test_double_bh_delete(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUBH *idle = aio_bh_new_full(c, unreached_cb, NULL, "double-delete-idle", NULL);
        QEMUBH *sched = aio_bh_new_full(c, unreached_cb, NULL, "double-delete-scheduled", NULL);
        QEMUBH *self = NULL;

        qemu_bh_delete(idle);
        qemu_bh_delete(idle);
        qemu_bh_schedule(sched);
        qemu_bh_delete(sched);
        qemu_bh_delete(sched);
        g_assert_false(aio_poll(c, false));

        self = aio_bh_new(c, self_delete_twice_cb, &self);
        qemu_bh_schedule(self);
        g_assert_true(aio_poll(c, false));
        g_assert_null(self);
        g_assert_false(aio_poll(c, false));

        /* Deleted twice and never polled afterwards: freed at finalize. */
        sched = aio_bh_new_full(c, unreached_cb, NULL, "double-delete-at-finalize", NULL);
        qemu_bh_schedule(sched);
        qemu_bh_delete(sched);
        qemu_bh_delete(sched);
        aio_context_unref(c);
        g_printerr("done\n");
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*done*");
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* timer_free of an armed timer disarms it first (as QEMU since 2020): it
 * never fires, and finalize finds no armed timer. */
static void test_timer_free_armed(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        QEMUTimer *due = aio_timer_new(c, QEMU_CLOCK_REALTIME, SCALE_NS, unreached_cb, NULL);
        QEMUTimer *later = aio_timer_new(c, QEMU_CLOCK_REALTIME, SCALE_MS, unreached_cb, NULL);
        int64_t deadline;

        timer_mod_ns(due, qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
        timer_mod(later, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1);
        deadline = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 2 * SCALE_MS;
        timer_free(due);
        timer_free(later);
        g_assert_cmpint(aio_compute_timeout(c), ==, -1);
        while (qemu_clock_get_ns(QEMU_CLOCK_REALTIME) < deadline) {
            g_assert_false(aio_poll(c, false));
        }
        aio_context_unref(c);
        g_printerr("done\n");
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*done*");
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* The context's GSource was destroyed by glib (its GMainContext went away)
 * while the caller still holds its reference: the context is on its way to
 * finalize, and aio_set_fd_handler and aio_poll still work (glib's poll
 * records are no longer touched). */
static int destroyed_reads;

static void destroyed_read_cb(void *opaque)
{
    int *fds = opaque;
    char b;

    g_assert_cmpint(read(fds[0], &b, 1), ==, 1);
    destroyed_reads++;
}

static void test_fd_handler_destroyed_source(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        GMainContext *gctx = g_main_context_new();
        GSource *src = aio_get_g_source(c);
        int fds[2];

        g_assert_cmpint(pipe(fds), ==, 0);
        g_source_attach(src, gctx);
        g_source_unref(src);
        g_main_context_unref(gctx);
        g_assert_true(g_source_is_destroyed(&c->source));

        aio_set_fd_handler(c, fds[0], destroyed_read_cb, NULL, NULL, NULL, fds);
        g_assert_cmpint(write(fds[1], "x", 1), ==, 1);
        while (!destroyed_reads) {
            aio_poll(c, true);
        }
        g_assert_cmpint(destroyed_reads, ==, 1);
        aio_set_fd_handler(c, fds[0], NULL, NULL, NULL, NULL, NULL);
        g_assert_cmpint(write(fds[1], "x", 1), ==, 1);
        g_assert_false(aio_poll(c, false));
        g_assert_cmpint(destroyed_reads, ==, 1);
        aio_context_unref(c);
        close(fds[0]);
        close(fds[1]);
        g_printerr("done\n");
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*done*");
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* ------------------------------------------------------------------ */
/* References: unref past zero, or of glib's own reference              */
/* ------------------------------------------------------------------ */

/* QEMU: a plain g_source_unref of freed memory. qaio keeps a set of live
 * contexts and refuses a finalized one before touching it. */
static void test_unref_past_zero(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        aio_context_unref(c);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_context_unref: ctx was already finalized "
                              "(more aio_context_unref calls than references)\n*");
}

static void test_ref_after_finalize(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        aio_context_unref(c);
        aio_context_ref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_context_ref: ctx was already finalized*");
}

/* The one reference left is the GMainContext's: glib would warn, finalize
 * and free a source it still lists. qaio aborts before. Dropping a
 * reference while glib holds another is fine. */
static void test_unref_attached(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        GMainContext *gctx = g_main_context_new();
        GSource *src = aio_get_g_source(c);

        no_core_dumps();
        g_source_attach(src, gctx);
        g_source_unref(src);
        aio_context_ref(c);
        aio_context_unref(c);
        aio_context_unref(c); /* the GMainContext still holds the source */
        g_printerr("still alive\n");
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*still alive\n*qaio: aio_context_unref: the last reference would be "
                              "dropped while the context's GSource is still attached to a "
                              "GMainContext (g_source_destroy it first)\n*");
}

/* Destroyed first, the last unref is fine. */
static void test_unref_destroyed(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();
        GMainContext *gctx = g_main_context_new();
        GSource *src = aio_get_g_source(c);

        g_source_attach(src, gctx);
        g_source_unref(src);
        g_source_destroy(&c->source);
        aio_context_unref(c);
        g_main_context_unref(gctx);
        g_printerr("done\n");
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*done*");
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* A GSource destroy notify runs after qaio's finalize (glib's order), with
 * the object still allocated but the context gone. */
static gboolean never_cb(gpointer opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

static void finalizing_set_fd_handler(gpointer opaque)
{
    int fds[2];

    g_assert_cmpint(pipe(fds), ==, 0);
    g_printerr("destroy notify\n");
    aio_set_fd_handler(opaque, fds[0], unreached_cb, NULL, NULL, NULL, NULL);
}

static void test_set_fd_handler_finalizing(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        g_source_set_callback(&c->source, never_cb, c, finalizing_set_fd_handler);
        aio_context_unref(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*destroy notify\n*qaio: aio_set_fd_handler: the AioContext is "
                              "being finalized (its last reference was dropped)\n*");
}

/* ------------------------------------------------------------------ */
/* Other asserted rules                                                  */
/* ------------------------------------------------------------------ */

/* QEMU asserts that a thread sets its current context only once. */
static void test_set_current_twice(void)
{
    if (g_test_subprocess()) {
        /* The fixture already made ctx current in this thread. */
        AioContext *c = new_private_context();

        no_core_dumps();
        qemu_set_current_aio_context(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: qemu_set_current_aio_context: *");
}

/* ------------------------------------------------------------------ */
/* A program without QEMU's hooks (test-qemu-hooks.c has them)          */
/* ------------------------------------------------------------------ */

static void test_no_coroutine_runtime(void)
{
    if (g_test_subprocess()) {
        /* Never touched: the missing runtime is found first. */
        static uint64_t fake_coroutine[16];
        AioContext *c = new_private_context();

        no_core_dumps();
        aio_co_schedule(c, (Coroutine *)fake_coroutine);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_co_schedule: no coroutine runtime*");
}

static void test_no_thread_pool(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        aio_get_thread_pool(c);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_get_thread_pool: no thread pool*");
}

static void test_no_linux_aio(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_private_context();

        no_core_dumps();
        aio_setup_linux_aio(c, NULL);
        return;
    }
    run_in_subprocess();
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*qaio: aio_setup_linux_aio: no Linux AIO*");
}

static gpointer current_context_thread_fn(gpointer opaque)
{
    *(AioContext **)opaque = qemu_get_current_aio_context();
    return NULL;
}

/* Without a big lock, a thread that set no context has none. */
static void test_no_bql_current_context(void)
{
    AioContext *seen = ctx;

    g_assert_true(qemu_get_current_aio_context() == ctx);
    g_thread_join(g_thread_new("no-context", current_context_thread_fn, &seen));
    g_assert_null(seen);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/aio/misuse/poll/first-poller-is-home", test_poll_first_poller_is_home);
    g_test_add_func("/aio/misuse/poll/current-thread-is-home", test_poll_current_thread_is_home);
    g_test_add_func("/aio/misuse/poll/home-thread-ok", test_poll_home_thread_ok);
    g_test_add_func("/aio/misuse/finalize/scheduled-bh", test_leak_scheduled_bh);
    g_test_add_func("/aio/misuse/finalize/bh-default-name", test_leak_bh_default_name);
    g_test_add_func("/aio/misuse/finalize/cancelled-bh", test_leak_cancelled_bh);
    g_test_add_func("/aio/misuse/finalize/oneshot-bh", test_leak_oneshot_bh);
    g_test_add_func("/aio/misuse/finalize/attached", test_leak_bh_attached);
    g_test_add_func("/aio/misuse/finalize/armed-timer", test_armed_timer);
    g_test_add_func("/aio/misuse/finalize/clean", test_clean_finalize);
    g_test_add_func("/aio/misuse/finalize/clean-self-deleted", test_clean_finalize_self_deleted);
    g_test_add_func("/aio/misuse/set-current-twice", test_set_current_twice);
    g_test_add_func("/aio/misuse/unref/past-zero", test_unref_past_zero);
    g_test_add_func("/aio/misuse/unref/ref-after-finalize", test_ref_after_finalize);
    g_test_add_func("/aio/misuse/unref/attached", test_unref_attached);
    g_test_add_func("/aio/misuse/unref/destroyed-ok", test_unref_destroyed);
    g_test_add_func("/aio/misuse/finalizing/set-fd-handler", test_set_fd_handler_finalizing);
    g_test_add_func("/aio/misuse/undefined/double-bh-delete", test_double_bh_delete);
    g_test_add_func("/aio/misuse/undefined/timer-free-armed", test_timer_free_armed);
    g_test_add_func("/aio/misuse/undefined/fd-handler-destroyed-source",
                    test_fd_handler_destroyed_source);
    g_test_add_func("/aio/misuse/no-hooks/coroutine-runtime", test_no_coroutine_runtime);
    g_test_add_func("/aio/misuse/no-hooks/thread-pool", test_no_thread_pool);
    g_test_add_func("/aio/misuse/no-hooks/linux-aio", test_no_linux_aio);
    g_test_add_func("/aio/misuse/no-hooks/current-context", test_no_bql_current_context);

    return g_test_run();
}
