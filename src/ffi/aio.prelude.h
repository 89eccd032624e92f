
#ifdef QEMU_OSDEP_H
/*
 * Compiled inside QEMU (whose qemu/osdep.h comes first in every file): this
 * header stands in for QEMU's block/aio.h, so it brings in what that one
 * brings in, and declares the block layer's AIOCB types, which QEMU's
 * util/aiocb.c implements.
 */
#ifdef CONFIG_LINUX_IO_URING
#include <liburing.h>
#endif
#include "qemu/coroutine-core.h"
#include "qemu/queue.h"
#include "qemu/event_notifier.h"
#include "qemu/lockcnt.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "block/graph-lock.h"
#include "hw/qdev-core.h"

typedef struct BlockAIOCB BlockAIOCB;
typedef void BlockCompletionFunc(void *opaque, int ret);

/* How to cancel and how large an AIOCB of one kind is. */
typedef struct AIOCBInfo {
    void (*cancel_async)(BlockAIOCB *acb);
    size_t aiocb_size;
} AIOCBInfo;

/* The head of every asynchronous block request. */
struct BlockAIOCB {
    const AIOCBInfo *aiocb_info;
    BlockDriverState *bs;
    BlockCompletionFunc *cb;
    void *opaque;
    int refcnt;
};

void *qemu_aio_get(const AIOCBInfo *aiocb_info, BlockDriverState *bs,
                   BlockCompletionFunc *cb, void *opaque);
void qemu_aio_unref(void *p);
void qemu_aio_ref(void *p);

typedef struct LuringState LuringState;

/* Adaptive polling time of a handler (QEMU's util/aio-posix.h uses it). */
typedef struct AioPolledEvent {
    int64_t ns;
} AioPolledEvent;
#else
#include "qemu/event_notifier.h"
#include "qemu/timer.h"

/*
 * Re-entrancy guard of a device's MMIO/PIO dispatch (QEMU's hw/qdev-core.h
 * defines it there); a BH created with aio_bh_new_guarded sets
 * engaged_in_io while its callback runs.
 */
typedef struct MemReentrancyGuard {
    bool engaged_in_io;
} MemReentrancyGuard;
#endif

/* QEMU's callback types. Prototypes below spell them out as pointers
 * (`void (*cb)(void *opaque)`), which is the same type as `QEMUBHFunc *`. */
typedef void QEMUBHFunc(void *opaque);
typedef bool AioPollFn(void *opaque);
typedef void IOHandler(void *opaque);

/* An fd monitor's operations (defined below). */
typedef struct FDMonOps FDMonOps;

/* A coroutine of the program's coroutine runtime (QEMU's); see aio_co_schedule. */
typedef struct Coroutine Coroutine;

/* A registered fd handler (private to the library). */
typedef struct AioHandler AioHandler;
/* A list of handlers, as filled by an fd monitor's wait (QEMU's QLIST_HEAD). */
typedef struct AioHandlerList {
    AioHandler *lh_first;
} AioHandlerList;

#ifndef stringify
#define xstringify(s) #s
#define stringify(s) xstringify(s)
#endif

/* Create a BH named after its callback (see aio_bh_new_full). */
#define aio_bh_new(ctx, cb, opaque) \
    aio_bh_new_full((ctx), (cb), (opaque), (stringify(cb)), NULL)
/* Create a BH whose callback runs with `guard->engaged_in_io` set. */
#define aio_bh_new_guarded(ctx, cb, opaque, guard) \
    aio_bh_new_full((ctx), (cb), (opaque), (stringify(cb)), (guard))
/* Schedule a one-shot BH named after its callback. */
#define aio_bh_schedule_oneshot(ctx, cb, opaque) \
    aio_bh_schedule_oneshot_full((ctx), (cb), (opaque), (stringify(cb)))
