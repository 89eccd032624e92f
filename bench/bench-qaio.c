/*
 * qaio's workloads, through its public C API only (qemu/aio.h and friends).
 * The fd monitor comes from QAIO_FDMON, as for any qaio program; the result
 * line names the monitor the context really used.
 *
 *   bench-qaio bh        --mode nonblocking|blocking
 *   bench-qaio notifier
 *   bench-qaio fds       --n N --mode aio_poll|glib
 *   bench-qaio pingpong  --mode off|on        (adaptive polling)
 *   bench-qaio sqe-nop   --n 32               (batch size)
 *   bench-qaio sqe-read  --n 32
 *   bench-qaio timers    --n 10000 --mode ordered|random
 *
 * The same file, compiled with -DBENCH_QEMU against QEMU's own headers and
 * libqemuutil.a, is the QEMU peer (bench-qemu, bench-qemu-noring): one copy
 * of every workload.  QEMU cannot be told which monitor to use; the result
 * line names the one its context really ran (see qemu_fdmon_name), and
 * BENCH_QEMU_EPOLL=1 moves a poll(2) context to epoll (below).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifdef BENCH_QEMU
/* QEMU's headers want osdep.h before anything else. */
#include "qemu/osdep.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef BENCH_QEMU
#include "block/aio.h"
#include "qapi/error.h"
#include "qemu/event_notifier.h"
#include "qemu/timer.h"
#ifdef CONFIG_LINUX_IO_URING
#define BENCH_HAVE_SQE 1
#endif
#else
#include "qemu/aio.h"
#include "qemu/event_notifier.h"
#include "qemu/timer.h"
#define BENCH_HAVE_SQE 1
#endif

#include "common.h"

static BenchOpts opts;
static AioContext *main_ctx;

#ifdef BENCH_QEMU
/* Defined in QEMU's util/fdmon-poll.c (declared in a util/ header). */
extern const FDMonOps fdmon_poll_ops;

/* The monitor a QEMU context uses now: poll(2) until it has 64 fds, then
 * epoll; io_uring when the build has it and the kernel allowed it. */
static const char *qemu_fdmon_name(AioContext *ctx)
{
    if (ctx->fdmon_ops == &fdmon_poll_ops) {
        return "poll";
    }
#ifdef CONFIG_LINUX_IO_URING
    if (ctx->fdmon_ops->add_sqe) {
        return "io_uring";
    }
#endif
    return ctx->epollfd >= 0 ? "epoll" : "?";
}
#define context_fdmon_name qemu_fdmon_name
#define BENCH_IMPL "qemu"
#else
#define context_fdmon_name qaio_context_fdmon_name
#define BENCH_IMPL "qaio"
#endif

static const char *main_monitor(void)
{
    return context_fdmon_name(main_ctx);
}

static BenchInfo info = {
    .impl = BENCH_IMPL, .monitor = "?", .driver = "aio_poll", .ops_per_iter = 1,
    .monitor_now = main_monitor,
};

#ifdef BENCH_QEMU
static void dummy_read(void *opaque)
{
    bench_efd_drain(*(int *)opaque);
}
#endif

/* Creates a context current in the calling thread, or reports the row as
 * unavailable (a forced monitor the kernel or the library cannot provide). */
static AioContext *new_context(void)
{
    Error *err = NULL;
    AioContext *ctx = aio_context_new(&err);
    if (!ctx) {
        const char *fdmon = getenv("QAIO_FDMON");
        info.monitor = fdmon && *fdmon ? fdmon : "default";
        bench_unavailable(&info, err ? error_get_pretty(err) : "aio_context_new failed");
    }
    return ctx;
}

static AioContext *setup_context(void)
{
    AioContext *ctx = new_context();
    qemu_set_current_aio_context(ctx);
#ifdef BENCH_QEMU
    /*
     * QEMU upgrades a poll(2) context to epoll once it waits on 64 fds and
     * never goes back when fds are removed.  BENCH_QEMU_EPOLL=1 uses that to
     * run QEMU's epoll monitor on rows with fewer fds (notifier, fds-1):
     * 64 idle eventfds, one aio_poll, then they are removed again.
     */
    const char *want_epoll = getenv("BENCH_QEMU_EPOLL");
    if (want_epoll && *want_epoll == '1' && !strcmp(qemu_fdmon_name(ctx), "poll")) {
        enum { UPGRADE_FDS = 64 };
        int dummy[UPGRADE_FDS];
        for (int i = 0; i < UPGRADE_FDS; i++) {
            dummy[i] = bench_eventfd();
            aio_set_fd_handler(ctx, dummy[i], dummy_read, NULL, NULL, NULL, &dummy[i]);
        }
        aio_poll(ctx, false);
        for (int i = 0; i < UPGRADE_FDS; i++) {
            aio_set_fd_handler(ctx, dummy[i], NULL, NULL, NULL, NULL, NULL);
            close(dummy[i]);
        }
        while (aio_poll(ctx, false)) {
        }
    }
#endif
    if (!main_ctx) {
        main_ctx = ctx;
    }
    return ctx;
}

/* ---- bh ----------------------------------------------------------------- */

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    long runs;
    bool blocking;
} BhState;

static void bh_cb(void *opaque)
{
    ((BhState *)opaque)->runs++;
}

static void bh_iter(void *opaque, long iters)
{
    BhState *s = opaque;
    for (long i = 0; i < iters; i++) {
        long before = s->runs;
        qemu_bh_schedule(s->bh);
        aio_poll(s->ctx, s->blocking);
        if (s->runs != before + 1) {
            BENCH_CHECK(!"BH did not run exactly once");
        }
    }
}

static void run_bh(void)
{
    static BhState s;
    s.blocking = !strcmp(opts.mode, "blocking");
    BENCH_CHECK(s.blocking || !strcmp(opts.mode, "nonblocking") || !*opts.mode);
    info.workload = s.blocking ? "bh-blocking" : "bh";
    info.n = 1;
    s.ctx = setup_context();
    s.bh = aio_bh_new(s.ctx, bh_cb, &s);
    while (aio_poll(s.ctx, false)) {
    }
    bench_run(&info, &opts, bh_iter, &s);
}

/* ---- notifier ----------------------------------------------------------- */

typedef struct {
    EventNotifier en; /* first: the callbacks get &en */
    AioContext *ctx;
    long runs;
} NotifierState;

static void notifier_read(EventNotifier *e)
{
    NotifierState *s = (NotifierState *)e;
    if (event_notifier_test_and_clear(e)) {
        s->runs++;
    }
}

static void notifier_iter(void *opaque, long iters)
{
    NotifierState *s = opaque;
    for (long i = 0; i < iters; i++) {
        long before = s->runs;
        event_notifier_set(&s->en);
        while (s->runs == before) {
            aio_poll(s->ctx, true);
        }
    }
}

static void run_notifier(void)
{
    static NotifierState s;
    info.workload = "notifier";
    info.n = 1;
    s.ctx = setup_context();
    BENCH_CHECK(event_notifier_init(&s.en, 0) == 0);
    aio_set_event_notifier(s.ctx, &s.en, notifier_read, NULL, NULL);
    while (aio_poll(s.ctx, false)) {
    }
    bench_run(&info, &opts, notifier_iter, &s);
}

/* ---- fds-N -------------------------------------------------------------- */

typedef struct {
    AioContext *ctx;
    GMainContext *gctx; /* NULL: aio_poll driver */
    int *fds;
    long n;
    long next;
    long runs;
} FdsState;

static FdsState fds;

static void fds_read(void *opaque)
{
    int fd = *(int *)opaque;
    bench_efd_drain(fd);
    fds.runs++;
}

static void fds_iter(void *opaque, long iters)
{
    FdsState *s = opaque;
    for (long i = 0; i < iters; i++) {
        long before = s->runs;
        bench_efd_signal(s->fds[s->next]);
        s->next = bench_next_index(s->next, s->n);
        if (s->gctx) {
            while (s->runs == before) {
                g_main_context_iteration(s->gctx, TRUE);
            }
        } else {
            while (s->runs == before) {
                aio_poll(s->ctx, true);
            }
        }
    }
}

static void run_fds(void)
{
    FdsState *s = &fds;
    bench_raise_nofile();
    info.workload = "fds";
    info.n = s->n = opts.n;
    if (!strcmp(opts.mode, "glib")) {
        info.driver = "glib";
    }
    s->ctx = setup_context();
    if (!strcmp(opts.mode, "glib")) {
        s->gctx = g_main_context_new();
        GSource *src = aio_get_g_source(s->ctx);
        g_source_attach(src, s->gctx);
        g_source_unref(src);
    } else {
        BENCH_CHECK(!*opts.mode || !strcmp(opts.mode, "aio_poll"));
    }
    s->fds = calloc(s->n, sizeof(int));
    for (long i = 0; i < s->n; i++) {
        s->fds[i] = bench_eventfd();
        aio_set_fd_handler(s->ctx, s->fds[i], fds_read, NULL, NULL, NULL, &s->fds[i]);
    }
    /* Let the registrations settle (io_uring submits its POLL_ADDs)
     * before measuring; the warm-up does the rest. */
    while (aio_poll(s->ctx, false)) {
    }
    if (s->gctx) {
        while (g_main_context_iteration(s->gctx, FALSE)) {
        }
    }
    bench_run(&info, &opts, fds_iter, s);
}

/* ---- pingpong ----------------------------------------------------------- */

/*
 * Two threads, each with its own context and EventNotifier.  The token is a
 * flag in memory plus a signal of the receiver's notifier: io_read handles
 * it after the kernel reported the eventfd readable, io_poll (what adaptive
 * polling calls) sees the flag without a syscall.  A round trip is
 * main -> echo -> main.
 */
typedef struct Side {
    EventNotifier en; /* first: the callbacks get &en */
    AioContext *ctx;
    struct Side *peer;
    atomic_int token;
    bool echo;
    long received;
} Side;

static Side side_main, side_echo;
static atomic_bool echo_stop;
static pthread_mutex_t echo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t echo_cond = PTHREAD_COND_INITIALIZER;
static bool echo_ready;
static bool poll_on;

static void pp_send(Side *to)
{
    /* Release pairs with the acquire exchange in pp_consume. */
    atomic_store_explicit(&to->token, 1, memory_order_release);
    event_notifier_set(&to->en);
}

static void pp_consume(Side *s)
{
    if (atomic_exchange_explicit(&s->token, 0, memory_order_acquire)) {
        s->received++;
        if (s->echo) {
            pp_send(s->peer);
        }
    }
}

static void pp_read(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
    pp_consume((Side *)e);
}

static bool pp_poll(void *opaque)
{
    Side *s = opaque;
    return atomic_load_explicit(&s->token, memory_order_relaxed) != 0;
}

static void pp_poll_ready(EventNotifier *e)
{
    pp_consume((Side *)e);
}

static void pp_register(Side *s)
{
    BENCH_CHECK(event_notifier_init(&s->en, 0) == 0);
    aio_set_event_notifier(s->ctx, &s->en, pp_read, pp_poll, pp_poll_ready);
    aio_context_set_poll_params(s->ctx, poll_on ? 32768 : 0, poll_on ? 2 : 0,
                                poll_on ? 2 : 0, NULL);
}

/*
 * Pins the calling thread to the `which`-th CPU it may run on (modulo their
 * number).  Two spinning threads must not share a core: on a 2-core machine
 * with other load the scheduler would otherwise often put both on the idle
 * core, and each would spin out its whole poll time waiting for the other.
 */
static void pin_thread(int which)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2) {
        return;
    }
    int skip = which % CPU_COUNT(&allowed);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && skip-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

static void *echo_thread(void *arg)
{
    (void)arg;
    Side *s = &side_echo;
    if (getenv("BENCH_PIN")) {
        pin_thread(1);
    }
    s->ctx = setup_context();
    pp_register(s);
    pthread_mutex_lock(&echo_lock);
    echo_ready = true;
    pthread_cond_signal(&echo_cond);
    pthread_mutex_unlock(&echo_lock);
    while (!atomic_load(&echo_stop)) {
        aio_poll(s->ctx, true);
    }
    return NULL;
}

/* Round-trip times of the latest pp_iter call (the measured window is the
 * last call): a busy machine preempts one of the two spinning threads now
 * and then, and the median shows the round trip without those stalls. */
#define PP_SAMPLES (1L << 22)
static int64_t *pp_samples;
static long pp_nsamples;

static void pp_iter(void *opaque, long iters)
{
    Side *s = opaque;
    pp_nsamples = 0;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        long before = s->received;
        pp_send(s->peer);
        while (s->received == before) {
            aio_poll(s->ctx, true);
        }
        int64_t t1 = bench_now_ns();
        if (pp_nsamples < PP_SAMPLES) {
            pp_samples[pp_nsamples++] = t1 - t0;
        }
        t0 = t1;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void run_pingpong(void)
{
    poll_on = !strcmp(opts.mode, "on");
    BENCH_CHECK(poll_on || !strcmp(opts.mode, "off") || !*opts.mode);
    info.workload = poll_on ? "pingpong-poll" : "pingpong";
    info.n = 1;
    side_main.peer = &side_echo;
    side_echo.peer = &side_main;
    side_echo.echo = true;
    if (getenv("BENCH_PIN")) {
        pin_thread(0);
    }
    side_main.ctx = setup_context();
    pp_register(&side_main);
    pp_samples = calloc(PP_SAMPLES, sizeof(int64_t));
    BENCH_CHECK(pp_samples);

    pthread_t tid;
    BENCH_CHECK(pthread_create(&tid, NULL, echo_thread, NULL) == 0);
    pthread_mutex_lock(&echo_lock);
    while (!echo_ready) {
        pthread_cond_wait(&echo_cond, &echo_lock);
    }
    pthread_mutex_unlock(&echo_lock);

    bench_run(&info, &opts, pp_iter, &side_main);
    qsort(pp_samples, pp_nsamples, sizeof(int64_t), cmp_i64);
    printf("EXTRA p50_ns=%lld p90_ns=%lld p99_ns=%lld\n",
           (long long)pp_samples[pp_nsamples / 2],
           (long long)pp_samples[pp_nsamples * 9 / 10],
           (long long)pp_samples[pp_nsamples * 99 / 100]);
    fflush(stdout);

    atomic_store(&echo_stop, true);
    aio_notify(side_echo.ctx);
    pthread_join(tid, NULL);
}

/* ---- sqe-nop / sqe-read ------------------------------------------------- */

#ifdef BENCH_HAVE_SQE
typedef struct {
    CqeHandler h; /* first: the callback gets &h */
    int fd;
    void *buf;
    uint64_t off;
} SqeReq;

typedef struct {
    AioContext *ctx;
    SqeReq *reqs;
    long batch;
    long done;
    bool read;
    uint64_t next_block;
    uint64_t blocks;
} SqeState;

static SqeState sqe;

/* QEMU hands prep_sqe the ring slot as it is (its users call liburing's
 * io_uring_prep_*, which clear it); qaio's contract gives a zeroed SQE. */
static void sqe_clear(struct io_uring_sqe *s)
{
#ifdef BENCH_QEMU
    memset(s, 0, sizeof(*s));
#else
    (void)s;
#endif
}

static void prep_nop(struct io_uring_sqe *s, void *opaque)
{
    (void)opaque;
    sqe_clear(s);
    s->opcode = IORING_OP_NOP;
}

static void prep_read(struct io_uring_sqe *s, void *opaque)
{
    SqeReq *r = opaque;
    sqe_clear(s);
    s->opcode = IORING_OP_READ;
    s->fd = r->fd;
    s->addr = (uintptr_t)r->buf;
    s->len = 4096;
    s->off = r->off;
}

static void sqe_done(CqeHandler *h)
{
    SqeReq *r = (SqeReq *)h;
    BENCH_CHECK(r->h.cqe.res == (sqe.read ? 4096 : 0));
    sqe.done++;
}

static void sqe_iter(void *opaque, long iters)
{
    SqeState *s = opaque;
    for (long i = 0; i < iters; i++) {
        s->done = 0;
        for (long j = 0; j < s->batch; j++) {
            SqeReq *r = &s->reqs[j];
            r->h.cb = sqe_done;
            if (s->read) {
                r->off = s->next_block * 4096;
                if (++s->next_block == s->blocks) {
                    s->next_block = 0;
                }
            }
            aio_add_sqe(s->read ? prep_read : prep_nop, r, &r->h);
        }
        while (s->done < s->batch) {
            aio_poll(s->ctx, true);
        }
    }
}

static void run_sqe(bool read)
{
    SqeState *s = &sqe;
    info.workload = read ? "sqe-read" : "sqe-nop";
    info.n = s->batch = opts.n;
    info.ops_per_iter = s->batch;
    s->read = read;
    s->ctx = setup_context();
    if (!aio_has_io_uring()) {
        info.monitor = context_fdmon_name(s->ctx);
        bench_unavailable(&info, "aio_add_sqe needs the io_uring monitor");
    }
    s->reqs = calloc(s->batch, sizeof(SqeReq));
    if (read) {
        /* 4 MiB file in the page cache (written, then read back once). */
        char path[] = "/tmp/qaio-bench-XXXXXX";
        int fd = mkstemp(path);
        BENCH_CHECK(fd >= 0);
        unlink(path);
        s->blocks = 1024;
        char *block = malloc(4096);
        memset(block, 0x5a, 4096);
        for (uint64_t b = 0; b < s->blocks; b++) {
            BENCH_CHECK(pwrite(fd, block, 4096, b * 4096) == 4096);
        }
        free(block);
        for (long j = 0; j < s->batch; j++) {
            s->reqs[j].fd = fd;
            BENCH_CHECK(posix_memalign(&s->reqs[j].buf, 4096, 4096) == 0);
        }
    }
    bench_run(&info, &opts, sqe_iter, s);
}
#else
static void run_sqe(bool read)
{
    info.workload = read ? "sqe-read" : "sqe-nop";
    info.n = opts.n;
    AioContext *ctx = setup_context();
    info.monitor = context_fdmon_name(ctx);
    bench_unavailable(&info, "this QEMU build has no io_uring (CONFIG_LINUX_IO_URING unset)");
}
#endif

/* ---- timers ------------------------------------------------------------- */

typedef struct {
    AioContext *ctx;
    QEMUTimer *timers;
    long *order;
    long n;
    long fired;
} TimerState;

static void timer_cb(void *opaque)
{
    ((TimerState *)opaque)->fired++;
}

static void timers_iter(void *opaque, long iters)
{
    TimerState *s = opaque;
    for (long i = 0; i < iters; i++) {
        s->fired = 0;
        int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
        /* Every expiry is already past, so one aio_poll fires them all;
         * order[k] is each timer's distance before now. */
        for (long k = 0; k < s->n; k++) {
            timer_mod_ns(&s->timers[k], now - s->order[k]);
        }
        while (s->fired < s->n) {
            aio_poll(s->ctx, true);
        }
    }
}

static void run_timers(void)
{
    TimerState *s = calloc(1, sizeof(*s));
    bool random_order = !strcmp(opts.mode, "random");
    BENCH_CHECK(random_order || !strcmp(opts.mode, "ordered") || !*opts.mode);
    info.workload = random_order ? "timers-random" : "timers";
    info.n = info.ops_per_iter = s->n = opts.n;
    s->ctx = setup_context();
    s->timers = calloc(s->n, sizeof(QEMUTimer));
    s->order = calloc(s->n, sizeof(long));
    for (long k = 0; k < s->n; k++) {
        aio_timer_init(s->ctx, &s->timers[k], QEMU_CLOCK_REALTIME, SCALE_NS, timer_cb, s);
        /* ordered: each new timer expires before the ones already armed,
         * so it is inserted at the head of the sorted list; random: a fixed
         * permutation (the list insertion walks half the list on average). */
        s->order[k] = k;
    }
    if (random_order) {
        unsigned seed = 12345;
        for (long k = s->n - 1; k > 0; k--) {
            long j = rand_r(&seed) % (k + 1);
            long t = s->order[k];
            s->order[k] = s->order[j];
            s->order[j] = t;
        }
    }
    bench_run(&info, &opts, timers_iter, s);
}

/* ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s bh|notifier|fds|pingpong|sqe-nop|sqe-read|timers [--n N] "
                        "[--mode M] [--iters I | --time-ms T] [--warm-ms W]\n", argv[0]);
        return 2;
    }
    const char *w = argv[1];
    bench_parse(argc, argv, &opts);
#ifdef BENCH_QEMU
    /* What qemu_init_main_loop does first: QEMU's clocks start disabled,
     * and a disabled clock's timers never fire. */
    qemu_init_clocks(NULL);
#endif
    info.workload = w;
    if (!strcmp(w, "bh")) {
        run_bh();
    } else if (!strcmp(w, "notifier")) {
        run_notifier();
    } else if (!strcmp(w, "fds")) {
        run_fds();
    } else if (!strcmp(w, "pingpong")) {
        run_pingpong();
    } else if (!strcmp(w, "sqe-nop")) {
        run_sqe(false);
    } else if (!strcmp(w, "sqe-read")) {
        run_sqe(true);
    } else if (!strcmp(w, "timers")) {
        run_timers();
    } else {
        fprintf(stderr, "bench-qaio: unknown workload %s\n", w);
        return 2;
    }
    /* No teardown: the process exits; the kernel reclaims fds and rings. */
    _exit(0);
}
