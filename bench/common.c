/*
 * Shared harness of qaio's benchmark programs (see common.h).
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Counting allocator.  The bench executable defines malloc and friends, so
 * the dynamic linker binds every caller in the process to them: the C code,
 * glib, libuv and libqaio.so (Rust's System allocator calls libc's malloc,
 * posix_memalign and realloc).  They count while counting is on and forward
 * to glibc's own implementation.  free() needs no counting.
 * ------------------------------------------------------------------------ */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

static atomic_bool alloc_counting;
static atomic_ulong alloc_count;

static inline void count_alloc(void)
{
    /* Relaxed: the count is read by the thread that turned counting off,
     * after it joined or synchronised with every other thread. */
    if (atomic_load_explicit(&alloc_counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    }
}

void *malloc(size_t size)
{
    count_alloc();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    count_alloc();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    count_alloc();
    return __libc_realloc(p, size);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t size)
{
    count_alloc();
    return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    count_alloc();
    return __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0) {
        return EINVAL;
    }
    count_alloc();
    void *p = __libc_memalign(align, size);
    if (!p) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

uint64_t bench_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

void bench_alloc_counting(bool on)
{
    atomic_store(&alloc_counting, on);
}

/* ------------------------------------------------------------------------ */

void bench_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "bench: %s:%d: check failed: %s (errno %d: %s)\n",
            file, line, what, errno, strerror(errno));
    abort();
}

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

long bench_next_index(long cur, long n)
{
    /* LCG with a % 4 == 1 and odd c: full period modulo any power of two. */
    return (long)(((uint64_t)cur * 1103515245u + 12345u) % (uint64_t)n);
}

int bench_eventfd(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    BENCH_CHECK(fd >= 0);
    return fd;
}

void bench_efd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t r;
    do {
        r = write(fd, &one, sizeof(one));
    } while (r < 0 && errno == EINTR);
    BENCH_CHECK(r == sizeof(one) || (r < 0 && errno == EAGAIN));
}

void bench_efd_drain(int fd)
{
    uint64_t v;
    ssize_t r;
    do {
        r = read(fd, &v, sizeof(v));
    } while (r < 0 && errno == EINTR);
    BENCH_CHECK(r == sizeof(v) || (r < 0 && errno == EAGAIN));
}

static long parse_long(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "bench: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

void bench_parse(int argc, char **argv, BenchOpts *o)
{
    o->n = 1;
    o->iters = 0;
    o->time_ms = 300;
    o->warm_ms = 50;
    o->mode = "";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "bench: option %s needs a value\n", a);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--n")) {
            o->n = parse_long(a, v);
        } else if (!strcmp(a, "--iters")) {
            o->iters = parse_long(a, v);
        } else if (!strcmp(a, "--time-ms")) {
            o->time_ms = parse_long(a, v);
        } else if (!strcmp(a, "--warm-ms")) {
            o->warm_ms = parse_long(a, v);
        } else if (!strcmp(a, "--mode")) {
            o->mode = v;
        } else {
            fprintf(stderr, "bench: unknown option %s\n", a);
            exit(2);
        }
    }
}

/*
 * The measured window.  When bench/run counts syscalls it starts the program
 * under `perf stat --delay=-1 --control fifo:CTL,ACK` and passes the two
 * fifos in BENCH_PERF_CTL / BENCH_PERF_ACK: perf's counters then run only
 * between window_begin and window_end.  BENCH_STRACE_MARK makes the window
 * visible in an strace log instead (an access(2) of a marker path).
 */
static int perf_ctl = -1, perf_ack = -1;

static void perf_command(const char *cmd)
{
    if (perf_ctl < 0) {
        return;
    }
    BENCH_CHECK(write(perf_ctl, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
    char buf[16];
    BENCH_CHECK(read(perf_ack, buf, sizeof(buf)) > 0);
}

static void window_begin(void)
{
    const char *ctl = getenv("BENCH_PERF_CTL");
    const char *ack = getenv("BENCH_PERF_ACK");
    if (ctl && ack && perf_ctl < 0) {
        perf_ctl = open(ctl, O_WRONLY | O_CLOEXEC);
        perf_ack = open(ack, O_RDONLY | O_CLOEXEC);
        BENCH_CHECK(perf_ctl >= 0 && perf_ack >= 0);
    }
    if (getenv("BENCH_STRACE_MARK")) {
        (void)!access("/qaio-bench-window-begin", F_OK);
    }
    perf_command("enable\n");
    bench_alloc_counting(true);
}

static void window_end(void)
{
    bench_alloc_counting(false);
    perf_command("disable\n");
    if (getenv("BENCH_STRACE_MARK")) {
        (void)!access("/qaio-bench-window-end", F_OK);
    }
}

void bench_run(BenchInfo *info, const BenchOpts *o, BenchIterFn *fn, void *state)
{
    /* Warm up in doubling batches; the last batch calibrates. */
    long batch = 1;
    int64_t spent = 0, last_ns = 0;
    long last_batch = 1;
    int64_t warm_ns = o->warm_ms * 1000000LL;
    int rounds = 0;
    while (spent < warm_ns || rounds < 3) {
        int64_t t0 = bench_now_ns();
        fn(state, batch);
        int64_t dt = bench_now_ns() - t0;
        spent += dt;
        last_ns = dt;
        last_batch = batch;
        rounds++;
        if (dt < warm_ns / 4 && batch < (1L << 40)) {
            batch *= 2;
        }
    }

    if (info->monitor_now) {
        info->monitor = info->monitor_now();
    }

    long iters = o->iters;
    if (iters == 0) {
        double per_iter = (double)last_ns / (double)last_batch;
        if (per_iter < 1) {
            per_iter = 1;
        }
        iters = (long)((double)o->time_ms * 1e6 / per_iter);
        if (iters < 3) {
            iters = 3;
        }
    }

    uint64_t allocs0 = bench_alloc_count();
    window_begin();
    int64_t t0 = bench_now_ns();
    fn(state, iters);
    int64_t dt = bench_now_ns() - t0;
    window_end();
    uint64_t allocs = bench_alloc_count() - allocs0;

    double ns_iter = (double)dt / (double)iters;
    printf("RESULT impl=%s workload=%s monitor=%s driver=%s n=%ld iters=%ld "
           "ns_per_iter=%.2f ns_per_op=%.3f allocs=%llu allocs_per_iter=%.4f status=ok\n",
           info->impl, info->workload, info->monitor, info->driver, info->n, iters,
           ns_iter, ns_iter / (double)info->ops_per_iter,
           (unsigned long long)allocs, (double)allocs / (double)iters);
    fflush(stdout);
}

void bench_unavailable(const BenchInfo *info, const char *reason)
{
    char clean[256];
    snprintf(clean, sizeof(clean), "%s", reason ? reason : "unavailable");
    for (char *p = clean; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '=') {
            *p = '_';
        }
    }
    printf("RESULT impl=%s workload=%s monitor=%s driver=%s n=%ld status=unavailable reason=%s\n",
           info->impl, info->workload, info->monitor, info->driver, info->n, clean);
    fflush(stdout);
    exit(0);
}
