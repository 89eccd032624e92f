/*
 * Peer: glib's own main loop on the same workloads, as a user who picked
 * glib instead of qaio would write them.
 *
 *   bench-glib fds    --n N      g_unix_fd_add() on N eventfds, one made
 *                                ready per iteration, g_main_context_iteration()
 *   bench-glib timers --n 10000  g_timeout_add(0) x N, run until all fired
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <glib.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static BenchOpts opts;
static BenchInfo info = { .impl = "glib", .monitor = "poll", .driver = "glib", .ops_per_iter = 1 };

static int *fds;
static long nfds, next_idx, runs;

static gboolean fd_ready(gint fd, GIOCondition cond, gpointer data)
{
    (void)cond;
    (void)data;
    bench_efd_drain(fd);
    runs++;
    return G_SOURCE_CONTINUE;
}

static void fds_iter(void *opaque, long iters)
{
    (void)opaque;
    for (long i = 0; i < iters; i++) {
        long before = runs;
        bench_efd_signal(fds[next_idx]);
        next_idx = bench_next_index(next_idx, nfds);
        while (runs == before) {
            g_main_context_iteration(NULL, TRUE);
        }
    }
}

static long fired;

static gboolean timer_fired(gpointer data)
{
    (void)data;
    fired++;
    return G_SOURCE_REMOVE;
}

static void timers_iter(void *opaque, long iters)
{
    (void)opaque;
    for (long i = 0; i < iters; i++) {
        fired = 0;
        for (long k = 0; k < opts.n; k++) {
            g_timeout_add(0, timer_fired, NULL);
        }
        while (fired < opts.n) {
            g_main_context_iteration(NULL, TRUE);
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
    if (!strcmp(argv[1], "fds")) {
        bench_raise_nofile();
        info.workload = "fds";
        nfds = opts.n;
        fds = calloc(nfds, sizeof(int));
        for (long i = 0; i < nfds; i++) {
            fds[i] = bench_eventfd();
            g_unix_fd_add(fds[i], G_IO_IN, fd_ready, NULL);
        }
        while (g_main_context_iteration(NULL, FALSE)) {
        }
        bench_run(&info, &opts, fds_iter, NULL);
    } else if (!strcmp(argv[1], "timers")) {
        info.workload = "timers";
        info.ops_per_iter = opts.n;
        bench_run(&info, &opts, timers_iter, NULL);
    } else {
        fprintf(stderr, "bench-glib: unknown workload %s\n", argv[1]);
        return 2;
    }
    _exit(0);
}
