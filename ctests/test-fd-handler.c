/*
 * fd handlers and event notifiers: registration, replacement, deletion,
 * dispatch rules and the glib driver (parity-scenarios.md S8-S11, S23-S26,
 * S29, section 3 C, F3/F4, K3; aio-behaviour.md sections 7 and 8.6).
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* An event log: callbacks append one character each, tests compare strings. */
/* A counting fd handler record. */
typedef struct {
    int fd;        /* the fd the handler is registered on */
    int reads;
    int writes;
    bool drain;    /* io_read empties the fd */
    char tag;      /* logged by io_read (io_write logs the upper case) */
} FdRec;

static void rec_read(void *opaque)
{
    FdRec *r = opaque;
    r->reads++;
    if (r->drain) {
        test_drain_fd(r->fd);
    }
    if (r->tag) {
        log_add(r->tag);
    }
}

static void rec_write(void *opaque)
{
    FdRec *r = opaque;
    r->writes++;
    if (r->tag) {
        log_add(g_ascii_toupper(r->tag));
    }
}

static void socketpair_nb(int sv[2])
{
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                               0, sv), ==, 0);
}

static void close_pair(int fds[2])
{
    if (fds[0] >= 0) {
        close(fds[0]);
    }
    if (fds[1] >= 0) {
        close(fds[1]);
    }
}

static void unset_fd(AioContext *c, int fd)
{
    aio_set_fd_handler(c, fd, NULL, NULL, NULL, NULL, NULL);
}

static bool fdmon_is(AioContext *c, const char *name)
{
    return strcmp(qaio_context_fdmon_name(c), name) == 0;
}

/* A timer callback that only counts. */
static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* An EventNotifier handler that only drains. */
static void drain_notifier_cb(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
}

static bool poll_never(void *opaque)
{
    (void)opaque;
    return false;
}

static bool poll_fail(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
    return false;
}

static void poll_ready_fail(void *opaque)
{
    (void)opaque;
    g_assert_not_reached();
}

static void notifier_poll_ready_fail(EventNotifier *e)
{
    (void)e;
    g_assert_not_reached();
}

/* Checks that the context still works: a fresh notifier is dispatched once. */
static void assert_context_works(AioContext *c)
{
    EventNotifierTestData d = { .active = 1 };

    event_notifier_init(&d.e, false);
    set_event_notifier(c, &d.e, event_ready_cb);
    g_assert(!aio_poll(c, false));
    event_notifier_set(&d.e);
    g_assert(aio_poll(c, false));
    g_assert_cmpint(d.n, ==, 1);
    g_assert(!aio_poll(c, false));
    set_event_notifier(c, &d.e, NULL);
    g_assert(!aio_poll(c, false));
    event_notifier_cleanup(&d.e);
}

/* ------------------------------------------------------------------------ */
/* S8-S11: event notifiers driven by aio_poll                                */

static void test_event_add_remove(void)
{
    EventNotifierTestData data = { .n = 0, .active = 0 };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);

    set_event_notifier(ctx, &data.e, NULL);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);
    event_notifier_cleanup(&data.e);
}

static void test_event_wait(void)
{
    EventNotifierTestData data = { .n = 0, .active = 1 };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    /* Registration notifies, which is not progress. */
    g_assert_cmpint(drain_aio(ctx), ==, 0);
    g_assert_cmpint(data.n, ==, 0);
    g_assert_cmpint(data.active, ==, 1);

    event_notifier_set(&data.e);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    g_assert_cmpint(data.active, ==, 0);

    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);

    set_event_notifier(ctx, &data.e, NULL);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    event_notifier_cleanup(&data.e);
}

static void test_event_wait_no_flush_cb(void)
{
    EventNotifierTestData data = { .n = 0, .active = 0 };
    EventNotifierTestData dummy = { .n = 0, .active = 1 };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 0);

    /* A signalled notifier makes a blocking poll return at once. */
    event_notifier_set(&data.e);
    g_assert(aio_poll(ctx, true));
    g_assert_cmpint(data.n, ==, 1);
    data.n = 0;

    event_notifier_init(&dummy.e, false);
    set_event_notifier(ctx, &dummy.e, event_ready_cb);

    event_notifier_set(&data.e);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);

    event_notifier_set(&data.e);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 2);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 2);

    event_notifier_set(&dummy.e);
    while (dummy.active > 0) {
        g_assert(aio_poll(ctx, true));
    }
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(dummy.n, ==, 1);
    g_assert_cmpint(dummy.active, ==, 0);

    set_event_notifier(ctx, &dummy.e, NULL);
    event_notifier_cleanup(&dummy.e);

    set_event_notifier(ctx, &data.e, NULL);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 2);
    event_notifier_cleanup(&data.e);
}

static void test_event_flush(void)
{
    EventNotifierTestData data = { .n = 0, .active = 10, .auto_set = true };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    g_assert_cmpint(drain_aio(ctx), ==, 0);
    g_assert_cmpint(data.n, ==, 0);
    g_assert_cmpint(data.active, ==, 10);

    /* The handler re-signals itself but runs once per aio_poll. */
    event_notifier_set(&data.e);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 1);
    g_assert_cmpint(data.active, ==, 9);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(data.active, ==, 8);

    while (data.active > 0) {
        g_assert(aio_poll(ctx, true));
    }
    g_assert_cmpint(data.n, ==, 10);
    g_assert_cmpint(data.active, ==, 0);
    g_assert(!aio_poll(ctx, false));

    set_event_notifier(ctx, &data.e, NULL);
    g_assert(!aio_poll(ctx, false));
    event_notifier_cleanup(&data.e);
}

/* ------------------------------------------------------------------------ */
/* S23-S26: the same through glib (ctx is attached to the default context)  */

static gboolean iterate(gboolean blocking)
{
    return g_main_context_iteration(NULL, blocking);
}

static void test_gsource_event_add_remove(void)
{
    EventNotifierTestData data = { .n = 0, .active = 0 };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    drain_glib();
    g_assert_cmpint(data.n, ==, 0);

    set_event_notifier(ctx, &data.e, NULL);
    drain_glib();
    g_assert_cmpint(data.n, ==, 0);
    event_notifier_cleanup(&data.e);
}

static void test_gsource_event_wait(void)
{
    EventNotifierTestData data = { .n = 0, .active = 1 };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    drain_glib();
    g_assert_cmpint(data.n, ==, 0);
    g_assert_cmpint(data.active, ==, 1);

    event_notifier_set(&data.e);
    g_assert(iterate(FALSE));
    g_assert_cmpint(data.n, ==, 1);
    g_assert_cmpint(data.active, ==, 0);

    drain_glib();
    g_assert_cmpint(data.n, ==, 1);

    set_event_notifier(ctx, &data.e, NULL);
    drain_glib();
    g_assert_cmpint(data.n, ==, 1);
    event_notifier_cleanup(&data.e);
}

static void test_gsource_event_wait_no_flush_cb(void)
{
    EventNotifierTestData data = { .n = 0, .active = 0 };
    EventNotifierTestData dummy = { .n = 0, .active = 1 };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    drain_glib();
    g_assert_cmpint(data.n, ==, 0);

    event_notifier_set(&data.e);
    iterate(TRUE); /* must not block; its result is not specified */
    g_assert_cmpint(data.n, ==, 1);
    data.n = 0;

    event_notifier_init(&dummy.e, false);
    set_event_notifier(ctx, &dummy.e, event_ready_cb);

    event_notifier_set(&data.e);
    g_assert(iterate(FALSE));
    g_assert_cmpint(data.n, ==, 1);
    g_assert(!iterate(FALSE));
    g_assert_cmpint(data.n, ==, 1);

    event_notifier_set(&data.e);
    g_assert(iterate(FALSE));
    g_assert_cmpint(data.n, ==, 2);
    g_assert(!iterate(FALSE));
    g_assert_cmpint(data.n, ==, 2);

    event_notifier_set(&dummy.e);
    drain_glib();
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(dummy.n, ==, 1);
    g_assert_cmpint(dummy.active, ==, 0);

    set_event_notifier(ctx, &dummy.e, NULL);
    event_notifier_cleanup(&dummy.e);

    set_event_notifier(ctx, &data.e, NULL);
    drain_glib();
    g_assert_cmpint(data.n, ==, 2);
    event_notifier_cleanup(&data.e);
}

static void test_gsource_event_flush(void)
{
    EventNotifierTestData data = { .n = 0, .active = 10, .auto_set = true };

    event_notifier_init(&data.e, false);
    set_event_notifier(ctx, &data.e, event_ready_cb);
    drain_glib();
    g_assert_cmpint(data.n, ==, 0);
    g_assert_cmpint(data.active, ==, 10);

    event_notifier_set(&data.e);
    g_assert(iterate(FALSE));
    g_assert_cmpint(data.n, ==, 1);
    g_assert_cmpint(data.active, ==, 9);
    g_assert(iterate(FALSE));
    g_assert_cmpint(data.n, ==, 2);
    g_assert_cmpint(data.active, ==, 8);

    drain_glib();
    g_assert_cmpint(data.n, ==, 10);
    g_assert_cmpint(data.active, ==, 0);
    g_assert(!iterate(FALSE));

    set_event_notifier(ctx, &data.e, NULL);
    drain_glib();
    event_notifier_cleanup(&data.e);
}

/* ------------------------------------------------------------------------ */
/* C1: one handler per fd; registering again replaces everything             */

static void rec_read_alt(void *opaque)
{
    FdRec *r = opaque;
    r->reads += 100;
}

static void test_replace(void)
{
    int p[2];
    FdRec a = { 0 }, b = { 0 };

    test_pipe(p);
    a.fd = b.fd = p[0];
    test_write_byte(p[1]); /* readable until the end: nobody drains */

    aio_set_fd_handler(ctx, p[0], rec_read, NULL, NULL, NULL, &a);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 1);

    /* New callback and new opaque: only they are used from now on. */
    aio_set_fd_handler(ctx, p[0], rec_read_alt, NULL, NULL, NULL, &b);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 1);
    g_assert_cmpint(b.reads, ==, 100);

    /* Replacing with a write-only handler drops io_read too; a pipe's read
     * end never reports OUT, so nothing runs although it stays readable. */
    aio_set_fd_handler(ctx, p[0], NULL, rec_write, NULL, NULL, &a);
    g_assert(!aio_poll(ctx, false));
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 1);
    g_assert_cmpint(a.writes, ==, 0);
    g_assert_cmpint(b.reads, ==, 100);

    unset_fd(ctx, p[0]);
    g_assert(!aio_poll(ctx, false));
    close_pair(p);
}

/* ------------------------------------------------------------------------ */
/* C2: a handler is deleted only when io_read, io_write and io_poll are NULL;
 * io_poll without io_poll_ready is dropped.                                 */

static void test_delete_rules(void)
{
    int p[2];
    FdRec r = { 0 };

    test_pipe(p);
    r.fd = p[1];

    /* A pipe's write end is always writable and never readable. */
    aio_set_fd_handler(ctx, p[1], rec_read, rec_write, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.writes, ==, 1);
    g_assert_cmpint(r.reads, ==, 0);

    /* io_read NULL alone does not delete. */
    aio_set_fd_handler(ctx, p[1], NULL, rec_write, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.writes, ==, 2);

    /* io_poll without io_poll_ready is ignored, so this is a removal. */
    aio_set_fd_handler(ctx, p[1], NULL, NULL, poll_fail, NULL, &r);
    g_assert(!aio_poll(ctx, false));
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.writes, ==, 2);

    /* Removing an fd that is not registered changes nothing. */
    unset_fd(ctx, p[1]);
    g_assert(!aio_poll(ctx, false));

    /* io_poll + io_poll_ready with no io_read/io_write is a valid handler
     * that gets no fd events; with polling disabled (poll_max_ns 0 on ctx)
     * neither callback is ever used. */
    aio_set_fd_handler(ctx, p[1], NULL, NULL, poll_never, poll_ready_fail, &r);
    g_assert(!aio_poll(ctx, false));
    g_assert(!aio_poll(ctx, false));
    unset_fd(ctx, p[1]);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.writes, ==, 2);
    g_assert_cmpint(r.reads, ==, 0);
    close_pair(p);
}

/* ------------------------------------------------------------------------ */
/* C3: a handler deletes itself                                              */

static void delete_self_read(void *opaque)
{
    FdRec *r = opaque;
    r->reads++;
    unset_fd(ctx, r->fd);
}

static int freed_reads, freed_writes;

/* Deletes its handler and frees the opaque straight away (legal: the node
 * stays valid until the outermost aio_poll returns, the opaque is ours). */
static void delete_self_and_free_read(void *opaque)
{
    FdRec *r = opaque;
    freed_reads++;
    unset_fd(ctx, r->fd);
    g_free(r);
}

static void freed_write(void *opaque)
{
    (void)opaque; /* must not be dereferenced: it was freed */
    freed_writes++;
}

static void test_delete_self(void)
{
    int p[2], sv[2];
    FdRec r = { 0 };
    FdRec *heap;

    test_pipe(p);
    r.fd = p[0];
    test_write_byte(p[1]);
    aio_set_fd_handler(ctx, p[0], delete_self_read, NULL, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.reads, ==, 1);
    /* Still readable, but no longer registered. */
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.reads, ==, 1);
    close_pair(p);

    /* Read and write both ready: deleting itself in io_read suppresses
     * io_write in the same poll. */
    socketpair_nb(sv);
    test_write_byte(sv[1]);
    heap = g_new0(FdRec, 1);
    heap->fd = sv[0];
    freed_reads = freed_writes = 0;
    aio_set_fd_handler(ctx, sv[0], delete_self_and_free_read, freed_write,
                       NULL, NULL, heap);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(freed_reads, ==, 1);
    g_assert_cmpint(freed_writes, ==, 0);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(freed_reads, ==, 1);
    g_assert_cmpint(freed_writes, ==, 0);
    close_pair(sv);
}

/* ------------------------------------------------------------------------ */
/* C4: a handler deletes another handler that is ready in the same poll      */

typedef struct PeerRec {
    int fd;
    int reads;
    bool registered;
    struct PeerRec *peer;
} PeerRec;

static void delete_peer_read(void *opaque)
{
    PeerRec *r = opaque;
    r->reads++;
    if (r->peer->registered) {
        r->peer->registered = false;
        unset_fd(ctx, r->peer->fd);
    }
}

static void delete_in_bh(void *opaque)
{
    PeerRec *r = opaque;
    r->registered = false;
    unset_fd(ctx, r->fd);
}

static void test_delete_other(void)
{
    int pa[2], pb[2];
    PeerRec a = { 0 }, b = { 0 };
    PeerRec *survivor;
    QEMUBH *bh;

    test_pipe(pa);
    test_pipe(pb);
    a.fd = pa[0];
    b.fd = pb[0];
    a.peer = &b;
    b.peer = &a;
    test_write_byte(pa[1]);
    test_write_byte(pb[1]);

    /* Both ready; whichever runs first deletes the other, which then does
     * not run although it was ready. */
    a.registered = b.registered = true;
    aio_set_fd_handler(ctx, a.fd, delete_peer_read, NULL, NULL, NULL, &a);
    aio_set_fd_handler(ctx, b.fd, delete_peer_read, NULL, NULL, NULL, &b);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(a.reads + b.reads, ==, 1);
    survivor = a.reads ? &a : &b;
    g_assert(survivor->registered);
    g_assert(!survivor->peer->registered);

    /* The survivor is still readable and runs again; the other does not. */
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(survivor->reads, ==, 2);
    g_assert_cmpint(survivor->peer->reads, ==, 0);
    unset_fd(ctx, survivor->fd);
    survivor->registered = false;
    g_assert(!aio_poll(ctx, false));

    /* A deletion made by a BH (which runs before fd handlers) of a ready
     * handler: the handler is not called, and the BH is the only progress. */
    a.reads = b.reads = 0;
    a.registered = true;
    aio_set_fd_handler(ctx, a.fd, delete_peer_read, NULL, NULL, NULL, &a);
    b.registered = false; /* a must not try to delete b */
    bh = aio_bh_new(ctx, delete_in_bh, &a);
    qemu_bh_schedule(bh);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 0);
    g_assert(!a.registered);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 0);

    /* The same from an idle BH, whose run is not progress: nothing that
     * counts ran, so the poll returns false although a was ready. */
    a.registered = true;
    aio_set_fd_handler(ctx, a.fd, delete_peer_read, NULL, NULL, NULL, &a);
    qemu_bh_schedule_idle(bh);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 0);
    g_assert(!a.registered);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(a.reads, ==, 0);
    qemu_bh_delete(bh);

    close_pair(pa);
    close_pair(pb);
}

/* ------------------------------------------------------------------------ */
/* C5: re-registering a ready fd during dispatch                             */

typedef struct SwapRec {
    int fd;
    int old_calls;
    int new_calls;
    struct SwapRec *target; /* whose fd the old callback re-registers */
} SwapRec;

static bool swapped;

static void swap_new_read(void *opaque)
{
    SwapRec *r = opaque;
    r->new_calls++;
}

static void swap_old_read(void *opaque)
{
    SwapRec *r = opaque;
    r->old_calls++;
    if (!swapped) {
        swapped = true;
        aio_set_fd_handler(ctx, r->target->fd, swap_new_read, NULL, NULL, NULL,
                           r->target);
    }
}

static void test_reregister_during_dispatch(void)
{
    int pa[2], pb[2];
    SwapRec a = { 0 }, b = { 0 };
    SwapRec *moved, *kept;

    test_pipe(pa);
    test_pipe(pb);
    test_write_byte(pa[1]);
    test_write_byte(pb[1]);
    a.fd = pa[0];
    b.fd = pb[0];

    /* Another ready fd: whichever handler runs first re-registers the
     * other; for the rest of this poll neither the other's old nor its new
     * callback runs. */
    a.target = &b;
    b.target = &a;
    swapped = false;
    aio_set_fd_handler(ctx, a.fd, swap_old_read, NULL, NULL, NULL, &a);
    aio_set_fd_handler(ctx, b.fd, swap_old_read, NULL, NULL, NULL, &b);
    g_assert(aio_poll(ctx, false));
    g_assert(swapped);
    g_assert_cmpint(a.old_calls + b.old_calls, ==, 1);
    g_assert_cmpint(a.new_calls + b.new_calls, ==, 0);
    kept = a.old_calls ? &a : &b;
    moved = kept->target;

    /* Still ready: the new callback runs in the next poll. */
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(kept->old_calls, ==, 2);
    g_assert_cmpint(moved->old_calls, ==, 0);
    g_assert_cmpint(moved->new_calls, ==, 1);
    g_assert_cmpint(kept->new_calls, ==, 0);
    unset_fd(ctx, a.fd);
    unset_fd(ctx, b.fd);
    g_assert(!aio_poll(ctx, false));

    /* A handler re-registering its own fd. */
    a = (SwapRec){ .fd = pa[0] };
    a.target = &a;
    swapped = false;
    aio_set_fd_handler(ctx, a.fd, swap_old_read, NULL, NULL, NULL, &a);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(a.old_calls, ==, 1);
    g_assert_cmpint(a.new_calls, ==, 0);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(a.old_calls, ==, 1);
    g_assert_cmpint(a.new_calls, ==, 1);
    unset_fd(ctx, a.fd);
    g_assert(!aio_poll(ctx, false));

    close_pair(pa);
    close_pair(pb);
}

/* ------------------------------------------------------------------------ */
/* C6: readiness is a snapshot taken at wait time                            */

typedef struct {
    int fd;
    int other_fd;
    int reads;
} SnapRec;

static void drain_both_read(void *opaque)
{
    SnapRec *r = opaque;
    r->reads++;
    test_drain_fd(r->fd);
    test_drain_fd(r->other_fd);
}

static void test_readiness_snapshot(void)
{
    int pa[2], pb[2];
    SnapRec a = { 0 }, b = { 0 };

    test_pipe(pa);
    test_pipe(pb);
    a.fd = b.other_fd = pa[0];
    b.fd = a.other_fd = pb[0];
    aio_set_fd_handler(ctx, a.fd, drain_both_read, NULL, NULL, NULL, &a);
    aio_set_fd_handler(ctx, b.fd, drain_both_read, NULL, NULL, NULL, &b);
    g_assert(!aio_poll(ctx, false));

    /* Whichever runs first drains both fds; the other was already on this
     * poll's ready list and is still called (poll and epoll capture
     * readiness at wait time; io_uring may skip the second call). */
    test_write_byte(pa[1]);
    test_write_byte(pb[1]);
    g_assert(aio_poll(ctx, false));
    if (fdmon_is(ctx, "io_uring")) {
        g_assert_cmpint(a.reads + b.reads, >=, 1);
        g_assert_cmpint(a.reads + b.reads, <=, 2);
    } else {
        g_assert_cmpint(a.reads, ==, 1);
        g_assert_cmpint(b.reads, ==, 1);
    }
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(a.reads + b.reads, <=, 2);

    unset_fd(ctx, a.fd);
    unset_fd(ctx, b.fd);
    g_assert(!aio_poll(ctx, false));
    close_pair(pa);
    close_pair(pb);
}

/* ------------------------------------------------------------------------ */
/* C7: io_read before io_write; ERR runs both, HUP only io_read              */

static void test_read_before_write(void)
{
    int sv[2], pe[2], ph[2];
    FdRec r = { .tag = 'r' };

    /* Readable and writable socket. */
    socketpair_nb(sv);
    test_write_byte(sv[1]);
    r.fd = sv[0];
    log_reset();
    aio_set_fd_handler(ctx, sv[0], rec_read, rec_write, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "rR");
    unset_fd(ctx, sv[0]);
    g_assert(!aio_poll(ctx, false));
    close_pair(sv);

    /* Pipe write end whose reader is closed: OUT|ERR; ERR also runs
     * io_read, which runs first. */
    test_pipe(pe);
    close(pe[0]);
    pe[0] = -1;
    r.fd = pe[1];
    log_reset();
    aio_set_fd_handler(ctx, pe[1], rec_read, rec_write, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "rR");
    unset_fd(ctx, pe[1]);
    g_assert(!aio_poll(ctx, false));
    close_pair(pe);

    /* Pipe read end whose writer is closed: HUP runs io_read only. */
    test_pipe(ph);
    close(ph[1]);
    ph[1] = -1;
    r.fd = ph[0];
    log_reset();
    aio_set_fd_handler(ctx, ph[0], rec_read, rec_write, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "r");
    unset_fd(ctx, ph[0]);
    g_assert(!aio_poll(ctx, false));
    close_pair(ph);
}

/* ------------------------------------------------------------------------ */
/* C8: masking of HUP and ERR                                                */

static void test_hup_err_masking(void)
{
    int ph[2], pe[2];
    FdRec r = { 0 };
    QEMUTimer guard;
    int guard_fired = 0;

    /* A write-only handler on an fd that reports only HUP is never called;
     * the fd is still reported, so a blocking poll returns false at once. */
    test_pipe(ph);
    close(ph[1]);
    ph[1] = -1;
    r.fd = ph[0];
    aio_set_fd_handler(ctx, ph[0], NULL, rec_write, NULL, NULL, &r);
    g_assert(!aio_poll(ctx, false));
    aio_timer_init(ctx, &guard, QEMU_CLOCK_REALTIME, SCALE_MS, count_cb,
                   &guard_fired);
    timer_mod(&guard, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 10000);
    g_assert(!aio_poll(ctx, false)); /* accepts the timer's notification */
    g_assert(!aio_poll(ctx, true));
    timer_del(&guard);
    g_assert_cmpint(guard_fired, ==, 0);
    g_assert_cmpint(r.writes, ==, 0);

    /* A read handler on the same fd runs in every poll (EOF, never
     * unregistered). */
    aio_set_fd_handler(ctx, ph[0], rec_read, NULL, NULL, NULL, &r);
    for (int i = 1; i <= 3; i++) {
        g_assert(aio_poll(ctx, false));
        g_assert_cmpint(r.reads, ==, i);
    }
    g_assert_cmpint(r.writes, ==, 0);
    unset_fd(ctx, ph[0]);
    g_assert(!aio_poll(ctx, false));
    close_pair(ph);

    /* A pipe write end whose reader is closed reports OUT|ERR: io_write
     * runs. */
    test_pipe(pe);
    close(pe[0]);
    pe[0] = -1;
    r = (FdRec){ .fd = pe[1] };
    aio_set_fd_handler(ctx, pe[1], NULL, rec_write, NULL, NULL, &r);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.writes, ==, 1);
    g_assert(aio_poll(ctx, false));
    g_assert_cmpint(r.writes, ==, 2);
    unset_fd(ctx, pe[1]);
    g_assert(!aio_poll(ctx, false));
    close_pair(pe);
}

/* ------------------------------------------------------------------------ */
/* C9: level-triggered on every monitor                                      */

static void test_level_triggered(void)
{
    int p[2];
    FdRec r = { 0 };

    test_pipe(p);
    r.fd = p[0];
    test_write_byte(p[1]);
    aio_set_fd_handler(ctx, p[0], rec_read, NULL, NULL, NULL, &r);
    for (int i = 1; i <= 100; i++) {
        /* Mix both kinds: a readable fd never lets aio_poll(true) block. */
        g_assert(aio_poll(ctx, i % 2 == 0));
        g_assert_cmpint(r.reads, ==, i);
    }
    unset_fd(ctx, p[0]);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(r.reads, ==, 100);
    close_pair(p);
}

/* ------------------------------------------------------------------------ */
/* C10: dispatch order (poll(2) only: registration order, oldest first)      */

static void test_dispatch_order(void)
{
    int p[3][2];
    FdRec r[3] = { { .tag = 'a' }, { .tag = 'b' }, { .tag = 'c' } };

    if (strcmp(test_fdmon(), "poll") != 0) {
        g_test_skip("the order of several ready fds is defined only for poll(2)");
        return;
    }
    for (int i = 0; i < 3; i++) {
        test_pipe(p[i]);
        test_write_byte(p[i][1]);
        r[i].fd = p[i][0];
        aio_set_fd_handler(ctx, r[i].fd, rec_read, NULL, NULL, NULL, &r[i]);
    }
    log_reset();
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "abc");

    /* Re-registering makes an fd the newest. */
    aio_set_fd_handler(ctx, r[0].fd, rec_read, NULL, NULL, NULL, &r[0]);
    log_reset();
    g_assert(aio_poll(ctx, false));
    g_assert_cmpstr(evlog, ==, "bca");

    for (int i = 0; i < 3; i++) {
        unset_fd(ctx, r[i].fd);
        close_pair(p[i]);
    }
    g_assert(!aio_poll(ctx, false));
}

/* ------------------------------------------------------------------------ */
/* C12: an fd closed while registered (caller bug)                           */

static void test_closed_fd(void)
{
    AioContext *c = private_ctx_new();
    FdRec r = { 0 };
    QEMUTimer t;
    int fired = 0;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    r.fd = fd;
    aio_set_fd_handler(c, fd, rec_read, NULL, NULL, NULL, &r);
    /* Arm it while it is open (io_uring submits its POLL_ADD here). */
    g_assert(!aio_poll(c, false));
    close(fd);

    /* poll(2) now reports POLLNVAL: no callback, no progress... */
    g_assert(!aio_poll(c, false));
    g_assert(!aio_poll(c, false));
    g_assert_cmpint(r.reads, ==, 0);

    /* ...and no spinning: a blocking poll sleeps until the 50 ms timer. */
    aio_timer_init(c, &t, QEMU_CLOCK_REALTIME, SCALE_MS, count_cb, &fired);
    timer_mod(&t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 50);
    /* Accept the notification raised by arming the new head timer, or the
     * blocking poll below would legitimately return false at once. */
    g_assert(!aio_poll(c, false));
    g_assert(aio_poll(c, true));
    g_assert_cmpint(fired, ==, 1);
    g_assert_cmpint(r.reads, ==, 0);
    g_assert_cmpint(r.writes, ==, 0);
    g_assert(!timer_pending(&t));

    /* Unregistering the dead fd restores a working context. */
    unset_fd(c, fd);
    aio_poll(c, false); /* unspecified: the monitor may switch */
    assert_context_works(c);
    g_assert_cmpint(r.reads, ==, 0);
    private_ctx_free(c);
}

/* ------------------------------------------------------------------------ */
/* C13: regular files and /dev/null are always ready                         */

static void test_regular_files(void)
{
    AioContext *c = private_ctx_new();
    bool was_epoll = fdmon_is(c, "epoll");
    char path[] = "/tmp/qaio-test-fd-XXXXXX";
    int fds[2];
    QEMUTimer guard;
    int guard_fired = 0;

    fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fds[0], >=, 0);
    fds[1] = mkstemp(path);
    g_assert_cmpint(fds[1], >=, 0);
    unlink(path);
    g_assert_cmpint(write(fds[1], "data", 4), ==, 4);

    aio_timer_init(c, &guard, QEMU_CLOCK_REALTIME, SCALE_MS, count_cb,
                   &guard_fired);
    for (int f = 0; f < 2; f++) {
        FdRec r = { .fd = fds[f] };

        aio_set_fd_handler(c, fds[f], rec_read, NULL, NULL, NULL, &r);
        timer_mod(&guard, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 10000);
        for (int i = 1; i <= 3; i++) {
            g_assert(aio_poll(c, false));
            g_assert_cmpint(r.reads, ==, i);
        }
        /* aio_poll(true) never blocks on it (the polls above accepted every
         * notification, so nothing else makes it return). */
        g_assert(aio_poll(c, true));
        timer_del(&guard);
        g_assert_cmpint(r.reads, ==, 4);
        g_assert_cmpint(guard_fired, ==, 0);
        if (was_epoll || test_fdmon_forced("epoll")) {
            /* epoll refuses the fd: the context falls back to poll(2). */
            g_assert_cmpstr(qaio_context_fdmon_name(c), ==, "poll");
        }
        unset_fd(c, fds[f]);
        g_assert(!aio_poll(c, false));
        g_assert_cmpint(r.reads, ==, 4);
        close(fds[f]);
    }
    assert_context_works(c);
    private_ctx_free(c);
}

/* ------------------------------------------------------------------------ */
/* S29: 100 notifiers (over the 64-fd epoll threshold)                       */

static void many_cb(EventNotifier *e)
{
    g_assert(event_notifier_test_and_clear(e));
}

static void test_many_notifiers(void)
{
    EventNotifier *e = g_new0(EventNotifier, 100);
    const char *forced = getenv("QAIO_FDMON");
    bool upgrade;

    if (forced && !*forced) {
        forced = NULL;
    }
    /* Deterministic only when not forced and still on poll(2). */
    upgrade = !forced && strcmp(test_fdmon(), "poll") == 0;

    for (int i = 0; i < 100; i++) {
        g_assert_cmpint(event_notifier_init(&e[i], false), ==, 0);
        aio_set_event_notifier(ctx, &e[i], many_cb, NULL, NULL);
    }
    g_assert(!aio_poll(ctx, false));

    event_notifier_set(&e[0]);
    g_assert(aio_poll(ctx, true));
    event_notifier_set(&e[0]);
    g_assert(aio_poll(ctx, true));
    event_notifier_set(&e[99]);
    g_assert(aio_poll(ctx, true));
    g_assert(!aio_poll(ctx, false));

    if (forced) {
        g_assert_cmpstr(test_fdmon(), ==, forced);
    } else if (upgrade) {
        /* Lazy upgrade at >= 64 fds inside aio_poll. */
        g_assert_cmpstr(test_fdmon(), ==, "epoll");
    }

    for (int i = 0; i < 100; i++) {
        aio_set_event_notifier(ctx, &e[i], NULL, NULL, NULL);
        event_notifier_cleanup(&e[i]);
    }
    g_assert(!aio_poll(ctx, false));
    if (forced) {
        g_assert_cmpstr(test_fdmon(), ==, forced);
    } else if (upgrade) {
        /* No downgrade when the count drops. */
        g_assert_cmpstr(test_fdmon(), ==, "epoll");
    }
    g_free(e);
}

/* Same, but counting per notifier to check no spurious dispatch. */
typedef struct {
    EventNotifier e;
    int n;
} ManyRec;

static void many_rec_cb(EventNotifier *e)
{
    ManyRec *r = (ManyRec *)e;
    g_assert(event_notifier_test_and_clear(e));
    r->n++;
}

static void test_many_notifiers_counts(void)
{
    ManyRec *r = g_new0(ManyRec, 100);

    for (int i = 0; i < 100; i++) {
        event_notifier_init(&r[i].e, false);
        aio_set_event_notifier(ctx, &r[i].e, many_rec_cb, NULL, NULL);
    }
    g_assert(!aio_poll(ctx, false));
    for (int round = 0; round < 3; round++) {
        for (int i = round; i < 100; i += 7) {
            event_notifier_set(&r[i].e);
        }
        /* poll dispatches all at once, epoll up to 128, io_uring up to the
         * CQ size: 15 ready fds fit every monitor's batch, but the number of
         * calls is not the point; the totals are. */
        while (aio_poll(ctx, false)) {
        }
    }
    for (int i = 0; i < 100; i++) {
        int expect = 0;
        for (int round = 0; round < 3; round++) {
            expect += (i >= round && (i - round) % 7 == 0);
        }
        g_assert_cmpint(r[i].n, ==, expect);
    }
    for (int i = 0; i < 100; i++) {
        aio_set_event_notifier(ctx, &r[i].e, NULL, NULL, NULL);
        event_notifier_cleanup(&r[i].e);
    }
    g_assert(!aio_poll(ctx, false));
    g_free(r);
}

/* ------------------------------------------------------------------------ */
/* K3: handlers still registered at finalize are not called                  */

static void test_finalize_with_handlers(void)
{
    AioContext *c = private_ctx_new();
    EventNotifierTestData d = { .active = 1 };
    int sv[2];
    FdRec r = { 0 };

    event_notifier_init(&d.e, false);
    socketpair_nb(sv);
    r.fd = sv[0];
    set_event_notifier(c, &d.e, event_ready_cb);
    aio_set_fd_handler(c, sv[0], rec_read, NULL, NULL, NULL, &r);
    /* Arm them (io_uring submits its POLL_ADDs here). */
    g_assert(!aio_poll(c, false));

    event_notifier_set(&d.e);
    test_write_byte(sv[1]);
    private_ctx_free(c);

    g_assert_cmpint(d.n, ==, 0);
    g_assert_cmpint(r.reads, ==, 0);
    event_notifier_cleanup(&d.e);
    close_pair(sv);
}

/* ------------------------------------------------------------------------ */
/* aio_set_event_notifier_poll and aio_poll_disabled                         */

static int begin_calls, end_calls;

static void count_begin(EventNotifier *e)
{
    (void)e;
    begin_calls++;
}

static void count_end(EventNotifier *e)
{
    (void)e;
    end_calls++;
}

static void test_event_notifier_poll(void)
{
    EventNotifierTestData d = { .active = 3 };
    EventNotifier unregistered;

    begin_calls = end_calls = 0;
    event_notifier_init(&d.e, false);
    event_notifier_init(&unregistered, false);

    /* On an fd that has no handler this does nothing. */
    aio_set_event_notifier_poll(ctx, &unregistered, count_begin, count_end);

    aio_set_event_notifier(ctx, &d.e, event_ready_cb, poll_never,
                           notifier_poll_ready_fail);
    aio_set_event_notifier_poll(ctx, &d.e, count_begin, count_end);
    drain_aio(ctx);

    /* ctx has poll_max_ns 0: poll mode never starts, so neither begin nor
     * end is called; the handler is served through its fd. */
    for (int i = 1; i <= 3; i++) {
        event_notifier_set(&d.e);
        g_assert(aio_poll(ctx, true));
        g_assert_cmpint(d.n, ==, i);
    }
    g_assert_cmpint(begin_calls, ==, 0);
    g_assert_cmpint(end_calls, ==, 0);

    aio_set_event_notifier(ctx, &d.e, NULL, NULL, NULL);
    /* Gone: setting the callbacks again does nothing. */
    aio_set_event_notifier_poll(ctx, &d.e, count_begin, count_end);
    g_assert(!aio_poll(ctx, false));
    g_assert_cmpint(begin_calls, ==, 0);
    g_assert_cmpint(end_calls, ==, 0);
    event_notifier_cleanup(&d.e);
    event_notifier_cleanup(&unregistered);
}

static void test_poll_disabled(void)
{
    AioContext *c = private_ctx_new();
    EventNotifier n1, n2, n3;

    event_notifier_init(&n1, false);
    event_notifier_init(&n2, false);
    event_notifier_init(&n3, false);

    /* The context's own notifier has io_poll. */
    g_assert(!aio_poll_disabled(c));

    aio_set_event_notifier(c, &n1, drain_notifier_cb, NULL, NULL);
    g_assert(aio_poll_disabled(c));
    aio_set_event_notifier(c, &n2, drain_notifier_cb, poll_never,
                           notifier_poll_ready_fail);
    g_assert(aio_poll_disabled(c));
    aio_set_event_notifier(c, &n1, NULL, NULL, NULL);
    g_assert(!aio_poll_disabled(c));

    /* io_poll without io_poll_ready is dropped and counts as "no io_poll". */
    aio_set_event_notifier(c, &n3, drain_notifier_cb, poll_never, NULL);
    g_assert(aio_poll_disabled(c));
    aio_set_event_notifier(c, &n3, drain_notifier_cb, poll_never,
                           notifier_poll_ready_fail);
    g_assert(!aio_poll_disabled(c));

    /* Replacing a pollable handler with a non-pollable one. */
    aio_set_event_notifier(c, &n2, drain_notifier_cb, NULL, NULL);
    g_assert(aio_poll_disabled(c));
    aio_set_event_notifier(c, &n2, NULL, NULL, NULL);
    g_assert(!aio_poll_disabled(c));

    /* Deleting what is not registered changes nothing. */
    aio_set_event_notifier(c, &n1, NULL, NULL, NULL);
    g_assert(!aio_poll_disabled(c));

    aio_set_event_notifier(c, &n3, NULL, NULL, NULL);
    g_assert(!aio_poll_disabled(c));
    g_assert(!aio_poll(c, false));

    event_notifier_cleanup(&n1);
    event_notifier_cleanup(&n2);
    event_notifier_cleanup(&n3);
    private_ctx_free(c);
}

/* ------------------------------------------------------------------------ */
/* F3/F4: fds registered and changed while the GSource is attached           */

static void test_gsource_register_after_attach(void)
{
    EventNotifierTestData d = { .active = 1 };

    drain_glib();
    event_notifier_init(&d.e, false);
    set_event_notifier(ctx, &d.e, event_ready_cb);
    event_notifier_set(&d.e);
    g_assert_cmpint(drain_glib(), >=, 1);
    g_assert_cmpint(d.n, ==, 1);
    g_assert(!iterate(FALSE));

    set_event_notifier(ctx, &d.e, NULL);
    drain_glib();
    g_assert_cmpint(d.n, ==, 1);
    event_notifier_cleanup(&d.e);
}

static gboolean flag_timeout(gpointer opaque)
{
    *(bool *)opaque = true;
    return G_SOURCE_REMOVE;
}

static gpointer register_later_thread(gpointer opaque)
{
    EventNotifierTestData *d = opaque;
    /* Give the main thread time to block in g_main_context_iteration; the
     * result must be the same if it has not blocked yet. */
    g_usleep(50 * 1000);
    set_event_notifier(ctx, &d->e, event_ready_cb);
    return NULL;
}

static void test_gsource_register_from_thread(void)
{
    EventNotifierTestData d = { .active = 1 };
    bool timed_out = false;
    guint guard;
    GThread *t;

    drain_glib();
    event_notifier_init(&d.e, true); /* already signalled */
    guard = g_timeout_add(5000, flag_timeout, &timed_out);
    t = g_thread_new("register", register_later_thread, &d);
    while (d.n == 0 && !timed_out) {
        iterate(TRUE);
    }
    g_thread_join(t);
    g_assert(!timed_out);
    g_source_remove(guard);
    g_assert_cmpint(d.n, ==, 1);

    set_event_notifier(ctx, &d.e, NULL);
    drain_glib();
    g_assert_cmpint(d.n, ==, 1);
    event_notifier_cleanup(&d.e);
}

static void test_gsource_add_modify_remove(void)
{
    int sv[2];
    FdRec r = { .drain = true };

    socketpair_nb(sv);
    r.fd = sv[0];
    drain_glib();

    /* Added, not ready. */
    aio_set_fd_handler(ctx, sv[0], rec_read, NULL, NULL, NULL, &r);
    drain_glib();
    g_assert_cmpint(r.reads, ==, 0);

    /* Becomes readable: one dispatch, which drains it. */
    test_write_byte(sv[1]);
    g_assert(iterate(FALSE));
    g_assert_cmpint(r.reads, ==, 1);
    g_assert(!iterate(FALSE));

    /* Modified to also watch OUT: a socket is always writable. */
    aio_set_fd_handler(ctx, sv[0], rec_read, rec_write, NULL, NULL, &r);
    g_assert(iterate(FALSE));
    g_assert_cmpint(r.writes, ==, 1);
    g_assert_cmpint(r.reads, ==, 1);
    g_assert(iterate(FALSE));
    g_assert_cmpint(r.writes, ==, 2);

    /* Modified back to IN only: the writes stop. */
    aio_set_fd_handler(ctx, sv[0], rec_read, NULL, NULL, NULL, &r);
    drain_glib();
    g_assert_cmpint(r.writes, ==, 2);
    test_write_byte(sv[1]);
    g_assert(iterate(FALSE));
    g_assert_cmpint(r.reads, ==, 2);
    g_assert(!iterate(FALSE));

    /* Removed: readiness is no longer seen. */
    unset_fd(ctx, sv[0]);
    drain_glib();
    test_write_byte(sv[1]);
    drain_glib();
    g_assert_cmpint(r.reads, ==, 2);
    g_assert_cmpint(r.writes, ==, 2);
    close_pair(sv);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/aio/event/add-remove", test_event_add_remove);
    g_test_add_func("/aio/event/wait", test_event_wait);
    g_test_add_func("/aio/event/wait/no-flush-cb", test_event_wait_no_flush_cb);
    g_test_add_func("/aio/event/flush", test_event_flush);

    g_test_add_func("/aio-gsource/event/add-remove", test_gsource_event_add_remove);
    g_test_add_func("/aio-gsource/event/wait", test_gsource_event_wait);
    g_test_add_func("/aio-gsource/event/wait/no-flush-cb",
                    test_gsource_event_wait_no_flush_cb);
    g_test_add_func("/aio-gsource/event/flush", test_gsource_event_flush);

    g_test_add_func("/fd-handler/replace", test_replace);
    g_test_add_func("/fd-handler/delete-rules", test_delete_rules);
    g_test_add_func("/fd-handler/delete-self", test_delete_self);
    g_test_add_func("/fd-handler/delete-other", test_delete_other);
    g_test_add_func("/fd-handler/reregister-during-dispatch",
                    test_reregister_during_dispatch);
    g_test_add_func("/fd-handler/readiness-snapshot", test_readiness_snapshot);
    g_test_add_func("/fd-handler/read-before-write", test_read_before_write);
    g_test_add_func("/fd-handler/hup-err-masking", test_hup_err_masking);
    g_test_add_func("/fd-handler/level-triggered", test_level_triggered);
    g_test_add_func("/fd-handler/dispatch-order", test_dispatch_order);
    g_test_add_func("/fd-handler/closed-fd", test_closed_fd);
    g_test_add_func("/fd-handler/regular-files", test_regular_files);
    g_test_add_func("/fd-handler/many-notifiers", test_many_notifiers);
    g_test_add_func("/fd-handler/many-notifiers/counts", test_many_notifiers_counts);
    g_test_add_func("/fd-handler/finalize-with-handlers", test_finalize_with_handlers);
    g_test_add_func("/fd-handler/event-notifier-poll", test_event_notifier_poll);
    g_test_add_func("/fd-handler/poll-disabled", test_poll_disabled);

    g_test_add_func("/aio-gsource/fd/register-after-attach",
                    test_gsource_register_after_attach);
    g_test_add_func("/aio-gsource/fd/register-from-thread",
                    test_gsource_register_from_thread);
    g_test_add_func("/aio-gsource/fd/add-modify-remove",
                    test_gsource_add_modify_remove);

    return g_test_run();
}
