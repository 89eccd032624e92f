/*
 * The syscall floors: what the kernel mechanism behind each fd monitor costs
 * with no event loop around it, on the same workloads as bench-qaio.
 *
 *   bench-floor poll       --n N   eventfds in a pollfd array, ppoll(2)
 *   bench-floor epoll      --n N   eventfds in an epoll set, epoll_wait(2)
 *   bench-floor uring-poll --n N   one-shot IORING_OP_POLL_ADD per eventfd,
 *                                  re-armed after each completion (liburing)
 *   bench-floor uring-nop  --n 32  batches of NOPs (liburing)
 *   bench-floor uring-read --n 32  batches of 4 KiB reads from the page cache
 *
 * Each fd iteration signals one eventfd (bench_next_index), waits for it, drains
 * it: the same work as one bench-qaio fds iteration.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common.h"

static BenchOpts opts;
static BenchInfo info = { .impl = "raw", .driver = "-", .ops_per_iter = 1 };

typedef struct {
    int *fds;
    long n;
    long next;
    struct pollfd *pfds;
    int epfd;
    struct io_uring ring;
    /* uring-nop / uring-read */
    int file;
    void **bufs;
    uint64_t next_block, blocks;
} Floor;

static Floor f;

static void make_fds(void)
{
    bench_raise_nofile();
    f.n = opts.n;
    f.fds = calloc(f.n, sizeof(int));
    for (long i = 0; i < f.n; i++) {
        f.fds[i] = bench_eventfd();
    }
}

static int next_fd(void)
{
    int fd = f.fds[f.next];
    f.next = bench_next_index(f.next, f.n);
    return fd;
}

/* ---- poll --------------------------------------------------------------- */

static void poll_iter(void *opaque, long iters)
{
    (void)opaque;
    for (long i = 0; i < iters; i++) {
        bench_efd_signal(next_fd());
        int r = ppoll(f.pfds, f.n, NULL, NULL);
        BENCH_CHECK(r == 1);
        /* Finding the ready entry is part of the mechanism's cost. */
        for (long k = 0; k < f.n; k++) {
            if (f.pfds[k].revents) {
                bench_efd_drain(f.pfds[k].fd);
                break;
            }
        }
    }
}

static void run_poll(void)
{
    make_fds();
    f.pfds = calloc(f.n, sizeof(struct pollfd));
    for (long i = 0; i < f.n; i++) {
        f.pfds[i].fd = f.fds[i];
        f.pfds[i].events = POLLIN;
    }
    info.workload = "fds";
    info.monitor = "poll";
    info.n = f.n;
    bench_run(&info, &opts, poll_iter, NULL);
}

/* ---- epoll -------------------------------------------------------------- */

static void epoll_iter(void *opaque, long iters)
{
    (void)opaque;
    struct epoll_event evs[128];
    for (long i = 0; i < iters; i++) {
        bench_efd_signal(next_fd());
        int r = epoll_wait(f.epfd, evs, 128, -1);
        BENCH_CHECK(r == 1);
        bench_efd_drain(evs[0].data.fd);
    }
}

static void run_epoll(void)
{
    make_fds();
    f.epfd = epoll_create1(EPOLL_CLOEXEC);
    BENCH_CHECK(f.epfd >= 0);
    for (long i = 0; i < f.n; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = f.fds[i] };
        BENCH_CHECK(epoll_ctl(f.epfd, EPOLL_CTL_ADD, f.fds[i], &ev) == 0);
    }
    info.workload = "fds";
    info.monitor = "epoll";
    info.n = f.n;
    bench_run(&info, &opts, epoll_iter, NULL);
}

/* ---- io_uring POLL_ADD -------------------------------------------------- */

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&f.ring);
    if (!sqe) {
        BENCH_CHECK(io_uring_submit(&f.ring) >= 0);
        sqe = io_uring_get_sqe(&f.ring);
        BENCH_CHECK(sqe);
    }
    return sqe;
}

static void arm(long idx)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_poll_add(sqe, f.fds[idx], POLLIN);
    io_uring_sqe_set_data64(sqe, (uint64_t)idx);
}

static void uring_poll_iter(void *opaque, long iters)
{
    (void)opaque;
    for (long i = 0; i < iters; i++) {
        bench_efd_signal(next_fd());
        /* Submits the previous iteration's re-arm and waits, in one call,
         * as an event loop on io_uring does. */
        int r;
        do {
            r = io_uring_submit_and_wait(&f.ring, 1);
        } while (r == -EINTR);
        BENCH_CHECK(r >= 0);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&f.ring, head, cqe) {
            long idx = (long)cqe->user_data;
            BENCH_CHECK(cqe->res > 0);
            bench_efd_drain(f.fds[idx]);
            arm(idx);
            seen++;
        }
        BENCH_CHECK(seen == 1);
        io_uring_cq_advance(&f.ring, seen);
    }
}

static void uring_init(void)
{
    int r = io_uring_queue_init(128, &f.ring, 0);
    if (r < 0) {
        errno = -r;
        bench_unavailable(&info, strerror(-r));
    }
}

static void run_uring_poll(void)
{
    info.workload = "fds";
    info.monitor = "io_uring";
    info.n = opts.n;
    uring_init();
    make_fds();
    for (long i = 0; i < f.n; i++) {
        arm(i);
    }
    BENCH_CHECK(io_uring_submit(&f.ring) >= 0);
    bench_run(&info, &opts, uring_poll_iter, NULL);
}

/* ---- io_uring NOP / READ batches ---------------------------------------- */

static void uring_batch_iter(void *opaque, long iters)
{
    bool read = opaque != NULL;
    for (long i = 0; i < iters; i++) {
        for (long j = 0; j < f.n; j++) {
            struct io_uring_sqe *sqe = get_sqe();
            if (read) {
                io_uring_prep_read(sqe, f.file, f.bufs[j], 4096, f.next_block * 4096);
                if (++f.next_block == f.blocks) {
                    f.next_block = 0;
                }
            } else {
                io_uring_prep_nop(sqe);
            }
            io_uring_sqe_set_data64(sqe, (uint64_t)j + 1);
        }
        long done = 0;
        while (done < f.n) {
            int r = io_uring_submit_and_wait(&f.ring, f.n - done);
            BENCH_CHECK(r >= 0 || r == -EINTR);
            struct io_uring_cqe *cqe;
            unsigned head, seen = 0;
            io_uring_for_each_cqe(&f.ring, head, cqe) {
                BENCH_CHECK(cqe->res == (read ? 4096 : 0));
                seen++;
            }
            io_uring_cq_advance(&f.ring, seen);
            done += seen;
        }
    }
}

static void run_uring_batch(bool read)
{
    info.workload = read ? "sqe-read" : "sqe-nop";
    info.monitor = "io_uring";
    info.n = info.ops_per_iter = f.n = opts.n;
    uring_init();
    if (read) {
        char path[] = "/tmp/qaio-bench-XXXXXX";
        f.file = mkstemp(path);
        BENCH_CHECK(f.file >= 0);
        unlink(path);
        f.blocks = 1024;
        char *block = malloc(4096);
        memset(block, 0x5a, 4096);
        for (uint64_t b = 0; b < f.blocks; b++) {
            BENCH_CHECK(pwrite(f.file, block, 4096, b * 4096) == 4096);
        }
        free(block);
        f.bufs = calloc(f.n, sizeof(void *));
        for (long j = 0; j < f.n; j++) {
            BENCH_CHECK(posix_memalign(&f.bufs[j], 4096, 4096) == 0);
        }
    }
    bench_run(&info, &opts, uring_batch_iter, read ? (void *)1 : NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s poll|epoll|uring-poll|uring-nop|uring-read [--n N] "
                        "[--iters I | --time-ms T] [--warm-ms W]\n", argv[0]);
        return 2;
    }
    const char *w = argv[1];
    bench_parse(argc, argv, &opts);
    info.workload = w;
    info.monitor = "-";
    if (!strcmp(w, "poll")) {
        run_poll();
    } else if (!strcmp(w, "epoll")) {
        run_epoll();
    } else if (!strcmp(w, "uring-poll")) {
        run_uring_poll();
    } else if (!strcmp(w, "uring-nop")) {
        run_uring_batch(false);
    } else if (!strcmp(w, "uring-read")) {
        run_uring_batch(true);
    } else {
        fprintf(stderr, "bench-floor: unknown workload %s\n", w);
        return 2;
    }
    _exit(0);
}
