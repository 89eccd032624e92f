
#include "qemu/event_notifier.h"
#include "qemu/timer.h"

/* QEMU's callback types. Prototypes below spell them out as pointers
 * (`void (*cb)(void *opaque)`), which is the same type as `QEMUBHFunc *`. */
typedef void QEMUBHFunc(void *opaque);
typedef bool AioPollFn(void *opaque);
typedef void IOHandler(void *opaque);
typedef void EventNotifierHandler(EventNotifier *);

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
