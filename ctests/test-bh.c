/*
 * Bottom halves: scheduling, cancelling, deleting, self-deleting, LIFO order
 * within a pass, nesting, idle and one-shot BHs, the reentrancy guard,
 * aio_bh_poll's result and aio_compute_timeout, under both drivers (aio_poll
 * and glib's g_main_context_iteration on the default context).
 *
 * Scenarios: parity-scenarios.md S1-S7, S16-S22, section 3 A1-A8 and A10
 * (A8's cross-thread half and A9 live in test-threads.c, A11 in
 * test-misuse.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"

/* Order in which callbacks ran, as small integers. */
#define ORDER_MAX 16
static int order[ORDER_MAX];
static int norder;

static void order_reset(void)
{
    norder = 0;
}

static void order_push(int id)
{
    g_assert_cmpint(norder, <, ORDER_MAX);
    order[norder++] = id;
}

static void assert_order(const int *want, int n)
{
    g_assert_cmpint(norder, ==, n);
    for (int i = 0; i < n; i++) {
        g_assert_cmpint(order[i], ==, want[i]);
    }
}

/* A BH that logs its id into order[] each time it runs. */
typedef struct {
    QEMUBH *bh;
    int id;
    int n;
} OrderBH;

static void order_bh_cb(void *opaque)
{
    OrderBH *o = opaque;
    o->n++;
    order_push(o->id);
}

/* ------------------------------------------------------------------ */
/* S1-S7: the aio_poll driver                                          */
/* ------------------------------------------------------------------ */

/* S1 /aio/bh/schedule and S7 /aio/bh/flush. */
static void test_bh_schedule(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    /* A scheduled BH makes the timeout 0: this must not block. */
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(data.n, ==, 1);

    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    qemu_bh_delete(data.bh);
}

/* S2 /aio/bh/schedule10 */
static void test_bh_schedule10(void)
{
    BHTestData data = { .n = 0, .max = 10 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    /* Rescheduled from its own callback: runs in the next poll only. */
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);

    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(data.n, ==, 2);

    while (data.n < 10) {
        int before = data.n;
        g_assert_true(aio_poll(ctx, true));
        g_assert_cmpint(data.n, ==, before + 1);
    }
    g_assert_cmpint(data.n, ==, 10);

    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 10);
    qemu_bh_delete(data.bh);
}

/* S3 /aio/bh/cancel */
static void test_bh_cancel(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    qemu_bh_cancel(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);
    qemu_bh_delete(data.bh);
}

/* S4 /aio/bh/delete */
static void test_bh_delete(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    qemu_bh_delete(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    /* The next aio_bh_poll frees it without calling it. */
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);
}

/* S5 /aio/bh/callback-delete/one */
static void test_bh_delete_from_cb(void)
{
    BHTestData data = { .n = 0, .max = 1 };

    data.bh = aio_bh_new(ctx, bh_delete_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    while (data.n < 1) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(data.n, ==, 1);
    g_assert_null(data.bh);

    g_assert_false(aio_poll(ctx, false));
}

/* A self-deleting BH (H-BHDEL) that also logs its id. */
typedef struct {
    BHTestData d;  /* first: bh_delete_cb gets a BHTestData * */
    int id;
} OrderDelBH;

static void order_delete_cb(void *opaque)
{
    OrderDelBH *o = opaque;
    order_push(o->id);
    bh_delete_cb(&o->d);
}

static void setup_many(OrderDelBH rec[4])
{
    static const int max[4] = { 1, 3, 2, 4 };

    order_reset();
    for (int i = 0; i < 4; i++) {
        rec[i] = (OrderDelBH) { .d = { .n = 0, .max = max[i] }, .id = i + 1 };
        rec[i].d.bh = aio_bh_new(ctx, order_delete_cb, &rec[i]);
    }
    for (int i = 0; i < 4; i++) {
        qemu_bh_schedule(rec[i].d.bh);
    }
    for (int i = 0; i < 4; i++) {
        g_assert_cmpint(rec[i].d.n, ==, 0);
    }
}

static void check_many_first_pass(OrderDelBH rec[4])
{
    /* All four ran once, most recently scheduled first (A1). */
    static const int want[4] = { 4, 3, 2, 1 };
    for (int i = 0; i < 4; i++) {
        g_assert_cmpint(rec[i].d.n, ==, 1);
    }
    assert_order(want, 4);
    g_assert_null(rec[0].d.bh);
    g_assert_nonnull(rec[1].d.bh);
    g_assert_nonnull(rec[2].d.bh);
    g_assert_nonnull(rec[3].d.bh);
}

static void check_many_done(OrderDelBH rec[4])
{
    g_assert_cmpint(rec[0].d.n, ==, 1);
    g_assert_cmpint(rec[1].d.n, ==, 3);
    g_assert_cmpint(rec[2].d.n, ==, 2);
    g_assert_cmpint(rec[3].d.n, ==, 4);
    for (int i = 0; i < 4; i++) {
        g_assert_null(rec[i].d.bh);
    }
}

/* S6 /aio/bh/callback-delete/many */
static void test_bh_delete_from_cb_many(void)
{
    OrderDelBH rec[4];

    setup_many(rec);
    g_assert_true(aio_poll(ctx, false));
    check_many_first_pass(rec);

    while (rec[0].d.n < 1 || rec[1].d.n < 3 || rec[2].d.n < 2 || rec[3].d.n < 4) {
        g_assert_true(aio_poll(ctx, true));
    }
    check_many_done(rec);
    g_assert_false(aio_poll(ctx, false));
}

/* ------------------------------------------------------------------ */
/* S16-S22: the glib driver                                            */
/* ------------------------------------------------------------------ */

/* S16 /aio-gsource/bh/schedule and S22 /aio-gsource/bh/flush. */
static void test_source_bh_schedule(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    /* prepare sees the BH and reports a zero timeout: no blocking. */
    g_assert_true(g_main_context_iteration(NULL, TRUE));
    g_assert_cmpint(data.n, ==, 1);

    g_assert_false(g_main_context_iteration(NULL, FALSE));
    g_assert_cmpint(data.n, ==, 1);
    qemu_bh_delete(data.bh);
}

/* S17 /aio-gsource/bh/schedule10 */
static void test_source_bh_schedule10(void)
{
    BHTestData data = { .n = 0, .max = 10 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    g_assert_true(g_main_context_iteration(NULL, FALSE));
    g_assert_cmpint(data.n, ==, 1);

    g_assert_true(g_main_context_iteration(NULL, TRUE));
    g_assert_cmpint(data.n, ==, 2);

    drain_glib();
    g_assert_cmpint(data.n, ==, 10);

    g_assert_false(g_main_context_iteration(NULL, FALSE));
    g_assert_cmpint(data.n, ==, 10);
    qemu_bh_delete(data.bh);
}

/* S18 /aio-gsource/bh/cancel */
static void test_source_bh_cancel(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    qemu_bh_cancel(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    drain_glib();
    g_assert_cmpint(data.n, ==, 0);
    g_assert_false(g_main_context_iteration(NULL, FALSE));
    qemu_bh_delete(data.bh);
    drain_glib();
}

/* S19 /aio-gsource/bh/delete */
static void test_source_bh_delete(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    qemu_bh_delete(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    drain_glib();
    g_assert_cmpint(data.n, ==, 0);
    g_assert_false(g_main_context_iteration(NULL, FALSE));
}

/* S20 /aio-gsource/bh/callback-delete/one */
static void test_source_bh_delete_from_cb(void)
{
    BHTestData data = { .n = 0, .max = 1 };

    data.bh = aio_bh_new(ctx, bh_delete_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    g_main_context_iteration(NULL, TRUE);
    g_assert_cmpint(data.n, ==, 1);
    g_assert_null(data.bh);

    /* QEMU >= 10.2 allows one extra TRUE here (the notifier's wake-up). */
    g_main_context_iteration(NULL, FALSE);
    g_assert_false(g_main_context_iteration(NULL, FALSE));
}

/* S21 /aio-gsource/bh/callback-delete/many */
static void test_source_bh_delete_from_cb_many(void)
{
    OrderDelBH rec[4];

    setup_many(rec);
    g_assert_true(g_main_context_iteration(NULL, FALSE));
    check_many_first_pass(rec);

    drain_glib();
    check_many_done(rec);
    g_assert_false(g_main_context_iteration(NULL, FALSE));
}

/* ------------------------------------------------------------------ */
/* Section 3 A: bottom-half edge cases                                  */
/* ------------------------------------------------------------------ */

/* A1: one pass runs BHs most recently (first) scheduled first. */
static void test_bh_lifo(void)
{
    OrderBH b[3];
    static const int want[3] = { 3, 2, 1 };

    order_reset();
    for (int i = 0; i < 3; i++) {
        b[i] = (OrderBH) { .id = i + 1 };
        b[i].bh = aio_bh_new(ctx, order_bh_cb, &b[i]);
    }
    for (int i = 0; i < 3; i++) {
        qemu_bh_schedule(b[i].bh);
    }
    g_assert_true(aio_poll(ctx, false));
    assert_order(want, 3);
    g_assert_false(aio_poll(ctx, false));

    for (int i = 0; i < 3; i++) {
        qemu_bh_delete(b[i].bh);
    }
    g_assert_false(aio_poll(ctx, false));
}

/* A1: rescheduling an already-pending BH keeps its position; it runs once. */
static void test_bh_reschedule_pending(void)
{
    OrderBH b[3];
    static const int want[3] = { 3, 2, 1 };

    order_reset();
    for (int i = 0; i < 3; i++) {
        b[i] = (OrderBH) { .id = i + 1 };
        b[i].bh = aio_bh_new(ctx, order_bh_cb, &b[i]);
    }
    for (int i = 0; i < 3; i++) {
        qemu_bh_schedule(b[i].bh);
    }
    qemu_bh_schedule(b[0].bh);
    qemu_bh_schedule(b[1].bh);

    g_assert_true(aio_poll(ctx, false));
    assert_order(want, 3);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(b[i].n, ==, 1);
        qemu_bh_delete(b[i].bh);
    }
    g_assert_false(aio_poll(ctx, false));
}

/* A2: scheduling the same BH twice before a poll runs it once. */
static void test_bh_double_schedule(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    qemu_bh_schedule(data.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    qemu_bh_delete(data.bh);
}

/* A3: a BH scheduled from a callback runs in the next aio_poll. */
typedef struct {
    OrderBH self;
    QEMUBH *target;
} ScheduleOtherBH;

static void schedule_other_cb(void *opaque)
{
    ScheduleOtherBH *s = opaque;
    order_bh_cb(&s->self);
    qemu_bh_schedule(s->target);
}

static void test_bh_schedule_from_cb(void)
{
    OrderBH y = { .id = 2 };
    ScheduleOtherBH x = { .self = { .id = 1 } };

    order_reset();
    y.bh = aio_bh_new(ctx, order_bh_cb, &y);
    x.self.bh = aio_bh_new(ctx, schedule_other_cb, &x);
    x.target = y.bh;

    qemu_bh_schedule(x.self.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(x.self.n, ==, 1);
    g_assert_cmpint(y.n, ==, 0);

    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(x.self.n, ==, 1);
    g_assert_cmpint(y.n, ==, 1);

    g_assert_false(aio_poll(ctx, false));
    {
        static const int want[2] = { 1, 2 };
        assert_order(want, 2);
    }
    qemu_bh_delete(x.self.bh);
    qemu_bh_delete(y.bh);
    g_assert_false(aio_poll(ctx, false));
}

/*
 * A4: BH2 (scheduled last, so it runs first) cancels or deletes BH1, which
 * is already in the same batch; BH1 must not run.
 */
typedef struct {
    OrderBH self;
    QEMUBH *victim;
    bool delete;
} KillerBH;

static void killer_cb(void *opaque)
{
    KillerBH *k = opaque;
    order_bh_cb(&k->self);
    if (k->delete) {
        qemu_bh_delete(k->victim);
    } else {
        qemu_bh_cancel(k->victim);
    }
}

static void do_test_bh_kill_in_batch(bool delete)
{
    OrderBH victim = { .id = 1 };
    KillerBH killer = { .self = { .id = 2 }, .delete = delete };
    static const int want[1] = { 2 };

    order_reset();
    victim.bh = aio_bh_new(ctx, order_bh_cb, &victim);
    killer.self.bh = aio_bh_new(ctx, killer_cb, &killer);
    killer.victim = victim.bh;

    qemu_bh_schedule(victim.bh);
    qemu_bh_schedule(killer.self.bh);

    g_assert_true(aio_poll(ctx, false));
    assert_order(want, 1);
    g_assert_cmpint(victim.n, ==, 0);
    g_assert_cmpint(killer.self.n, ==, 1);

    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(victim.n, ==, 0);

    if (!delete) {
        qemu_bh_delete(victim.bh);
    }
    qemu_bh_delete(killer.self.bh);
    g_assert_false(aio_poll(ctx, false));
}

static void test_bh_cancel_in_batch(void)
{
    do_test_bh_kill_in_batch(false);
}

static void test_bh_delete_in_batch(void)
{
    do_test_bh_kill_in_batch(true);
}

/* A5: cancel then reschedule before polling runs it exactly once; cancelling
 * an unscheduled BH does nothing. */
static void test_bh_cancel_reschedule(void)
{
    BHTestData data = { .n = 0, .max = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);

    qemu_bh_cancel(data.bh);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);

    qemu_bh_schedule(data.bh);
    qemu_bh_cancel(data.bh);
    qemu_bh_schedule(data.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);

    /* And a cancel after a run is a no-op too. */
    qemu_bh_cancel(data.bh);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);

    qemu_bh_delete(data.bh);
    g_assert_false(aio_poll(ctx, false));
}

/*
 * A6: BH3 runs first and polls again; the nested poll runs BH2 and BH1 (the
 * parent's remaining batch) and returns true; the outer poll then finds the
 * batch empty, so each ran exactly once.
 */
static int nest_depth;
static bool nested_blocking;
static bool nested_result;

typedef struct {
    OrderBH self;
    int depth_seen;
} DepthBH;

static void depth_bh_cb(void *opaque)
{
    DepthBH *d = opaque;
    d->depth_seen = nest_depth;
    order_bh_cb(&d->self);
}

static void nesting_bh_cb(void *opaque)
{
    DepthBH *d = opaque;
    d->depth_seen = nest_depth;
    order_bh_cb(&d->self);
    nest_depth++;
    /* A blocking nested poll must not block: parent BHs are pending. */
    nested_result = aio_poll(ctx, nested_blocking);
    nest_depth--;
}

static void do_test_bh_nested(bool blocking)
{
    DepthBH b[3];
    static const int want[3] = { 3, 2, 1 };

    order_reset();
    nest_depth = 0;
    nested_blocking = blocking;
    nested_result = false;
    for (int i = 0; i < 3; i++) {
        b[i] = (DepthBH) { .self = { .id = i + 1 }, .depth_seen = -1 };
        b[i].self.bh = aio_bh_new(ctx, i == 2 ? nesting_bh_cb : depth_bh_cb, &b[i]);
    }
    for (int i = 0; i < 3; i++) {
        qemu_bh_schedule(b[i].self.bh);
    }

    g_assert_true(aio_poll(ctx, false));
    g_assert_true(nested_result);
    assert_order(want, 3);
    g_assert_cmpint(b[2].depth_seen, ==, 0);
    g_assert_cmpint(b[1].depth_seen, ==, 1);
    g_assert_cmpint(b[0].depth_seen, ==, 1);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(b[i].self.n, ==, 1);
    }

    g_assert_false(aio_poll(ctx, false));
    for (int i = 0; i < 3; i++) {
        qemu_bh_delete(b[i].self.bh);
    }
    g_assert_false(aio_poll(ctx, false));
}

static void test_bh_nested_poll(void)
{
    do_test_bh_nested(false);
}

static void test_bh_nested_poll_blocking(void)
{
    do_test_bh_nested(true);
}

/*
 * A7: an idle BH is not progress. qemu_bh_schedule_idle notifies, so a
 * blocking aio_poll after it returns at once, runs the BH and returns false;
 * the same holds when the idle BH re-schedules itself from its callback.
 */
typedef struct {
    QEMUBH *bh;
    int n;
    int max;
} IdleBH;

static void idle_bh_cb(void *opaque)
{
    IdleBH *d = opaque;
    if (++d->n < d->max) {
        qemu_bh_schedule_idle(d->bh);
    }
}

static void test_bh_idle(void)
{
    IdleBH data = { .n = 0, .max = 3 };

    data.bh = aio_bh_new(ctx, idle_bh_cb, &data);
    qemu_bh_schedule_idle(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    for (int i = 1; i <= 3; i++) {
        g_assert_false(aio_poll(ctx, true));
        g_assert_cmpint(data.n, ==, i);
    }
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 3);
    qemu_bh_delete(data.bh);
    g_assert_false(aio_poll(ctx, false));
}

/* A7 under glib: check counts any scheduled BH, so the iteration is TRUE. */
static void test_source_bh_idle(void)
{
    IdleBH data = { .n = 0, .max = 1 };

    data.bh = aio_bh_new(ctx, idle_bh_cb, &data);
    qemu_bh_schedule_idle(data.bh);
    g_assert_cmpint(data.n, ==, 0);

    g_assert_true(g_main_context_iteration(NULL, TRUE));
    g_assert_cmpint(data.n, ==, 1);

    drain_glib();
    g_assert_false(g_main_context_iteration(NULL, FALSE));
    g_assert_cmpint(data.n, ==, 1);
    qemu_bh_delete(data.bh);
    drain_glib();
}

/* A8 (same-thread half): a one-shot BH runs once and is freed. */
static void oneshot_cb(void *opaque)
{
    OrderBH *o = opaque;
    order_bh_cb(o);
}

typedef struct {
    OrderBH self;
    OrderBH *child;
} OneshotParent;

static void oneshot_parent_cb(void *opaque)
{
    OneshotParent *p = opaque;
    order_bh_cb(&p->self);
    aio_bh_schedule_oneshot(ctx, oneshot_cb, p->child);
}

static void test_bh_oneshot(void)
{
    OrderBH o[3];

    order_reset();
    for (int i = 0; i < 3; i++) {
        o[i] = (OrderBH) { .id = i + 1 };
        aio_bh_schedule_oneshot(ctx, oneshot_cb, &o[i]);
    }
    g_assert_cmpint(norder, ==, 0);

    g_assert_true(aio_poll(ctx, true));
    {
        static const int want[3] = { 3, 2, 1 };
        assert_order(want, 3);
    }
    g_assert_false(aio_poll(ctx, false));
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(o[i].n, ==, 1);
    }

    /* Named variant, and a one-shot scheduled from a one-shot runs in the
     * next poll. */
    {
        OrderBH child = { .id = 5 };
        OneshotParent parent = { .self = { .id = 4 }, .child = &child };

        order_reset();
        aio_bh_schedule_oneshot_full(ctx, oneshot_parent_cb, &parent, "oneshot-parent");
        g_assert_true(aio_poll(ctx, false));
        g_assert_cmpint(parent.self.n, ==, 1);
        g_assert_cmpint(child.n, ==, 0);
        g_assert_true(aio_poll(ctx, false));
        g_assert_cmpint(child.n, ==, 1);
        g_assert_false(aio_poll(ctx, false));
        g_assert_cmpint(parent.self.n, ==, 1);
        g_assert_cmpint(child.n, ==, 1);
    }
}

/* A8 under glib. */
static void test_source_bh_oneshot(void)
{
    OrderBH o = { .id = 1 };

    order_reset();
    aio_bh_schedule_oneshot(ctx, oneshot_cb, &o);
    g_assert_true(g_main_context_iteration(NULL, TRUE));
    g_assert_cmpint(o.n, ==, 1);
    drain_glib();
    g_assert_false(g_main_context_iteration(NULL, FALSE));
    g_assert_cmpint(o.n, ==, 1);
}

/*
 * A10: BH A schedules B, B schedules A, 50,000 runs in all. Each poll runs
 * exactly one of them and returns true; the stack does not grow.
 */
#define PING_PONG_RUNS 50000

typedef struct {
    QEMUBH *a, *b;
    int runs;
    uintptr_t first_sp, last_sp;
} PingPong;

static void ping_pong_cb(void *opaque, bool is_a)
{
    PingPong *pp = opaque;
    volatile char marker = 0;
    uintptr_t sp = (uintptr_t)&marker;

    (void)marker;
    if (pp->runs == 0) {
        pp->first_sp = sp;
    }
    pp->last_sp = sp;
    g_assert_cmpint(pp->runs % 2, ==, is_a ? 0 : 1);
    if (++pp->runs < PING_PONG_RUNS) {
        qemu_bh_schedule(is_a ? pp->b : pp->a);
    }
}

static void ping_cb(void *opaque)
{
    ping_pong_cb(opaque, true);
}

static void pong_cb(void *opaque)
{
    ping_pong_cb(opaque, false);
}

static void test_bh_ping_pong(void)
{
    PingPong pp = { .runs = 0 };
    uintptr_t depth;

    pp.a = aio_bh_new(ctx, ping_cb, &pp);
    pp.b = aio_bh_new(ctx, pong_cb, &pp);
    qemu_bh_schedule(pp.a);
    for (int i = 1; i <= PING_PONG_RUNS; i++) {
        g_assert_true(aio_poll(ctx, true));
        g_assert_cmpint(pp.runs, ==, i);
    }
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(pp.runs, ==, PING_PONG_RUNS);

    /* The same call path every time: the callback's frame does not move
     * (allow a little slack for alignment, nowhere near 50,000 frames). */
    depth = pp.first_sp > pp.last_sp ? pp.first_sp - pp.last_sp : pp.last_sp - pp.first_sp;
    g_assert_cmpuint(depth, <, 4096);

    qemu_bh_delete(pp.a);
    qemu_bh_delete(pp.b);
    g_assert_false(aio_poll(ctx, false));
}

/* ------------------------------------------------------------------ */
/* aio_bh_call and the reentrancy guard                                 */
/* ------------------------------------------------------------------ */

typedef struct {
    QEMUBH *bh;
    MemReentrancyGuard *guard;
    int n;
    bool engaged_seen;
    bool delete_self;
} GuardBH;

static void guard_bh_cb(void *opaque)
{
    GuardBH *g = opaque;
    g->n++;
    g->engaged_seen = g->guard ? g->guard->engaged_in_io : false;
    if (g->delete_self) {
        qemu_bh_delete(g->bh);
        g->bh = NULL;
    }
}

/* The guard is engaged during the callback and restored (to false) after. */
static void test_bh_guard_poll(void)
{
    MemReentrancyGuard guard = { .engaged_in_io = false };
    GuardBH g = { .guard = &guard };

    g.bh = aio_bh_new_guarded(ctx, guard_bh_cb, &g, &guard);
    qemu_bh_schedule(g.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(g.n, ==, 1);
    g_assert_true(g.engaged_seen);
    g_assert_false(guard.engaged_in_io);

    qemu_bh_delete(g.bh);
    g_assert_false(aio_poll(ctx, false));
}

/* A guard that was already engaged stays engaged after the call; the guard
 * never suppresses the call. */
static void test_bh_guard_already_engaged(void)
{
    MemReentrancyGuard guard = { .engaged_in_io = true };
    GuardBH g = { .guard = &guard };

    g.bh = aio_bh_new_guarded(ctx, guard_bh_cb, &g, &guard);
    qemu_bh_schedule(g.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(g.n, ==, 1);
    g_assert_true(g.engaged_seen);
    g_assert_true(guard.engaged_in_io);

    qemu_bh_delete(g.bh);
    g_assert_false(aio_poll(ctx, false));
}

/* aio_bh_call runs the callback synchronously, with the guard, whether or
 * not the BH is scheduled, and does not consume a pending schedule. */
static void test_bh_call(void)
{
    MemReentrancyGuard guard = { .engaged_in_io = false };
    GuardBH g = { .guard = &guard };
    BHTestData plain = { .n = 0, .max = 0 };

    g.bh = aio_bh_new_guarded(ctx, guard_bh_cb, &g, &guard);
    aio_bh_call(g.bh);
    g_assert_cmpint(g.n, ==, 1);
    g_assert_true(g.engaged_seen);
    g_assert_false(guard.engaged_in_io);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(g.n, ==, 1);

    qemu_bh_schedule(g.bh);
    aio_bh_call(g.bh);
    g_assert_cmpint(g.n, ==, 2);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(g.n, ==, 3);
    g_assert_false(aio_poll(ctx, false));
    qemu_bh_delete(g.bh);

    /* No guard at all. */
    plain.bh = aio_bh_new(ctx, bh_test_cb, &plain);
    aio_bh_call(plain.bh);
    g_assert_cmpint(plain.n, ==, 1);
    qemu_bh_delete(plain.bh);
    g_assert_false(aio_poll(ctx, false));
}

/* The callback may delete its own BH: the guard is still restored. */
static void test_bh_call_self_delete(void)
{
    MemReentrancyGuard guard = { .engaged_in_io = false };
    GuardBH g = { .guard = &guard, .delete_self = true };

    g.bh = aio_bh_new_guarded(ctx, guard_bh_cb, &g, &guard);
    aio_bh_call(g.bh);
    g_assert_cmpint(g.n, ==, 1);
    g_assert_null(g.bh);
    g_assert_true(g.engaged_seen);
    g_assert_false(guard.engaged_in_io);
    g_assert_false(aio_poll(ctx, false));

    /* Same through the loop. */
    g = (GuardBH) { .guard = &guard, .delete_self = true };
    g.bh = aio_bh_new_guarded(ctx, guard_bh_cb, &g, &guard);
    qemu_bh_schedule(g.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(g.n, ==, 1);
    g_assert_null(g.bh);
    g_assert_false(guard.engaged_in_io);
    g_assert_false(aio_poll(ctx, false));
}

/* ------------------------------------------------------------------ */
/* aio_bh_poll and aio_compute_timeout                                  */
/* ------------------------------------------------------------------ */

static void test_bh_poll_result(void)
{
    BHTestData data = { .n = 0, .max = 0 };
    IdleBH idle = { .n = 0, .max = 1 };
    OrderBH o = { .id = 1 };

    g_assert_cmpint(aio_bh_poll(ctx), ==, 0);

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 1);
    g_assert_cmpint(data.n, ==, 1);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 0);
    g_assert_cmpint(data.n, ==, 1);

    /* Cancelled: not run, not progress. */
    qemu_bh_schedule(data.bh);
    qemu_bh_cancel(data.bh);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 0);
    g_assert_cmpint(data.n, ==, 1);

    /* Idle: run, but not progress. */
    idle.bh = aio_bh_new(ctx, idle_bh_cb, &idle);
    qemu_bh_schedule_idle(idle.bh);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 0);
    g_assert_cmpint(idle.n, ==, 1);

    /* Idle and non-idle together: progress. */
    qemu_bh_schedule_idle(idle.bh);
    qemu_bh_schedule(data.bh);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 1);
    g_assert_cmpint(idle.n, ==, 2);
    g_assert_cmpint(data.n, ==, 2);

    /* One-shot: progress. */
    order_reset();
    aio_bh_schedule_oneshot(ctx, oneshot_cb, &o);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 1);
    g_assert_cmpint(o.n, ==, 1);

    /* Deleted while scheduled: freed, not run, not progress. */
    qemu_bh_schedule(data.bh);
    qemu_bh_delete(data.bh);
    qemu_bh_delete(idle.bh);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 0);
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(idle.n, ==, 2);
    g_assert_cmpint(aio_bh_poll(ctx), ==, 0);

    /* Accept the notifications the schedules raised. */
    g_assert_false(aio_poll(ctx, false));
}

static void noop_timer_cb(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

static void test_compute_timeout(void)
{
    Error *err = NULL;
    AioContext *c = aio_context_new(&err);
    BHTestData a = { .n = 0, .max = 0 };
    IdleBH idle = { .n = 0, .max = 1 };
    QEMUTimer t;
    int64_t timeout;
    const int64_t ten_ms = 10 * 1000 * 1000;

    g_assert_null(err);
    g_assert_nonnull(c);

    /* Nothing pending on a fresh context: wait forever. */
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);

    a.bh = aio_bh_new(c, bh_test_cb, &a);
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);  /* created, not scheduled */
    qemu_bh_schedule(a.bh);
    g_assert_cmpint(aio_compute_timeout(c), ==, 0);
    qemu_bh_cancel(a.bh);
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);

    /* An idle BH caps the wait at 10 ms. */
    idle.bh = aio_bh_new(c, idle_bh_cb, &idle);
    qemu_bh_schedule_idle(idle.bh);
    timeout = aio_compute_timeout(c);
    g_assert_cmpint(timeout, >, 0);
    g_assert_cmpint(timeout, <=, ten_ms);
    g_assert_cmpint(timeout, ==, ten_ms);

    /* A non-idle BH next to it wins: 0. */
    qemu_bh_schedule(a.bh);
    g_assert_cmpint(aio_compute_timeout(c), ==, 0);
    qemu_bh_cancel(a.bh);

    /* A timer 10 s away: the idle cap still wins. */
    aio_timer_init(c, &t, QEMU_CLOCK_REALTIME, SCALE_MS, noop_timer_cb, NULL);
    timer_mod(&t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 10000);
    g_assert_cmpint(aio_compute_timeout(c), ==, ten_ms);

    /* Without the idle BH the timer's deadline counts. */
    qemu_bh_cancel(idle.bh);
    timeout = aio_compute_timeout(c);
    g_assert_cmpint(timeout, >, 0);
    g_assert_cmpint(timeout, <=, (int64_t)10000 * 1000 * 1000);

    /* A deleted BH counts for nothing. */
    timer_del(&t);
    qemu_bh_schedule(a.bh);
    qemu_bh_delete(a.bh);
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);
    qemu_bh_delete(idle.bh);
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);

    g_assert_false(aio_poll(c, false));
    g_assert_cmpint(a.n, ==, 0);
    g_assert_cmpint(idle.n, ==, 0);
    g_assert_cmpint(aio_compute_timeout(c), ==, -1);
    aio_context_unref(c);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/aio/bh/schedule", test_bh_schedule);
    g_test_add_func("/aio/bh/schedule10", test_bh_schedule10);
    g_test_add_func("/aio/bh/cancel", test_bh_cancel);
    g_test_add_func("/aio/bh/delete", test_bh_delete);
    g_test_add_func("/aio/bh/callback-delete/one", test_bh_delete_from_cb);
    g_test_add_func("/aio/bh/callback-delete/many", test_bh_delete_from_cb_many);
    g_test_add_func("/aio/bh/flush", test_bh_schedule);

    g_test_add_func("/aio/bh/order/lifo", test_bh_lifo);
    g_test_add_func("/aio/bh/order/reschedule-pending", test_bh_reschedule_pending);
    g_test_add_func("/aio/bh/double-schedule", test_bh_double_schedule);
    g_test_add_func("/aio/bh/schedule-from-callback", test_bh_schedule_from_cb);
    g_test_add_func("/aio/bh/cancel-in-batch", test_bh_cancel_in_batch);
    g_test_add_func("/aio/bh/delete-in-batch", test_bh_delete_in_batch);
    g_test_add_func("/aio/bh/cancel-reschedule", test_bh_cancel_reschedule);
    g_test_add_func("/aio/bh/nested-poll", test_bh_nested_poll);
    g_test_add_func("/aio/bh/nested-poll-blocking", test_bh_nested_poll_blocking);
    g_test_add_func("/aio/bh/idle", test_bh_idle);
    g_test_add_func("/aio/bh/oneshot", test_bh_oneshot);
    g_test_add_func("/aio/bh/ping-pong", test_bh_ping_pong);
    g_test_add_func("/aio/bh/guard", test_bh_guard_poll);
    g_test_add_func("/aio/bh/guard-already-engaged", test_bh_guard_already_engaged);
    g_test_add_func("/aio/bh/call", test_bh_call);
    g_test_add_func("/aio/bh/call-self-delete", test_bh_call_self_delete);
    g_test_add_func("/aio/bh/bh-poll-result", test_bh_poll_result);
    g_test_add_func("/aio/bh/compute-timeout", test_compute_timeout);

    g_test_add_func("/aio-gsource/bh/schedule", test_source_bh_schedule);
    g_test_add_func("/aio-gsource/bh/schedule10", test_source_bh_schedule10);
    g_test_add_func("/aio-gsource/bh/cancel", test_source_bh_cancel);
    g_test_add_func("/aio-gsource/bh/delete", test_source_bh_delete);
    g_test_add_func("/aio-gsource/bh/callback-delete/one", test_source_bh_delete_from_cb);
    g_test_add_func("/aio-gsource/bh/callback-delete/many", test_source_bh_delete_from_cb_many);
    g_test_add_func("/aio-gsource/bh/flush", test_source_bh_schedule);
    g_test_add_func("/aio-gsource/bh/idle", test_source_bh_idle);
    g_test_add_func("/aio-gsource/bh/oneshot", test_source_bh_oneshot);

    return g_test_run();
}
