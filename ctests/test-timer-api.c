/*
 * The rest of qemu/timer.h beyond AioContext timers: standalone timer lists
 * and their notify callbacks, groups, the main loop's group (qemu_init_clocks,
 * main_loop_tlg, the timer_new and timer_init families), the clock-wide
 * qemu_clock_* functions, qemu_poll_ns and timer_get/timer_put.
 *
 * The program plays QEMU: it defines the hooks qaio looks for (the main loop's
 * qemu_notify_event, use_icount, a virtual clock, qemu_get_aio_context and a
 * migration stream), so their effects can be checked with exact values.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

/* ------------------------------------------------------------------------ */
/* The program's side of qaio's hooks                                       */

int64_t cpus_get_virtual_clock(void);
void cpus_set_virtual_clock(int64_t ns);
AioContext *qemu_get_aio_context(void);
void qemu_notify_event(void);
uint64_t qemu_get_be64(QEMUFile *f);
void qemu_put_be64(QEMUFile *f, uint64_t v);
extern int use_icount;

int use_icount;
static int64_t virtual_ns = 1000;
static int main_loop_wakeups;

int64_t cpus_get_virtual_clock(void)
{
    return virtual_ns;
}

void cpus_set_virtual_clock(int64_t ns)
{
    virtual_ns = ns;
}

AioContext *qemu_get_aio_context(void)
{
    return ctx;
}

void qemu_notify_event(void)
{
    main_loop_wakeups++;
}

/* A migration stream holding up to four values. */
struct QEMUFile {
    uint64_t v[4];
    int put, got;
};

uint64_t qemu_get_be64(QEMUFile *f)
{
    g_assert_cmpint(f->got, <, f->put);
    return f->v[f->got++];
}

void qemu_put_be64(QEMUFile *f, uint64_t v)
{
    g_assert_cmpint(f->put, <, 4);
    f->v[f->put++] = v;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* What a notify callback saw. */
typedef struct {
    int calls;
    QEMUClockType last;
    int per_clock[QEMU_CLOCK_MAX];
} NotifyRec;

static void notify_cb(void *opaque, QEMUClockType type)
{
    NotifyRec *r = opaque;

    r->calls++;
    r->last = type;
    r->per_clock[type]++;
}

/* The main loop's notify callback (qemu_init_clocks' opaque is NULL). */
static NotifyRec main_rec;

static void main_notify_cb(void *opaque, QEMUClockType type)
{
    g_assert_null(opaque);
    notify_cb(&main_rec, type);
}

static void ensure_clocks(void)
{
    static bool done;

    if (!done) {
        qemu_init_clocks(main_notify_cb);
        done = true;
    }
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* Records the virtual clock when it fires. */
static void virtual_stamp_cb(void *opaque)
{
    *(int64_t *)opaque = virtual_ns;
}

static void no_core_dumps(void)
{
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
}

#define SUBPROCESS_TIMEOUT_US (30 * G_USEC_PER_SEC)

static void expect_abort(const char *pattern)
{
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr(pattern);
}

#define FAR_NS (INT64_MAX / 2)

/* ------------------------------------------------------------------------ */
/* Standalone timer lists                                                   */

static void test_timerlist_notify(void)
{
    NotifyRec rec = { 0 };
    QEMUTimerList *tl = timerlist_new(QEMU_CLOCK_HOST, notify_cb, &rec);
    QEMUTimerListGroup g = { { NULL } };
    QEMUTimer a, b;
    int na = 0, nb = 0;

    g_assert_nonnull(tl);
    g_assert_false(timerlist_has_timers(tl));
    g_assert_false(timerlist_expired(tl));
    g_assert_cmpint(timerlist_deadline_ns(tl), ==, -1);
    g_assert_false(timerlist_run_timers(tl));

    g.tl[QEMU_CLOCK_HOST] = tl;
    timer_init_full(&a, &g, QEMU_CLOCK_HOST, SCALE_NS, 0, count_cb, &na);
    timer_init_full(&b, &g, QEMU_CLOCK_HOST, SCALE_NS, 0, count_cb, &nb);
    g_assert(a.timer_list == tl);
    g_assert_cmpint(rec.calls, ==, 0);

    /* a becomes the head: one notification, with the list's clock. */
    timer_mod_ns(&a, 0);
    g_assert_cmpint(rec.calls, ==, 1);
    g_assert_cmpint(rec.last, ==, QEMU_CLOCK_HOST);
    /* b goes behind a: no notification. */
    timer_mod_ns(&b, FAR_NS);
    g_assert_cmpint(rec.calls, ==, 1);

    g_assert_true(timerlist_has_timers(tl));
    g_assert_true(timerlist_expired(tl));
    g_assert_cmpint(timerlist_deadline_ns(tl), ==, 0);

    timerlist_notify(tl);
    g_assert_cmpint(rec.calls, ==, 2);
    /* The clock notifies every list of its own, and only those. */
    qemu_clock_notify(QEMU_CLOCK_HOST);
    g_assert_cmpint(rec.calls, ==, 3);
    qemu_clock_notify(QEMU_CLOCK_REALTIME);
    qemu_clock_notify(QEMU_CLOCK_VIRTUAL_RT);
    g_assert_cmpint(rec.calls, ==, 3);
    g_assert_cmpint(rec.per_clock[QEMU_CLOCK_HOST], ==, 3);

    /* Nothing but timerlist_run_timers runs it: aio_poll does not. */
    while (aio_poll(ctx, false)) {
    }
    g_assert_cmpint(na, ==, 0);
    g_assert_true(timerlist_run_timers(tl));
    g_assert_cmpint(na, ==, 1);
    g_assert_cmpint(nb, ==, 0);
    g_assert_false(timer_pending(&a));
    g_assert_true(timer_pending(&b));
    g_assert_false(timerlist_expired(tl));
    g_assert_cmpint(timerlist_deadline_ns(tl), >, 0);
    g_assert_false(timerlist_run_timers(tl));

    timer_del(&b);
    g_assert_false(timerlist_has_timers(tl));
    g_assert_cmpint(timerlist_deadline_ns(tl), ==, -1);
    timerlist_free(tl);
    g_assert_cmpint(rec.calls, ==, 3);
}

static void test_timerlist_null_cb(void)
{
    QEMUTimerList *tl = timerlist_new(QEMU_CLOCK_REALTIME, NULL, NULL);
    QEMUTimerListGroup g = { { NULL } };
    QEMUTimer t;
    int n = 0;
    int before = main_loop_wakeups;

    g.tl[QEMU_CLOCK_REALTIME] = tl;
    timer_init_full(&t, &g, QEMU_CLOCK_REALTIME, SCALE_MS, 0, count_cb, &n);
    /* Without a callback the list wakes the program's main loop. */
    timer_mod(&t, 0);
    g_assert_cmpint(main_loop_wakeups, ==, before + 1);
    timerlist_notify(tl);
    g_assert_cmpint(main_loop_wakeups, ==, before + 2);
    g_assert_true(timerlist_run_timers(tl));
    g_assert_cmpint(n, ==, 1);
    timerlist_free(tl);
}

static void test_timerlist_free_pending_aborts(void)
{
    if (g_test_subprocess()) {
        QEMUTimerList *tl = timerlist_new(QEMU_CLOCK_REALTIME, NULL, NULL);
        QEMUTimerListGroup g = { { NULL } };
        QEMUTimer t;
        int n = 0;

        no_core_dumps();
        g.tl[QEMU_CLOCK_REALTIME] = tl;
        timer_init_full(&t, &g, QEMU_CLOCK_REALTIME, SCALE_NS, 0, count_cb, &n);
        timer_mod_ns(&t, FAR_NS);
        timerlist_free(tl);
        return;
    }
    expect_abort("*qaio: timerlist_free: *pending*");
}

/* ------------------------------------------------------------------------ */
/* Groups                                                                   */

static void test_group(void)
{
    NotifyRec rec = { 0 };
    QEMUTimerListGroup g;
    QEMUTimer rt, virt;
    int nrt = 0, nvirt = 0;

    memset(&g, 0xff, sizeof(g));
    timerlistgroup_init(&g, notify_cb, &rec);
    for (int i = 0; i < QEMU_CLOCK_MAX; i++) {
        g_assert_nonnull(g.tl[i]);
        for (int j = 0; j < i; j++) {
            g_assert(g.tl[i] != g.tl[j]);
        }
    }
    g_assert_cmpint(timerlistgroup_deadline_ns(&g), ==, -1);
    g_assert_false(timerlistgroup_run_timers(&g));

    timer_init_full(&rt, &g, QEMU_CLOCK_REALTIME, SCALE_NS, 0, count_cb, &nrt);
    timer_init_full(&virt, &g, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0, count_cb, &nvirt);
    g_assert(rt.timer_list == g.tl[QEMU_CLOCK_REALTIME]);
    g_assert(virt.timer_list == g.tl[QEMU_CLOCK_VIRTUAL]);

    timer_mod_ns(&rt, 0);
    g_assert_cmpint(rec.calls, ==, 1);
    g_assert_cmpint(rec.last, ==, QEMU_CLOCK_REALTIME);
    g_assert_cmpint(timerlistgroup_deadline_ns(&g), ==, 0);
    g_assert_true(timerlistgroup_run_timers(&g));
    g_assert_cmpint(nrt, ==, 1);

    /* VIRTUAL starts disabled: a due timer neither counts nor fires. */
    g_assert_false(qemu_clock_is_enabled(QEMU_CLOCK_VIRTUAL));
    timer_mod_ns(&virt, virtual_ns);
    g_assert_cmpint(rec.calls, ==, 2);
    g_assert_cmpint(rec.last, ==, QEMU_CLOCK_VIRTUAL);
    g_assert_cmpint(timerlistgroup_deadline_ns(&g), ==, -1);
    g_assert_false(timerlistgroup_run_timers(&g));

    /* Enabling it notifies the group's VIRTUAL list. */
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    g_assert_cmpint(rec.calls, ==, 3);
    g_assert_cmpint(rec.per_clock[QEMU_CLOCK_VIRTUAL], ==, 2);
    g_assert_cmpint(timerlistgroup_deadline_ns(&g), ==, 0);

    /* With icount the virtual clock does not bound the deadline, but the
     * group still runs its timers. */
    use_icount = 1;
    g_assert_false(qemu_clock_use_for_deadline(QEMU_CLOCK_VIRTUAL));
    g_assert_true(qemu_clock_use_for_deadline(QEMU_CLOCK_REALTIME));
    g_assert_true(qemu_clock_use_for_deadline(QEMU_CLOCK_HOST));
    g_assert_true(qemu_clock_use_for_deadline(QEMU_CLOCK_VIRTUAL_RT));
    g_assert_cmpint(timerlistgroup_deadline_ns(&g), ==, -1);
    g_assert_true(timerlistgroup_run_timers(&g));
    g_assert_cmpint(nvirt, ==, 1);
    use_icount = 0;
    g_assert_true(qemu_clock_use_for_deadline(QEMU_CLOCK_VIRTUAL));
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);

    timerlistgroup_deinit(&g);
    for (int i = 0; i < QEMU_CLOCK_MAX; i++) {
        g_assert_null(g.tl[i]);
    }
}

static void test_group_deinit_pending_aborts(void)
{
    if (g_test_subprocess()) {
        QEMUTimerListGroup g;
        QEMUTimer t;
        int n = 0;

        no_core_dumps();
        timerlistgroup_init(&g, NULL, NULL);
        timer_init_full(&t, &g, QEMU_CLOCK_HOST, SCALE_NS, 0, count_cb, &n);
        timer_mod_ns(&t, FAR_NS);
        timerlistgroup_deinit(&g);
        return;
    }
    expect_abort("*qaio: timerlistgroup_deinit: *pending*");
}

/* ------------------------------------------------------------------------ */
/* The main loop's group                                                    */

static void test_main_loop_group(void)
{
    QEMUTimer *ns, *us, *ms, *full;
    QEMUTimer stack;
    const QEMUTimer *ro;
    int nns = 0, nus = 0, nms = 0, nstack = 0, nfull = 0;
    int calls;

    ensure_clocks();
    for (int i = 0; i < QEMU_CLOCK_MAX; i++) {
        g_assert_nonnull(main_loop_tlg.tl[i]);
        g_assert(main_loop_tlg.tl[i] != ctx->tlg.tl[i]);
    }
    g_assert_false(qemu_clock_has_timers(QEMU_CLOCK_REALTIME));
    g_assert_false(qemu_clock_expired(QEMU_CLOCK_REALTIME));

    ns = timer_new_ns(QEMU_CLOCK_REALTIME, count_cb, &nns);
    us = timer_new_us(QEMU_CLOCK_REALTIME, count_cb, &nus);
    ms = timer_new_ms(QEMU_CLOCK_HOST, count_cb, &nms);
    full = timer_new_full(NULL, QEMU_CLOCK_VIRTUAL_RT, SCALE_US,
                          QEMU_TIMER_ATTR_EXTERNAL, count_cb, &nfull);
    timer_init_ns(&stack, QEMU_CLOCK_HOST, count_cb, &nstack);
    g_assert(ns->timer_list == main_loop_tlg.tl[QEMU_CLOCK_REALTIME]);
    g_assert(us->timer_list == main_loop_tlg.tl[QEMU_CLOCK_REALTIME]);
    g_assert(ms->timer_list == main_loop_tlg.tl[QEMU_CLOCK_HOST]);
    g_assert(full->timer_list == main_loop_tlg.tl[QEMU_CLOCK_VIRTUAL_RT]);
    g_assert(stack.timer_list == main_loop_tlg.tl[QEMU_CLOCK_HOST]);
    g_assert_cmpint(ns->scale, ==, SCALE_NS);
    g_assert_cmpint(us->scale, ==, SCALE_US);
    g_assert_cmpint(ms->scale, ==, SCALE_MS);
    g_assert_cmpint(full->scale, ==, SCALE_US);
    g_assert_cmpint(full->attributes, ==, QEMU_TIMER_ATTR_EXTERNAL);
    g_assert_cmpint(ns->attributes, ==, 0);
    ro = ns;
    g_assert_false(timer_pending(ro));
    g_assert_cmpuint(timer_expire_time_ns(ro), ==, UINT64_MAX);

    /* The main loop's lists notify through qemu_init_clocks' callback. */
    calls = main_rec.calls;
    timer_mod_ns(ns, 0);
    g_assert_cmpint(main_rec.calls, ==, calls + 1);
    g_assert_cmpint(main_rec.last, ==, QEMU_CLOCK_REALTIME);
    g_assert_true(timer_pending(ro));
    g_assert_true(timer_expired(ro, 0));
    g_assert_cmpuint(timer_expire_time_ns(ro), ==, 0);
    timer_mod(us, 0);
    timer_mod(ms, 0);
    timer_mod(full, 0);
    timer_mod_ns(&stack, 0);
    g_assert_true(qemu_clock_has_timers(QEMU_CLOCK_REALTIME));
    g_assert_true(qemu_clock_expired(QEMU_CLOCK_REALTIME));

    /* aio_poll runs the context's lists, not the main loop's. */
    while (aio_poll(ctx, false)) {
    }
    g_assert_cmpint(nns + nus + nms + nfull + nstack, ==, 0);

    g_assert_true(qemu_clock_run_timers(QEMU_CLOCK_REALTIME));
    g_assert_cmpint(nns, ==, 1);
    g_assert_cmpint(nus, ==, 1);
    g_assert_cmpint(nms, ==, 0);
    g_assert_false(qemu_clock_has_timers(QEMU_CLOCK_REALTIME));
    g_assert_false(qemu_clock_run_timers(QEMU_CLOCK_REALTIME));

    g_assert_true(qemu_clock_run_all_timers());
    g_assert_cmpint(nms, ==, 1);
    g_assert_cmpint(nfull, ==, 1);
    g_assert_cmpint(nstack, ==, 1);
    g_assert_false(qemu_clock_run_all_timers());

    /* With icount, run_all skips VIRTUAL; without, it runs it. */
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    timer_deinit(&stack);
    timer_init(&stack, QEMU_CLOCK_VIRTUAL, SCALE_NS, count_cb, &nstack);
    timer_mod_ns(&stack, virtual_ns);
    use_icount = 1;
    g_assert_false(qemu_clock_run_all_timers());
    g_assert_cmpint(nstack, ==, 1);
    use_icount = 0;
    g_assert_true(qemu_clock_run_all_timers());
    g_assert_cmpint(nstack, ==, 2);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);

    /* timer_free deletes: a freed pending timer never fires. */
    timer_mod_ns(ns, 0);
    timer_free(ns);
    timer_free(us);
    timer_free(ms);
    timer_free(full);
    timer_free(NULL);
    g_assert_false(qemu_clock_run_all_timers());
    g_assert_cmpint(nns, ==, 1);

    timer_init_us(&stack, QEMU_CLOCK_HOST, count_cb, &nstack);
    g_assert_cmpint(stack.scale, ==, SCALE_US);
    timer_init_ms(&stack, QEMU_CLOCK_HOST, count_cb, &nstack);
    g_assert_cmpint(stack.scale, ==, SCALE_MS);
}

static void test_init_clocks_twice_aborts(void)
{
    if (g_test_subprocess()) {
        no_core_dumps();
        qemu_init_clocks(NULL);
        qemu_init_clocks(NULL);
        return;
    }
    expect_abort("*qaio: qemu_init_clocks: *twice*");
}

static void test_null_group_before_init_aborts(void)
{
    if (g_test_subprocess()) {
        QEMUTimer t;
        int n = 0;

        no_core_dumps();
        timer_init_full(&t, NULL, QEMU_CLOCK_REALTIME, SCALE_NS, 0, count_cb, &n);
        return;
    }
    expect_abort("*qaio: timer_init_full: *qemu_init_clocks*");
}

static void test_timer_new_before_init_aborts(void)
{
    if (g_test_subprocess()) {
        int n = 0;

        no_core_dumps();
        timer_new_ns(QEMU_CLOCK_REALTIME, count_cb, &n);
        return;
    }
    expect_abort("*qaio: timer_new_ns: *qemu_init_clocks*");
}

static void test_clock_run_before_init_aborts(void)
{
    if (g_test_subprocess()) {
        no_core_dumps();
        qemu_clock_run_timers(QEMU_CLOCK_REALTIME);
        return;
    }
    expect_abort("*qaio: qemu_clock_run_timers: *qemu_init_clocks*");
}

/* ------------------------------------------------------------------------ */
/* Clock-wide deadlines and virtual time                                    */

static void test_deadline_ns_all(void)
{
    QEMUTimer *ext, *plain;
    int next = 0, nplain = 0;
    int64_t d;

    ensure_clocks();
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, QEMU_TIMER_ATTR_ALL), ==, -1);
    /* An EXTERNAL main-loop timer that is due, a plain context timer far
     * away: the mask decides which counts. */
    ext = timer_new_full(NULL, QEMU_CLOCK_HOST, SCALE_NS, QEMU_TIMER_ATTR_EXTERNAL,
                         count_cb, &next);
    plain = aio_timer_new(ctx, QEMU_CLOCK_HOST, SCALE_NS, count_cb, &nplain);
    timer_mod_ns(ext, 0);
    timer_mod_ns(plain, FAR_NS);
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, QEMU_TIMER_ATTR_ALL), ==, 0);
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, QEMU_TIMER_ATTR_EXTERNAL), ==, 0);
    d = qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, 0);
    g_assert_cmpint(d, >, FAR_NS - qemu_clock_get_ns(QEMU_CLOCK_HOST) - 1);
    g_assert_cmpint(d, <=, FAR_NS);
    timer_del(plain);
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, 0), ==, -1);
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, QEMU_TIMER_ATTR_ALL), ==, 0);
    timer_free(ext);
    timer_free(plain);
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_HOST, QEMU_TIMER_ATTR_ALL), ==, -1);

    /* A disabled clock has no deadline, whatever is armed on it. */
    ext = timer_new_ns(QEMU_CLOCK_VIRTUAL, count_cb, &next);
    timer_mod_ns(ext, 0);
    g_assert_false(qemu_clock_is_enabled(QEMU_CLOCK_VIRTUAL));
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL, QEMU_TIMER_ATTR_ALL), ==, -1);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    g_assert_cmpint(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL, QEMU_TIMER_ATTR_ALL), ==, 0);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
    timer_free(ext);
    g_assert_cmpint(next, ==, 0);
    g_assert_cmpint(nplain, ==, 0);
}

static void test_advance_virtual_time(void)
{
    QEMUTimer *main_t, *ctx_t;
    int64_t main_at = -1, ctx_at = -1;
    int calls;

    ensure_clocks();
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    virtual_ns = 1000;
    g_assert_cmpint(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL), ==, 1000);
    main_t = timer_new_ns(QEMU_CLOCK_VIRTUAL, virtual_stamp_cb, &main_at);
    ctx_t = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, virtual_stamp_cb, &ctx_at);
    timer_mod_ns(main_t, 1500);
    timer_mod_ns(ctx_t, 1200);

    /* Already there: nothing moves or fires, but the lists are notified. */
    calls = main_rec.per_clock[QEMU_CLOCK_VIRTUAL];
    g_assert_cmpint(qemu_clock_advance_virtual_time(1000), ==, 1000);
    g_assert_cmpint(main_rec.per_clock[QEMU_CLOCK_VIRTUAL], ==, calls + 1);
    g_assert_cmpint(main_at, ==, -1);

    /* The clock stops at each deadline on the way and fires its timers. */
    g_assert_cmpint(qemu_clock_advance_virtual_time(2000), ==, 2000);
    g_assert_cmpint(ctx_at, ==, 1200);
    g_assert_cmpint(main_at, ==, 1500);
    g_assert_cmpint(virtual_ns, ==, 2000);
    g_assert_cmpint(main_rec.per_clock[QEMU_CLOCK_VIRTUAL], ==, calls + 2);
    g_assert_false(timer_pending(main_t));
    g_assert_false(timer_pending(ctx_t));

    timer_free(main_t);
    timer_free(ctx_t);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
}

/* ------------------------------------------------------------------------ */
/* qemu_poll_ns                                                             */

static void test_poll_ns(void)
{
    int fds[2];
    GPollFD pfd;
    int64_t start;
    char c = 'x';

    g_assert_cmpint(pipe(fds), ==, 0);
    pfd.fd = fds[0];
    pfd.events = G_IO_IN;
    pfd.revents = 0;

    g_assert_cmpint(qemu_poll_ns(&pfd, 1, 0), ==, 0);
    start = now_ns();
    g_assert_cmpint(qemu_poll_ns(&pfd, 1, 2 * 1000 * 1000), ==, 0);
    g_assert_cmpint(now_ns() - start, >=, 2 * 1000 * 1000);
    g_assert_cmpint(pfd.revents, ==, 0);
    g_assert_cmpint(qemu_poll_ns(NULL, 0, 0), ==, 0);

    g_assert_cmpint(write(fds[1], &c, 1), ==, 1);
    /* Negative: no timeout, but the fd is ready. */
    g_assert_cmpint(qemu_poll_ns(&pfd, 1, -1), ==, 1);
    g_assert_cmpint(pfd.revents, ==, G_IO_IN);
    close(fds[0]);
    close(fds[1]);
}

/* ------------------------------------------------------------------------ */
/* timer_get / timer_put                                                    */

static void test_get_put(void)
{
    QEMUFile f = { { 0 }, 0, 0 };
    QEMUTimer *t;
    int n = 0;

    ensure_clocks();
    t = timer_new_ns(QEMU_CLOCK_HOST, count_cb, &n);
    timer_mod_ns(t, FAR_NS);
    timer_put(&f, t);
    timer_del(t);
    timer_put(&f, t);
    g_assert_cmpint(f.put, ==, 2);
    g_assert_cmpuint(f.v[0], ==, (uint64_t)FAR_NS);
    g_assert_cmpuint(f.v[1], ==, UINT64_MAX);

    timer_get(&f, t);
    g_assert_true(timer_pending(t));
    g_assert_cmpuint(timer_expire_time_ns(t), ==, (uint64_t)FAR_NS);
    timer_get(&f, t);
    g_assert_false(timer_pending(t));
    g_assert_cmpint(f.got, ==, 2);
    timer_free(t);
    g_assert_cmpint(n, ==, 0);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);
    /* The abort cases first: each runs in a fresh subprocess that has not
     * called qemu_init_clocks. */
    g_test_add_func("/timer-api/abort/timerlist-free-pending",
                    test_timerlist_free_pending_aborts);
    g_test_add_func("/timer-api/abort/group-deinit-pending",
                    test_group_deinit_pending_aborts);
    g_test_add_func("/timer-api/abort/init-clocks-twice", test_init_clocks_twice_aborts);
    g_test_add_func("/timer-api/abort/null-group-before-init",
                    test_null_group_before_init_aborts);
    g_test_add_func("/timer-api/abort/timer-new-before-init",
                    test_timer_new_before_init_aborts);
    g_test_add_func("/timer-api/abort/clock-run-before-init",
                    test_clock_run_before_init_aborts);
    g_test_add_func("/timer-api/timerlist/notify", test_timerlist_notify);
    g_test_add_func("/timer-api/timerlist/null-cb", test_timerlist_null_cb);
    g_test_add_func("/timer-api/group", test_group);
    g_test_add_func("/timer-api/main-loop", test_main_loop_group);
    g_test_add_func("/timer-api/deadline-ns-all", test_deadline_ns_all);
    g_test_add_func("/timer-api/advance-virtual-time", test_advance_virtual_time);
    g_test_add_func("/timer-api/poll-ns", test_poll_ns);
    g_test_add_func("/timer-api/get-put", test_get_put);
    return g_test_run();
}
