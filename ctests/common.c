/*
 * Shared fixture and helpers for qaio's C tests.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/io_uring.h>
#include <fcntl.h>
#include <unistd.h>

AioContext *ctx;

/* True if the kernel itself refuses the monitor named by QAIO_FDMON: only
 * then may a program skip instead of failing. */
static bool kernel_lacks(const char *forced)
{
    if (!forced || strcmp(forced, "io_uring") != 0) {
        return false;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    long fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd >= 0) {
        close((int)fd);
        return false;
    }
    return true;
}

void test_init(int *argc, char ***argv)
{
    test_init_with_errors(argc, argv, NULL);
}

void test_init_with_errors(int *argc, char ***argv, const char *(*err_text)(Error *err))
{
    Error *err = NULL;
    const char *forced = getenv("QAIO_FDMON");

    g_test_init(argc, argv, NULL);
    ctx = aio_context_new(&err);
    if (!ctx && !kernel_lacks(forced)) {
        g_print("Bail out! aio_context_new failed although the kernel "
                "provides %s: %s\n", forced ? forced : "every monitor",
                err_text ? err_text(err) : error_get_pretty(err));
        exit(1);
    }
    if (!ctx) {
        /* A forced monitor the kernel cannot provide (io_uring disabled,
         * seccomp, RLIMIT_MEMLOCK) skips the whole program. */
        g_print("1..0 # SKIP %s: %s\n", forced ? forced : "default",
                err_text ? err_text(err) : error_get_pretty(err));
        if (!err_text) {
            error_free(err);
        }
        /* A TAP plan of 0 with a SKIP directive is how a TAP runner (meson)
         * learns that the whole program was skipped; exit 77 would read as
         * an error there. */
        exit(0);
    }
    qemu_set_current_aio_context(ctx);
    GSource *src = aio_get_g_source(ctx);
    g_source_attach(src, NULL);
    g_source_unref(src);
    while (g_main_context_iteration(NULL, FALSE)) {
        /* drain */
    }
    g_print("# fdmon: %s%s\n", qaio_context_fdmon_name(ctx),
            forced ? " (forced by QAIO_FDMON)" : "");
}

const char *test_fdmon(void)
{
    return qaio_context_fdmon_name(ctx);
}

bool test_fdmon_forced(const char *name)
{
    const char *forced = getenv("QAIO_FDMON");
    return forced && strcmp(forced, name) == 0;
}

int drain_aio(AioContext *c)
{
    int n = 0;
    while (aio_poll(c, false)) {
        n++;
    }
    return n;
}

int drain_glib(void)
{
    int n = 0;
    while (g_main_context_iteration(NULL, FALSE)) {
        n++;
    }
    return n;
}

int64_t now_ns(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

void bh_test_cb(void *opaque)
{
    BHTestData *data = opaque;
    if (++data->n < data->max) {
        qemu_bh_schedule(data->bh);
    }
}

void bh_delete_cb(void *opaque)
{
    BHTestData *data = opaque;
    if (++data->n < data->max) {
        qemu_bh_schedule(data->bh);
    } else {
        qemu_bh_delete(data->bh);
        data->bh = NULL;
    }
}

void event_ready_cb(EventNotifier *e)
{
    EventNotifierTestData *data = (EventNotifierTestData *)e;
    g_assert(event_notifier_test_and_clear(e));
    data->n++;
    if (data->active > 0) {
        data->active--;
    }
    if (data->auto_set && data->active) {
        event_notifier_set(e);
    }
}

void set_event_notifier(AioContext *c, EventNotifier *e, EventNotifierHandler *handler)
{
    aio_set_event_notifier(c, e, handler, NULL, NULL);
}

void timer_test_cb(void *opaque)
{
    TimerTestData *data = opaque;
    if (++data->n < data->max) {
        timer_mod(&data->timer, qemu_clock_get_ns(data->clock_type) + data->ns);
    }
}

/* --- Private contexts, fd helpers and a watchdog --- */

AioContext *private_ctx_new(void)
{
    AioContext *c = aio_context_new(&error_abort);
    /* qaio: NULL clears the thread's current context (QEMU would assert). */
    qemu_set_current_aio_context(NULL);
    qemu_set_current_aio_context(c);
    return c;
}

void private_ctx_free(AioContext *c)
{
    qemu_set_current_aio_context(NULL);
    qemu_set_current_aio_context(ctx);
    aio_context_unref(c);
}

void test_pipe(int fds[2])
{
    g_assert_cmpint(pipe(fds), ==, 0);
    for (int i = 0; i < 2; i++) {
        g_assert_cmpint(fcntl(fds[i], F_SETFL, O_NONBLOCK), ==, 0);
        g_assert_cmpint(fcntl(fds[i], F_SETFD, FD_CLOEXEC), ==, 0);
    }
}

void test_write_byte(int fd)
{
    char c = 'x';
    g_assert_cmpint(write(fd, &c, 1), ==, 1);
}

int test_drain_fd(int fd)
{
    char buf[256];
    int total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        total += r;
    }
    return total;
}

struct Watchdog {
    AioContext *ctx;
    GThread *thread;
    GMutex lock;
    GCond cond;
    unsigned ms;
    bool stop;
    bool fired;
};

static gpointer watchdog_thread(gpointer opaque)
{
    Watchdog *w = opaque;
    gint64 deadline = g_get_monotonic_time() + (gint64)w->ms * 1000;

    g_mutex_lock(&w->lock);
    while (!w->stop) {
        if (!g_cond_wait_until(&w->cond, &w->lock, deadline) && !w->stop) {
            w->fired = true;
            aio_notify(w->ctx);
            deadline = g_get_monotonic_time() + 100 * 1000;
        }
    }
    g_mutex_unlock(&w->lock);
    return NULL;
}

Watchdog *watchdog_start(AioContext *c, unsigned ms)
{
    Watchdog *w = g_new0(Watchdog, 1);
    w->ctx = c;
    w->ms = ms;
    g_mutex_init(&w->lock);
    g_cond_init(&w->cond);
    w->thread = g_thread_new("watchdog", watchdog_thread, w);
    return w;
}

bool watchdog_stop(Watchdog *w)
{
    bool fired;

    g_mutex_lock(&w->lock);
    w->stop = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
    g_thread_join(w->thread);
    fired = w->fired;
    g_mutex_clear(&w->lock);
    g_cond_clear(&w->cond);
    g_free(w);
    return fired;
}

/* ---- helpers added for test-bh/notify/threads/misuse ---- */

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define QAIO_HAVE_VALGRIND_H 1
#endif
#endif
#include <signal.h>
#include <unistd.h>

/* valgrind 3.19 keeps its global lock while a thread blocks in
 * io_uring_enter: a blocking aio_poll that another thread must wake then
 * freezes the whole process (the other thread never runs). */
static bool valgrind_blocks_io_uring(void)
{
#ifdef QAIO_HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND && strcmp(qaio_context_fdmon_name(ctx), "io_uring") == 0;
#else
    return false;
#endif
}

bool skip_if_valgrind_blocks_io_uring(void)
{
    if (valgrind_blocks_io_uring()) {
        g_test_skip("valgrind cannot run another thread while one blocks in io_uring_enter");
        return true;
    }
    return false;
}

static void cross_thread_test(gconstpointer data)
{
    if (!skip_if_valgrind_blocks_io_uring()) {
        ((GTestFunc)data)();
    }
}

void add_cross_thread_test(const char *path, GTestFunc fn)
{
    g_test_add_data_func(path, (gconstpointer)fn, cross_thread_test);
}

int test_count_open_fds(void)
{
    GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
    int n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    g_dir_close(dir);
    return n - 1; /* the directory's own fd */
}

bool test_quick(void)
{
#ifdef QAIO_HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND) {
        return true;
    }
#endif
    return getenv("QAIO_TEST_QUICK") != NULL;
}

static char watchdog_msg[256];
static size_t watchdog_len;

static void watchdog_fire(int sig)
{
    (void)sig;
    if (write(STDERR_FILENO, watchdog_msg, watchdog_len) < 0) {
        /* nothing more we can do */
    }
    abort();
}

void test_watchdog(unsigned seconds, const char *what)
{
    struct sigaction sa;

    if (seconds == 0) {
        alarm(0);
        return;
    }
    g_snprintf(watchdog_msg, sizeof(watchdog_msg), "watchdog: %s did not finish in %us, aborting\n",
               what, test_quick() ? seconds * 10 : seconds);
    watchdog_len = strlen(watchdog_msg);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fire;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(test_quick() ? seconds * 10 : seconds);
}

typedef struct {
    EventNotifier e;
    bool ran;
} SettleNotifier;

static void settle_cb(EventNotifier *e)
{
    SettleNotifier *s = (SettleNotifier *)e;
    event_notifier_test_and_clear(e);
    s->ran = true;
}

void settle_aio(AioContext *c)
{
    SettleNotifier s = { .ran = false };

    g_assert_cmpint(event_notifier_init(&s.e, false), ==, 0);
    aio_set_event_notifier(c, &s.e, settle_cb, NULL, NULL);
    /* Accept the registration's notification (the flag only). */
    drain_aio(c);
    /*
     * A blocking poll now has timeout -1 and really waits; it sees our fd
     * and, in the same wait, the internal eventfd if it was left readable,
     * whose handler then drains it.
     */
    event_notifier_set(&s.e);
    while (!s.ran) {
        aio_poll(c, true);
    }
    aio_set_event_notifier(c, &s.e, NULL, NULL, NULL);
    /* Accept the unregistration's notification (flag only: nobody waits). */
    aio_poll(c, false);
    event_notifier_cleanup(&s.e);
}

char evlog[64];
static size_t evlen;

void log_reset(void)
{
    evlen = 0;
    evlog[0] = '\0';
}

void log_add(char c)
{
    g_assert_cmpuint(evlen, <, sizeof(evlog) - 1);
    evlog[evlen++] = c;
    evlog[evlen] = '\0';
}

const Driver drive_aio = DRIVE_AIO;
const Driver drive_glib = DRIVE_GLIB;

Driver driver_of(gconstpointer data)
{
    return *(const Driver *)data;
}

bool drive_iteration(Driver d, bool blocking)
{
    if (d == DRIVE_AIO) {
        return aio_poll(ctx, blocking);
    }
    return g_main_context_iteration(NULL, blocking);
}

void add_test_both_drivers(const char *path, GTestDataFunc fn)
{
    char *p = g_strdup_printf("%s/aio", path);
    g_test_add_data_func(p, &drive_aio, fn);
    g_free(p);
    p = g_strdup_printf("%s/glib", path);
    g_test_add_data_func(p, &drive_glib, fn);
    g_free(p);
}
