/*
 * The program functions qaio calls when a QEMU-like program defines them
 * (src/hooks.rs): a coroutine runtime behind aio_co_schedule, aio_co_enter,
 * aio_co_wake and aio_co_reschedule_self; the per-context hooks of
 * aio_context_new and finalize (block-graph registration, thread pool,
 * Linux AIO); the big lock's rule for qemu_get_current_aio_context and
 * aio_poll; and error_setg_internal, through which qaio then reports its
 * errors.
 *
 * The program plays QEMU: it defines these functions itself, and libqaio's
 * weak references resolve to them (the linker exports from an executable
 * every symbol a shared library it links refers to; `nm -D` on this
 * program lists them). The coroutine runtime is a small ucontext one with
 * QEMU 10.2's struct Coroutine layout and qemu_aio_coroutine_enter's
 * semantics (util/qemu-coroutine.c), coroutines all entered in the thread
 * that created them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <sys/resource.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(start, end) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

/* ------------------------------------------------------------------------ */
/* The program's coroutine runtime                                          */

typedef void CoroutineEntry(void *opaque);

/* QEMU 10.2's struct Coroutine (include/qemu/coroutine_int.h), which qaio's
 * src/abi/coroutine.rs mirrors: the QSLIST/QSIMPLEQ links are one pointer
 * each, a QSIMPLEQ_HEAD a first pointer and the address of the last link. */
struct Coroutine {
    CoroutineEntry *entry;
    void *entry_arg;
    Coroutine *caller;
    Coroutine *pool_next;
    size_t locks_held;
    AioContext *ctx;
    const char *scheduled;
    Coroutine *co_queue_next;
    struct {
        Coroutine *sqh_first;
        Coroutine **sqh_last;
    } co_queue_wakeup;
    Coroutine *co_scheduled_next;
};

_Static_assert(offsetof(Coroutine, caller) == 16, "Coroutine.caller");
_Static_assert(offsetof(Coroutine, locks_held) == 32, "Coroutine.locks_held");
_Static_assert(offsetof(Coroutine, ctx) == 40, "Coroutine.ctx");
_Static_assert(offsetof(Coroutine, scheduled) == 48, "Coroutine.scheduled");
_Static_assert(offsetof(Coroutine, co_queue_next) == 56, "Coroutine.co_queue_next");
_Static_assert(offsetof(Coroutine, co_queue_wakeup) == 64, "Coroutine.co_queue_wakeup");
_Static_assert(offsetof(Coroutine, co_scheduled_next) == 80, "Coroutine.co_scheduled_next");
_Static_assert(sizeof(Coroutine) == 88, "sizeof(Coroutine)");

Coroutine *qemu_coroutine_self(void);
bool qemu_in_coroutine(void);
void qemu_aio_coroutine_enter(AioContext *c, Coroutine *co);
void qemu_coroutine_yield(void);

/* QEMU's CoroutineUContext: the Coroutine first, so the pointers convert. */
typedef struct {
    Coroutine base;
    ucontext_t uc;
    void *stack;
    unsigned valgrind_stack;
    bool terminated;
} TestCo;

typedef enum {
    CO_ENTER,
    CO_YIELD,
    CO_TERMINATE,
} CoAction;

#define CO_STACK_SIZE (256 * 1024)

/* The thread's own stack, as QEMU's "leader" coroutine. */
static __thread TestCo co_leader;
static __thread TestCo *co_running;
/* Set by whoever switches, read by whoever resumes. */
static __thread CoAction co_action;

static CoAction co_switch(TestCo *from, TestCo *to, CoAction action)
{
    co_action = action;
    co_running = to;
    g_assert_cmpint(swapcontext(&from->uc, &to->uc), ==, 0);
    return co_action;
}

static void co_trampoline(void)
{
    TestCo *self = co_running;
    TestCo *caller;

    self->base.entry(self->base.entry_arg);
    self->terminated = true;
    caller = (TestCo *)self->base.caller;
    self->base.caller = NULL;
    co_switch(self, caller, CO_TERMINATE);
    g_assert_not_reached();
}

static Coroutine *co_new(CoroutineEntry *entry, void *opaque)
{
    TestCo *co = g_new0(TestCo, 1);

    co->base.entry = entry;
    co->base.entry_arg = opaque;
    co->base.co_queue_wakeup.sqh_last = &co->base.co_queue_wakeup.sqh_first;
    co->stack = g_malloc(CO_STACK_SIZE);
    co->valgrind_stack = VALGRIND_STACK_REGISTER(co->stack, (char *)co->stack + CO_STACK_SIZE);
    g_assert_cmpint(getcontext(&co->uc), ==, 0);
    co->uc.uc_stack.ss_sp = co->stack;
    co->uc.uc_stack.ss_size = CO_STACK_SIZE;
    co->uc.uc_link = NULL;
    makecontext(&co->uc, co_trampoline, 0);
    return &co->base;
}

static bool co_terminated(Coroutine *co)
{
    return ((TestCo *)co)->terminated;
}

/* Frees a coroutine that ran to its end. */
static void co_free(Coroutine *co)
{
    TestCo *t = (TestCo *)co;

    g_assert_true(t->terminated);
    VALGRIND_STACK_DEREGISTER(t->valgrind_stack);
    g_free(t->stack);
    g_free(t);
}

Coroutine *qemu_coroutine_self(void)
{
    if (!co_running) {
        co_leader.base.co_queue_wakeup.sqh_last = &co_leader.base.co_queue_wakeup.sqh_first;
        co_running = &co_leader;
    }
    return &co_running->base;
}

bool qemu_in_coroutine(void)
{
    return co_running && co_running->base.caller;
}

/* QEMU's qemu_aio_coroutine_enter: enters co, then, depth first, every
 * coroutine queued on the co_queue_wakeup of one that yielded or ended. */
void qemu_aio_coroutine_enter(AioContext *c, Coroutine *co)
{
    TestCo *from = (TestCo *)qemu_coroutine_self();
    /* The local queue of coroutines to enter (only ever prepended to). */
    Coroutine *pending = co;

    co->co_queue_next = NULL;
    while (pending) {
        Coroutine *to = pending;

        pending = to->co_queue_next;
        if (to->scheduled) {
            fprintf(stderr, "%s: Co-routine was already scheduled in '%s'\n",
                    __func__, to->scheduled);
            abort();
        }
        if (to->caller) {
            fprintf(stderr, "Co-routine re-entered recursively\n");
            abort();
        }
        to->caller = &from->base;
        to->ctx = c;
        CoAction ret = co_switch(from, (TestCo *)to, CO_ENTER);
        g_assert_true(ret == CO_YIELD || ret == CO_TERMINATE);
        /* QSIMPLEQ_PREPEND(&pending, &to->co_queue_wakeup) */
        if (to->co_queue_wakeup.sqh_first) {
            *to->co_queue_wakeup.sqh_last = pending;
            pending = to->co_queue_wakeup.sqh_first;
            to->co_queue_wakeup.sqh_first = NULL;
            to->co_queue_wakeup.sqh_last = &to->co_queue_wakeup.sqh_first;
        }
    }
}

void qemu_coroutine_yield(void)
{
    TestCo *self = (TestCo *)qemu_coroutine_self();
    TestCo *to = (TestCo *)self->base.caller;

    if (!to) {
        fprintf(stderr, "Co-routine is yielding to no one\n");
        abort();
    }
    self->base.caller = NULL;
    co_switch(self, to, CO_YIELD);
}

/* ------------------------------------------------------------------------ */
/* The program's per-context hooks                                          */

void register_aiocontext(AioContext *c);
void unregister_aiocontext(AioContext *c);
ThreadPoolAio *thread_pool_new_aio(AioContext *c);
void thread_pool_free_aio(ThreadPoolAio *pool);
void thread_pool_update_params(ThreadPoolAio *pool, AioContext *c);
LinuxAioState *laio_init(Error **errp);
void laio_attach_aio_context(LinuxAioState *s, AioContext *c);
void laio_detach_aio_context(LinuxAioState *s, AioContext *c);
void laio_cleanup(LinuxAioState *s);

/* What QEMU's block-graph lock would allocate; here one marker. */
struct BdrvGraphRWlock {
    int unused;
};
static BdrvGraphRWlock graph_sentinel;

/* One record per context registered, most recent last (glib may reuse a
 * freed context's address for a new one). */
typedef struct {
    AioContext *ctx;
    int registered;
    int unregistered;
    BdrvGraphRWlock *graph_at_unregister;
} CtxRec;

#define MAX_CTX_RECS 64
static CtxRec ctx_recs[MAX_CTX_RECS];
static int n_ctx_recs;
static GMutex ctx_recs_lock;

static CtxRec *ctx_rec_locked(AioContext *c)
{
    for (int i = n_ctx_recs - 1; i >= 0; i--) {
        if (ctx_recs[i].ctx == c) {
            return &ctx_recs[i];
        }
    }
    return NULL;
}

/* The record of c's most recent registration, or NULL. */
static CtxRec *ctx_rec(AioContext *c)
{
    g_mutex_lock(&ctx_recs_lock);
    CtxRec *r = ctx_rec_locked(c);
    g_mutex_unlock(&ctx_recs_lock);
    return r;
}

void register_aiocontext(AioContext *c)
{
    g_mutex_lock(&ctx_recs_lock);
    CtxRec *r = ctx_rec_locked(c);
    if (!r || r->unregistered) {
        g_assert_cmpint(n_ctx_recs, <, MAX_CTX_RECS);
        r = &ctx_recs[n_ctx_recs++];
        r->ctx = c;
    }
    /* A second registration of a live context shows as registered == 2. */
    r->registered++;
    g_mutex_unlock(&ctx_recs_lock);
    c->bdrv_graph = &graph_sentinel;
}

void unregister_aiocontext(AioContext *c)
{
    g_mutex_lock(&ctx_recs_lock);
    CtxRec *r = ctx_rec_locked(c);
    g_assert_nonnull(r);
    r->unregistered++;
    r->graph_at_unregister = c->bdrv_graph;
    g_mutex_unlock(&ctx_recs_lock);
    c->bdrv_graph = NULL;
}

/* The program's thread pools: never freed memory, so a test can look at a
 * pool after its context is gone. */
struct ThreadPoolAio {
    AioContext *ctx;
    int freed;
    int updates;
    int min_seen;
    int max_seen;
};

#define MAX_POOLS 8
static ThreadPoolAio pools[MAX_POOLS];
static int pools_created;

ThreadPoolAio *thread_pool_new_aio(AioContext *c)
{
    g_assert_cmpint(pools_created, <, MAX_POOLS);
    ThreadPoolAio *p = &pools[pools_created++];
    p->ctx = c;
    return p;
}

void thread_pool_free_aio(ThreadPoolAio *pool)
{
    pool->freed++;
}

void thread_pool_update_params(ThreadPoolAio *pool, AioContext *c)
{
    g_assert_true(pool->ctx == c);
    pool->updates++;
    pool->min_seen = c->thread_pool_min;
    pool->max_seen = c->thread_pool_max;
}

/* Linux AIO: one state; the calls append to evlog ('i'nit, 'a'ttach,
 * 'd'etach, 'c'leanup). */
struct LinuxAioState {
    AioContext *attached;
    AioContext *detached;
    int cleanups;
};
static LinuxAioState laio_state;
static bool laio_fail;

void error_setg_internal(Error **errp, const char *src, int line, const char *func,
                         const char *fmt, ...) G_GNUC_PRINTF(5, 6);

LinuxAioState *laio_init(Error **errp)
{
    log_add('i');
    if (laio_fail) {
        error_setg_internal(errp, __FILE__, __LINE__, __func__, "%s", "no io_context");
        return NULL;
    }
    return &laio_state;
}

void laio_attach_aio_context(LinuxAioState *s, AioContext *c)
{
    log_add('a');
    s->attached = c;
}

void laio_detach_aio_context(LinuxAioState *s, AioContext *c)
{
    log_add('d');
    s->detached = c;
}

void laio_cleanup(LinuxAioState *s)
{
    log_add('c');
    s->cleanups++;
}

/* ------------------------------------------------------------------------ */
/* The big lock and errors                                                  */

bool bql_locked(void);
AioContext *qemu_get_aio_context(void);

/* Whether this thread "holds the BQL": set by the test in the thread. */
static __thread bool bql_held;

bool bql_locked(void)
{
    return bql_held;
}

AioContext *qemu_get_aio_context(void)
{
    return ctx;
}

/* The program's errors: qaio's error path calls error_setg_internal, which
 * records the message and sets *errp to a marker the program owns. qaio's
 * error_free (the program defines none) would free the marker as one of
 * qaio's own Error objects, so it is only compared and dropped. */
static int error_marker_obj;
#define ERROR_MARKER ((Error *)&error_marker_obj)

static struct {
    int calls;
    char func[64];
    char msg[256];
} err_rec;

void error_setg_internal(Error **errp, const char *src, int line, const char *func,
                         const char *fmt, ...)
{
    va_list ap;

    (void)src;
    (void)line;
    err_rec.calls++;
    g_strlcpy(err_rec.func, func, sizeof(err_rec.func));
    va_start(ap, fmt);
    vsnprintf(err_rec.msg, sizeof(err_rec.msg), fmt, ap);
    va_end(ap);
    if (errp == &error_abort) {
        fprintf(stderr, "Unexpected error in %s(): %s\n", func, err_rec.msg);
        abort();
    }
    if (errp == &error_fatal) {
        fprintf(stderr, "%s\n", err_rec.msg);
        exit(1);
    }
    if (errp) {
        g_assert_null(*errp);
        *errp = ERROR_MARKER;
    }
}

static const char *error_text(Error *err)
{
    g_assert_true(err == ERROR_MARKER);
    return err_rec.msg;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

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

static AioContext *new_context(void)
{
    Error *err = NULL;
    AioContext *c = aio_context_new(&err);

    g_assert_null(err);
    g_assert_nonnull(c);
    return c;
}

/* What a coroutine saw at each of its (at most two) runs. */
typedef struct {
    char letter;
    int runs;
    AioContext *ctx_seen[2];
    const char *scheduled_seen[2];
    bool in_coroutine_seen;
    Coroutine *other;    /* enter_other_entry: whom it enters */
    bool other_queued;   /* ...and whether it was queued, not run */
    AioContext *target;  /* reschedule_entry: where it moves */
} CoRec;

static void co_record(CoRec *r)
{
    Coroutine *self = qemu_coroutine_self();

    g_assert_cmpint(r->runs, <, 2);
    r->ctx_seen[r->runs] = self->ctx;
    r->scheduled_seen[r->runs] = self->scheduled;
    r->in_coroutine_seen = qemu_in_coroutine();
    r->runs++;
}

/* Runs once: logs its letter. */
static void once_entry(void *opaque)
{
    CoRec *r = opaque;

    co_record(r);
    log_add(r->letter);
}

/* Logs its letter, yields, logs it in upper case. */
static void yield_entry(void *opaque)
{
    CoRec *r = opaque;

    co_record(r);
    log_add(r->letter);
    qemu_coroutine_yield();
    co_record(r);
    log_add(g_ascii_toupper(r->letter));
}

static void drain_ctx(void)
{
    drain_aio(ctx);
    g_assert_false(aio_poll(ctx, false));
    log_reset();
}

/* ------------------------------------------------------------------------ */
/* Coroutines                                                               */

/* Three coroutines scheduled from the home thread: one aio_poll enters them
 * in scheduling order, each once, unmarked. */
static void test_co_schedule_order(void)
{
    CoRec r[3] = { { .letter = '1' }, { .letter = '2' }, { .letter = '3' } };
    Coroutine *co[3];

    drain_ctx();
    for (int i = 0; i < 3; i++) {
        co[i] = co_new(once_entry, &r[i]);
        aio_co_schedule(ctx, co[i]);
        g_assert_cmpstr(co[i]->scheduled, ==, "aio_co_schedule");
    }
    g_assert_cmpstr(evlog, ==, "");
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "123");
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(r[i].runs, ==, 1);
        g_assert_null(r[i].scheduled_seen[0]);
        g_assert_true(r[i].ctx_seen[0] == ctx);
        g_assert_true(r[i].in_coroutine_seen);
        g_assert_null(co[i]->scheduled);
        g_assert_true(co_terminated(co[i]));
    }
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "123");
    for (int i = 0; i < 3; i++) {
        co_free(co[i]);
    }
}

static void test_co_schedule_twice(void)
{
    if (g_test_subprocess()) {
        CoRec r = { .letter = 'x' };
        Coroutine *co = co_new(once_entry, &r);

        no_core_dumps();
        aio_co_schedule(ctx, co);
        aio_co_schedule(ctx, co);
        return;
    }
    expect_abort("*qaio: aio_co_schedule: Co-routine was already scheduled in "
                 "'aio_co_schedule'*");
}

static gpointer schedule_thread_fn(gpointer opaque)
{
    aio_co_schedule(ctx, opaque);
    return NULL;
}

/* aio_co_schedule from another thread wakes the home thread's blocking
 * aio_poll, which enters the coroutine. */
static void test_co_schedule_cross_thread(void)
{
    CoRec r = { .letter = 't' };
    Coroutine *co = co_new(once_entry, &r);
    bool progress;

    drain_ctx();
    settle_aio(ctx);
    test_watchdog(30, "cross-thread aio_co_schedule");
    GThread *t = g_thread_new("scheduler", schedule_thread_fn, co);
    do {
        progress = aio_poll(ctx, true);
    } while (r.runs == 0);
    test_watchdog(0, NULL);
    g_thread_join(t);
    g_assert_true(progress);
    g_assert_cmpint(r.runs, ==, 1);
    g_assert_true(r.ctx_seen[0] == ctx);
    g_assert_cmpstr(evlog, ==, "t");
    co_free(co);
}

/* aio_co_enter on the current context outside a coroutine enters at once. */
static void test_co_enter_now(void)
{
    CoRec r = { .letter = 'e' };
    Coroutine *co = co_new(once_entry, &r);

    drain_ctx();
    aio_co_enter(ctx, co);
    g_assert_cmpint(r.runs, ==, 1);
    g_assert_true(r.ctx_seen[0] == ctx);
    g_assert_null(r.scheduled_seen[0]);
    g_assert_cmpstr(evlog, ==, "e");
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(r.runs, ==, 1);
    co_free(co);
}

/* aio_co_enter for another context schedules the coroutine there. */
static void test_co_enter_other_ctx(void)
{
    CoRec r = { .letter = 'o' };
    Coroutine *co = co_new(once_entry, &r);
    AioContext *c2 = new_context();

    drain_ctx();
    aio_co_enter(c2, co);
    g_assert_cmpint(r.runs, ==, 0);
    g_assert_cmpstr(co->scheduled, ==, "aio_co_schedule");
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(r.runs, ==, 0);
    g_assert_true(aio_poll(c2, false));
    g_assert_cmpint(r.runs, ==, 1);
    g_assert_true(r.ctx_seen[0] == c2);
    g_assert_false(aio_poll(c2, false));
    g_assert_cmpint(r.runs, ==, 1);
    aio_context_unref(c2);
    co_free(co);
}

/* Enters r->other with aio_co_enter from inside the coroutine, yields, and
 * logs 'c' when entered again. */
static void enter_other_entry(void *opaque)
{
    CoRec *r = opaque;
    Coroutine *self = qemu_coroutine_self();

    co_record(r);
    log_add('a');
    aio_co_enter(ctx, r->other);
    r->other_queued = self->co_queue_wakeup.sqh_first == r->other &&
                      self->co_queue_wakeup.sqh_last == &r->other->co_queue_next;
    log_add('b');
    qemu_coroutine_yield();
    co_record(r);
    log_add('c');
}

/* aio_co_enter from inside a coroutine queues the target on the running
 * coroutine's co_queue_wakeup; the runtime enters it when the caller
 * yields. */
static void test_co_enter_from_coroutine(void)
{
    CoRec rb = { .letter = 'B' };
    Coroutine *b = co_new(once_entry, &rb);
    CoRec ra = { .letter = 'A', .other = b };
    Coroutine *a = co_new(enter_other_entry, &ra);

    drain_ctx();
    aio_co_enter(ctx, a);
    log_add('m');
    g_assert_cmpstr(evlog, ==, "abBm");
    g_assert_true(ra.other_queued);
    g_assert_cmpint(ra.runs, ==, 1);
    g_assert_cmpint(rb.runs, ==, 1);
    g_assert_true(rb.ctx_seen[0] == ctx);
    g_assert_true(co_terminated(b));
    g_assert_false(co_terminated(a));
    g_assert_null(a->co_queue_wakeup.sqh_first);
    g_assert_false(aio_poll(ctx, false));
    aio_co_enter(ctx, a);
    g_assert_cmpstr(evlog, ==, "abBmc");
    g_assert_true(co_terminated(a));
    co_free(a);
    co_free(b);
}

/* aio_co_wake enters the coroutine in the context it last ran in: at once
 * for the current one, through that context's loop for another. */
static void test_co_wake(void)
{
    CoRec r1 = { .letter = 'w' };
    Coroutine *co1 = co_new(yield_entry, &r1);
    CoRec r2 = { .letter = 'v' };
    Coroutine *co2 = co_new(yield_entry, &r2);
    AioContext *c2 = new_context();

    drain_ctx();
    aio_co_enter(ctx, co1);
    g_assert_cmpstr(evlog, ==, "w");
    g_assert_true(co1->ctx == ctx);
    aio_co_wake(co1);
    g_assert_cmpstr(evlog, ==, "wW");
    g_assert_cmpint(r1.runs, ==, 2);
    g_assert_true(r1.ctx_seen[1] == ctx);
    g_assert_true(co_terminated(co1));

    aio_co_schedule(c2, co2);
    g_assert_true(aio_poll(c2, false));
    g_assert_cmpstr(evlog, ==, "wWv");
    g_assert_true(co2->ctx == c2);
    aio_co_wake(co2);
    g_assert_cmpint(r2.runs, ==, 1);
    g_assert_cmpstr(co2->scheduled, ==, "aio_co_schedule");
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(r2.runs, ==, 1);
    g_assert_true(aio_poll(c2, false));
    g_assert_cmpstr(evlog, ==, "wWvV");
    g_assert_cmpint(r2.runs, ==, 2);
    g_assert_true(r2.ctx_seen[1] == c2);
    g_assert_true(co_terminated(co2));
    aio_context_unref(c2);
    co_free(co1);
    co_free(co2);
}

/* Moves itself to r->target with aio_co_reschedule_self. */
static void reschedule_entry(void *opaque)
{
    CoRec *r = opaque;

    co_record(r);
    log_add('r');
    aio_co_reschedule_self(r->target);
    co_record(r);
    log_add('R');
}

/* aio_co_reschedule_self from ctx to c2: the coroutine yields; ctx's loop
 * runs the BH that schedules it on c2; c2's loop enters it, in c2. */
static void test_co_reschedule_self(void)
{
    AioContext *c2 = new_context();
    CoRec r = { .target = c2 };
    Coroutine *co = co_new(reschedule_entry, &r);

    drain_ctx();
    aio_co_enter(ctx, co);
    g_assert_cmpstr(evlog, ==, "r");
    g_assert_true(r.ctx_seen[0] == ctx);
    g_assert_false(co_terminated(co));
    g_assert_null(co->scheduled);
    g_assert_false(aio_poll(c2, false));
    g_assert_cmpstr(evlog, ==, "r");
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "r");
    g_assert_cmpstr(co->scheduled, ==, "aio_co_schedule");
    g_assert_true(aio_poll(c2, false));
    g_assert_cmpstr(evlog, ==, "rR");
    g_assert_cmpint(r.runs, ==, 2);
    g_assert_true(r.ctx_seen[1] == c2);
    g_assert_null(r.scheduled_seen[1]);
    g_assert_true(co_terminated(co));
    g_assert_false(aio_poll(ctx, false));
    g_assert_false(aio_poll(c2, false));
    aio_context_unref(c2);
    co_free(co);
}

/* The coroutine BH is deleted at finalize: a context that scheduled and
 * entered coroutines, and one that never did, unref without a leak abort. */
static void test_co_finalize_clean(void)
{
    CoRec r = { .letter = 'f' };
    Coroutine *co = co_new(once_entry, &r);
    AioContext *used = new_context();
    AioContext *unused = new_context();

    drain_ctx();
    aio_co_schedule(used, co);
    g_assert_true(aio_poll(used, false));
    g_assert_cmpint(r.runs, ==, 1);
    aio_context_unref(used);
    aio_context_unref(unused);
    co_free(co);
}

static void test_co_finalize_scheduled(void)
{
    if (g_test_subprocess()) {
        CoRec r = { .letter = 'x' };
        Coroutine *co = co_new(once_entry, &r);
        AioContext *c = new_context();

        no_core_dumps();
        aio_co_schedule(c, co);
        aio_context_unref(c);
        return;
    }
    expect_abort("*qaio: aio_ctx_finalize: *coroutine*");
}

/* ------------------------------------------------------------------------ */
/* Per-context hooks                                                        */

static void test_register(void)
{
    AioContext *c = new_context();
    CtxRec *r = ctx_rec(c);

    g_assert_nonnull(r);
    g_assert_cmpint(r->registered, ==, 1);
    g_assert_cmpint(r->unregistered, ==, 0);
    g_assert_true(c->bdrv_graph == &graph_sentinel);
    /* The fixture's context was registered too. */
    g_assert_cmpint(ctx_rec(ctx)->registered, ==, 1);
    g_assert_true(ctx->bdrv_graph == &graph_sentinel);

    aio_context_unref(c);
    g_assert_cmpint(r->registered, ==, 1);
    g_assert_cmpint(r->unregistered, ==, 1);
    g_assert_true(r->graph_at_unregister == &graph_sentinel);
    g_assert_cmpint(ctx_rec(ctx)->unregistered, ==, 0);
}

static void test_thread_pool(void)
{
    AioContext *c = new_context();
    Error *err = NULL;
    int created = pools_created;

    g_assert_cmpint(c->thread_pool_min, ==, 0);
    g_assert_cmpint(c->thread_pool_max, ==, 64);

    /* No pool yet: the values are stored, nobody is told. */
    aio_context_set_thread_pool_params(c, 2, 8, &err);
    g_assert_null(err);
    g_assert_cmpint(c->thread_pool_min, ==, 2);
    g_assert_cmpint(c->thread_pool_max, ==, 8);
    g_assert_cmpint(pools_created, ==, created);

    ThreadPoolAio *pool = aio_get_thread_pool(c);
    g_assert_cmpint(pools_created, ==, created + 1);
    g_assert_true(pool == &pools[created]);
    g_assert_true(pool->ctx == c);
    g_assert_true(aio_get_thread_pool(c) == pool);
    g_assert_cmpint(pools_created, ==, created + 1);
    g_assert_cmpint(pool->updates, ==, 0);

    aio_context_set_thread_pool_params(c, 1, 4, &err);
    g_assert_null(err);
    g_assert_cmpint(pool->updates, ==, 1);
    g_assert_cmpint(pool->min_seen, ==, 1);
    g_assert_cmpint(pool->max_seen, ==, 4);
    g_assert_cmpint(c->thread_pool_min, ==, 1);
    g_assert_cmpint(c->thread_pool_max, ==, 4);

    /* The largest values allowed. */
    aio_context_set_thread_pool_params(c, INT_MAX, INT_MAX, &err);
    g_assert_null(err);
    g_assert_cmpint(pool->updates, ==, 2);
    g_assert_cmpint(c->thread_pool_min, ==, INT_MAX);
    g_assert_cmpint(c->thread_pool_max, ==, INT_MAX);
    aio_context_set_thread_pool_params(c, 1, 4, &err);
    g_assert_null(err);
    g_assert_cmpint(pool->updates, ==, 3);

    g_assert_cmpint(pool->freed, ==, 0);
    aio_context_unref(c);
    g_assert_cmpint(pool->freed, ==, 1);
    g_assert_cmpint(pool->updates, ==, 3);
    g_assert_cmpint(pools_created, ==, created + 1);
}

/* Bad values leave the bounds as they were and report the error through the
 * program's error_setg_internal. */
static void test_thread_pool_bad_values(void)
{
    static const int64_t bad[][2] = {
        { 5, 4 },                          /* min > max */
        { 0, 0 },                          /* max <= 0 */
        { 0, -1 },
        { -1, 4 },                         /* min < 0 */
        { 0, (int64_t)INT_MAX + 1 },       /* above INT_MAX */
        { (int64_t)INT_MAX + 1, (int64_t)INT_MAX + 2 },
    };
    AioContext *c = new_context();
    ThreadPoolAio *pool = aio_get_thread_pool(c);
    Error *err = NULL;

    aio_context_set_thread_pool_params(c, 1, 4, &err);
    g_assert_null(err);
    g_assert_cmpint(pool->updates, ==, 1);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        int calls = err_rec.calls;

        memset(err_rec.func, 0, sizeof(err_rec.func));
        memset(err_rec.msg, 0, sizeof(err_rec.msg));
        aio_context_set_thread_pool_params(c, bad[i][0], bad[i][1], &err);
        g_assert_true(err == ERROR_MARKER);
        err = NULL;
        g_assert_cmpint(err_rec.calls, ==, calls + 1);
        g_assert_cmpstr(err_rec.func, ==, "aio_context_set_thread_pool_params");
        g_assert_cmpstr(err_rec.msg, ==, "bad thread-pool-min/thread-pool-max values");
        g_assert_cmpint(c->thread_pool_min, ==, 1);
        g_assert_cmpint(c->thread_pool_max, ==, 4);
        g_assert_cmpint(pool->updates, ==, 1);
    }
    /* errp NULL: ignored, as QEMU ignores it. */
    int calls = err_rec.calls;
    aio_context_set_thread_pool_params(c, 5, 4, NULL);
    g_assert_cmpint(err_rec.calls, ==, calls);
    g_assert_cmpint(c->thread_pool_min, ==, 1);
    aio_context_unref(c);
    g_assert_cmpint(pool->freed, ==, 1);
}

static void test_linux_aio(void)
{
    AioContext *c = new_context();
    Error *err = NULL;

    log_reset();
    LinuxAioState *s = aio_setup_linux_aio(c, &err);
    g_assert_null(err);
    g_assert_true(s == &laio_state);
    g_assert_cmpstr(evlog, ==, "ia");
    g_assert_true(laio_state.attached == c);
    g_assert_true(aio_setup_linux_aio(c, &err) == s);
    g_assert_true(aio_get_linux_aio(c) == s);
    g_assert_cmpstr(evlog, ==, "ia");
    aio_context_unref(c);
    g_assert_cmpstr(evlog, ==, "iadc");
    g_assert_true(laio_state.detached == c);
    g_assert_cmpint(laio_state.cleanups, ==, 1);
}

/* laio_init fails: aio_setup_linux_aio returns NULL with its error, and the
 * next call tries again. */
static void test_linux_aio_init_fails(void)
{
    AioContext *c = new_context();
    Error *err = NULL;

    log_reset();
    memset(&laio_state, 0, sizeof(laio_state));
    laio_fail = true;
    g_assert_null(aio_setup_linux_aio(c, &err));
    g_assert_true(err == ERROR_MARKER);
    err = NULL;
    g_assert_cmpstr(err_rec.func, ==, "laio_init");
    g_assert_cmpstr(err_rec.msg, ==, "no io_context");
    g_assert_cmpstr(evlog, ==, "i");
    laio_fail = false;
    g_assert_true(aio_setup_linux_aio(c, &err) == &laio_state);
    g_assert_null(err);
    g_assert_cmpstr(evlog, ==, "iia");
    aio_context_unref(c);
    g_assert_cmpstr(evlog, ==, "iiadc");
    g_assert_cmpint(laio_state.cleanups, ==, 1);
}

static void test_linux_aio_get_before_setup(void)
{
    if (g_test_subprocess()) {
        AioContext *c = new_context();

        no_core_dumps();
        aio_get_linux_aio(c);
        return;
    }
    expect_abort("*qaio: aio_get_linux_aio: *aio_setup_linux_aio*");
}

static void test_aio_params(void)
{
    AioContext *c = new_context();

    g_assert_cmpint(c->aio_max_batch, ==, 0);
    aio_context_set_aio_params(c, 7);
    g_assert_cmpint(c->aio_max_batch, ==, 7);
    aio_context_set_aio_params(c, 0);
    g_assert_cmpint(c->aio_max_batch, ==, 0);
    aio_context_unref(c);
}

static const FDMonOps *fdmon_table(const char *name)
{
    if (strcmp(name, "poll") == 0) {
        return &fdmon_poll_ops;
    }
    if (strcmp(name, "epoll") == 0) {
        return &fdmon_epoll_ops;
    }
    if (strcmp(name, "io_uring") == 0) {
        return &fdmon_io_uring_ops;
    }
    return NULL;
}

static void test_fdmon_ops(void)
{
    AioContext *c = new_context();
    const char *name = qaio_context_fdmon_name(c);
    const char *forced = getenv("QAIO_FDMON");

    if (forced) {
        g_assert_cmpstr(name, ==, forced);
    }
    g_assert_nonnull(fdmon_table(name));
    g_assert_true(c->fdmon_ops == fdmon_table(name));
    g_assert_true(ctx->fdmon_ops == fdmon_table(qaio_context_fdmon_name(ctx)));
    aio_context_unref(c);
}

/* ------------------------------------------------------------------------ */
/* The BQL rule                                                             */

typedef struct {
    AioContext *seen[3];
} CurrentRec;

static gpointer current_thread_fn(gpointer opaque)
{
    CurrentRec *r = opaque;

    r->seen[0] = qemu_get_current_aio_context();
    bql_held = true;
    r->seen[1] = qemu_get_current_aio_context();
    bql_held = false;
    r->seen[2] = qemu_get_current_aio_context();
    return NULL;
}

/* In a thread without a current context: NULL, or the main context while the
 * thread holds the BQL. */
static void test_bql_current_context(void)
{
    CurrentRec r = { { NULL } };

    g_assert_true(qemu_get_current_aio_context() == ctx);
    g_thread_join(g_thread_new("no-context", current_thread_fn, &r));
    g_assert_null(r.seen[0]);
    g_assert_true(r.seen[1] == ctx);
    g_assert_null(r.seen[2]);
}

typedef struct {
    QEMUBH *bh;
    int runs;
    GThread *ran_in;
    bool progress;
} BqlPollRec;

static void bql_bh_cb(void *opaque)
{
    BqlPollRec *r = opaque;

    r->runs++;
    r->ran_in = g_thread_self();
}

static gpointer bql_poll_thread_fn(gpointer opaque)
{
    BqlPollRec *r = opaque;

    bql_held = true;
    r->progress = aio_poll(ctx, false);
    bql_held = false;
    return NULL;
}

/* A thread holding the BQL may run the main context's loop. */
static void test_bql_poll_main(void)
{
    BqlPollRec r = { 0 };

    drain_ctx();
    r.bh = aio_bh_new(ctx, bql_bh_cb, &r);
    qemu_bh_schedule(r.bh);
    GThread *t = g_thread_new("bql-holder", bql_poll_thread_fn, &r);
    g_thread_join(t);
    g_assert_true(r.progress);
    g_assert_cmpint(r.runs, ==, 1);
    g_assert_true(r.ran_in == t);
    /* The home thread is still the main thread. */
    g_assert_false(aio_poll(ctx, false));
    qemu_bh_schedule(r.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(r.runs, ==, 2);
    g_assert_true(r.ran_in == g_thread_self());
    qemu_bh_delete(r.bh);
    drain_ctx();
}

static gpointer poll_thread_fn(gpointer opaque)
{
    aio_poll(opaque, false);
    return NULL;
}

/* Without the BQL, the main context's loop is the home thread's only. */
static void test_bql_poll_main_without_bql(void)
{
    if (g_test_subprocess()) {
        no_core_dumps();
        g_thread_join(g_thread_new("no-bql", poll_thread_fn, ctx));
        return;
    }
    expect_abort("*qaio: aio_poll: called outside the AioContext's home thread*");
}

int main(int argc, char **argv)
{
    test_init_with_errors(&argc, &argv, error_text);

    g_test_add_func("/aio/hooks/co/schedule-order", test_co_schedule_order);
    g_test_add_func("/aio/hooks/co/schedule-twice", test_co_schedule_twice);
    add_cross_thread_test("/aio/hooks/co/schedule-cross-thread", test_co_schedule_cross_thread);
    g_test_add_func("/aio/hooks/co/enter-now", test_co_enter_now);
    g_test_add_func("/aio/hooks/co/enter-other-ctx", test_co_enter_other_ctx);
    g_test_add_func("/aio/hooks/co/enter-from-coroutine", test_co_enter_from_coroutine);
    g_test_add_func("/aio/hooks/co/wake", test_co_wake);
    g_test_add_func("/aio/hooks/co/reschedule-self", test_co_reschedule_self);
    g_test_add_func("/aio/hooks/co/finalize-clean", test_co_finalize_clean);
    g_test_add_func("/aio/hooks/co/finalize-scheduled", test_co_finalize_scheduled);
    g_test_add_func("/aio/hooks/ctx/register", test_register);
    g_test_add_func("/aio/hooks/ctx/thread-pool", test_thread_pool);
    g_test_add_func("/aio/hooks/ctx/thread-pool-bad-values", test_thread_pool_bad_values);
    g_test_add_func("/aio/hooks/ctx/linux-aio", test_linux_aio);
    g_test_add_func("/aio/hooks/ctx/linux-aio-init-fails", test_linux_aio_init_fails);
    g_test_add_func("/aio/hooks/ctx/linux-aio-get-before-setup",
                    test_linux_aio_get_before_setup);
    g_test_add_func("/aio/hooks/ctx/aio-params", test_aio_params);
    g_test_add_func("/aio/hooks/ctx/fdmon-ops", test_fdmon_ops);
    g_test_add_func("/aio/hooks/bql/current-context", test_bql_current_context);
    g_test_add_func("/aio/hooks/bql/poll-main", test_bql_poll_main);
    g_test_add_func("/aio/hooks/bql/poll-main-without-bql", test_bql_poll_main_without_bql);
    return g_test_run();
}
