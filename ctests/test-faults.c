/*
 * Fault injection at the syscall boundary, never inside qaio: a seccomp
 * filter makes one syscall fail from a chosen moment on (io_uring_setup,
 * epoll_ctl's EPOLL_CTL_ADD), a lowered RLIMIT_NOFILE leaves no fd, and a
 * seccomp user-notification supervisor makes io_uring_enter fail
 * transiently (EINTR, EAGAIN, EBUSY) during a burst of aio_add_sqe NOPs that
 * fills the SQ and overflows the CQ.
 *
 * Filters cannot be removed, so every case runs in a subprocess
 * (g_test_trap_subprocess) that installs its filter and reports what qaio
 * did on stderr; the parent asserts that report. A subprocess is a fresh
 * process without the shared fixture context (see main), so the default
 * monitor choice is made afresh in it.
 *
 * The signal storm during blocking waits on every monitor is
 * /fdmon/signals in test-fdmon.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define SUBPROCESS_TIMEOUT_US (120 * G_USEC_PER_SEC)

#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* The monitor the suite forces (QAIO_FDMON), or NULL for the default. */
static const char *suite_fdmon(void)
{
    const char *f = getenv("QAIO_FDMON");
    return f && *f ? f : NULL;
}

static bool suite_is(const char *name)
{
    const char *f = suite_fdmon();
    return f && strcmp(f, name) == 0;
}

static void run_subprocess(void)
{
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT_US, G_TEST_SUBPROCESS_DEFAULT);
}

static bool have_seccomp(void)
{
#ifdef TEST_AUDIT_ARCH
    return true;
#else
    g_test_skip("seccomp filters are written for x86_64 and aarch64 only");
    return false;
#endif
}

/* One seccomp rule: `action` for syscall `nr`, if `arg` >= 0 only when the
 * low 32 bits of argument `arg` equal `value`. */
typedef struct {
    int nr;
    int arg;
    uint32_t value;
    uint32_t action;
} Rule;

/* Installs a filter that applies `rules` (first match wins) and allows
 * everything else, for the calling thread and the threads it creates from
 * now on. Returns what seccomp(2) returned (a listener fd with
 * SECCOMP_FILTER_FLAG_NEW_LISTENER). */
static int install_filter(const Rule *rules, int n, unsigned flags)
{
#ifdef TEST_AUDIT_ARCH
    struct sock_filter f[64];
    int k = 0;
    int r;

    g_assert_cmpint(n, <=, 10);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    for (int i = 0; i < n; i++) {
        f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                              offsetof(struct seccomp_data, nr));
        if (rules[i].arg < 0) {
            f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                  (uint32_t)rules[i].nr, 0, 1);
        } else {
            f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                  (uint32_t)rules[i].nr, 0, 3);
            /* Little endian: the low word of args[i] comes first. */
            f[k++] = (struct sock_filter)BPF_STMT(
                BPF_LD | BPF_W | BPF_ABS,
                offsetof(struct seccomp_data, args) + 8 * (unsigned)rules[i].arg);
            f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                  rules[i].value, 0, 1);
        }
        f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, rules[i].action);
    }
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

    struct sock_fprog prog = { .len = (unsigned short)k, .filter = f };
    g_assert_cmpint(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), ==, 0);
    r = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (r < 0) {
        g_error("seccomp(SECCOMP_SET_MODE_FILTER) failed: %s", g_strerror(errno));
    }
    return r;
#else
    (void)rules;
    (void)n;
    (void)flags;
    g_assert_not_reached();
#endif
}

/* Syscall `nr` fails with `err` from now on. */
static void fail_syscall(int nr, int err)
{
    Rule r = { nr, -1, 0, SECCOMP_RET_ERRNO | (uint32_t)err };
    install_filter(&r, 1, 0);
}

static void set_fdmon(const char *value)
{
    if (value) {
        setenv("QAIO_FDMON", value, 1);
    } else {
        unsetenv("QAIO_FDMON");
    }
}

static int lowest_free_fd(void)
{
    int fd = dup(0);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    return fd;
}

/* Leaves `n` free fd numbers: the lowest free one and the n-1 after it
 * (which must be free too). */
static void leave_fds(int n)
{
    struct rlimit rl;

    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    rl.rlim_cur = (rlim_t)(lowest_free_fd() + n);
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
}

static void restore_nofile(void)
{
    struct rlimit rl;

    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &rl), ==, 0);
    rl.rlim_cur = rl.rlim_max;
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
}

/* A context driven either by aio_poll or by a private GMainContext. */
typedef struct {
    AioContext *c;
    GMainContext *g;
} Loop;

static void loop_init(Loop *l, AioContext *c)
{
    GSource *src = aio_get_g_source(c);

    l->c = c;
    l->g = g_main_context_new();
    g_source_attach(src, l->g);
    g_source_unref(src);
    qemu_set_current_aio_context(NULL);
    qemu_set_current_aio_context(c);
}

static bool loop_iter(Loop *l, Driver d, bool blocking)
{
    if (d == DRIVE_AIO) {
        return aio_poll(l->c, blocking);
    }
    return g_main_context_iteration(l->g, blocking);
}

static void loop_drain(Loop *l, Driver d)
{
    while (loop_iter(l, d, false)) {
        /* drain */
    }
}

/* Drops the loop's context (the GMainContext holds the last reference). */
static void loop_destroy(Loop *l)
{
    qemu_set_current_aio_context(NULL);
    aio_context_unref(l->c);
    g_main_context_unref(l->g);
    l->c = NULL;
    l->g = NULL;
}

/* Counting eventfd handlers. */
typedef struct {
    int fd;
    int calls;
    uint64_t events; /* sum of the eventfd values read */
} Counter;

static void counter_read(void *opaque)
{
    Counter *c = opaque;
    eventfd_t v;

    c->calls++;
    g_assert_cmpint(eventfd_read(c->fd, &v), ==, 0);
    c->events += v;
}

static Counter *counters_new(int n)
{
    Counter *cs = g_new0(Counter, n);

    for (int i = 0; i < n; i++) {
        cs[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert_cmpint(cs[i].fd, >=, 0);
    }
    return cs;
}

static void counters_register(AioContext *c, Counter *cs, int from, int to)
{
    for (int i = from; i < to; i++) {
        aio_set_fd_handler(c, cs[i].fd, counter_read, NULL, NULL, NULL, &cs[i]);
    }
}

static void counters_signal(Counter *cs, int n)
{
    for (int i = 0; i < n; i++) {
        g_assert_cmpint(eventfd_write(cs[i].fd, 1), ==, 0);
    }
}

static int counters_min_calls(Counter *cs, int n)
{
    int m = INT32_MAX;
    for (int i = 0; i < n; i++) {
        m = MIN(m, cs[i].calls);
    }
    return m;
}

/* Every counter signalled once more: drives until each ran once more, and
 * asserts that none ran more often and none lost its event. */
static void counters_round(Loop *l, Driver d, Counter *cs, int n, int round)
{
    counters_signal(cs, n);
    while (counters_min_calls(cs, n) < round) {
        loop_iter(l, d, true);
    }
    loop_drain(l, d);
    for (int i = 0; i < n; i++) {
        g_assert_cmpint(cs[i].calls, ==, round);
        g_assert_cmpuint(cs[i].events, ==, (uint64_t)round);
    }
}

static void counters_free(Loop *l, Counter *cs, int n)
{
    for (int i = 0; i < n; i++) {
        aio_set_fd_handler(l->c, cs[i].fd, NULL, NULL, NULL, NULL, NULL);
    }
    loop_drain(l, DRIVE_AIO);
    for (int i = 0; i < n; i++) {
        close(cs[i].fd);
    }
    g_free(cs);
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* ------------------------------------------------------------------------ */
/* io_uring refused: io_uring_setup fails with EPERM or ENOSYS               */

/* The workload both the default fallback and a normal context must run
 * alike: a BH, a timer, and 100 fd handlers (which moves poll(2) to epoll). */
static void standard_workload(AioContext *c)
{
    Loop l;
    Counter *cs = counters_new(100);
    QEMUTimer t;
    int bh_runs = 0, timer_runs = 0;
    QEMUBH *bh;

    loop_init(&l, c);
    bh = aio_bh_new(c, count_cb, &bh_runs);
    aio_timer_init(c, &t, QEMU_CLOCK_REALTIME, SCALE_MS, count_cb, &timer_runs);
    counters_register(c, cs, 0, 100);
    loop_drain(&l, DRIVE_AIO);

    qemu_bh_schedule(bh);
    g_assert_true(aio_poll(c, false));
    g_assert_cmpint(bh_runs, ==, 1);
    timer_mod(&t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1);
    while (!timer_runs) {
        aio_poll(c, true);
    }
    g_assert_cmpint(timer_runs, ==, 1);
    counters_round(&l, DRIVE_AIO, cs, 100, 1);
    counters_round(&l, DRIVE_GLIB, cs, 100, 2);
    g_printerr("workload on %s: bh 1, timer 1, 100 handlers x 2\n",
               qaio_context_fdmon_name(c));
    counters_free(&l, cs, 100);
    qemu_bh_delete(bh);
    loop_destroy(&l);
}

static void io_uring_refused(int err)
{
    if (g_test_subprocess()) {
        const char *forced = suite_fdmon();
        int before = test_count_open_fds();
        Error *local = NULL;
        AioContext *c;

        fail_syscall(__NR_io_uring_setup, err);

        /* The suite's monitor, forced. */
        c = aio_context_new(&local);
        if (forced && strcmp(forced, "io_uring") == 0) {
            g_assert_null(c);
            g_printerr("forced io_uring: %s\n", error_get_pretty(local));
            error_free(local);
            g_assert_cmpint(test_count_open_fds(), ==, before);
        } else {
            g_assert_nonnull(c);
            g_printerr("forced %s: ok\n", qaio_context_fdmon_name(c));
            aio_context_unref(c);
        }

        /* The default: poll(2) with the epoll upgrade, one warning for any
         * number of contexts. */
        set_fdmon(NULL);
        c = aio_context_new(&error_abort);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "poll");
        qemu_set_current_aio_context(c);
        g_assert_false(aio_has_io_uring());
        qemu_set_current_aio_context(NULL);
        standard_workload(c);
        c = aio_context_new(&error_abort);
        g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "poll");
        aio_context_unref(c);
        g_assert_cmpint(test_count_open_fds(), ==, before);
        g_printerr("done\n");
        return;
    }
    run_subprocess();
    g_test_trap_assert_passed();
    const char *msg = err == EPERM ? "Operation not permitted" : "Function not implemented";
    char *pat;
    if (suite_is("io_uring")) {
        pat = g_strdup_printf("*forced io_uring: Failed to initialize io_uring: %s\n*", msg);
    } else {
        pat = g_strdup_printf("*forced %s: ok\n*", suite_fdmon() ? suite_fdmon() : "poll");
    }
    g_test_trap_assert_stderr(pat);
    g_free(pat);
    pat = g_strdup_printf("*qaio: Failed to initialize io_uring: %s; using poll(2) and epoll "
                          "instead\n*workload on epoll: bh 1, timer 1, 100 handlers x 2\n*done\n",
                          msg);
    g_test_trap_assert_stderr(pat);
    g_free(pat);
    /* One warning only. */
    g_test_trap_assert_stderr_unmatched("*using poll(2)*using poll(2)*");
}

static void test_uring_refused_eperm(void)
{
    if (have_seccomp()) {
        io_uring_refused(EPERM);
    }
}

static void test_uring_refused_enosys(void)
{
    if (have_seccomp()) {
        io_uring_refused(ENOSYS);
    }
}

/* ------------------------------------------------------------------------ */
/* epoll_ctl(EPOLL_CTL_ADD) failing with ENOSPC or ENOMEM                    */

enum { OLD_HANDLERS = 10 };

/* Registration after the fault: on epoll, the failed EPOLL_CTL_ADD makes the
 * context give up epoll for good and go back to poll(2) (QEMU's
 * fdmon_epoll_disable); the new handler and the old ones all keep working,
 * under aio_poll and under glib. Other monitors never call epoll_ctl. */
static void epoll_ctl_fails(int err)
{
    if (g_test_subprocess()) {
        AioContext *c = aio_context_new(&error_abort);
        Counter *cs = counters_new(OLD_HANDLERS + 1);
        Rule r = { __NR_epoll_ctl, 1, EPOLL_CTL_ADD, SECCOMP_RET_ERRNO | (uint32_t)err };
        const char *before;
        Loop l;

        loop_init(&l, c);
        counters_register(c, cs, 0, OLD_HANDLERS);
        loop_drain(&l, DRIVE_AIO);
        counters_round(&l, DRIVE_AIO, cs, OLD_HANDLERS, 1);
        before = qaio_context_fdmon_name(c);

        install_filter(&r, 1, 0);
        counters_register(c, cs, OLD_HANDLERS, OLD_HANDLERS + 1);
        g_printerr("monitor: %s -> %s\n", before, qaio_context_fdmon_name(c));
        /* The new handler missed round 1: give it its first event alone. */
        g_assert_cmpint(eventfd_write(cs[OLD_HANDLERS].fd, 1), ==, 0);
        while (cs[OLD_HANDLERS].calls < 1) {
            loop_iter(&l, DRIVE_AIO, true);
        }
        g_assert_cmpint(counters_min_calls(cs, OLD_HANDLERS), ==, 1);
        counters_round(&l, DRIVE_AIO, cs, OLD_HANDLERS + 1, 2);
        counters_round(&l, DRIVE_GLIB, cs, OLD_HANDLERS + 1, 3);
        /* Removing and re-adding handlers still works after the fault. */
        aio_set_fd_handler(c, cs[0].fd, NULL, NULL, NULL, NULL, NULL);
        counters_register(c, cs, 0, 1);
        counters_round(&l, DRIVE_GLIB, cs, OLD_HANDLERS + 1, 4);
        g_printerr("after: %s, %d handlers x 4\n", qaio_context_fdmon_name(c), OLD_HANDLERS + 1);
        counters_free(&l, cs, OLD_HANDLERS + 1);
        loop_destroy(&l);
        return;
    }
    run_subprocess();
    g_test_trap_assert_passed();
    if (suite_is("epoll")) {
        g_test_trap_assert_stderr("*monitor: epoll -> poll\n*after: poll, 11 handlers x 4\n*");
    } else if (suite_is("poll")) {
        g_test_trap_assert_stderr("*monitor: poll -> poll\n*after: poll, 11 handlers x 4\n*");
    } else if (suite_is("io_uring")) {
        g_test_trap_assert_stderr(
            "*monitor: io_uring -> io_uring\n*after: io_uring, 11 handlers x 4\n*");
    } else {
        g_test_trap_assert_stderr("*monitor: * -> *\n*after: *, 11 handlers x 4\n*");
    }
    g_test_trap_assert_stderr_unmatched("*qaio:*");
}

/* The poll(2) -> epoll upgrade at 64 fds meets a failing EPOLL_CTL_ADD: the
 * context stays on poll(2) for good and no handler is lost. Default monitor
 * with io_uring refused, in every suite. */
static void epoll_upgrade_fails(int err)
{
    if (g_test_subprocess()) {
        Rule rules[] = {
            { __NR_io_uring_setup, -1, 0, SECCOMP_RET_ERRNO | ENOSYS },
            { __NR_epoll_ctl, 1, EPOLL_CTL_ADD, SECCOMP_RET_ERRNO | (uint32_t)err },
        };
        AioContext *c;
        Counter *cs = counters_new(100);
        Loop l;

        install_filter(rules, G_N_ELEMENTS(rules), 0);
        set_fdmon(NULL);
        c = aio_context_new(&error_abort);
        loop_init(&l, c);
        counters_register(c, cs, 0, 100);
        counters_round(&l, DRIVE_AIO, cs, 100, 1);
        counters_round(&l, DRIVE_GLIB, cs, 100, 2);
        counters_round(&l, DRIVE_AIO, cs, 100, 3);
        g_printerr("after: %s, 100 handlers x 3\n", qaio_context_fdmon_name(c));
        counters_free(&l, cs, 100);
        loop_destroy(&l);
        return;
    }
    run_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*qaio: Failed to initialize io_uring: Function not implemented; "
                              "using poll(2) and epoll instead\n*after: poll, 100 handlers x 3\n*");
}

static void test_epoll_ctl_enospc(void)
{
    if (have_seccomp()) {
        epoll_ctl_fails(ENOSPC);
    }
}

static void test_epoll_ctl_enomem(void)
{
    if (have_seccomp()) {
        epoll_ctl_fails(ENOMEM);
    }
}

static void test_epoll_upgrade_enospc(void)
{
    if (have_seccomp()) {
        epoll_upgrade_fails(ENOSPC);
    }
}

static void test_epoll_upgrade_enomem(void)
{
    if (have_seccomp()) {
        epoll_upgrade_fails(ENOMEM);
    }
}

/* ------------------------------------------------------------------------ */
/* No fd left, while other contexts run                                      */

/* An iothread: its own context, polled until `stop`, counting one-shots. */
typedef struct {
    AioContext *c;
    GThread *thread;
    GMutex lock;
    GCond cond;
    bool ready;
    bool stop;
    int runs; /* under lock */
} IoThread;

static void iothread_oneshot(void *opaque)
{
    IoThread *t = opaque;

    g_mutex_lock(&t->lock);
    t->runs++;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
}

static void iothread_stop_cb(void *opaque)
{
    IoThread *t = opaque;
    t->stop = true; /* read by this same thread */
}

static gpointer iothread_fn(gpointer opaque)
{
    IoThread *t = opaque;

    t->c = aio_context_new(&error_abort);
    qemu_set_current_aio_context(t->c);
    g_mutex_lock(&t->lock);
    t->ready = true;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
    while (!t->stop) {
        aio_poll(t->c, true);
    }
    qemu_set_current_aio_context(NULL);
    return NULL;
}

static void iothread_start(IoThread *t)
{
    memset(t, 0, sizeof(*t));
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    t->thread = g_thread_new("iothread", iothread_fn, t);
    g_mutex_lock(&t->lock);
    while (!t->ready) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
}

/* n one-shots from this thread, each run exactly once by the iothread. */
static void iothread_check(IoThread *t, int n)
{
    int target;

    g_mutex_lock(&t->lock);
    target = t->runs + n;
    g_mutex_unlock(&t->lock);
    for (int i = 0; i < n; i++) {
        aio_bh_schedule_oneshot(t->c, iothread_oneshot, t);
    }
    g_mutex_lock(&t->lock);
    while (t->runs < target) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_assert_cmpint(t->runs, ==, target);
    g_mutex_unlock(&t->lock);
}

static void iothread_join(IoThread *t)
{
    aio_bh_schedule_oneshot(t->c, iothread_stop_cb, t);
    g_thread_join(t->thread);
    aio_context_unref(t->c);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
}

/* The running main-thread context still dispatches fd handlers, BHs and
 * timers. */
static void running_ctx_check(Loop *l, Counter *cs, int round)
{
    int bh_runs = 0, timer_runs = 0;
    QEMUTimer t;

    aio_bh_schedule_oneshot(l->c, count_cb, &bh_runs);
    aio_timer_init(l->c, &t, QEMU_CLOCK_REALTIME, SCALE_NS, count_cb, &timer_runs);
    timer_mod_ns(&t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 100 * 1000);
    while (!timer_runs) {
        aio_poll(l->c, true);
    }
    g_assert_cmpint(bh_runs, ==, 1);
    g_assert_cmpint(timer_runs, ==, 1);
    counters_round(l, DRIVE_AIO, cs, 4, round);
}

static const char *try_new_context(const char *what)
{
    Error *local = NULL;
    AioContext *c = aio_context_new(&local);

    if (c) {
        g_printerr("%s: ok on %s\n", what, qaio_context_fdmon_name(c));
        aio_context_unref(c);
        return "ok";
    }
    g_printerr("%s: %s\n", what, error_get_pretty(local));
    error_free(local);
    return "error";
}

/*
 * With contexts running (one in this thread, one in an iothread), the fd
 * table runs full: an EventNotifier cannot be made (-EMFILE, left
 * uninitialised), a new context fails with an error naming what it could
 * not create and closes what it had created, and the running contexts go on
 * as before.
 */
static void test_no_fd_left(void)
{
    if (g_test_subprocess()) {
        IoThread io;
        Loop l;
        Counter *cs = counters_new(4);
        EventNotifier e;
        int before, lowest;

        loop_init(&l, aio_context_new(&error_abort));
        counters_register(l.c, cs, 0, 4);
        iothread_start(&io);
        running_ctx_check(&l, cs, 1);
        iothread_check(&io, 10);

        before = test_count_open_fds();
        lowest = lowest_free_fd();
        leave_fds(0);
        memset(&e, 0, sizeof(e));
        g_assert_cmpint(event_notifier_init(&e, 0), ==, -EMFILE);
        g_assert_false(e.initialized);
        event_notifier_cleanup(&e); /* a no-op on an uninitialised notifier */
        try_new_context("no fd");
        /* The running contexts need no new fd. */
        running_ctx_check(&l, cs, 2);
        iothread_check(&io, 100);

        /* One fd: enough for the context's eventfd, not for its epoll fd or
         * ring; that eventfd is closed again. */
        restore_nofile();
        leave_fds(1);
        try_new_context("one fd");
        g_assert_cmpint(lowest_free_fd(), ==, lowest);
        running_ctx_check(&l, cs, 3);
        iothread_check(&io, 100);
        restore_nofile();

        g_assert_cmpint(test_count_open_fds(), ==, before);
        g_assert_cmpint(lowest_free_fd(), ==, lowest);
        try_new_context("fds again");
        running_ctx_check(&l, cs, 4);
        iothread_check(&io, 10);

        iothread_join(&io);
        counters_free(&l, cs, 4);
        loop_destroy(&l);
        g_printerr("done\n");
        return;
    }
    run_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*no fd: Failed to initialize event notifier: Too many open files\n*");
    if (suite_is("poll")) {
        g_test_trap_assert_stderr("*one fd: ok on poll\n*");
    } else if (suite_is("epoll")) {
        g_test_trap_assert_stderr("*one fd: Failed to create epoll instance: Too many open files\n*");
    } else if (suite_is("io_uring")) {
        g_test_trap_assert_stderr("*one fd: Failed to initialize io_uring: Too many open files\n*");
    } else {
        g_test_trap_assert_stderr("*one fd: *\n*");
    }
    g_test_trap_assert_stderr("*fds again: ok on *\n*done\n*");
}

/*
 * The poll(2) -> epoll upgrade takes no new fd (the epoll fd is made with
 * the context, as upstream), so it happens with the fd table full; a
 * default context made with room for its eventfd only runs on poll(2) for
 * good, with a warning. Default monitor with io_uring refused.
 */
static void test_no_fd_for_epoll(void)
{
    if (!have_seccomp()) {
        return;
    }
    if (g_test_subprocess()) {
        Counter *cs = counters_new(100);
        AioContext *c;
        Loop l;

        fail_syscall(__NR_io_uring_setup, ENOSYS);
        set_fdmon(NULL);
        c = aio_context_new(&error_abort);
        loop_init(&l, c);
        leave_fds(0);
        counters_register(c, cs, 0, 100);
        counters_round(&l, DRIVE_AIO, cs, 100, 1);
        counters_round(&l, DRIVE_GLIB, cs, 100, 2);
        g_printerr("full fd table: %s\n", qaio_context_fdmon_name(c));
        counters_free(&l, cs, 100);
        loop_destroy(&l);
        restore_nofile();

        cs = counters_new(100);
        leave_fds(1);
        c = aio_context_new(&error_abort);
        restore_nofile();
        loop_init(&l, c);
        counters_register(c, cs, 0, 100);
        counters_round(&l, DRIVE_AIO, cs, 100, 1);
        counters_round(&l, DRIVE_GLIB, cs, 100, 2);
        g_printerr("made with one fd: %s\n", qaio_context_fdmon_name(c));
        counters_free(&l, cs, 100);
        loop_destroy(&l);
        return;
    }
    run_subprocess();
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*full fd table: epoll\n"
                              "*qaio: Failed to create epoll instance: Too many open files\n"
                              "*made with one fd: poll\n*");
}

/* ------------------------------------------------------------------------ */
/* io_uring_enter failing transiently                                        */

/*
 * A seccomp user-notification supervisor: every io_uring_enter of the
 * thread that installed the filter stops in the kernel until this thread
 * answers; the first `budget` answers (in runs of `burst` consecutive calls,
 * each run followed by one call let through) are errors, every later call
 * is let through (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
 */
typedef struct {
    int listener;
    int errnos[3];
    int nerrnos;
    int burst;
    int budget;   /* atomic: failures left */
    int injected; /* atomic */
    int passed;   /* atomic */
    GThread *thread;
} Injector;

static gpointer injector_fn(gpointer opaque)
{
    Injector *inj = opaque;
    struct seccomp_notif_sizes sizes;
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    int run = 0;

    g_assert_cmpint(syscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes), ==, 0);
    req = g_malloc0(MAX(sizes.seccomp_notif, sizeof(*req)));
    resp = g_malloc0(MAX(sizes.seccomp_notif_resp, sizeof(*resp)));
    for (;;) {
        memset(req, 0, MAX(sizes.seccomp_notif, sizeof(*req)));
        if (ioctl(inj->listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
            if (errno == EINTR || errno == ENOENT) {
                continue;
            }
            break; /* listener closed */
        }
        memset(resp, 0, MAX(sizes.seccomp_notif_resp, sizeof(*resp)));
        resp->id = req->id;
        if (run < inj->burst && g_atomic_int_get(&inj->budget) > 0) {
            int n = g_atomic_int_add(&inj->injected, 1);
            g_atomic_int_add(&inj->budget, -1);
            resp->error = -inj->errnos[n % inj->nerrnos];
            run++;
        } else {
            g_atomic_int_inc(&inj->passed);
            resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            run = 0;
        }
        /* ENOENT: the caller was interrupted meanwhile (it retries). */
        ioctl(inj->listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
    }
    g_free(req);
    g_free(resp);
    return NULL;
}

/* From now on io_uring_enter in this thread fails `budget` times. */
static void injector_start(Injector *inj, const int *errnos, int nerrnos, int burst, int budget)
{
    Rule r = { __NR_io_uring_enter, -1, 0, SECCOMP_RET_USER_NOTIF };

    memset(inj, 0, sizeof(*inj));
    memcpy(inj->errnos, errnos, sizeof(int) * (size_t)nerrnos);
    inj->nerrnos = nerrnos;
    inj->burst = burst;
    inj->budget = budget;
    inj->listener = install_filter(&r, 1, SECCOMP_FILTER_FLAG_NEW_LISTENER);
    inj->thread = g_thread_new("injector", injector_fn, inj);
}

enum { NREQ = 1000, NCOUNT = 8, BUDGET = 60 };

typedef struct {
    CqeHandler h;
    int calls;
    int32_t res;
} Req;

static void req_cb(CqeHandler *h)
{
    Req *r = container_of(h, Req, h);
    r->calls++;
    r->res = h->cqe.res;
}

static void prep_nop(struct io_uring_sqe *sqe, void *opaque)
{
    (void)opaque;
    sqe->opcode = IORING_OP_NOP;
}

static int reqs_done(Req *reqs, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        done += reqs[i].calls > 0;
    }
    return done;
}

typedef struct {
    const char *name;
    int errnos[3];
    int nerrnos;
} EnterFault;

/*
 * Under the glib driver, an EAGAIN or EBUSY from the io_uring_enter of the
 * GSource's prepare leaves the queued SQEs unsubmitted: prepare must then
 * return a 0 timeout, since glib's poll(2) on the ring fd would never wake
 * for them (a qaio bug once: that case hung).
 */
static const EnterFault enter_eintr = { "EINTR", { EINTR }, 1 };
static const EnterFault enter_eagain = { "EAGAIN", { EAGAIN }, 1 };
static const EnterFault enter_ebusy = { "EBUSY", { EBUSY }, 1 };
static const EnterFault enter_mixed = { "mixed", { EINTR, EAGAIN, EBUSY }, 3 };

typedef struct {
    const EnterFault *fault;
    Driver driver;
} EnterCase;

/*
 * A burst of NREQ NOPs (the SQ holds 128, the CQ 256: the SQ runs full
 * inside aio_add_sqe and the CQ overflows), NCOUNT ready fd handlers and a
 * timer, while io_uring_enter fails BUDGET times in runs of 3: every
 * completion reaches its handler exactly once, every fd handler runs once
 * per event, the timer fires once, and nothing runs afterwards.
 */
static void io_uring_enter_fails(const EnterCase *ec)
{
    Req *reqs = g_new0(Req, NREQ);
    Counter *cs = counters_new(NCOUNT);
    int timer_runs = 0;
    QEMUTimer t;
    Injector inj;
    Loop l;
    int rounds = 0;

    test_watchdog(30, "io_uring_enter fault case");
    loop_init(&l, aio_context_new(&error_abort));
    g_assert_cmpstr(qaio_context_fdmon_name(l.c), ==, "io_uring");
    counters_register(l.c, cs, 0, NCOUNT);
    aio_timer_init(l.c, &t, QEMU_CLOCK_REALTIME, SCALE_NS, count_cb, &timer_runs);
    loop_drain(&l, ec->driver);

    injector_start(&inj, ec->fault->errnos, ec->fault->nerrnos, 3, BUDGET);
    for (int i = 0; i < NREQ; i++) {
        reqs[i].h.cb = req_cb;
        aio_add_sqe(prep_nop, NULL, &reqs[i].h);
    }
    counters_signal(cs, NCOUNT);
    timer_mod_ns(&t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000 * 1000);
    while (reqs_done(reqs, NREQ) < NREQ || counters_min_calls(cs, NCOUNT) < 1 || !timer_runs) {
        loop_iter(&l, ec->driver, true);
    }
    loop_drain(&l, ec->driver);
    for (int i = 0; i < NREQ; i++) {
        g_assert_cmpint(reqs[i].calls, ==, 1);
        g_assert_cmpint(reqs[i].res, ==, 0);
    }
    for (int i = 0; i < NCOUNT; i++) {
        g_assert_cmpint(cs[i].calls, ==, 1);
        g_assert_cmpuint(cs[i].events, ==, 1);
    }
    g_assert_cmpint(timer_runs, ==, 1);

    /* Until every planned failure was injected: one fd event per round. */
    while (g_atomic_int_get(&inj.budget) > 0) {
        rounds++;
        g_assert_cmpint(rounds, <, 10000);
        g_assert_cmpint(eventfd_write(cs[0].fd, 1), ==, 0);
        while (cs[0].calls < rounds + 1) {
            loop_iter(&l, ec->driver, true);
        }
    }
    /* And the fd handlers still run once per event. */
    counters_round(&l, ec->driver, cs + 1, NCOUNT - 1, 2);
    g_assert_cmpint(cs[0].calls, ==, rounds + 1);
    for (int i = 0; i < NREQ; i++) {
        g_assert_cmpint(reqs[i].calls, ==, 1);
    }
    g_assert_cmpint(timer_runs, ==, 1);
    g_assert_cmpint(g_atomic_int_get(&inj.injected), ==, BUDGET);
    g_assert_cmpint(g_atomic_int_get(&inj.passed), >, 0);
    g_printerr("%s: %d failures injected, %d requests, %d handlers, 1 timer, each once\n",
               ec->fault->name, g_atomic_int_get(&inj.injected), NREQ, NCOUNT);

    counters_free(&l, cs, NCOUNT);
    loop_destroy(&l);
    g_free(reqs);
    test_watchdog(0, NULL);
}

static void test_io_uring_enter(gconstpointer data)
{
    const EnterCase *ec = data;

    if (!have_seccomp()) {
        return;
    }
    if (!suite_is("io_uring")) {
        g_test_skip("io_uring_enter faults need the io_uring monitor (QAIO_FDMON=io_uring)");
        return;
    }
    if (g_test_subprocess()) {
        io_uring_enter_fails(ec);
        return;
    }
    run_subprocess();
    g_test_trap_assert_passed();
    char *pat = g_strdup_printf("*%s: %d failures injected, %d requests, %d handlers, "
                                "1 timer, each once\n*",
                                ec->fault->name, BUDGET, NREQ, NCOUNT);
    g_test_trap_assert_stderr(pat);
    g_free(pat);
}

static void add_enter_case(const EnterFault *f)
{
    static EnterCase cases[8];
    static int ncases;
    const Driver drivers[] = { DRIVE_AIO, DRIVE_GLIB };

    for (int i = 0; i < 2; i++) {
        EnterCase *ec = &cases[ncases++];
        char *path;

        ec->fault = f;
        ec->driver = drivers[i];
        path = g_strdup_printf("/faults/io_uring_enter/%s/%s", f->name,
                               drivers[i] == DRIVE_AIO ? "aio" : "glib");
        g_test_add_data_func(path, ec, test_io_uring_enter);
        g_free(path);
    }
}

/* ------------------------------------------------------------------------ */

/* A subprocess (g_test_trap_subprocess runs this program again with
 * --GTestSubprocess) starts without the fixture context, so that it makes
 * its first context itself, under the faults it installs. */
static bool is_subprocess(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--GTestSubprocess") == 0) {
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    if (is_subprocess(argc, argv)) {
        g_test_init(&argc, &argv, NULL);
    } else {
        test_init(&argc, &argv);
    }

    g_test_add_func("/faults/io_uring-refused/eperm", test_uring_refused_eperm);
    g_test_add_func("/faults/io_uring-refused/enosys", test_uring_refused_enosys);
    g_test_add_func("/faults/epoll_ctl/enospc", test_epoll_ctl_enospc);
    g_test_add_func("/faults/epoll_ctl/enomem", test_epoll_ctl_enomem);
    g_test_add_func("/faults/epoll_ctl/upgrade-enospc", test_epoll_upgrade_enospc);
    g_test_add_func("/faults/epoll_ctl/upgrade-enomem", test_epoll_upgrade_enomem);
    g_test_add_func("/faults/no-fd/running-contexts", test_no_fd_left);
    g_test_add_func("/faults/no-fd/epoll-upgrade", test_no_fd_for_epoll);
    add_enter_case(&enter_eintr);
    add_enter_case(&enter_eagain);
    add_enter_case(&enter_ebusy);
    add_enter_case(&enter_mixed);

    return g_test_run();
}
