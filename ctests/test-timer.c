/*
 * Timers on an AioContext: firing order, deadlines, re-arming, clocks and the
 * timer API (parity-scenarios.md S12, S27, section 3 E; aio-behaviour.md
 * sections 8.9 and 11.2).
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <stdint.h>
#include <string.h>

#define MS (1000 * 1000LL)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* A timer record that logs its tag when it fires. */
typedef struct TimerRec {
    QEMUTimer t;
    int n;
    char tag;
    /* optional actions, done from the callback */
    struct TimerRec *del;      /* timer_del() this one */
    int rearm_now_until;       /* re-arm for "now" while n < this */
    int64_t rearm_future_ns;   /* re-arm this far in the future (once) */
    QEMUBH *bh;                /* schedule this BH */
} TimerRec;

static void rec_cb(void *opaque)
{
    TimerRec *r = opaque;

    /* The running timer has already been taken off its list. */
    g_assert(!timer_pending(&r->t));
    r->n++;
    if (r->tag) {
        log_add(r->tag);
    }
    if (r->del) {
        timer_del(&r->del->t);
    }
    if (r->n < r->rearm_now_until) {
        /* 0 is certainly <= the clock reading this run started with. */
        timer_mod_ns(&r->t, 0);
    }
    if (r->rearm_future_ns) {
        int64_t ns = r->rearm_future_ns;
        r->rearm_future_ns = 0;
        timer_mod_ns(&r->t, now_ns() + ns);
    }
    if (r->bh) {
        qemu_bh_schedule(r->bh);
    }
}

static void rec_init(TimerRec *r, QEMUClockType type, int scale, char tag)
{
    memset(r, 0, sizeof(*r));
    r->tag = tag;
    aio_timer_init(ctx, &r->t, type, scale, rec_cb, r);
}

/* Sleeps until the REALTIME clock is past t (ns). */
static void sleep_past(int64_t t)
{
    int64_t now;
    while ((now = now_ns()) <= t) {
        g_usleep((t - now) / 1000 + 1);
    }
}

static void bh_log_cb(void *opaque)
{
    int *n = opaque;
    (*n)++;
    log_add('b');
}

static void noop_notifier_cb(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
}

/* ------------------------------------------------------------------------ */
/* S12 /aio/timer/schedule                                                   */

static void test_timer_schedule(void)
{
    EventNotifier e;
    TimerTestData data = {
        .n = 0, .max = 2, .ns = 750 * MS, .clock_type = QEMU_CLOCK_REALTIME,
    };
    int64_t expiry, start;

    /* A registered fd, kept from the days a blocking poll needed one. */
    event_notifier_init(&e, false);
    aio_set_event_notifier(ctx, &e, noop_notifier_cb, NULL, NULL);
    aio_poll(ctx, false);

    aio_timer_init(ctx, &data.timer, data.clock_type, SCALE_NS,
                   timer_test_cb, &data);
    timer_mod(&data.timer, now_ns() + data.ns);
    g_assert_cmpint(data.n, ==, 0);

    /* Arming may have notified; that is not progress. */
    g_assert_cmpint(drain_aio(ctx), ==, 0);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);

    /* Nothing fires without a poll. */
    g_usleep(1000 * 1000);
    g_assert_cmpint(data.n, ==, 0);

    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    g_assert(timer_pending(&data.timer)); /* re-armed ~750 ms ahead */

    g_assert_cmpint(drain_aio(ctx), ==, 0);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);

    /* A blocking poll sleeps until the deadline. */
    expiry = data.timer.expire_time;
    start = now_ns();
    g_assert(aio_poll(ctx, true));
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(now_ns(), >=, expiry);
    g_assert_cmpint(now_ns() - start, >=, 700 * MS);

    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 2);
    g_assert(!timer_pending(&data.timer));

    aio_set_event_notifier(ctx, &e, NULL, NULL, NULL);
    event_notifier_cleanup(&e);
    timer_del(&data.timer);
}

/* ------------------------------------------------------------------------ */
/* S27 /aio-gsource/timer/schedule                                           */

static void test_gsource_timer_schedule(void)
{
    EventNotifier e;
    TimerTestData data = {
        .n = 0, .max = 2, .ns = 750 * MS, .clock_type = QEMU_CLOCK_REALTIME,
    };
    int64_t expiry;

    event_notifier_init(&e, false);
    aio_set_event_notifier(ctx, &e, noop_notifier_cb, NULL, NULL);
    drain_glib();

    aio_timer_init(ctx, &data.timer, data.clock_type, SCALE_NS,
                   timer_test_cb, &data);
    expiry = now_ns() + data.ns;
    timer_mod(&data.timer, expiry);
    g_assert_cmpint(data.n, ==, 0);

    g_usleep(1000 * 1000);
    g_assert_cmpint(data.n, ==, 0);

    /* The deadline has passed: prepare reports timeout 0, no blocking. */
    g_assert(g_main_context_iteration(NULL, TRUE));
    g_assert_cmpint(data.n, ==, 1);
    expiry += data.ns;

    /* Sleeps until the re-armed deadline (rounded up to whole ms). */
    while (data.n < 2) {
        g_main_context_iteration(NULL, TRUE);
    }
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(qemu_clock_get_ns(QEMU_CLOCK_REALTIME), >, expiry);

    aio_set_event_notifier(ctx, &e, NULL, NULL, NULL);
    drain_glib();
    event_notifier_cleanup(&e);
    timer_del(&data.timer);
}

/* ------------------------------------------------------------------------ */
/* E1: firing order follows expiry; ties run in arming order                 */

static void test_timer_order(void)
{
    TimerRec r[4];
    int64_t T;

    rec_init(&r[0], QEMU_CLOCK_REALTIME, SCALE_NS, '0');
    rec_init(&r[1], QEMU_CLOCK_REALTIME, SCALE_NS, '1');
    rec_init(&r[2], QEMU_CLOCK_REALTIME, SCALE_NS, '2');
    rec_init(&r[3], QEMU_CLOCK_REALTIME, SCALE_NS, '3');

    T = now_ns() + 20 * MS;
    timer_mod_ns(&r[1].t, T);
    timer_mod_ns(&r[2].t, T);
    timer_mod_ns(&r[3].t, T);
    timer_mod_ns(&r[0].t, T - 1);
    log_reset();
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "");

    sleep_past(T);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "0123");
    g_assert(!aio_poll(ctx, false));

    /* Re-arming a timer moves it behind the others with the same expiry. */
    T = now_ns() + 20 * MS;
    timer_mod_ns(&r[1].t, T);
    timer_mod_ns(&r[2].t, T);
    timer_mod_ns(&r[3].t, T);
    timer_mod_ns(&r[1].t, T);
    log_reset();
    sleep_past(T);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "231");
    g_assert(!aio_poll(ctx, false));
    for (int i = 0; i < 4; i++) {
        g_assert(!timer_pending(&r[i].t));
    }
}

/* ------------------------------------------------------------------------ */
/* E2: a past, zero or negative expiry runs in the next poll                 */

static void test_timer_past(void)
{
    TimerRec r;

    rec_init(&r, QEMU_CLOCK_REALTIME, SCALE_NS, 0);

    timer_mod_ns(&r.t, now_ns() - 1000 * MS);
    g_assert(aio_poll(ctx, true)); /* does not block */
    g_assert_cmpint(r.n, ==, 1);

    timer_mod_ns(&r.t, 0);
    g_assert_cmpuint(timer_expire_time_ns(&r.t), ==, 0);
    g_assert(aio_poll(ctx, true));
    g_assert_cmpint(r.n, ==, 2);

    /* A negative expiry is clamped to 0. */
    timer_mod_ns(&r.t, -5);
    g_assert(timer_pending(&r.t));
    g_assert_cmpuint(timer_expire_time_ns(&r.t), ==, 0);
    g_assert_cmpint(r.t.expire_time, ==, 0);
    g_assert(aio_poll(ctx, true));
    g_assert_cmpint(r.n, ==, 3);

    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 3);
}

/* ------------------------------------------------------------------------ */
/* E3: timer_del                                                             */

static void test_timer_del(void)
{
    TimerRec r[2];
    int64_t T;

    rec_init(&r[0], QEMU_CLOCK_REALTIME, SCALE_NS, 'a');
    rec_init(&r[1], QEMU_CLOCK_REALTIME, SCALE_NS, 'b');

    T = now_ns() + 10 * MS;
    timer_mod_ns(&r[0].t, T);
    g_assert(timer_pending(&r[0].t));
    timer_del(&r[0].t);
    g_assert(!timer_pending(&r[0].t));
    g_assert_cmpuint(timer_expire_time_ns(&r[0].t), ==, UINT64_MAX);
    g_assert_cmpint(r[0].t.expire_time, ==, -1);
    timer_del(&r[0].t); /* idempotent */
    g_assert(!timer_pending(&r[0].t));
    sleep_past(T);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r[0].n, ==, 0);

    /* An expired timer deleted by an earlier timer's callback in the same
     * run does not fire. */
    T = now_ns() + 10 * MS;
    r[0].del = &r[1];
    timer_mod_ns(&r[1].t, T);
    timer_mod_ns(&r[0].t, T - 1);
    log_reset();
    sleep_past(T);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "a");
    g_assert_cmpint(r[1].n, ==, 0);
    g_assert(!timer_pending(&r[1].t));
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r[1].n, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* E4: re-arming inside the callback                                         */

static void test_timer_rearm_in_cb(void)
{
    TimerRec r;

    /* A future expiry does not fire in the same run. */
    rec_init(&r, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    r.rearm_future_ns = 3600 * 1000 * MS;
    timer_mod_ns(&r.t, 0);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 1);
    g_assert(timer_pending(&r.t));
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 1);
    timer_del(&r.t);

    /* An expiry at or before the clock reading of the run fires again in
     * the same run: three calls from one aio_poll. */
    rec_init(&r, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    r.rearm_now_until = 3;
    timer_mod_ns(&r.t, 0);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 3);
    g_assert(!timer_pending(&r.t));
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 3);
}

/* ------------------------------------------------------------------------ */
/* E5: timer_mod from another thread                                         */

typedef struct {
    QEMUTimer *t;
    int64_t delay_ns; /* arm at now + delay_ns */
    int64_t armed_at; /* the expiry it set */
} CrossMod;

static gpointer cross_mod_thread(gpointer opaque)
{
    CrossMod *m = opaque;
    /* Let the home thread block first (same result if it has not yet). */
    g_usleep(50 * 1000);
    m->armed_at = now_ns() + m->delay_ns;
    timer_mod_ns(m->t, m->armed_at);
    return NULL;
}

static void test_timer_cross_thread(void)
{
    TimerRec r, head;
    CrossMod m;
    Watchdog *w;
    GThread *th;

    /* The timer becomes the head: the blocked poll wakes up and returns
     * false (a wake-up, no timer expired yet). */
    rec_init(&r, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    settle_aio(ctx);
    m = (CrossMod){ .t = &r.t, .delay_ns = 1000 * MS };
    w = watchdog_start(ctx, 5000);
    th = g_thread_new("timer-mod", cross_mod_thread, &m);
    g_assert(!aio_poll(ctx, true));
    g_thread_join(th);
    g_assert(!watchdog_stop(w));
    g_assert_cmpint(r.n, ==, 0);
    g_assert(timer_pending(&r.t));

    /* The next blocking poll sleeps until that deadline. */
    settle_aio(ctx);
    w = watchdog_start(ctx, 5000);
    g_assert(aio_poll(ctx, true));
    g_assert(!watchdog_stop(w));
    g_assert_cmpint(r.n, ==, 1);
    g_assert_cmpint(now_ns(), >=, m.armed_at);

    /* A timer that does not become the head does not wake the loop; the
     * poll returns true at the head's deadline, having run only the head. */
    rec_init(&head, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    rec_init(&r, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    settle_aio(ctx);
    timer_mod_ns(&head.t, now_ns() + 300 * MS);
    aio_poll(ctx, false); /* accept the notification of our own timer_mod */
    m = (CrossMod){ .t = &r.t, .delay_ns = 3600 * 1000 * MS };
    w = watchdog_start(ctx, 5000);
    th = g_thread_new("timer-mod", cross_mod_thread, &m);
    g_assert(aio_poll(ctx, true));
    g_thread_join(th);
    g_assert(!watchdog_stop(w));
    g_assert_cmpint(head.n, ==, 1);
    g_assert_cmpint(r.n, ==, 0);
    g_assert(timer_pending(&r.t));
    timer_del(&r.t);
    g_assert(!aio_poll(ctx, false));
}

/* ------------------------------------------------------------------------ */
/* E7: QEMU_CLOCK_VIRTUAL starts disabled                                    */

static void test_timer_virtual_disabled(void)
{
    TimerRec r;
    Watchdog *w;

    g_assert(!qemu_clock_is_enabled(QEMU_CLOCK_VIRTUAL));
    g_assert(qemu_clock_is_enabled(QEMU_CLOCK_REALTIME));
    g_assert(qemu_clock_is_enabled(QEMU_CLOCK_HOST));
    g_assert(qemu_clock_is_enabled(QEMU_CLOCK_VIRTUAL_RT));

    rec_init(&r, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0);
    timer_mod_ns(&r.t, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL));
    g_assert(timer_pending(&r.t));

    /* It neither fires nor bounds the timeout. */
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 0);
    g_assert_cmpint(aio_compute_timeout(ctx), ==, -1);

    /* A blocking poll with only it armed sleeps until woken. */
    settle_aio(ctx);
    w = watchdog_start(ctx, 100);
    g_assert(!aio_poll(ctx, true));
    g_assert(watchdog_stop(w));
    g_assert_cmpint(r.n, ==, 0);
    g_assert(timer_pending(&r.t));

    /* Enabled, it fires. */
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    g_assert(qemu_clock_is_enabled(QEMU_CLOCK_VIRTUAL));
    g_assert_cmpint(aio_compute_timeout(ctx), ==, 0);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.n, ==, 1);
    g_assert(!timer_pending(&r.t));
    g_assert_cmpint(aio_compute_timeout(ctx), ==, -1);

    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
    g_assert(!qemu_clock_is_enabled(QEMU_CLOCK_VIRTUAL));
    g_assert(!aio_poll(ctx, false));
}

/* ------------------------------------------------------------------------ */
/* E8: scales, and the state after firing                                    */

static void test_timer_scale(void)
{
    TimerRec ms, us, ns;

    rec_init(&ms, QEMU_CLOCK_REALTIME, SCALE_MS, 0);
    rec_init(&us, QEMU_CLOCK_REALTIME, SCALE_US, 0);
    rec_init(&ns, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    g_assert_cmpint(ms.t.scale, ==, SCALE_MS);
    g_assert_cmpint(us.t.scale, ==, SCALE_US);
    g_assert_cmpint(ns.t.scale, ==, SCALE_NS);

    /* Absolute times far in the past: these all fire at the next poll. */
    timer_mod(&ms.t, 5);
    timer_mod(&us.t, 7);
    timer_mod(&ns.t, 9);
    g_assert_cmpuint(timer_expire_time_ns(&ms.t), ==, 5000000);
    g_assert_cmpuint(timer_expire_time_ns(&us.t), ==, 7000);
    g_assert_cmpuint(timer_expire_time_ns(&ns.t), ==, 9);

    /* timer_expired compares in the timer's scale. */
    g_assert(!timer_expired(&ms.t, 4));
    g_assert(timer_expired(&ms.t, 5));
    g_assert(!timer_expired(&us.t, 6));
    g_assert(timer_expired(&us.t, 7));
    g_assert(!timer_expired(&ns.t, 8));
    g_assert(timer_expired(&ns.t, 9));

    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(ms.n, ==, 1);
    g_assert_cmpint(us.n, ==, 1);
    g_assert_cmpint(ns.n, ==, 1);
    g_assert(!timer_pending(&ms.t));
    g_assert_cmpuint(timer_expire_time_ns(&ms.t), ==, UINT64_MAX);
    g_assert_cmpint(ms.t.expire_time, ==, -1);
    /* A timer that is not pending reads as expired. */
    g_assert(timer_expired(&ms.t, 0));
    g_assert(!aio_poll(ctx, false));

    /* A real deadline in ms. */
    timer_mod(&ms.t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 20);
    g_assert(!aio_poll(ctx, false));
    while (ms.n < 2) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(ms.n, ==, 2);
}

/* ------------------------------------------------------------------------ */
/* E10: timers versus BHs                                                    */

typedef struct {
    EventNotifier e;
    int n;
    TimerRec *arm;   /* timer_mod_ns(arm, now) */
    QEMUBH *bh;      /* qemu_bh_schedule(bh) */
} E10Notifier;

static void e10_notifier_cb(EventNotifier *e)
{
    E10Notifier *d = (E10Notifier *)e;
    g_assert(event_notifier_test_and_clear(e));
    d->n++;
    log_add('f');
    if (d->arm) {
        timer_mod_ns(&d->arm->t, now_ns());
    }
    if (d->bh) {
        qemu_bh_schedule(d->bh);
    }
}

static void test_timer_vs_bh(void)
{
    E10Notifier d = { 0 };
    TimerRec r;
    int bh_n = 0;
    QEMUBH *bh = aio_bh_new(ctx, bh_log_cb, &bh_n);

    event_notifier_init(&d.e, false);
    aio_set_event_notifier(ctx, &d.e, e10_notifier_cb, NULL, NULL);
    g_assert(!aio_poll(ctx, false));
    rec_init(&r, QEMU_CLOCK_REALTIME, SCALE_NS, 't');

    /* An fd handler arming a timer for "now": it runs in the same poll,
     * because timers run last. */
    d.arm = &r;
    log_reset();
    event_notifier_set(&d.e);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "ft");
    d.arm = NULL;

    /* An fd handler scheduling a BH: it runs in the next poll. */
    d.bh = bh;
    log_reset();
    event_notifier_set(&d.e);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "f");
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "fb");
    d.bh = NULL;

    /* A BH scheduled by a timer also runs in the next poll. */
    r.bh = bh;
    log_reset();
    timer_mod_ns(&r.t, 0);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "t");
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "tb");
    r.bh = NULL;

    /* Order inside one poll: BHs, then fd handlers, then timers. */
    log_reset();
    timer_mod_ns(&r.t, 0);
    event_notifier_set(&d.e);
    qemu_bh_schedule(bh);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "bft");
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(bh_n, ==, 3);
    g_assert_cmpint(d.n, ==, 3);
    g_assert_cmpint(r.n, ==, 3);

    aio_set_event_notifier(ctx, &d.e, NULL, NULL, NULL);
    event_notifier_cleanup(&d.e);
    qemu_bh_delete(bh);
    g_assert(!aio_poll(ctx, false));
}

/* ------------------------------------------------------------------------ */
/* timer_mod_anticipate(_ns), timer_expire_time_ns, timer_pending            */

static void test_timer_anticipate(void)
{
    TimerRec ns, us;
    int64_t X = now_ns() + 3600 * 1000 * MS;

    rec_init(&ns, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    g_assert(!timer_pending(&ns.t));
    g_assert_cmpuint(timer_expire_time_ns(&ns.t), ==, UINT64_MAX);

    /* An idle timer is armed. */
    timer_mod_anticipate_ns(&ns.t, X);
    g_assert(timer_pending(&ns.t));
    g_assert_cmpuint(timer_expire_time_ns(&ns.t), ==, (uint64_t)X);
    /* Later: no change. */
    timer_mod_anticipate_ns(&ns.t, X + 100);
    g_assert_cmpuint(timer_expire_time_ns(&ns.t), ==, (uint64_t)X);
    /* Earlier: moves. */
    timer_mod_anticipate_ns(&ns.t, X - 100);
    g_assert_cmpuint(timer_expire_time_ns(&ns.t), ==, (uint64_t)(X - 100));
    /* timer_mod moves both ways. */
    timer_mod_ns(&ns.t, X + 5);
    g_assert_cmpuint(timer_expire_time_ns(&ns.t), ==, (uint64_t)(X + 5));
    g_assert(!timer_expired(&ns.t, X + 4));
    g_assert(timer_expired(&ns.t, X + 5));
    timer_del(&ns.t);

    /* The scaled variant. */
    rec_init(&us, QEMU_CLOCK_REALTIME, SCALE_US, 0);
    timer_mod_anticipate(&us.t, X / 1000);
    g_assert_cmpuint(timer_expire_time_ns(&us.t), ==, (uint64_t)(X / 1000 * 1000));
    timer_mod_anticipate(&us.t, X / 1000 + 1);
    g_assert_cmpuint(timer_expire_time_ns(&us.t), ==, (uint64_t)(X / 1000 * 1000));
    timer_mod_anticipate(&us.t, X / 1000 - 1);
    g_assert_cmpuint(timer_expire_time_ns(&us.t), ==, (uint64_t)(X / 1000 * 1000 - 1000));
    timer_del(&us.t);
    g_assert(!timer_pending(&us.t));

    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(ns.n + us.n, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* aio_timer_new/_with_attrs, aio_timer_init/_with_attrs, timer_free         */

static void test_timer_new_init_free(void)
{
    int n = 0;
    QEMUTimer *t1, *t2;
    QEMUTimer t3, t4;

    t1 = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS, bh_log_cb, &n);
    g_assert_nonnull(t1);
    g_assert(!timer_pending(t1));
    g_assert_cmpint(t1->expire_time, ==, -1);
    g_assert_cmpint(t1->scale, ==, SCALE_MS);
    g_assert_cmpint(t1->attributes, ==, 0);
    g_assert(t1->cb == bh_log_cb);
    g_assert(t1->opaque == &n);

    t2 = aio_timer_new_with_attrs(ctx, QEMU_CLOCK_HOST, SCALE_US,
                                  QEMU_TIMER_ATTR_EXTERNAL, bh_log_cb, &n);
    g_assert_cmpint(t2->scale, ==, SCALE_US);
    g_assert_cmpint(t2->attributes, ==, QEMU_TIMER_ATTR_EXTERNAL);
    g_assert(!timer_pending(t2));

    aio_timer_init(ctx, &t3, QEMU_CLOCK_VIRTUAL_RT, SCALE_NS, bh_log_cb, &n);
    g_assert_cmpint(t3.scale, ==, SCALE_NS);
    g_assert_cmpint(t3.attributes, ==, 0);
    g_assert_cmpint(t3.expire_time, ==, -1);

    aio_timer_init_with_attrs(ctx, &t4, QEMU_CLOCK_REALTIME, SCALE_MS,
                              QEMU_TIMER_ATTR_EXTERNAL, bh_log_cb, &n);
    g_assert_cmpint(t4.attributes, ==, QEMU_TIMER_ATTR_EXTERNAL);
    g_assert_cmpint(t4.scale, ==, SCALE_MS);

    /* All four fire on their clocks. */
    log_reset();
    timer_mod(t1, 0);
    timer_mod(t2, 0);
    timer_mod(&t3, 0);
    timer_mod(&t4, 0);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(n, ==, 4);
    g_assert(!aio_poll(ctx, false));

    /* timer_free of a pending timer: it never fires. */
    timer_mod(t1, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 10);
    timer_free(t1);
    timer_free(t2); /* not pending */
    sleep_past(now_ns() + 20 * MS);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(n, ==, 4);
    timer_free(NULL); /* like g_free */
}

/* ------------------------------------------------------------------------ */
/* qemu_clock_get_ns/us/ms and qemu_soonest_timeout                          */

static void test_clock_get(void)
{
    static const QEMUClockType monotonic[] = {
        QEMU_CLOCK_REALTIME, QEMU_CLOCK_VIRTUAL_RT,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(monotonic); i++) {
        QEMUClockType type = monotonic[i];
        int64_t ms0 = qemu_clock_get_ms(type);
        int64_t us0 = qemu_clock_get_us(type);
        int64_t ns = qemu_clock_get_ns(type);
        int64_t us1 = qemu_clock_get_us(type);
        int64_t ms1 = qemu_clock_get_ms(type);

        g_assert_cmpint(ms0, <=, ns / SCALE_MS);
        g_assert_cmpint(ns / SCALE_MS, <=, ms1);
        g_assert_cmpint(us0, <=, ns / SCALE_US);
        g_assert_cmpint(ns / SCALE_US, <=, us1);
        g_assert_cmpint(ms0, <=, us0 / 1000);
        g_assert_cmpint(us1 / 1000, <=, ms1);
        g_assert_cmpint(ns, >, 0);
    }

    /* REALTIME is what now_ns() reads. */
    {
        int64_t a = now_ns();
        int64_t b = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
        int64_t c = now_ns();
        g_assert_cmpint(a, <=, b);
        g_assert_cmpint(b, <=, c);
    }

    /* HOST is the wall clock. */
    {
        int64_t host_us = qemu_clock_get_us(QEMU_CLOCK_HOST);
        int64_t real_us = g_get_real_time();
        g_assert_cmpint(ABS(host_us - real_us), <, 60 * G_USEC_PER_SEC);
    }
}

static void test_soonest_timeout(void)
{
    g_assert_cmpint(qemu_soonest_timeout(-1, -1), ==, -1);
    g_assert_cmpint(qemu_soonest_timeout(-1, 5), ==, 5);
    g_assert_cmpint(qemu_soonest_timeout(5, -1), ==, 5);
    g_assert_cmpint(qemu_soonest_timeout(3, 7), ==, 3);
    g_assert_cmpint(qemu_soonest_timeout(7, 3), ==, 3);
    g_assert_cmpint(qemu_soonest_timeout(0, -1), ==, 0);
    g_assert_cmpint(qemu_soonest_timeout(-1, 0), ==, 0);
    g_assert_cmpint(qemu_soonest_timeout(INT64_MAX, -1), ==, INT64_MAX);
}

/* ------------------------------------------------------------------------ */
/* aio_compute_timeout with timers                                           */

static void test_compute_timeout(void)
{
    TimerRec a, b;
    int64_t before, after, timeout;

    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(aio_compute_timeout(ctx), ==, -1);

    rec_init(&a, QEMU_CLOCK_REALTIME, SCALE_NS, 0);
    before = now_ns();
    timer_mod_ns(&a.t, before + 1000 * MS);
    timeout = aio_compute_timeout(ctx);
    after = now_ns();
    g_assert_cmpint(timeout, <=, 1000 * MS);
    g_assert_cmpint(timeout, >=, before + 1000 * MS - after);

    /* The soonest over the clocks. */
    rec_init(&b, QEMU_CLOCK_HOST, SCALE_NS, 0);
    before = qemu_clock_get_ns(QEMU_CLOCK_HOST);
    timer_mod_ns(&b.t, before + 500 * MS);
    timeout = aio_compute_timeout(ctx);
    after = qemu_clock_get_ns(QEMU_CLOCK_HOST);
    g_assert_cmpint(timeout, <=, 500 * MS);
    g_assert_cmpint(timeout, >=, before + 500 * MS - after);

    /* A past timer gives 0. */
    timer_mod_ns(&a.t, now_ns() - 1);
    g_assert_cmpint(aio_compute_timeout(ctx), ==, 0);
    timer_mod_ns(&a.t, 0);
    g_assert_cmpint(aio_compute_timeout(ctx), ==, 0);

    timer_del(&a.t);
    timer_del(&b.t);
    g_assert_cmpint(aio_compute_timeout(ctx), ==, -1);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(a.n + b.n, ==, 0);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/aio/timer/schedule", test_timer_schedule);
    g_test_add_func("/aio-gsource/timer/schedule", test_gsource_timer_schedule);
    g_test_add_func("/timer/order", test_timer_order);
    g_test_add_func("/timer/past-expiry", test_timer_past);
    g_test_add_func("/timer/del", test_timer_del);
    g_test_add_func("/timer/rearm-in-callback", test_timer_rearm_in_cb);
    add_cross_thread_test("/timer/cross-thread-mod", test_timer_cross_thread);
    add_cross_thread_test("/timer/virtual-disabled", test_timer_virtual_disabled);
    g_test_add_func("/timer/scale", test_timer_scale);
    g_test_add_func("/timer/vs-bh", test_timer_vs_bh);
    g_test_add_func("/timer/anticipate", test_timer_anticipate);
    g_test_add_func("/timer/new-init-free", test_timer_new_init_free);
    g_test_add_func("/timer/clock-get", test_clock_get);
    g_test_add_func("/timer/soonest-timeout", test_soonest_timeout);
    g_test_add_func("/timer/compute-timeout", test_compute_timeout);

    return g_test_run();
}
