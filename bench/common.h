/*
 * Shared harness of qaio's benchmark programs: timing, the measured window,
 * the allocation counter and the one-line result format bench/run parses.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QAIO_BENCH_COMMON_H
#define QAIO_BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>

/* Command-line options every program takes (after the workload name). */
typedef struct {
    long n;            /* --n: registered fds, batch size, timers...        */
    long iters;        /* --iters: fixed iteration count (0 = by time)      */
    long time_ms;      /* --time-ms: measured time when iters is 0          */
    long warm_ms;      /* --warm-ms: warm-up (and calibration) time         */
    const char *mode;  /* --mode: workload variant (driver, poll on/off...) */
} BenchOpts;

/* What a result line says about the run. */
typedef struct {
    const char *impl;      /* qaio, raw, glib, libuv                        */
    const char *workload;  /* bh, notifier, fds, pingpong, sqe-nop, ...     */
    const char *monitor;   /* the mechanism that waited: poll, epoll, ...   */
    const char *driver;    /* aio_poll, glib, uv_run, - ...                 */
    long n;
    long ops_per_iter;     /* ns/op = ns/iter / ops_per_iter                */
    /* If set, called after the warm-up to fill in `monitor` (what a qaio
     * context really uses is known only once it ran). */
    const char *(*monitor_now)(void);
} BenchInfo;

/* Runs `iters` iterations of the workload. */
typedef void BenchIterFn(void *state, long iters);

/* Parses argv[2..]; exits with a usage message on an unknown option. */
void bench_parse(int argc, char **argv, BenchOpts *o);

/*
 * Warms the workload up while calibrating, then runs the measured window
 * (o->iters iterations, or as many as fit in o->time_ms) and prints
 *   RESULT impl=... workload=... monitor=... driver=... n=... iters=...
 *          ns_per_iter=... ns_per_op=... allocs=...
 * Allocations are counted, and perf's counters enabled, only inside the
 * window.
 */
void bench_run(BenchInfo *info, const BenchOpts *o, BenchIterFn *fn, void *state);

/* Prints "RESULT ... status=unavailable reason=..." and exits 0. */
void bench_unavailable(const BenchInfo *info, const char *reason) __attribute__((noreturn));

/* Monotonic time in ns. */
int64_t bench_now_ns(void);

/* Raises RLIMIT_NOFILE to its hard limit (fds-8192 needs > 8192 fds). */
void bench_raise_nofile(void);

/*
 * The index of the fd to make ready next, after `cur`, among `n`: a fixed
 * pseudo-random walk that visits every index once per `n` steps when `n` is
 * a power of two.  Every program uses it, so all see the same pattern; a
 * sequential walk would favour a monitor whose poll array happens to be in
 * registration order (ppoll registers a wait entry on every fd before the
 * first ready one, so the ready fd's position changes its cost ~4x).
 */
long bench_next_index(long cur, long n);

/* A non-blocking eventfd; aborts on failure. */
int bench_eventfd(void);

/* Adds 1 to an eventfd / drains it; abort on unexpected errors. */
void bench_efd_signal(int fd);
void bench_efd_drain(int fd);

/* Aborts with a message naming the failed check. */
#define BENCH_CHECK(cond) \
    do { if (!(cond)) bench_fail(__FILE__, __LINE__, #cond); } while (0)
void bench_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* Heap allocations (malloc, calloc, realloc, memalign family) counted so far
 * while counting was on; counting is on inside bench_run's window. */
uint64_t bench_alloc_count(void);
void bench_alloc_counting(bool on);

#endif
