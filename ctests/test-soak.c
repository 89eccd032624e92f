/*
 * Soak: for QAIO_SOAK_SECONDS (default 10) four worker threads schedule
 * one-shot BHs, self-deleting BHs and persistent BHs, arm one-shot timers,
 * signal eventfds and re-register their fd handlers on two contexts: the
 * fixture's context, driven by the main thread, and an iothread's. Each home
 * thread mixes blocking aio_poll with glib iterations of its GMainContext,
 * and callbacks now and then nest a non-blocking aio_poll.
 *
 * Every event is counted where it is produced and where it is delivered;
 * after the workers stop, each home thread polls until everything produced
 * was delivered, and the counts must then be equal: nothing lost, nothing
 * run twice (a one-shot event record is marked when delivered, and freed).
 * A lost event shows as a wait that never ends: a watchdog then prints the
 * counts and aborts.
 *
 * Run under each monitor (suite 'soak'); 10 s in .ci/test, by hand e.g.
 *   QAIO_SOAK_SECONDS=600 meson test -C build --suite soak
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
    NWORKERS = 4,
    NCTX = 2,
    NBH = 8,               /* persistent BHs per context */
    MAX_OUTSTANDING = 256, /* one-shot events in flight per worker */
    MAX_NEST = 2,
};

#define EV_LIVE 0x4c495645u
#define EV_DEAD 0x44454144u

typedef enum {
    EV_ONESHOT,
    EV_BH,     /* aio_bh_new + qemu_bh_schedule, deleted by its callback */
    EV_TIMER,  /* aio_timer_new + timer_mod_ns, freed by its callback */
    EV_KINDS,
} EvKind;

static const char *const ev_names[EV_KINDS] = { "oneshot", "bh", "timer" };

typedef struct SoakCtx SoakCtx;

/* A persistent BH: workers add a token, then schedule it; the callback
 * takes every token. */
typedef struct {
    QEMUBH *bh;
    int tokens;  /* atomic */
    int issued;  /* atomic */
    int served;  /* home thread */
    int runs;    /* home thread */
} PersistentBH;

/* An eventfd owned by one worker, registered on one context. */
typedef struct {
    SoakCtx *sc;
    int fd;
    int writes;        /* atomic */
    int reregistered;  /* atomic */
    uint64_t read;     /* home thread: sum of the values read */
    int calls;         /* home thread */
} SoakFd;

struct SoakCtx {
    int index;
    AioContext *c;
    GMainContext *g;
    GRand *rand;   /* home thread */
    int depth;     /* home thread: nesting of aio_poll in callbacks */
    int produced[EV_KINDS];  /* atomic */
    int delivered[EV_KINDS]; /* atomic */
    PersistentBH bhs[NBH];
    SoakFd fds[NWORKERS];
    int aio_polls, glib_iterations, nested_polls; /* home thread */
};

/* One one-shot event. */
typedef struct {
    uint32_t magic;
    EvKind kind;
    SoakCtx *sc;
    int worker;
    QEMUBH *bh;
    QEMUTimer *timer;
} Ev;

static SoakCtx soak[NCTX];
static int outstanding[NWORKERS]; /* atomic */
static int stop_workers;          /* atomic */
static int workers_done;          /* atomic */
static int deadline_reached;      /* main thread */
static int worker_ops[NWORKERS];  /* written by each worker before it exits */

/* ------------------------------------------------------------------------ */
/* Delivery                                                                  */

static void maybe_nest(SoakCtx *sc)
{
    if (sc->depth < MAX_NEST && g_rand_int_range(sc->rand, 0, 32) == 0) {
        sc->depth++;
        sc->nested_polls++;
        aio_poll(sc->c, false);
        sc->depth--;
    }
}

static void deliver(Ev *ev)
{
    SoakCtx *sc = ev->sc;

    g_assert_cmphex(ev->magic, ==, EV_LIVE);
    ev->magic = EV_DEAD;
    g_atomic_int_inc(&sc->delivered[ev->kind]);
    g_atomic_int_add(&outstanding[ev->worker], -1);
    g_free(ev);
    maybe_nest(sc);
}

static void oneshot_cb(void *opaque)
{
    deliver(opaque);
}

static void bh_cb(void *opaque)
{
    Ev *ev = opaque;

    qemu_bh_delete(ev->bh);
    deliver(ev);
}

static void timer_cb(void *opaque)
{
    Ev *ev = opaque;

    g_assert_false(timer_pending(ev->timer));
    timer_free(ev->timer);
    deliver(ev);
}

static void persistent_cb(void *opaque)
{
    PersistentBH *pb = opaque;

    pb->served += g_atomic_int_exchange(&pb->tokens, 0);
    pb->runs++;
}

static void fd_cb(void *opaque)
{
    SoakFd *f = opaque;
    eventfd_t v;

    f->calls++;
    /* Level-triggered: a handler may find the value already taken by a
     * call in a nested poll; that is not an event. */
    if (eventfd_read(f->fd, &v) == 0) {
        f->read += v;
    }
    maybe_nest(f->sc);
}

/* The same handler under another function pointer, to make re-registration
 * a real replacement. */
static void fd_cb_alt(void *opaque)
{
    fd_cb(opaque);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                   */

static Ev *ev_new(EvKind kind, SoakCtx *sc, int worker)
{
    Ev *ev = g_new0(Ev, 1);

    ev->magic = EV_LIVE;
    ev->kind = kind;
    ev->sc = sc;
    ev->worker = worker;
    g_atomic_int_inc(&sc->produced[kind]);
    g_atomic_int_inc(&outstanding[worker]);
    return ev;
}

static gpointer worker_fn(gpointer opaque)
{
    int w = GPOINTER_TO_INT(opaque);
    GRand *rand = g_rand_new_with_seed(0x5eed + (guint32)w);
    int ops = 0;

    while (!g_atomic_int_get(&stop_workers)) {
        SoakCtx *sc = &soak[g_rand_int_range(rand, 0, NCTX)];
        int r = g_rand_int_range(rand, 0, 100);
        Ev *ev;

        if (g_atomic_int_get(&outstanding[w]) >= MAX_OUTSTANDING) {
            /* Back-pressure, not a timing assumption. */
            g_usleep(50);
            continue;
        }
        ops++;
        if (r < 30) {
            ev = ev_new(EV_ONESHOT, sc, w);
            aio_bh_schedule_oneshot(sc->c, oneshot_cb, ev);
        } else if (r < 45) {
            ev = ev_new(EV_BH, sc, w);
            ev->bh = aio_bh_new(sc->c, bh_cb, ev);
            qemu_bh_schedule(ev->bh);
        } else if (r < 65) {
            PersistentBH *pb = &sc->bhs[g_rand_int_range(rand, 0, NBH)];
            g_atomic_int_inc(&pb->issued);
            g_atomic_int_inc(&pb->tokens);
            qemu_bh_schedule(pb->bh);
        } else if (r < 80) {
            ev = ev_new(EV_TIMER, sc, w);
            ev->timer = aio_timer_new(sc->c, QEMU_CLOCK_REALTIME, SCALE_NS, timer_cb, ev);
            timer_mod_ns(ev->timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                                    g_rand_int_range(rand, 0, 2000 * 1000));
        } else if (r < 95) {
            SoakFd *f = &sc->fds[w];
            g_atomic_int_inc(&f->writes);
            g_assert_cmpint(eventfd_write(f->fd, 1), ==, 0);
        } else {
            /* Only this worker registers this fd, so it ends registered. */
            SoakFd *f = &sc->fds[w];
            g_atomic_int_inc(&f->reregistered);
            if (r < 98) {
                aio_set_fd_handler(sc->c, f->fd, (r & 1) ? fd_cb : fd_cb_alt, NULL, NULL, NULL, f);
            } else {
                aio_set_fd_handler(sc->c, f->fd, NULL, NULL, NULL, NULL, NULL);
                aio_set_fd_handler(sc->c, f->fd, fd_cb, NULL, NULL, NULL, f);
            }
        }
        if ((ops & 63) == 0) {
            g_thread_yield();
        }
    }
    g_rand_free(rand);
    worker_ops[w] = ops;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Home threads                                                              */

static void soak_ctx_setup(SoakCtx *sc, int index, AioContext *c, GMainContext *g)
{
    sc->index = index;
    sc->c = c;
    sc->g = g;
    sc->rand = g_rand_new_with_seed(0xc0de + (guint32)index);
    for (int i = 0; i < NBH; i++) {
        sc->bhs[i].bh = aio_bh_new(c, persistent_cb, &sc->bhs[i]);
    }
    for (int w = 0; w < NWORKERS; w++) {
        SoakFd *f = &sc->fds[w];
        f->sc = sc;
        f->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert_cmpint(f->fd, >=, 0);
        aio_set_fd_handler(c, f->fd, fd_cb, NULL, NULL, NULL, f);
    }
}

static void soak_ctx_teardown(SoakCtx *sc)
{
    for (int w = 0; w < NWORKERS; w++) {
        aio_set_fd_handler(sc->c, sc->fds[w].fd, NULL, NULL, NULL, NULL, NULL);
    }
    for (int i = 0; i < NBH; i++) {
        qemu_bh_delete(sc->bhs[i].bh);
    }
    while (aio_poll(sc->c, false)) {
        /* drain */
    }
    for (int w = 0; w < NWORKERS; w++) {
        close(sc->fds[w].fd);
    }
    g_rand_free(sc->rand);
}

static bool all_delivered(SoakCtx *sc)
{
    for (int k = 0; k < EV_KINDS; k++) {
        if (g_atomic_int_get(&sc->delivered[k]) != g_atomic_int_get(&sc->produced[k])) {
            return false;
        }
    }
    for (int i = 0; i < NBH; i++) {
        if (sc->bhs[i].served != g_atomic_int_get(&sc->bhs[i].issued)) {
            return false;
        }
    }
    for (int w = 0; w < NWORKERS; w++) {
        if (sc->fds[w].read != (uint64_t)g_atomic_int_get(&sc->fds[w].writes)) {
            return false;
        }
    }
    return true;
}

static void iterate(SoakCtx *sc)
{
    if (g_rand_int_range(sc->rand, 0, 8) == 0) {
        sc->glib_iterations++;
        g_main_context_iteration(sc->g, TRUE);
    } else {
        sc->aio_polls++;
        aio_poll(sc->c, true);
    }
}

/* After the workers stopped: poll until everything produced arrived (a
 * lost event makes this wait forever: the watchdog reports it). */
static void drain_all(SoakCtx *sc)
{
    while (!all_delivered(sc)) {
        sc->aio_polls++;
        aio_poll(sc->c, true);
    }
    /* Nothing more may arrive. */
    while (aio_poll(sc->c, false)) {
        /* drain */
    }
    while (g_main_context_iteration(sc->g, FALSE)) {
        /* drain */
    }
}

static gpointer iothread_fn(gpointer opaque)
{
    SoakCtx *sc = opaque;
    GMainContext *g = g_main_context_new();
    AioContext *c = aio_context_new(&error_abort);
    GSource *src = aio_get_g_source(c);

    g_source_attach(src, g);
    g_source_unref(src);
    qemu_set_current_aio_context(c);
    soak_ctx_setup(sc, 1, c, g);
    return NULL;
}

typedef struct {
    SoakCtx *sc;
    GMutex lock;
    GCond cond;
    bool ready;
} IoThreadStart;

static gpointer iothread_run(gpointer opaque)
{
    IoThreadStart *st = opaque;
    SoakCtx *sc = st->sc;

    iothread_fn(sc);
    g_mutex_lock(&st->lock);
    st->ready = true;
    g_cond_signal(&st->cond);
    g_mutex_unlock(&st->lock);

    while (!g_atomic_int_get(&workers_done)) {
        iterate(sc);
    }
    drain_all(sc);
    soak_ctx_teardown(sc);
    qemu_set_current_aio_context(NULL);
    return NULL;
}

static void deadline_cb(void *opaque)
{
    (void)opaque;
    deadline_reached = true;
    g_atomic_int_set(&stop_workers, 1);
}

/* ------------------------------------------------------------------------ */
/* Watchdog: prints the counts and aborts if the soak does not finish.      */

static GMutex wd_lock;
static GCond wd_cond;
static bool wd_done;

static void print_counts(const char *prefix, SoakCtx *sc)
{
    int issued = 0, served = 0, runs = 0;
    long long writes = 0, read = 0;
    int rereg = 0;

    for (int i = 0; i < NBH; i++) {
        issued += g_atomic_int_get(&sc->bhs[i].issued);
        served += sc->bhs[i].served;
        runs += sc->bhs[i].runs;
    }
    for (int w = 0; w < NWORKERS; w++) {
        writes += g_atomic_int_get(&sc->fds[w].writes);
        read += (long long)sc->fds[w].read;
        rereg += g_atomic_int_get(&sc->fds[w].reregistered);
    }
    g_printerr("%s ctx%d:", prefix, sc->index);
    for (int k = 0; k < EV_KINDS; k++) {
        g_printerr(" %s %d/%d", ev_names[k], g_atomic_int_get(&sc->delivered[k]),
                   g_atomic_int_get(&sc->produced[k]));
    }
    g_printerr(" bh-tokens %d/%d (%d runs) fd-events %lld/%lld (%d re-registrations)\n",
               served, issued, runs, read, writes, rereg);
}

static gpointer watchdog_fn(gpointer opaque)
{
    gint64 deadline = g_get_monotonic_time() + GPOINTER_TO_INT(opaque) * G_USEC_PER_SEC;

    g_mutex_lock(&wd_lock);
    while (!wd_done) {
        if (!g_cond_wait_until(&wd_cond, &wd_lock, deadline) && !wd_done) {
            g_printerr("watchdog: the soak did not finish: events were lost "
                       "(delivered/produced, racy snapshot):\n");
            print_counts("watchdog", &soak[0]);
            print_counts("watchdog", &soak[1]);
            abort();
        }
    }
    g_mutex_unlock(&wd_lock);
    return NULL;
}

/* ------------------------------------------------------------------------ */

static void test_soak(void)
{
    const char *env = getenv("QAIO_SOAK_SECONDS");
    int seconds = env ? atoi(env) : 10;
    IoThreadStart st = { .sc = &soak[1] };
    GThread *io, *workers[NWORKERS], *wd;
    QEMUTimer deadline;
    SoakCtx *sc0 = &soak[0];

    g_assert_cmpint(seconds, >, 0);
    wd = g_thread_new("soak-watchdog", watchdog_fn, GINT_TO_POINTER(seconds + 120));

    soak_ctx_setup(sc0, 0, ctx, g_main_context_default());
    g_mutex_init(&st.lock);
    g_cond_init(&st.cond);
    io = g_thread_new("soak-iothread", iothread_run, &st);
    g_mutex_lock(&st.lock);
    while (!st.ready) {
        g_cond_wait(&st.cond, &st.lock);
    }
    g_mutex_unlock(&st.lock);

    for (int w = 0; w < NWORKERS; w++) {
        workers[w] = g_thread_new("soak-worker", worker_fn, GINT_TO_POINTER(w));
    }
    aio_timer_init(ctx, &deadline, QEMU_CLOCK_REALTIME, SCALE_MS, deadline_cb, NULL);
    timer_mod(&deadline, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + seconds * 1000);
    while (!deadline_reached) {
        iterate(sc0);
    }
    for (int w = 0; w < NWORKERS; w++) {
        g_thread_join(workers[w]);
    }
    /* Everything is produced: the home threads drain. */
    g_atomic_int_set(&workers_done, 1);
    aio_notify(soak[1].c);
    drain_all(sc0);
    g_thread_join(io);
    /* The iothread's GMainContext holds the last reference to its context. */
    aio_context_unref(soak[1].c);
    g_main_context_unref(soak[1].g);
    soak_ctx_teardown(sc0);

    g_mutex_lock(&wd_lock);
    wd_done = true;
    g_cond_signal(&wd_cond);
    g_mutex_unlock(&wd_lock);
    g_thread_join(wd);

    /* Exactly once, and every kind of event really happened. */
    for (int i = 0; i < NCTX; i++) {
        SoakCtx *sc = &soak[i];
        int issued = 0, served = 0;
        char *line;

        for (int k = 0; k < EV_KINDS; k++) {
            g_assert_cmpint(sc->delivered[k], ==, sc->produced[k]);
            g_assert_cmpint(sc->produced[k], >, 0);
        }
        for (int b = 0; b < NBH; b++) {
            g_assert_cmpint(sc->bhs[b].served, ==, sc->bhs[b].issued);
            g_assert_cmpint(sc->bhs[b].tokens, ==, 0);
            issued += sc->bhs[b].issued;
            served += sc->bhs[b].served;
        }
        g_assert_cmpint(issued, >, 0);
        for (int w = 0; w < NWORKERS; w++) {
            g_assert_cmpuint(sc->fds[w].read, ==, (uint64_t)sc->fds[w].writes);
        }
        g_assert_cmpint(sc->glib_iterations, >, 0);
        g_assert_cmpint(sc->aio_polls, >, 0);
        line = g_strdup_printf(
            "soak %s ctx%d: %d s, oneshot %d, bh %d, timer %d, bh-tokens %d, "
            "fd-events %d, fd re-registrations %d, aio_poll %d, glib iterations %d, nested %d",
            test_fdmon(), i, seconds, sc->delivered[EV_ONESHOT], sc->delivered[EV_BH],
            sc->delivered[EV_TIMER], served,
            sc->fds[0].writes + sc->fds[1].writes + sc->fds[2].writes + sc->fds[3].writes,
            sc->fds[0].reregistered + sc->fds[1].reregistered + sc->fds[2].reregistered +
                sc->fds[3].reregistered,
            sc->aio_polls, sc->glib_iterations, sc->nested_polls);
        g_test_message("%s", line);
        g_free(line);
    }
    g_test_message("soak %s: worker operations %d %d %d %d", test_fdmon(), worker_ops[0],
                   worker_ops[1], worker_ops[2], worker_ops[3]);
    g_assert_cmpint(soak[0].nested_polls + soak[1].nested_polls, >, 0);
    g_mutex_clear(&st.lock);
    g_cond_clear(&st.cond);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);
    g_test_add_func("/soak/two-contexts-four-workers", test_soak);
    return g_test_run();
}
