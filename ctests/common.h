/*
 * Shared fixture and helpers for qaio's C tests.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QAIO_TEST_COMMON_H
#define QAIO_TEST_COMMON_H

#include <glib.h>
#include <stdbool.h>
#include "qemu/aio.h"
#include "qemu/event_notifier.h"
#include "qemu/timer.h"

/*
 * The fixture every test program shares (QEMU's qemu_init_main_loop()
 * stand-in): one AioContext, current in the main thread, its GSource attached
 * to glib's default GMainContext, drained once.
 */
extern AioContext *ctx;

/*
 * Calls g_test_init(), creates the shared ctx and prints a TAP comment
 * naming the fd monitor in use ("# fdmon: io_uring").  When QAIO_FDMON
 * names a monitor the kernel cannot provide (io_uring_setup itself fails),
 * the program prints a TAP "1..0 # SKIP" plan and exits 0, which meson
 * reports as skipped; any other failure to create the context bails out.
 */
void test_init(int *argc, char ***argv);

/* test_init for a program that defines error_setg_internal (as QEMU does):
 * qaio's errors are then the program's own objects, which qaio's
 * error_get_pretty and error_free must not see; err_text gives the message
 * of one, and the program keeps ownership. */
void test_init_with_errors(int *argc, char ***argv, const char *(*err_text)(Error *err));

/* Name of the fd monitor ctx uses right now ("poll", "epoll", "io_uring"). */
const char *test_fdmon(void);

/* True when the suite forces a monitor through QAIO_FDMON. */
bool test_fdmon_forced(const char *name);

/* Repeat aio_poll(c, false) until it returns false; returns the number of
 * calls that returned true. */
int drain_aio(AioContext *c);

/* Repeat g_main_context_iteration(NULL, FALSE) until it returns FALSE;
 * returns the number of iterations that returned TRUE. */
int drain_glib(void);

/* Monotonic REALTIME clock in ns (qemu_clock_get_ns(QEMU_CLOCK_REALTIME)). */
int64_t now_ns(void);

/* Counting BH (H-BH): increments n, reschedules itself while n < max. */
typedef struct {
    QEMUBH *bh;
    int n;
    int max;
} BHTestData;
void bh_test_cb(void *opaque);

/* Self-deleting BH (H-BHDEL): like bh_test_cb, but deletes itself and sets
 * bh = NULL once n reaches max. */
void bh_delete_cb(void *opaque);

/* EventNotifier handler record (H-EV). The handler asserts that
 * event_notifier_test_and_clear() found the notifier set. */
typedef struct {
    EventNotifier e;
    int n;
    int active;
    bool auto_set;
} EventNotifierTestData;
void event_ready_cb(EventNotifier *e);
/* Register / unregister data->e on c with event_ready_cb (no io_poll). */
void set_event_notifier(AioContext *c, EventNotifier *e, EventNotifierHandler *handler);

/* Re-arming timer (H-TMR). */
typedef struct {
    QEMUTimer timer;
    QEMUClockType clock_type;
    int n;
    int max;
    int64_t ns;
} TimerTestData;
void timer_test_cb(void *opaque);

/* --- Private contexts, fd helpers and a watchdog (test-fd-handler, test-timer,
 * test-nested) --- */

/* Creates a private AioContext and makes it the calling thread's current
 * context in place of the shared ctx (aio_poll runs only in a context's home
 * thread). Pair with private_ctx_free(). */
AioContext *private_ctx_new(void);
/* Makes the shared ctx current again and drops the private context's
 * reference (finalizing it). */
void private_ctx_free(AioContext *c);

/* A pipe, both ends O_NONBLOCK and FD_CLOEXEC; asserts success. */
void test_pipe(int fds[2]);
/* Writes one byte to fd; asserts success. */
void test_write_byte(int fd);
/* Reads fd until it would block; returns the number of bytes read. */
int test_drain_fd(int fd);

/* A watchdog thread: unless watchdog_stop() comes first, after ms
 * milliseconds it records that it fired and then calls aio_notify(c) every
 * 100 ms, so a blocking aio_poll that wrongly keeps sleeping returns and the
 * test can fail instead of hanging. */
typedef struct Watchdog Watchdog;
Watchdog *watchdog_start(AioContext *c, unsigned ms);
/* Stops and joins the watchdog; returns true if it fired. */
bool watchdog_stop(Watchdog *w);

/*
 * True when the program runs under valgrind or QAIO_TEST_QUICK is set in the
 * environment: stress tests then use smaller counts and watchdogs allow
 * more time.
 */
bool test_quick(void);

/*
 * The number of file descriptors this process has open (not counting the
 * one used to list them), to check that an operation leaves none behind.
 */
int test_count_open_fds(void);

/* g_test_add_func for a test whose home thread blocks in aio_poll until
 * another thread wakes it: skipped under valgrind on io_uring, where such a
 * wait freezes the whole process. */
void add_cross_thread_test(const char *path, GTestFunc fn);

/*
 * Arms a process-wide watchdog (alarm(2)): if it is not re-armed or
 * disarmed within `seconds` (multiplied by 10 under test_quick()), the
 * program prints "watchdog: <what> did not finish" to stderr and aborts, so a
 * hang fails the test instead of blocking it forever. seconds == 0 disarms.
 */
void test_watchdog(unsigned seconds, const char *what);

/*
 * Leaves the context c, which must be idle (no BH scheduled, no fd ready),
 * with no pending notification: the `notified` flag clear and its internal
 * eventfd drained. A notification raised while nobody waits only sets the
 * flag, but one raised while the home thread was leaving a wait can leave
 * the eventfd readable and make the next blocking aio_poll return false at
 * once (allowed, QEMU does the same). Tests that assert the result of a
 * blocking aio_poll after cross-thread activity call this first.
 * Home thread of c only.
 */
void settle_aio(AioContext *c);

/* Which loop drives a test: aio_poll(ctx, ...) or g_main_context_iteration
 * on the default GMainContext, where the fixture attached ctx. */
typedef enum {
    DRIVE_AIO,
    DRIVE_GLIB,
} Driver;

/* Test data for g_test_add_data_func naming a driver. */
extern const Driver drive_aio;
extern const Driver drive_glib;
Driver driver_of(gconstpointer data);

/* One loop iteration of ctx with driver d. */
bool drive_iteration(Driver d, bool blocking);

/* Registers fn twice, as "<path>/aio" and "<path>/glib", with the driver as
 * its data. */
void add_test_both_drivers(const char *path, GTestDataFunc fn);

/* Skips the current test (and returns true) under valgrind on io_uring,
 * where a wait that another thread must end freezes the process. */
bool skip_if_valgrind_blocks_io_uring(void);

/* An event log the callbacks append one letter each to, so a test can
 * assert the order of events with one string comparison. */
extern char evlog[64];
void log_reset(void);
void log_add(char c);

#endif
