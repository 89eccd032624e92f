/*
 * Peer: libuv on the same workloads (libuv waits with epoll on Linux).
 *
 *   bench-uv fds    --n N      uv_poll_start(UV_READABLE) on N eventfds, one
 *                              made ready per iteration, uv_run(UV_RUN_ONCE)
 *   bench-uv timers --n 10000  uv_timer_start(0) x N, run until all fired
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"

static BenchOpts opts;
static BenchInfo info = { .impl = "libuv", .monitor = "epoll", .driver = "uv_run", .ops_per_iter = 1 };

static uv_loop_t loop;
static int *fds;
static uv_poll_t *polls;
static long nfds, next_idx, runs;

static void fd_ready(uv_poll_t *h, int status, int events)
{
    (void)events;
    BENCH_CHECK(status == 0);
    bench_efd_drain(*(int *)h->data);
    runs++;
}

static void fds_iter(void *opaque, long iters)
{
    (void)opaque;
    for (long i = 0; i < iters; i++) {
        long before = runs;
        bench_efd_signal(fds[next_idx]);
        next_idx = bench_next_index(next_idx, nfds);
        while (runs == before) {
            uv_run(&loop, UV_RUN_ONCE);
        }
    }
}

static uv_timer_t *timers;
static long fired;

static void timer_fired(uv_timer_t *t)
{
    (void)t;
    fired++;
}

static void timers_iter(void *opaque, long iters)
{
    (void)opaque;
    for (long i = 0; i < iters; i++) {
        fired = 0;
        for (long k = 0; k < opts.n; k++) {
            uv_timer_start(&timers[k], timer_fired, 0, 0);
        }
        while (fired < opts.n) {
            uv_run(&loop, UV_RUN_ONCE);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s fds|timers [--n N] [--iters I | --time-ms T]\n", argv[0]);
        return 2;
    }
    bench_parse(argc, argv, &opts);
    info.n = opts.n;
    BENCH_CHECK(uv_loop_init(&loop) == 0);
    if (!strcmp(argv[1], "fds")) {
        bench_raise_nofile();
        info.workload = "fds";
        nfds = opts.n;
        fds = calloc(nfds, sizeof(int));
        polls = calloc(nfds, sizeof(uv_poll_t));
        for (long i = 0; i < nfds; i++) {
            fds[i] = bench_eventfd();
            BENCH_CHECK(uv_poll_init(&loop, &polls[i], fds[i]) == 0);
            polls[i].data = &fds[i];
            BENCH_CHECK(uv_poll_start(&polls[i], UV_READABLE, fd_ready) == 0);
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        bench_run(&info, &opts, fds_iter, NULL);
    } else if (!strcmp(argv[1], "timers")) {
        info.workload = "timers";
        info.ops_per_iter = opts.n;
        timers = calloc(opts.n, sizeof(uv_timer_t));
        for (long k = 0; k < opts.n; k++) {
            BENCH_CHECK(uv_timer_init(&loop, &timers[k]) == 0);
        }
        bench_run(&info, &opts, timers_iter, NULL);
    } else {
        fprintf(stderr, "bench-uv: unknown workload %s\n", argv[1]);
        return 2;
    }
    _exit(0);
}
